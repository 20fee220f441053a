//! Model adapters: one module per output layout. Each says whether a model looks like its
//! layout, what input the model wants, and how to turn the outputs into boxes or class scores.
//! Adding a layout is one module and one line in [`choose`].

pub mod automl;
pub mod classify;
pub mod tf_od;
pub mod yolo;

use super::InferError;
use super::config::{AdapterKind, ModelConfig, Normalize};
use super::preprocess::{Elem, Fit, Geometry, InputSpec, Layout, Size};
use super::session::{DType, ModelInfo, Output};
use crate::model::{BBox, Task};

/// One thing the model found: a model class id, a score, and a box for detectors.
#[derive(Debug, Clone, PartialEq)]
pub struct RawPred {
    pub class: usize,
    pub score: f32,
    pub bbox: Option<BBox>,
}

/// What adapters need besides the model.
#[derive(Debug, Clone)]
pub struct AdapterCtx<'a> {
    pub cfg: &'a ModelConfig,
    pub task: Task,
    /// Number of model classes, when a labels file names them.
    pub num_labels: Option<usize>,
    /// A `labels.json` came with the model (Azure AutoML exports one).
    pub automl_labels: bool,
    /// Predictions below this are dropped.
    pub threshold: f32,
}

pub trait Adapter: Send + Sync {
    fn kind(&self) -> AdapterKind;
    fn input(&self) -> &InputSpec;
    /// One line for the user: the layout and its settings.
    fn summary(&self) -> String;
    /// Image `b` of a batch; boxes normalised to the image.
    fn decode(
        &self,
        outs: &[Output],
        b: usize,
        geom: &Geometry,
    ) -> Result<Vec<RawPred>, InferError>;
}

/// Picks the adapter from `[model] adapter`, else from the model's names and shapes.
pub fn choose(info: &ModelInfo, ctx: &AdapterCtx) -> Result<Box<dyn Adapter>, InferError> {
    let kind = match ctx.cfg.adapter {
        Some(k) => k,
        None => {
            let task = info.meta.task.as_deref();
            if tf_od::matches(info) {
                AdapterKind::TfOd
            } else if task == Some("classify") && classify::matches(info) {
                AdapterKind::Classify
            } else if let Some(t @ ("segment" | "pose" | "obb")) = task {
                return Err(InferError::Model(format!(
                    "the model's metadata says it is an Ultralytics `{t}` model; termtag reads detect and classify exports: export a detect (or -cls) model, or set [model] adapter; {}",
                    info.describe()
                )));
            } else if automl::matches(info, ctx) {
                AdapterKind::Automl
            } else if yolo::matches(info) {
                AdapterKind::Yolo
            } else if classify::matches(info) {
                AdapterKind::Classify
            } else {
                return Err(unknown(info, None));
            }
        }
    };
    let built: Result<Box<dyn Adapter>, Misfit> = match kind {
        AdapterKind::TfOd => tf_od::TfOd::build(info, ctx).map(|a| Box::new(a) as _),
        AdapterKind::Yolo => yolo::Yolo::build(info, ctx).map(|a| Box::new(a) as _),
        AdapterKind::Automl => automl::Automl::build(info, ctx).map(|a| Box::new(a) as _),
        AdapterKind::Classify => classify::Classify::build(info, ctx).map(|a| Box::new(a) as _),
    };
    built.map_err(|why| unknown(info, Some((kind, why))))
}

/// Why an adapter cannot read a model (its inputs or outputs are not the layout it knows); the
/// caller adds what the model has and the keys that would make it work.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Misfit(pub String);

/// The error for a model no adapter reads: what it has, and the keys that would help.
fn unknown(info: &ModelInfo, tried: Option<(AdapterKind, Misfit)>) -> InferError {
    let head = match tried {
        Some((k, why)) => format!("the {} adapter cannot read this model: {why}", k.as_str()),
        None => "no adapter recognises this model".to_string(),
    };
    InferError::Model(format!(
        "{head}; {}; set [model] adapter = \"tf_od\" | \"yolo\" | \"automl\" | \"classify\" in termtag.toml, with input_size = [w, h], normalize = \"raw\" | \"unit\" | \"imagenet\", activation = \"softmax\" | \"sigmoid\" | \"none\", objectness = true | false and labels = \"labels.txt\" as the model needs",
        info.describe()
    ))
}

