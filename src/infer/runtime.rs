//! Finding and loading the ONNX Runtime library. termtag links nothing at build time (`ort` with
//! `load-dynamic`): the library is looked up when a command needs it, so every other command
//! works on a machine without it.
//!
//! Order: `ORT_DYLIB_PATH`, `[onnxruntime] path` in termtag.toml, the `onnxruntime` /
//! `onnxruntime-gpu` Python package importable by `python3`, the system library folders.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use ort::ep::ExecutionProvider;

use super::InferError;
use super::config::OnnxRuntimeConfig;
use crate::sanitize::show_path;

/// Oldest ONNX Runtime release this build can drive: the C API level `ort` is built for.
pub const MIN_VERSION: (u32, u32) = (1, ort::MINOR_VERSION);
/// The release the tests run against.
pub const TESTED_VERSION: &str = "1.31.1";

/// Where the library was found.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Env,
    Config,
    Python(PathBuf),
    System,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Env => f.write_str("ORT_DYLIB_PATH"),
            Source::Config => f.write_str("[onnxruntime] path in termtag.toml"),
            Source::Python(dir) => write!(f, "the Python package in {}", show_path(dir)),
            Source::System => f.write_str("the system library path"),
        }
    }
}

/// A library file found on disk, not loaded yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub path: PathBuf,
    pub source: Source,
}

/// The loaded runtime.
#[derive(Clone)]
pub struct Runtime {
    pub path: PathBuf,
    pub source: Source,
    pub version: String,
    pub env: ort::environment::Environment,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("path", &self.path)
            .field("source", &self.source)
            .field("version", &self.version)
            .finish()
    }
}

/// The execution providers the loaded library reports (`GetAvailableProviders`), by ONNX Runtime
/// name, e.g. `CPUExecutionProvider`.
#[derive(Debug, Clone, PartialEq)]
pub struct Providers {
    pub names: Vec<&'static str>,
    pub cuda: bool,
    pub tensorrt: bool,
}

/// `MIN_VERSION` as text, for messages.
pub fn min_version() -> String {
    format!("{}.{}", MIN_VERSION.0, MIN_VERSION.1)
}

/// `1.31.1` → (1, 31); `None` when it does not start with two numbers.
fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.trim().split(['.', '-', '+']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Refuses a runtime older than [`MIN_VERSION`] or of another major version, naming the file and
/// what to do.
pub fn check_version(version: &str, path: &Path) -> Result<(), InferError> {
    match major_minor(version) {
        Some((major, _)) if major != MIN_VERSION.0 => Err(InferError::Runtime(format!(
            "{}: ONNX Runtime {} is a different major version; termtag works with {}.x from {} on: `pip install \"onnxruntime<{}\"` and point ORT_DYLIB_PATH at its libonnxruntime",
            show_path(path),
            crate::sanitize::for_terminal(version),
            MIN_VERSION.0,
            min_version(),
            MIN_VERSION.0 + 1
        ))),
        Some(v) if v >= MIN_VERSION => Ok(()),
        Some(_) => Err(InferError::Runtime(format!(
            "{}: ONNX Runtime {version} is too old; termtag needs {} or newer: `pip install -U onnxruntime` (or onnxruntime-gpu) and point ORT_DYLIB_PATH at its libonnxruntime",
            show_path(path),
            min_version()
        ))),
        None => Err(InferError::Runtime(format!(
            "{}: the library reports version `{}`, which termtag cannot read; it needs ONNX Runtime {} or newer",
            show_path(path),
            crate::sanitize::for_terminal(version),
            min_version()
        ))),
    }
}

/// `libonnxruntime.so*` (or `.dylib`, `.dll`) file names, the runtime itself, not its provider
/// plug-ins.
fn is_runtime_file(name: &str) -> bool {
    let stem = format!("{}onnxruntime", std::env::consts::DLL_PREFIX);
    name.starts_with(&stem)
        && !name[stem.len()..].starts_with('_')
        && name.contains(std::env::consts::DLL_SUFFIX)
}

/// The runtime library inside `dir`: the versioned file when there is one (the unversioned name
/// is often a dangling development symlink).
pub fn library_in(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_str().is_some_and(is_runtime_file))
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    // Longest name first: `libonnxruntime.so.1.31.1` before `libonnxruntime.so`.
    found.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    found.into_iter().next()
}

