//! PLACEHOLDER: being written now.
use std::path::{Path, PathBuf};

use super::{ExportCtx, FormatError, ImportCtx, Imported};
use crate::model::Dataset;

pub fn import(_path: &Path, _ctx: &ImportCtx) -> Result<Imported, FormatError> {
    Err(FormatError::Unsupported("not written yet".into()))
}

pub fn export(_ds: &Dataset, _ctx: &ExportCtx) -> Result<Vec<PathBuf>, FormatError> {
    Err(FormatError::Unsupported("not written yet".into()))
}
