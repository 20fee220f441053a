//! An ONNX Runtime session on the best execution provider that starts, with the model's inputs
//! and outputs described in plain types the adapters can match on.

use std::path::Path;

use ort::ep::{self};
use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};

use super::InferError;
use super::config::{Device, OnnxRuntimeConfig};
use super::metadata::ModelMeta;
use super::preprocess::InputData;
use super::runtime::{Runtime, providers};
use crate::sanitize::show_path;

/// Element types the adapters care about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    U8,
    F32,
    F64,
    I32,
    I64,
    Other,
}

impl DType {
    fn of(t: TensorElementType) -> DType {
        match t {
            TensorElementType::Uint8 => DType::U8,
            TensorElementType::Float32 => DType::F32,
            TensorElementType::Float64 => DType::F64,
            TensorElementType::Int32 => DType::I32,
            TensorElementType::Int64 => DType::I64,
            _ => DType::Other,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            DType::U8 => "uint8",
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::Other => "other",
        }
    }
}

/// Name, element type and shape (-1 for a free dimension) of a model input or output.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<i64>,
}

impl std::fmt::Display for TensorInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dims: Vec<String> = self
            .shape
            .iter()
            .map(|d| if *d < 0 { "?".into() } else { d.to_string() })
            .collect();
        write!(
            f,
            "{} {}[{}]",
            crate::sanitize::for_terminal(&self.name),
            self.dtype.as_str(),
            dims.join(",")
        )
    }
}

/// What a model looks like from outside.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
    /// What the model's metadata says (Ultralytics `names`, `imgsz`, `task`, `stride`).
    pub meta: ModelMeta,
}

impl ModelInfo {
    pub fn output(&self, name: &str) -> Option<&TensorInfo> {
        self.outputs.iter().find(|o| o.name == name)
    }
    /// Inputs and outputs on one line, for error messages.
    pub fn describe(&self) -> String {
        let list = |v: &[TensorInfo]| {
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "inputs: {}; outputs: {}",
            list(&self.inputs),
            list(&self.outputs)
        )
    }
}

/// One model output, converted to f32 (class ids and quantised scores included).
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// A loaded model.
pub struct Model {
    session: Session,
    pub info: ModelInfo,
    /// The execution provider that runs it: `CUDA`, `TensorRT` or `CPU`.
    pub provider: &'static str,
    /// Why a GPU provider was not used, when one was tried.
    pub notes: Vec<String>,
}

fn tensor_info(name: &str, t: &ValueType) -> TensorInfo {
    match t {
        ValueType::Tensor { ty, shape, .. } => TensorInfo {
            name: name.to_string(),
            dtype: DType::of(*ty),
            shape: shape.to_vec(),
        },
        _ => TensorInfo {
            name: name.to_string(),
            dtype: DType::Other,
            shape: Vec::new(),
        },
    }
}

fn build(
    rt: &Runtime,
    path: &Path,
    threads: usize,
    eps: &[ep::ExecutionProviderDispatch],
) -> ort::Result<Session> {
    let b = Session::builder(&rt.env)?;
    let b = b.with_intra_threads(threads)?;
    let mut b = if eps.is_empty() {
        b
    } else {
        b.with_execution_providers(eps)?
    };
    b.commit_from_file(path)
}