/// A path given by the user: the library file, or a folder holding it.
fn given(path: &Path, what: &str) -> Result<PathBuf, InferError> {
    if path.is_dir() {
        return library_in(path).ok_or_else(|| {
            InferError::Runtime(format!(
                "{what} {}: no {}onnxruntime{} file in this folder",
                show_path(path),
                std::env::consts::DLL_PREFIX,
                std::env::consts::DLL_SUFFIX
            ))
        });
    }
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    Err(InferError::Runtime(format!(
        "{what} {}: no such file; point it at libonnxruntime.so* (e.g. from `pip install onnxruntime`) or unset it",
        show_path(path)
    )))
}

/// The folder of the `onnxruntime` Python package, if `python3` can import it.
pub fn python_package_dir() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))",
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = String::from_utf8(out.stdout).ok()?;
    let dir = PathBuf::from(dir.trim());
    dir.is_dir().then_some(dir)
}

fn system_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("LD_LIBRARY_PATH")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    for d in [
        "/usr/local/lib",
        "/usr/lib",
        "/usr/lib64",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/opt/homebrew/lib",
    ] {
        dirs.push(PathBuf::from(d));
    }
    dirs
}

/// Finds the library, in the documented order. `root` resolves a relative configured path.
pub fn discover(cfg: &OnnxRuntimeConfig, root: Option<&Path>) -> Result<Found, InferError> {
    if let Some(v) = std::env::var_os("ORT_DYLIB_PATH").filter(|v| !v.is_empty()) {
        return Ok(Found {
            path: given(Path::new(&v), "ORT_DYLIB_PATH")?,
            source: Source::Env,
        });
    }
    if let Some(p) = &cfg.path {
        let p = match root {
            Some(root) if Path::new(p).is_relative() => root.join(p),
            _ => PathBuf::from(p),
        };
        return Ok(Found {
            path: given(&p, "[onnxruntime] path")?,
            source: Source::Config,
        });
    }
    if let Some(dir) = python_package_dir()
        && let Some(path) = library_in(&dir.join("capi"))
    {
        return Ok(Found {
            path,
            source: Source::Python(dir),
        });
    }
    for dir in system_dirs() {
        if let Some(path) = library_in(&dir) {
            return Ok(Found {
                path,
                source: Source::System,
            });
        }
    }
    Err(InferError::Runtime(format!(
        "ONNX Runtime not found: looked at ORT_DYLIB_PATH, [onnxruntime] path in termtag.toml, the onnxruntime Python package (python3) and the system library folders; install it with `pip install onnxruntime` (or onnxruntime-gpu), or set ORT_DYLIB_PATH to libonnxruntime.so; labeling without a model works without it (supported: ONNX Runtime {} or newer)",
        min_version()
    )))
}

/// The version the loaded library reports in its build string (`GetBuildInfoString`:
/// `git-branch=rel-1.31.1, …`); else the one in a file name like `libonnxruntime.so.1.31.1`.
/// (`ort` itself refuses a library whose `GetVersionString` is older than its API level.)
fn version_of(path: &Path, build_info: &str) -> String {
    let reported = build_info
        .split(|c: char| c == ',' || c.is_whitespace())
        .find_map(|part| part.strip_prefix("git-branch=rel-"))
        .filter(|v| major_minor(v).is_some());
    if let Some(v) = reported {
        return v.to_string();
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.split(std::env::consts::DLL_SUFFIX)
        .nth(1)
        .map(|v| v.trim_matches('.').to_string())
        .filter(|v| major_minor(v).is_some())
        .unwrap_or_else(|| "unknown".into())
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static LOADING: Mutex<()> = Mutex::new(());

/// Finds and loads the runtime once per process.
pub fn load(cfg: &OnnxRuntimeConfig, root: Option<&Path>) -> Result<Runtime, InferError> {
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt.clone());
    }
    let _guard = LOADING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt.clone());
    }
    let found = discover(cfg, root)?;
    let shown = show_path(&found.path);
    let builder = ort::init_from(&found.path).map_err(|e| {
        if let ort::LoadDynamicError::BadVersion { version_str, .. } = &e
            && let Err(refused) = check_version(version_str, &found.path)
        {
            return refused;
        }
        let e = match e {
            ort::LoadDynamicError::MissingApi { .. } => {
                "the file does not export `OrtGetApiBase`, so it is not ONNX Runtime".to_string()
            }
            e => crate::sanitize::for_terminal(&e.to_string()),
        };
        InferError::Runtime(format!(
            "{shown} (from {}): cannot load ONNX Runtime: {e}; termtag needs ONNX Runtime {} or newer (`pip install -U onnxruntime`)",
            found.source,
            min_version()
        ))
    })?;
    // `ort` panics when the library has no API table for its API level (a build of another
    // major version, or a damaged one); that is a message, not a crash.
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let env = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        builder.with_name("termtag").build()
    }));
    std::panic::set_hook(quiet);
    let env = env
        .map_err(|_| {
            InferError::Runtime(format!(
                "{shown} (from {}): this ONNX Runtime does not provide the C API level {} that termtag uses; install ONNX Runtime {} or newer 1.x (`pip install -U onnxruntime`)",
                found.source,
                ort::MINOR_VERSION,
                min_version()
            ))
        })?
        .map_err(|e| InferError::Runtime(format!("{shown}: cannot start ONNX Runtime: {e}")))?;
    let version = version_of(&found.path, ort::info());
    if version != "unknown" {
        check_version(&version, &found.path)?;
    }
    let rt = Runtime {
        version,
        path: found.path,
        source: found.source,
        env,
    };
    Ok(RUNTIME.get_or_init(|| rt).clone())
}

