//! Azure AutoML for Images exports:
//! - Faster R-CNN / RetinaNet: outputs `boxes_i`, `labels_i`, `scores_i` for image i of the
//!   batch, boxes as pixel x_min, y_min, x_max, y_max of the resized input (ImageNet-normalised,
//!   stretched);
//! - YOLO: one `(n, 6)` output x_min, y_min, x_max, y_max, confidence, class in letterboxed input
//!   pixels (0..1 input);
//! - classification: logits `(batch, classes)` with softmax (multi-class) or sigmoid
//!   (multi-label), ImageNet-normalised input; class names from `labels.json`.

use super::classify::{Scores, class_scores, scores_for};
use super::{Adapter, AdapterCtx, Misfit, RawPred, image_input, no_output, size_text};
use crate::infer::InferError;
use crate::infer::config::{AdapterKind, Normalize};
use crate::infer::preprocess::{Fit, Geometry, InputSpec};
use crate::infer::session::{ModelInfo, Output};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Head {
    /// Faster R-CNN / RetinaNet, one output triple per batch image.
    Rcnn {
        batch: usize,
    },
    /// YOLO after NMS: `(n, 6)` or `(b, n, 6)`.
    Yolo,
    Classify(Scores),
}

fn rcnn_batch(info: &ModelInfo) -> usize {
    (0..)
        .take_while(|i| {
            ["boxes", "labels", "scores"]
                .iter()
                .all(|p| info.output(&format!("{p}_{i}")).is_some())
        })
        .count()
}

fn yolo6(info: &ModelInfo) -> bool {
    matches!(info.outputs.as_slice(), [o] if o.shape.len() == 2 && o.shape[1] == 6)
}

pub fn matches(info: &ModelInfo, ctx: &AdapterCtx) -> bool {
    rcnn_batch(info) > 0
        || yolo6(info)
        || (ctx.automl_labels && super::classify::matches(info) && !super::yolo::matches(info))
}

pub struct Automl {
    head: Head,
    input: InputSpec,
    threshold: f32,
}

impl Automl {
    pub fn build(info: &ModelInfo, ctx: &AdapterCtx) -> Result<Automl, Misfit> {
        let batch = rcnn_batch(info);
        let (head, input) = if batch > 0 {
            let mut input = image_input(
                info,
                ctx,
                Some((800, 600)),
                Fit::Stretch,
                Normalize::Imagenet,
            )?;
            // One output triple per image: the batch is what the export was made for.
            input.batch = batch;
            input.fixed_batch = true;
            (Head::Rcnn { batch }, input)
        } else if yolo6(info)
            || matches!(info.outputs.as_slice(), [o] if o.shape.len() == 3 && o.shape[2] == 6)
        {
            let mut input = image_input(
                info,
                ctx,
                Some((640, 640)),
                Fit::Letterbox(114),
                Normalize::Unit,
            )?;
            if info.outputs[0].shape.len() == 2 {
                input.batch = 1;
                input.fixed_batch = true;
            }
            (Head::Yolo, input)
        } else if super::classify::matches(info) {
            let input = image_input(
                info,
                ctx,
                Some((224, 224)),
                Fit::Stretch,
                Normalize::Imagenet,
            )?;
            (Head::Classify(scores_for(&info.outputs[0], ctx)), input)
        } else {
            return Err(Misfit(format!(
                "it needs outputs boxes_0/labels_0/scores_0, one (n, 6) output, or one (batch, classes) output ({})",
                info.describe()
            )));
        };
        Ok(Automl {
            head,
            input,
            threshold: ctx.threshold,
        })
    }
}

impl Adapter for Automl {
    fn kind(&self) -> AdapterKind {
        AdapterKind::Automl
    }
    fn input(&self) -> &InputSpec {
        &self.input
    }
    fn summary(&self) -> String {
        let head = match self.head {
            Head::Rcnn { .. } => "Faster R-CNN / RetinaNet".to_string(),
            Head::Yolo => "YOLO (n, 6)".to_string(),
            Head::Classify(s) => format!("classification, {s:?}"),
        };
        format!("automl ({head}, input {})", size_text(&self.input))
    }
    fn decode(
        &self,
        outs: &[Output],
        b: usize,
        geom: &Geometry,
    ) -> Result<Vec<RawPred>, InferError> {
        match self.head {
            Head::Rcnn { batch } => {
                if b >= batch {
                    return Err(InferError::Run(format!("batch index {b} ≥ {batch}")));
                }
                let get = |p: &str| {
                    let n = format!("{p}_{b}");
                    outs.iter()
                        .find(|o| o.name == n)
                        .ok_or_else(|| no_output(&n))
                };
                let (boxes, labels, scores) = (get("boxes")?, get("labels")?, get("scores")?);
                let n = scores
                    .data
                    .len()
                    .min(labels.data.len())
                    .min(boxes.data.len() / 4);
                let mut out = Vec::new();
                for i in 0..n {
                    let score = scores.data[i];
                    if score < self.threshold {
                        continue;
                    }
                    let [x0, y0, x1, y1] = [0, 1, 2, 3].map(|k| f64::from(boxes.data[i * 4 + k]));
                    if let Some(bbox) = geom.input_box(x0, y0, x1, y1) {
                        out.push(RawPred {
                            class: labels.data[i].round().max(0.0) as usize,
                            score,
                            bbox: Some(bbox),
                        });
                    }
                }
                Ok(out)
            }
            Head::Yolo => {
                let o = outs.first().ok_or_else(|| no_output("(n, 6)"))?;
                let rows: &[f32] = if o.shape.len() == 3 {
                    let per = o.shape[1] * 6;
                    o.data.get(b * per..(b + 1) * per).unwrap_or(&[])
                } else {
                    &o.data
                };
                Ok(rows
                    .chunks_exact(6)
                    .filter(|r| r[4] >= self.threshold)
                    .filter_map(|r| {
                        let [x0, y0, x1, y1] = [0, 1, 2, 3].map(|k| f64::from(r[k]));
                        geom.input_box(x0, y0, x1, y1).map(|bbox| RawPred {
                            class: r[5].round().max(0.0) as usize,
                            score: r[4],
                            bbox: Some(bbox),
                        })
                    })
                    .collect())
            }
            Head::Classify(scores) => {
                let o = outs.first().ok_or_else(|| no_output("logits"))?;
                let c = o.shape.get(1).copied().unwrap_or(0);
                let row = o.data.get(b * c..(b + 1) * c).ok_or_else(|| {
                    InferError::Run(format!("logits {:?} smaller than batch {}", o.shape, b + 1))
                })?;
                Ok(class_scores(row, o.dtype, scores, self.threshold))
            }
        }
    }
}