/// The one image input of a model: rank 4 with 3 channels, uint8 or float.
pub(crate) fn image_input(
    info: &ModelInfo,
    ctx: &AdapterCtx,
    default_size: Option<(u32, u32)>,
    fit: Fit,
    default_norm: Normalize,
) -> Result<InputSpec, Misfit> {
    let [input] = info.inputs.as_slice() else {
        return Err(Misfit(format!(
            "it has {} inputs; termtag feeds one image tensor",
            info.inputs.len()
        )));
    };
    if input.shape.len() != 4 {
        return Err(Misfit(format!(
            "input {input} is not an image batch [n, h, w, 3] or [n, 3, h, w]"
        )));
    }
    let s = &input.shape;
    let (layout, h, w) = if s[3] == 3 {
        (Layout::Nhwc, s[1], s[2])
    } else if s[1] == 3 {
        (Layout::Nchw, s[2], s[3])
    } else {
        return Err(Misfit(format!(
            "input {input} has no dimension of 3 colour channels"
        )));
    };
    let elem = match input.dtype {
        DType::U8 => Elem::U8,
        DType::F32 => Elem::F32,
        other => {
            return Err(Misfit(format!(
                "input {input}: {} pixels are not supported",
                other.as_str()
            )));
        }
    };
    let size = match (ctx.cfg.input_size, h > 0 && w > 0) {
        (_, true) => Size::Fixed {
            w: w as u32,
            h: h as u32,
        },
        (Some([w, h]), false) => Size::Fixed { w, h },
        (None, false) => match default_size {
            Some((w, h)) => Size::Fixed { w, h },
            None => Size::Any {
                max_side: ctx.cfg.max_side.unwrap_or(1024),
            },
        },
    };
    let fixed_batch = s[0] > 0;
    let batch = if fixed_batch {
        s[0] as usize
    } else if matches!(size, Size::Fixed { .. }) {
        ctx.cfg.batch.unwrap_or(8).max(1)
    } else {
        1
    };
    Ok(InputSpec {
        name: input.name.clone(),
        elem,
        layout,
        size,
        fit,
        normalize: ctx.cfg.normalize.unwrap_or(default_norm),
        batch,
        fixed_batch,
    })
}

/// The output called `name`, with or without a `:0` suffix.
pub(crate) fn find<'o>(outs: &'o [Output], name: &str) -> Option<&'o Output> {
    outs.iter().find(|o| base_name(&o.name) == name)
}

/// The model's outputs lack `what` (a name, or a shape for a model whose outputs are unnamed).
pub(crate) fn no_output(what: &str) -> InferError {
    InferError::Run(format!("the model gave no {what} output"))
}

/// `detection_boxes:0` → `detection_boxes`.
pub(crate) fn base_name(name: &str) -> &str {
    name.split(':').next().unwrap_or(name)
}

pub(crate) fn size_text(spec: &InputSpec) -> String {
    match spec.size {
        Size::Fixed { w, h } => format!("{w}×{h}"),
        Size::Any { max_side: 0 } => "full size".to_string(),
        Size::Any { max_side } => format!("longer side ≤ {max_side}"),
    }
}

/// Greedy per-class non-maximum suppression; keeps at most `max` boxes, best first.
/// Boxes are `(x0, y0, x1, y1)` in any one coordinate system.
pub fn nms(
    mut cands: Vec<([f64; 4], usize, f32)>,
    iou: f64,
    max: usize,
) -> Vec<([f64; 4], usize, f32)> {
    cands.sort_by(|a, b| b.2.total_cmp(&a.2));
    let mut kept: Vec<([f64; 4], usize, f32)> = Vec::new();
    for c in cands {
        if kept.len() >= max {
            break;
        }
        let suppressed = kept.iter().any(|k| k.1 == c.1 && box_iou(&k.0, &c.0) > iou);
        if !suppressed {
            kept.push(c);
        }
    }
    kept
}

fn box_iou(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if union <= 0.0 { 0.0 } else { inter / union }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nms_suppresses_same_class_only() {
        let kept = nms(
            vec![
                ([0.0, 0.0, 10.0, 10.0], 0, 0.9),
                ([1.0, 1.0, 11.0, 11.0], 0, 0.8),
                ([1.0, 1.0, 11.0, 11.0], 1, 0.7),
                ([20.0, 20.0, 30.0, 30.0], 0, 0.6),
            ],
            0.45,
            10,
        );
        let scores: Vec<f32> = kept.iter().map(|k| k.2).collect();
        assert_eq!(scores, vec![0.9, 0.7, 0.6]);
    }
}