/// Opens `path` on the first provider that starts: TensorRT (only when asked for), CUDA (when
/// the library has it), else the CPU.
pub fn open(rt: &Runtime, path: &Path, cfg: &OnnxRuntimeConfig) -> Result<Model, InferError> {
    let shown = show_path(path);
    if !path.is_file() {
        return Err(InferError::Model(format!("{shown}: no such model file")));
    }
    let threads = cfg.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let device = cfg.device.unwrap_or(Device::Auto);
    let have = providers();
    let mut notes = Vec::new();
    let mut attempts: Vec<(&'static str, Vec<ep::ExecutionProviderDispatch>)> = Vec::new();
    if device == Device::Tensorrt {
        if have.tensorrt {
            attempts.push((
                "TensorRT",
                vec![
                    ep::TensorRT::default().build().error_on_failure(),
                    ep::CUDA::default().build().error_on_failure(),
                ],
            ));
        } else {
            notes.push("TensorRT: not in this ONNX Runtime build".to_string());
        }
    }
    if matches!(device, Device::Auto | Device::Cuda | Device::Tensorrt) {
        if have.cuda {
            attempts.push(("CUDA", vec![ep::CUDA::default().build().error_on_failure()]));
        } else {
            notes.push(
                "CUDA: not in this ONNX Runtime build (install onnxruntime-gpu for it)".to_string(),
            );
        }
    }
    for (name, eps) in attempts {
        match build(rt, path, threads, &eps) {
            Ok(session) => return Ok(model(session, name, notes)),
            Err(e) => notes.push(format!("{name}: {}", e.to_string().replace('\n', " "))),
        }
    }
    let session = build(rt, path, threads, &[])
        .map_err(|e| InferError::Model(format!("{shown}: cannot load the model: {e}")))?;
    Ok(model(session, "CPU", notes))
}

fn model(session: Session, provider: &'static str, notes: Vec<String>) -> Model {
    let info = ModelInfo {
        inputs: session
            .inputs()
            .iter()
            .map(|o| tensor_info(o.name(), o.dtype()))
            .collect(),
        outputs: session
            .outputs()
            .iter()
            .map(|o| tensor_info(o.name(), o.dtype()))
            .collect(),
        meta: session
            .metadata()
            .map(|m| ModelMeta::from_lookup(|k| m.custom(k)))
            .unwrap_or_default(),
    };
    Model {
        session,
        info,
        provider,
        notes,
    }
}

impl Model {
    /// Runs the model on one input tensor; returns every output as f32.
    pub fn run(
        &mut self,
        input: &str,
        shape: &[i64],
        data: &InputData,
    ) -> Result<Vec<Output>, InferError> {
        let shape = shape.to_vec();
        let err = |e: ort::Error| InferError::Run(e.to_string());
        let outputs = match data {
            InputData::U8(v) => {
                let t = TensorRef::from_array_view((shape, v.as_slice())).map_err(err)?;
                self.session.run(ort::inputs![input => t]).map_err(err)?
            }
            InputData::F32(v) => {
                let t = TensorRef::from_array_view((shape, v.as_slice())).map_err(err)?;
                self.session.run(ort::inputs![input => t]).map_err(err)?
            }
        };
        let mut out = Vec::with_capacity(outputs.len());
        for (name, value) in outputs.iter() {
            let (dtype, shape, data) = if let Ok((s, d)) = value.try_extract_tensor::<f32>() {
                (DType::F32, s.clone(), d.to_vec())
            } else if let Ok((s, d)) = value.try_extract_tensor::<u8>() {
                (
                    DType::U8,
                    s.clone(),
                    d.iter().map(|v| f32::from(*v)).collect(),
                )
            } else if let Ok((s, d)) = value.try_extract_tensor::<i64>() {
                (DType::I64, s.clone(), d.iter().map(|v| *v as f32).collect())
            } else if let Ok((s, d)) = value.try_extract_tensor::<i32>() {
                (DType::I32, s.clone(), d.iter().map(|v| *v as f32).collect())
            } else if let Ok((s, d)) = value.try_extract_tensor::<f64>() {
                (DType::F64, s.clone(), d.iter().map(|v| *v as f32).collect())
            } else {
                return Err(InferError::Run(format!(
                    "output {} is not a numeric tensor",
                    crate::sanitize::for_terminal(name)
                )));
            };
            out.push(Output {
                name: name.to_string(),
                dtype,
                shape: shape.iter().map(|d| (*d).max(0) as usize).collect(),
                data,
            });
        }
        Ok(out)
    }
}
