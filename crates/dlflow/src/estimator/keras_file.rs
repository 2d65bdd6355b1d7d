//! The model file, looked at before any node starts: a Keras 3 `.keras` file is rebuilt in
//! Keras 2 (the nodes' Keras), anything the nodes cannot load is refused with what it is.
//!
//! The work is Python's (`python -m dlflow.keras_file FILE FOLDER`, in
//! `python/dlflow/keras_file.py`): reading a `.keras` file's metadata takes no TensorFlow,
//! so a file saved by Keras 2 costs a Python start; a Keras 3 file also costs TensorFlow's
//! import, once, instead of in every node.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::Python;
use crate::error::{Error, Result};

/// The file the nodes load for `path`: `path` itself, or its Keras 2 rebuild inside `folder`.
pub(crate) async fn prepare(path: &Path, python: Option<&Python>, folder: &Path) -> Result<PathBuf> {
    let python = dlflow_cluster::interpreter(python.unwrap_or(&Python::Default))?;
    let package = dlflow_cluster::package_root()?;
    let (path, folder) = (std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()), folder.to_path_buf());
    let shown = path.display().to_string();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(&python)
            .args(["-m", "dlflow.keras_file"])
            .arg(&path)
            .arg(&folder)
            .env("PYTHONPATH", &package)
            .env("TF_USE_LEGACY_KERAS", "1")
            .env("TF_CPP_MIN_LOG_LEVEL", "3")
            .output()
    })
    .await
    .map_err(|e| Error::Invalid(format!("checking the model file {shown}: {e}")))?
    .map_err(|e| Error::Invalid(format!("checking the model file {shown}: cannot start Python: {e}")))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let answer: Option<Value> = stdout.lines().rev().find_map(|line| serde_json::from_str(line).ok());
    match answer {
        Some(answer) if answer["error"].is_string() => {
            Err(Error::Invalid(format!("estimator model file: {}", answer["error"].as_str().unwrap_or_default())))
        }
        Some(answer) if answer["model"].is_string() => Ok(PathBuf::from(answer["model"].as_str().unwrap_or_default())),
        _ => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
            Err(Error::Invalid(format!(
                "checking the model file {shown} failed ({}):\n{}",
                output.status,
                tail.join("\n")
            )))
        }
    }
}
