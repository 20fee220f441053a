//! Plain image classifiers: one output `[b, classes]`, logits or probabilities; uint8 or float
//! input, stretched to the model's size.

use super::{Adapter, AdapterCtx, Misfit, RawPred, image_input, size_text};
use crate::infer::InferError;
use crate::infer::config::{Activation, AdapterKind, Normalize};
use crate::infer::preprocess::{Fit, Geometry, InputSpec};
use crate::infer::session::{DType, ModelInfo, Output};
use crate::model::Task;

pub fn matches(info: &ModelInfo) -> bool {
    let [out] = info.outputs.as_slice() else {
        return false;
    };
    info.inputs.len() == 1
        && info.inputs[0].shape.len() == 4
        && out.shape.len() == 2
        && out.shape[1] != 1
}

/// How scores are read from the output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scores {
    Softmax,
    Sigmoid,
    /// Probabilities already; uint8 outputs are quantised as value / 256.
    Probabilities,
}

/// The activation from `[model] activation`, else from the output and the task.
pub fn scores_for(out: &super::super::session::TensorInfo, ctx: &AdapterCtx) -> Scores {
    match ctx.cfg.activation {
        Some(Activation::Softmax) => Scores::Softmax,
        Some(Activation::Sigmoid) => Scores::Sigmoid,
        Some(Activation::None) => Scores::Probabilities,
        None => {
            let name = out.name.to_ascii_lowercase();
            if out.dtype == DType::U8 || name.contains("softmax") || name.contains("prob") {
                Scores::Probabilities
            } else if ctx.task == Task::Multilabel {
                Scores::Sigmoid
            } else {
                Scores::Softmax
            }
        }
    }
}

/// Class scores of one row of logits; keeps the top two whatever their score (the margin needs
/// them) and the rest at or above `threshold`.
pub fn class_scores(row: &[f32], dtype: DType, scores: Scores, threshold: f32) -> Vec<RawPred> {
    let probs: Vec<f32> = match scores {
        Scores::Probabilities if dtype == DType::U8 => row.iter().map(|v| v / 256.0).collect(),
        Scores::Probabilities => row.to_vec(),
        Scores::Sigmoid => row.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect(),
        Scores::Softmax => {
            let max = row.iter().copied().fold(f32::MIN, f32::max);
            let exps: Vec<f32> = row.iter().map(|v| (v - max).exp()).collect();
            let sum: f32 = exps.iter().sum();
            exps.iter().map(|e| e / sum).collect()
        }
    };
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|a, b| probs[*b].total_cmp(&probs[*a]).then(a.cmp(b)));
    order
        .into_iter()
        .enumerate()
        .filter(|(rank, c)| *rank < 2 || probs[*c] >= threshold)
        .map(|(_, c)| RawPred {
            class: c,
            score: probs[c],
            bbox: None,
        })
        .collect()
}

pub struct Classify {
    input: InputSpec,
    scores: Scores,
    threshold: f32,
}

impl Classify {
    pub fn build(info: &ModelInfo, ctx: &AdapterCtx) -> Result<Classify, Misfit> {
        if !matches(info) {
            return Err(Misfit(format!(
                "it needs one image input and one [b, classes] output ({})",
                info.describe()
            )));
        }
        let input = image_input(
            info,
            ctx,
            Some(info.meta.imgsz.unwrap_or((224, 224))),
            Fit::Stretch,
            Normalize::Unit,
        )?;
        // Ultralytics `-cls` exports end in a softmax.
        let ultralytics = info.meta.task.as_deref() == Some("classify");
        let scores = match ctx.cfg.activation {
            None if ultralytics => Scores::Probabilities,
            _ => scores_for(&info.outputs[0], ctx),
        };
        Ok(Classify {
            input,
            scores,
            threshold: ctx.threshold,
        })
    }
}

impl Adapter for Classify {
    fn kind(&self) -> AdapterKind {
        AdapterKind::Classify
    }
    fn input(&self) -> &InputSpec {
        &self.input
    }
    fn summary(&self) -> String {
        format!(
            "classify (input {}, scores {:?})",
            size_text(&self.input),
            self.scores
        )
    }
    fn decode(
        &self,
        outs: &[Output],
        b: usize,
        _geom: &Geometry,
    ) -> Result<Vec<RawPred>, InferError> {
        let out = outs
            .first()
            .filter(|o| o.shape.len() == 2)
            .ok_or_else(|| InferError::Run("the classifier gave no [b, classes] output".into()))?;
        let c = out.shape[1];
        let row = out.data.get(b * c..(b + 1) * c).ok_or_else(|| {
            InferError::Run(format!(
                "classifier output {:?} is smaller than batch {}",
                out.shape,
                b + 1
            ))
        })?;
        Ok(class_scores(row, out.dtype, self.scores, self.threshold))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_keeps_top_two() {
        let p = class_scores(&[0.0, (3.0f32).ln(), 0.0], DType::F32, Scores::Softmax, 0.5);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].class, 1);
        assert!((p[0].score - 0.6).abs() < 1e-6);
        assert_eq!(p[1].class, 0);
        assert!((p[1].score - 0.2).abs() < 1e-6);
        let q = class_scores(&[128.0, 64.0], DType::U8, Scores::Probabilities, 0.0);
        assert_eq!((q[0].score, q[1].score), (0.5, 0.25));
    }
}
