//! `termtag train`: export the reviewed labels, run the user's `[train] command` with the export
//! and the model path filled in, keep its output in a log, and record the ONNX file it wrote as a
//! model run, so the next `predict` with it starts (or resumes) that run.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use clap::ValueEnum;

use crate::formats::FormatKind;
use crate::infer::sha256_file;
use crate::project::{CONFIG_FILE, Project, STATE_DIR};
use crate::sanitize::show_path;
use crate::store::{Store, now_ms};

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
pub fn train(project: &Project, store: &mut Store, if_due: bool) -> Result<Option<TrainReport>> {
    let cfg = &project.config.train;
    let Some(command) = &cfg.command else {
        bail!(
            "no training command: set [train] command in {CONFIG_FILE}, e.g. command = \"python train.py --data {{export}} --out {{model}}\""
        );
    };
    let reviewed = store.reviewed_count()?;
    if if_due {
        let since = reviewed.saturating_sub(store.reviewed_at_last_train()?.unwrap_or(0));
        match cfg.every {
            Some(every) if since < every => return Ok(None),
            Some(_) => {}
            None => bail!("--if-due needs [train] every = N in {CONFIG_FILE}"),
        }
    }
    let format_name = cfg.format.as_deref().unwrap_or("coco");
    let format = FormatKind::from_str(format_name, true).map_err(|_| {
        anyhow::anyhow!(
            "[train] format `{}`: use coco, voc, yolo, ald-csv, azureml-jsonl or modelarts-txt",
            crate::sanitize::for_terminal(format_name)
        )
    })?;
    let dir = project
        .root
        .join(STATE_DIR)
        .join("train")
        .join(now_ms().to_string());
    std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", show_path(&dir)))?;
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
    let out = std::fs::File::create(&log)
        .with_context(|| format!("{}: cannot create", show_path(&log)))?;
    let err = out.try_clone()?;
    let status = Command::new("sh")
        .arg("-c")
        .arg(&line)
        .current_dir(&project.root)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .context("cannot start `sh` for [train] command")?;
    if !status.success() {
        bail!(
            "[train] command failed ({status}); its output is in {}",
            show_path(&log)
        );
    }
    if !model.is_file() {
        bail!(
            "[train] command finished but wrote no {}: it must write the ONNX model to {{model}} (log: {})",
            show_path(&model),
            show_path(&log)
        );
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
    fn quoting() {
        assert_eq!(shell_quote("/a b/c"), "'/a b/c'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
