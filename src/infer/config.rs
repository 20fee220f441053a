//! The `[onnxruntime]`, `[model]` and `[train]` tables of `termtag.toml`. Every key is optional:
//! an empty table (or none) means "detect it".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `[onnxruntime]`: where the runtime library is, and which execution provider to use.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnnxRuntimeConfig {
    /// Path of `libonnxruntime.so*` (or the folder holding it); tried after `ORT_DYLIB_PATH`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `auto` (CUDA when the library has it and it starts, else CPU), `cuda`, `tensorrt` (tried
    /// before CUDA; builds engines per input shape, so only for fixed-size models) or `cpu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Device>,
    /// Threads ONNX Runtime may use for one inference (default: all cores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    Auto,
    Cuda,
    Tensorrt,
    Cpu,
}

/// Which output layout a model has; `auto` detects it from input/output names and shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdapterKind {
    TfOd,
    Yolo,
    Automl,
    Classify,
}

impl AdapterKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AdapterKind::TfOd => "tf_od",
            AdapterKind::Yolo => "yolo",
            AdapterKind::Automl => "automl",
            AdapterKind::Classify => "classify",
        }
    }
}

/// How class logits become probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// Multi-class: one class per image.
    Softmax,
    /// Multi-label: each class on its own.
    Sigmoid,
    /// The model already outputs probabilities.
    None,
}

/// How float pixel inputs are scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalize {
    /// 0..255 as is.
    Raw,
    /// 0..1.
    Unit,
    /// 0..1, then ImageNet mean/std per channel.
    Imagenet,
}

/// `[model]`: the default model for `predict` and how to read it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Model file (relative to the project folder), used when `predict` gets no `--model`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// tf_od, yolo, automl or classify; detected when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<AdapterKind>,
    /// Model class names: a `.txt` (one name a line, or `id<TAB>name`) or a `labels.json` (a
    /// list of names). Default: `labels.json` / `labels.txt` beside the model, if present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<String>,
    /// Model class (name or id) → project class; `-` drops it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub class_map: BTreeMap<String, String>,
    /// Project class for model classes neither mapped nor named like a project class (default:
    /// such classes are dropped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_class: Option<String>,
    /// `[width, height]` fed to a model whose input size is not fixed (YOLO default 640×640).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_size: Option<[u32; 2]>,
    /// Models that take any input size (TF Object Detection API) get images whose longer side
    /// is at most this (default 1024; 0 feeds the full image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_side: Option<u32>,
    /// Images per inference call when the model's batch dimension is free (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<usize>,
    /// Class logits → probabilities (default: softmax for classify, sigmoid for multilabel;
    /// none when the output is named like a probability or is uint8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation: Option<Activation>,
    /// Float inputs: raw, unit or imagenet (default: unit; imagenet for AutoML classifiers and
    /// Faster R-CNN / RetinaNet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<Normalize>,
    /// Predictions below this are not stored (default: the project's `min_confidence`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_threshold: Option<f64>,
    /// YOLO: IoU above which a lower-scoring box of the same class is suppressed (default 0.45).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nms_iou: Option<f64>,
    /// YOLO: whether the head carries an objectness column (v5: yes; v8/v11: no). Detected from
    /// the class count and layout when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objectness: Option<bool>,
}

impl ModelConfig {
    pub fn is_empty(&self) -> bool {
        self == &ModelConfig::default()
    }
}

/// `[train]`: the user's training job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Shell command; `{export}` becomes the export path, `{model}` the ONNX file it must write,
    /// `{project}` the project folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Export format handed to the job (default coco).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// `termtag train --if-due` runs only when this many images were reviewed since the last
    /// training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<usize>,
}

impl TrainConfig {
    pub fn is_empty(&self) -> bool {
        self == &TrainConfig::default()
    }
}

impl OnnxRuntimeConfig {
    pub fn is_empty(&self) -> bool {
        self == &OnnxRuntimeConfig::default()
    }
}
