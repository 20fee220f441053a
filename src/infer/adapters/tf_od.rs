//! TensorFlow Object Detection API exports: uint8 NHWC input of any size; `detection_boxes`
//! (ymin, xmin, ymax, xmax, normalised), `detection_scores`, `detection_classes` (class ids as
//! floats) and `num_detections`. Resizing and NMS happen inside the graph.

use super::{
    Adapter, AdapterCtx, Misfit, RawPred, base_name, find, image_input, no_output, size_text,
};
use crate::infer::InferError;
use crate::infer::config::{AdapterKind, Normalize};
use crate::infer::preprocess::{Fit, Geometry, InputSpec};
use crate::infer::session::{ModelInfo, Output};

pub fn matches(info: &ModelInfo) -> bool {
    let has = |n: &str| info.outputs.iter().any(|o| base_name(&o.name) == n);
    has("detection_boxes") && has("detection_scores") && has("detection_classes")
}

pub struct TfOd {
    input: InputSpec,
    threshold: f32,
}

impl TfOd {
    pub fn build(info: &ModelInfo, ctx: &AdapterCtx) -> Result<TfOd, Misfit> {
        if !matches(info) {
            return Err(Misfit(format!(
                "it needs outputs detection_boxes, detection_scores, detection_classes ({})",
                info.describe()
            )));
        }
        let input = image_input(info, ctx, None, Fit::Stretch, Normalize::Raw)?;
        Ok(TfOd {
            input,
            threshold: ctx.threshold,
        })
    }
}

impl Adapter for TfOd {
    fn kind(&self) -> AdapterKind {
        AdapterKind::TfOd
    }
    fn input(&self) -> &InputSpec {
        &self.input
    }
    fn summary(&self) -> String {
        format!(
            "tf_od (TF Object Detection API, input {})",
            size_text(&self.input)
        )
    }
    fn decode(
        &self,
        outs: &[Output],
        b: usize,
        geom: &Geometry,
    ) -> Result<Vec<RawPred>, InferError> {
        let get = |n: &str| find(outs, n).ok_or_else(|| no_output(n));
        let boxes = get("detection_boxes")?;
        let scores = get("detection_scores")?;
        let classes = get("detection_classes")?;
        let per = scores.shape.get(1).copied().unwrap_or(0);
        if boxes.data.len() < (b + 1) * per * 4
            || classes.data.len() < (b + 1) * per
            || scores.data.len() < (b + 1) * per
        {
            return Err(InferError::Run(format!(
                "detection outputs disagree in size: boxes {:?}, scores {:?}, classes {:?}",
                boxes.shape, scores.shape, classes.shape
            )));
        }
        let n = find(outs, "num_detections")
            .and_then(|o| o.data.get(b))
            .map(|v| (*v as usize).min(per))
            .unwrap_or(per);
        let mut out = Vec::new();
        for i in 0..n {
            let score = scores.data[b * per + i];
            if score < self.threshold {
                continue;
            }
            let k = (b * per + i) * 4;
            let [ymin, xmin, ymax, xmax] = [0, 1, 2, 3].map(|j| f64::from(boxes.data[k + j]));
            let class = classes.data[b * per + i].round().max(0.0) as usize;
            if let Some(bbox) = geom.input_normalised_box(xmin, ymin, xmax, ymax) {
                out.push(RawPred {
                    class,
                    score,
                    bbox: Some(bbox),
                });
            }
        }
        Ok(out)
    }
}