/// Every execution provider ONNX Runtime knows, by the name `GetAvailableProviders` reports.
const PROVIDER_NAMES: [&str; 24] = [
    "TensorrtExecutionProvider",
    "NvTensorRTRTXExecutionProvider",
    "CUDAExecutionProvider",
    "MIGraphXExecutionProvider",
    "ROCMExecutionProvider",
    "OpenVINOExecutionProvider",
    "DmlExecutionProvider",
    "CoreMLExecutionProvider",
    "QNNExecutionProvider",
    "CANNExecutionProvider",
    "VitisAIExecutionProvider",
    "DnnlExecutionProvider",
    "ACLExecutionProvider",
    "ArmNNExecutionProvider",
    "NnapiExecutionProvider",
    "RknpuExecutionProvider",
    "TvmExecutionProvider",
    "VSINPUExecutionProvider",
    "WebGpuExecutionProvider",
    "WebNNExecutionProvider",
    "WASMExecutionProvider",
    "XnnpackExecutionProvider",
    "AzureExecutionProvider",
    "CPUExecutionProvider",
];

/// Asks the runtime about one provider by name: `ort` answers `is_available` from
/// `GetAvailableProviders` for any type that names a provider, and has types only for the
/// providers whose features are built in.
macro_rules! probe {
    ($($i:literal),*) => {
        [$({
            struct Probe;
            impl ExecutionProvider for Probe {
                const NAME: &'static str = PROVIDER_NAMES[$i];
                fn register(
                    &self,
                    _: &mut ort::session::builder::SessionBuilder,
                ) -> ort::Result<()> {
                    Err(ort::Error::new("only asks whether the runtime has this provider"))
                }
            }
            Probe::is_available().unwrap_or(false)
        }),*]
    };
}

/// The execution providers the loaded library reports (built in, not whether a GPU is present).
pub fn providers() -> Providers {
    let has = probe!(
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23
    );
    let names: Vec<&'static str> = PROVIDER_NAMES
        .iter()
        .zip(has)
        .filter_map(|(n, yes)| yes.then_some(*n))
        .collect();
    Providers {
        cuda: names.contains(&"CUDAExecutionProvider"),
        tensorrt: names.contains(&"TensorrtExecutionProvider"),
        names,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_file_names() {
        assert!(is_runtime_file("libonnxruntime.so"));
        assert!(is_runtime_file("libonnxruntime.so.1.31.1"));
        assert!(!is_runtime_file("libonnxruntime_providers_shared.so"));
        assert!(!is_runtime_file("libfoo.so"));
    }

    #[test]
    fn versioned_library_preferred() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("libonnxruntime.so"), b"x").unwrap();
        std::fs::write(dir.path().join("libonnxruntime.so.1.31.1"), b"x").unwrap();
        std::fs::write(dir.path().join("libonnxruntime_providers_shared.so"), b"x").unwrap();
        let p = library_in(dir.path()).unwrap();
        assert!(p.ends_with("libonnxruntime.so.1.31.1"), "{p:?}");
        assert_eq!(version_of(&p, ""), "1.31.1");
        assert_eq!(
            version_of(&p, "ORT Build Info: git-branch=rel-1.22.0, git-commit-id=x"),
            "1.22.0"
        );
    }

    #[test]
    fn old_runtimes_are_refused() {
        let p = Path::new("/x/libonnxruntime.so.1.16.3");
        let e = check_version("1.16.3", p).unwrap_err().to_string();
        assert!(
            e.contains("1.16.3 is too old") && e.contains(&min_version()),
            "{e}"
        );
        assert!(check_version(&min_version(), p).is_ok());
        assert!(check_version("1.31.1", p).is_ok());
        let e = check_version("2.0.1", p).unwrap_err().to_string();
        assert!(e.contains("2.0.1 is a different major version"), "{e}");
        assert!(check_version("banana", p).is_err());
    }
}
