//! ONNX Runtime for the demo: the one found here, else the `onnxruntime` wheel installed by pip
//! into the demo folder (never elsewhere), else nothing, and the caller imports the recorded
//! predictions.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use super::RUNTIME_DIR;
use crate::infer::runtime::{discover, library_in, min_version};
use crate::project::Project;
use crate::sanitize::show_path;

/// Why the demo has no runtime of its own (it then imports the recorded predictions).
#[derive(Debug, thiserror::Error)]
pub enum NoRuntime {
    #[error("--offline: installing nothing")]
    Offline,
    #[error(
        "cannot run python3 -m pip ({0}); install Python 3 with pip, or set ORT_DYLIB_PATH to libonnxruntime.so"
    )]
    NoPip(std::io::Error),
    /// pip's last error line, sanitised.
    #[error("pip could not install onnxruntime ({status}): {last}")]
    Pip { status: ExitStatus, last: String },
    #[error("pip finished but {} holds no ONNX Runtime library", show_path(.0))]
    NoLibrary(PathBuf),
    /// termtag.toml could not be saved with the runtime's path.
    #[error(transparent)]
    Save(super::DemoError),
}

/// Makes a runtime available to `predict`; `Err` says why there is none.
pub fn ensure(project: &mut Project, offline: bool, say: &dyn Fn(&str)) -> Result<(), NoRuntime> {
    let missing = match discover(&project.config.onnxruntime, Some(&project.root)) {
        Ok(found) => {
            say(&format!(
                "ONNX Runtime: {} (from {})",
                show_path(&found.path),
                found.source
            ));
            return Ok(());
        }
        Err(e) => e.to_string(),
    };
    say(&missing);
    if offline {
        return Err(NoRuntime::Offline);
    }
    let target = project.root.join(RUNTIME_DIR);
    let spec = format!("onnxruntime>={}", min_version());
    say(&format!(
        "installing the onnxruntime wheel into the demo folder: python3 -m pip install --no-deps --target {} '{spec}'",
        show_path(&target)
    ));
    pip_install(&target, &spec)?;
    let lib_dir = target.join("onnxruntime").join("capi");
    let Some(lib) = library_in(&lib_dir) else {
        return Err(NoRuntime::NoLibrary(lib_dir));
    };
    say(&format!("installed {}", show_path(&lib)));
    project.config.onnxruntime.path = Some(format!("{RUNTIME_DIR}/onnxruntime/capi"));
    super::save(project).map_err(NoRuntime::Save)
}

/// Runs pip; its last error line is the reason when it fails.
fn pip_install(target: &Path, spec: &str) -> Result<(), NoRuntime> {
    let out = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
        ])
        .args(["--no-deps", "--target"])
        .arg(target)
        .arg(spec)
        .stdin(Stdio::null())
        .output()
        .map_err(NoRuntime::NoPip)?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stderr);
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output");
    Err(NoRuntime::Pip {
        status: out.status,
        last: crate::sanitize::for_terminal(last.trim()),
    })
}
