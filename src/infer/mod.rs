//! Pre-labeling with ONNX Runtime (`ort`, loaded at run time): runtime discovery
//! ([`runtime`]), sessions on the best execution provider ([`session`]), one adapter per model
//! output layout ([`adapters`]), model → project classes ([`classmap`]), and the `predict`
//! pipeline ([`predict`]) and its streaming form for a fleet of machines ([`stream`]). Nothing outside this module touches ONNX Runtime, so a machine without
//! it can still label by hand.

pub mod adapters;
pub mod classmap;
pub mod config;
pub mod metadata;
pub mod predict;
pub mod preprocess;
pub mod runtime;
pub mod session;
pub mod shard;
pub mod stream;

use std::path::Path;

use crate::project::Project;
use crate::sanitize::show_path;

pub use predict::{PredictOptions, PredictReport, predict};
pub use shard::{Shard, ShardArg};
pub use stream::{StreamError, StreamReport, predict_stream};

#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// The runtime library could not be found or loaded.
    #[error("{0}")]
    Runtime(String),
    /// The model file, its layout or its classes.
    #[error("{0}")]
    Model(String),
    /// An inference call failed.
    #[error("inference: {0}")]
    Run(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Writing a `predict --stream` part to the labels container.
    #[error(transparent)]
    Fleet(#[from] crate::remote::fleet::FleetError),
}

/// SHA-256 of a file, hex: identifies a model across renames, so a re-run resumes.
pub fn sha256_file(path: &Path) -> Result<String, InferError> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(path)
        .map_err(|e| InferError::Model(format!("{}: cannot open: {e}", show_path(path))))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| InferError::Model(format!("{}: cannot read: {e}", show_path(path))))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// `termtag doctor`, the ONNX Runtime part: where the runtime is, its version, its execution
/// providers, and (when a model is configured) which provider runs it. Never fails: a missing
/// runtime is a line of the report.
pub fn doctor_lines(project: Option<&Project>) -> Vec<String> {
    let mut out = Vec::new();
    let default_cfg = config::OnnxRuntimeConfig::default();
    let (cfg, root) = match project {
        Some(p) => (&p.config.onnxruntime, Some(p.root.as_path())),
        None => (&default_cfg, None),
    };
    let rt = match runtime::load(cfg, root) {
        Ok(rt) => rt,
        Err(e) => {
            out.push(format!("onnxruntime: not available: {e}"));
            return out;
        }
    };
    out.push(format!(
        "onnxruntime: {} (version {}, found via {})",
        show_path(&rt.path),
        rt.version,
        rt.source
    ));
    let p = runtime::providers();
    out.push(format!(
        "execution providers reported by this ONNX Runtime: {}",
        p.names.join(", ")
    ));
    if !p.cuda {
        out.push(
            "GPU: this ONNX Runtime has no CUDA provider; `pip install onnxruntime-gpu` for it"
                .into(),
        );
    }
    if let Some(project) = project
        && let Some(model) = &project.config.model.path
    {
        let path = project.root.join(model);
        match session::open(&rt, &path, &project.config.onnxruntime) {
            Ok(m) => {
                out.push(format!(
                    "model {}: runs on {}",
                    show_path(&path),
                    m.provider
                ));
                for n in &m.notes {
                    out.push(format!("  not used: {n}"));
                }
            }
            Err(e) => out.push(format!("model {}: {e}", show_path(&path))),
        }
    }
    out
}
