//! `termtag train`: export the reviewed labels, run the user's `[train] command` with the export
//! and the model path filled in, keep its output in a log, and record the ONNX file it wrote as a
//! model run, so the next `predict` with it starts (or resumes) that run.

use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};

use clap::ValueEnum;

use crate::formats::FormatKind;
use crate::infer::{InferError, sha256_file};
use crate::project::{CONFIG_FILE, Project, ProjectError, STATE_DIR};
use crate::sanitize::show_path;
use crate::store::{Store, StoreError, now_ms};

/// Why `termtag train` did not record a model; each message says what to set or where to look.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(
        "no training command: set [train] command in {CONFIG_FILE}, e.g. command = \"python train.py --data {{export}} --out {{model}}\""
    )]
    NoCommand,
    #[error("--if-due needs [train] every = N in {CONFIG_FILE}")]
    NoEvery,
    #[error("[train] format `{0}`: use coco, voc, yolo, ald-csv, azureml-jsonl or modelarts-txt")]
    Format(String),
    #[error("cannot start `sh` for [train] command")]
    Spawn(#[source] std::io::Error),
    #[error("[train] command failed ({status}); its output is in {log}")]
    Failed { status: ExitStatus, log: String },
    #[error(
        "[train] command finished but wrote no {model}: it must write the ONNX model to {{model}} (log: {log})"
    )]
    NoModel { model: String, log: String },
    /// The export, or a file or folder under `.termtag/train/`.
    #[error(transparent)]
    Project(#[from] ProjectError),
    #[error(transparent)]
    Infer(#[from] InferError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone)]
pub struct TrainReport {
    pub export: PathBuf,
    pub model: PathBuf,
    pub log: PathBuf,
    pub run_id: i64,
    pub reviewed: usize,
}

/// A path as one shell word.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Runs the training command; `None` when `if_due` and fewer than `[train] every` images were
/// reviewed since the last training.
pub fn train(
    project: &Project,
    store: &mut Store,
    if_due: bool,
) -> Result<Option<TrainReport>, TrainError> {
    let cfg = &project.config.train;
    let Some(command) = &cfg.command else {
        return Err(TrainError::NoCommand);
    };
    let reviewed = store.reviewed_count()?;
    if if_due {
        let since = reviewed.saturating_sub(store.reviewed_at_last_train()?.unwrap_or(0));
        match cfg.every {
            Some(every) if since < every => return Ok(None),
            Some(_) => {}
            None => return Err(TrainError::NoEvery),
        }
    }
    let format_name = cfg.format.as_deref().unwrap_or("coco");
    let format = FormatKind::from_str(format_name, true)
        .map_err(|_| TrainError::Format(crate::sanitize::for_terminal(format_name)))?;
    let dir = project
        .root
        .join(STATE_DIR)
        .join("train")
        .join(now_ms().to_string());
    std::fs::create_dir_all(&dir).map_err(ProjectError::io("create", &dir))?;
    let export = match format {
        FormatKind::Coco => dir.join("labels.json"),
        FormatKind::AldCsv => dir.join("tagged.csv"),
        FormatKind::AzuremlJsonl => dir.join("labels.jsonl"),
        _ => dir.join("labels"),
    };
    project.export(store, format, &export, false)?;
    let model = dir.join("model.onnx");
    let log = dir.join("train.log");
    let line = command
        .replace("{export}", &shell_quote(&export.to_string_lossy()))
        .replace("{model}", &shell_quote(&model.to_string_lossy()))
        .replace("{project}", &shell_quote(&project.root.to_string_lossy()));
    let out = std::fs::File::create(&log).map_err(ProjectError::io("create", &log))?;
    let err = out.try_clone().map_err(ProjectError::io("open", &log))?;
    let status = Command::new("sh")
        .arg("-c")
        .arg(&line)
        .current_dir(&project.root)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(TrainError::Spawn)?;
    if !status.success() {
        return Err(TrainError::Failed {
            status,
            log: show_path(&log),
        });
    }
    if !model.is_file() {
        return Err(TrainError::NoModel {
            model: show_path(&model),
            log: show_path(&log),
        });
    }
    let sha = sha256_file(&model)?;
    let run_id = store.register_trained_model(&model.to_string_lossy(), &sha, reviewed)?;
    Ok(Some(TrainReport {
        export,
        model,
        log,
        run_id,
        reviewed,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_show_the_placeholders_to_use() {
        let e = TrainError::NoCommand.to_string();
        assert!(
            e.ends_with("command = \"python train.py --data {export} --out {model}\""),
            "{e}"
        );
        let e = TrainError::NoModel {
            model: "m.onnx".into(),
            log: "train.log".into(),
        }
        .to_string();
        assert!(e.contains("ONNX model to {model} (log: train.log)"), "{e}");
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("/a b/c"), "'/a b/c'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
