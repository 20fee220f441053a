//! YOLOv5/v8/v11 raw heads: one output `[b, 4+nc, N]` (v8/v11) or `[b, N, 5+nc]` (v5, with an
//! objectness column), boxes as cx, cy, w, h in input pixels. Letterboxed float input scaled to
//! 0..1; termtag does the NMS.

use super::{Adapter, AdapterCtx, Misfit, RawPred, image_input, nms, size_text};
use crate::infer::InferError;
use crate::infer::config::{AdapterKind, Normalize};
use crate::infer::preprocess::{Elem, Fit, Geometry, InputSpec};
use crate::infer::session::{ModelInfo, Output};

/// Most boxes kept per image after NMS (as Ultralytics).
const MAX_DETECTIONS: usize = 300;

pub fn matches(info: &ModelInfo) -> bool {
    let [out] = info.outputs.as_slice() else {
        return false;
    };
    let image_in = info.inputs.len() == 1 && info.inputs[0].shape.len() == 4;
    // Either of the last two dimensions can be the 4+nc channels: at least one class.
    image_in && out.shape.len() == 3 && (out.shape[1] >= 5 || out.shape[2] >= 5)
}

pub struct Yolo {
    input: InputSpec,
    threshold: f32,
    nms_iou: f64,
    num_labels: Option<usize>,
    objectness: Option<bool>,
}

impl Yolo {
    pub fn build(info: &ModelInfo, ctx: &AdapterCtx) -> Result<Yolo, Misfit> {
        let [out] = info.outputs.as_slice() else {
            return Err(Misfit(format!(
                "it needs one output [b, 4+classes, boxes] ({})",
                info.describe()
            )));
        };
        if out.shape.len() != 3 {
            return Err(Misfit(format!("output {out} is not [b, 4+classes, boxes]")));
        }
        // A free input size gets the size the model was exported for (Ultralytics `imgsz`).
        let input = image_input(
            info,
            ctx,
            Some(info.meta.imgsz.unwrap_or((640, 640))),
            Fit::Letterbox(114),
            Normalize::Unit,
        )?;
        if input.elem != Elem::F32 {
            return Err(Misfit("YOLO heads take float input".into()));
        }
        Ok(Yolo {
            input,
            threshold: ctx.threshold,
            nms_iou: ctx.cfg.nms_iou.unwrap_or(0.45),
            num_labels: ctx.num_labels,
            objectness: ctx.cfg.objectness,
        })
    }

    /// Reads the head's layout from its real shape: (channels first, channels, anchors,
    /// objectness). With named classes the channel count says it; else the longer axis is the
    /// anchors (thousands in real heads).
    fn layout(&self, shape: &[usize]) -> Result<(bool, usize, usize, bool), InferError> {
        let (d1, d2) = (shape[1], shape[2]);
        let fits = |c: usize| self.num_labels.is_some_and(|nc| c == 4 + nc || c == 5 + nc);
        let first = match (fits(d1), fits(d2)) {
            (true, false) => true,
            (false, true) => false,
            _ => d1 < d2,
        };
        let (c, n) = if first { (d1, d2) } else { (d2, d1) };
        let obj = match (self.objectness, self.num_labels) {
            (Some(o), _) => o,
            (None, Some(nc)) if c == 4 + nc => false,
            (None, Some(nc)) if c == 5 + nc => true,
            // v8/v11 export channels first without objectness; v5 channels last with it.
            _ => !first,
        };
        let need = if obj { 6 } else { 5 };
        if c < need {
            return Err(InferError::Run(format!(
                "YOLO output {shape:?} has {c} channels, fewer than a box and one class"
            )));
        }
        Ok((first, c, n, obj))
    }
}

impl Adapter for Yolo {
    fn kind(&self) -> AdapterKind {
        AdapterKind::Yolo
    }
    fn input(&self) -> &InputSpec {
        &self.input
    }
    fn summary(&self) -> String {
        format!(
            "yolo (raw head, letterbox {}, NMS IoU {})",
            size_text(&self.input),
            self.nms_iou
        )
    }
    fn decode(
        &self,
        outs: &[Output],
        b: usize,
        geom: &Geometry,
    ) -> Result<Vec<RawPred>, InferError> {
        let out = outs
            .first()
            .filter(|o| o.shape.len() == 3)
            .ok_or_else(|| InferError::Run("the YOLO model gave no [b, c, n] output".into()))?;
        let (first, c, n, obj) = self.layout(&out.shape)?;
        let base = b * c * n;
        if out.data.len() < base + c * n {
            return Err(InferError::Run(format!(
                "YOLO output {:?} is smaller than batch {}",
                out.shape,
                b + 1
            )));
        }
        let at = |anchor: usize, ch: usize| -> f32 {
            if first {
                out.data[base + ch * n + anchor]
            } else {
                out.data[base + anchor * c + ch]
            }
        };
        let cls0 = if obj { 5 } else { 4 };
        let mut cands = Vec::new();
        for a in 0..n {
            let o = if obj { at(a, 4) } else { 1.0 };
            if o < self.threshold {
                continue;
            }
            let (mut best, mut best_c) = (f32::MIN, 0);
            for k in cls0..c {
                let v = at(a, k);
                if v > best {
                    best = v;
                    best_c = k - cls0;
                }
            }
            let score = o * best;
            if score < self.threshold {
                continue;
            }
            let [cx, cy, w, h] = [0, 1, 2, 3].map(|k| f64::from(at(a, k)));
            cands.push((
                [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0],
                best_c,
                score,
            ));
        }
        Ok(nms(cands, self.nms_iou, MAX_DETECTIONS)
            .into_iter()
            .filter_map(|(bx, class, score)| {
                geom.input_box(bx[0], bx[1], bx[2], bx[3])
                    .map(|bbox| RawPred {
                        class,
                        score,
                        bbox: Some(bbox),
                    })
            })
            .collect())
    }
}
