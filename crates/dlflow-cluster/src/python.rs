//! The Python side of a node: which interpreter runs it, and where the `dlflow` package comes from.
//!
//! The package (`python/dlflow`) is compiled into this crate and written once per version to
//! `$DLFLOW_HOME/python/<hash>/`, so nodes import it with no install step, from any binary
//! and any working directory.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use crate::config::Python;
use crate::error::{ClusterError, Result};

/// The files of the `dlflow` Python package, by name.
const PACKAGE: &[(&str, &str)] = &[
    ("__init__.py", include_str!("../../../python/dlflow/__init__.py")),
    ("_protocol.py", include_str!("../../../python/dlflow/_protocol.py")),
    ("_types.py", include_str!("../../../python/dlflow/_types.py")),
    ("errors.py", include_str!("../../../python/dlflow/errors.py")),
    ("_node.py", include_str!("../../../python/dlflow/_node.py")),
    ("context.py", include_str!("../../../python/dlflow/context.py")),
    ("dataset.py", include_str!("../../../python/dlflow/dataset.py")),
    ("writer.py", include_str!("../../../python/dlflow/writer.py")),
    ("checkpoint.py", include_str!("../../../python/dlflow/checkpoint.py")),
    ("versions.py", include_str!("../../../python/dlflow/versions.py")),
    ("estimator.py", include_str!("../../../python/dlflow/estimator.py")),
    ("keras_file.py", include_str!("../../../python/dlflow/keras_file.py")),
    ("training_data.py", include_str!("../../../python/dlflow/training_data.py")),
    // Not `tensorboard.py`: the estimator's folder is on its PYTHONPATH, where that name would
    // hide the real `tensorboard` package that tf.summary imports.
    ("_tensorboard.py", include_str!("../../../python/dlflow/_tensorboard.py")),
];

/// The interpreter for `python`, checked to exist.
pub fn interpreter(python: &Python) -> Result<PathBuf> {
    match python {
        Python::Executable(path) => existing(path.clone(), "the configured python"),
        Python::Venv(venv) => existing(venv.join("bin/python"), "the configured virtualenv's python"),
        Python::Default => {
            let project = dlflow_common::paths::project_venv().join("bin/python");
            if project.is_file() {
                return Ok(project);
            }
            if let Some(venv) = std::env::var_os("VIRTUAL_ENV") {
                let active = PathBuf::from(venv).join("bin/python");
                if active.is_file() {
                    return Ok(active);
                }
            }
            Ok(PathBuf::from("python3"))
        }
    }
}

fn existing(path: PathBuf, what: &str) -> Result<PathBuf> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(ClusterError::Python(format!("{what} {} does not exist", path.display())))
    }
}

/// The folder to put on `PYTHONPATH` so that `import dlflow` finds this version of the package.
pub fn package_root() -> Result<PathBuf> {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    PACKAGE.hash(&mut hasher);
    let root = dlflow_common::paths::dlflow_home().join("python").join(format!("{:016x}", hasher.finish()));
    if !root.join("dlflow/.complete").is_file() {
        write_package(&root)?;
        prune_old_versions(&root);
    } else {
        // In use: marks this version as recent, so that pruning keeps it.
        let _ = std::fs::File::options().append(true).open(root.join("dlflow/.complete")).and_then(|f| f.set_modified(std::time::SystemTime::now()));
    }
    Ok(root)
}

/// How long an unused version of the package stays: a job of an older dlflow binary that is
/// still running keeps using its own.
const OLD_VERSION_AGE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Removes the copies of other versions of the package not used for a day, so that upgrades
/// do not pile up copies in the dlflow home.
fn prune_old_versions(current: &Path) {
    let Some(parent) = current.parent() else { return };
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path == current || entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let unused_for = std::fs::metadata(path.join("dlflow/.complete"))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok());
        if unused_for.is_some_and(|age| age > OLD_VERSION_AGE) {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// Writes the package next to `root` and renames it into place, so that concurrent jobs never
/// import a half-written package.
fn write_package(root: &Path) -> Result<()> {
    let io = |context: String| move |source| ClusterError::Io { context, source };
    let parent = root.parent().unwrap_or(root);
    std::fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
    let staging = tempfile::Builder::new()
        .prefix(".dlflow-python-")
        .tempdir_in(parent)
        .map_err(io(format!("creating a folder in {}", parent.display())))?;
    let package = staging.path().join("dlflow");
    std::fs::create_dir(&package).map_err(io(format!("creating {}", package.display())))?;
    for (name, text) in PACKAGE {
        std::fs::write(package.join(name), text).map_err(io(format!("writing {name}")))?;
    }
    std::fs::write(package.join(".complete"), "").map_err(io("writing .complete".into()))?;
    match std::fs::rename(staging.path(), root) {
        Ok(()) => {
            // The staging folder is now `root`; nothing left to delete.
            std::mem::forget(staging);
            Ok(())
        }
        // Another job put the same version in place first.
        Err(_) if root.join("dlflow/.complete").is_file() => Ok(()),
        Err(source) => Err(ClusterError::Io { context: format!("moving the package to {}", root.display()), source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_interpreter_is_named() {
        let error = interpreter(&Python::Venv("/nonexistent/venv".into())).expect_err("missing");
        assert!(error.to_string().contains("/nonexistent/venv/bin/python"), "{error}");
    }

    #[test]
    fn the_package_is_written_once_and_complete() {
        let root = package_root().expect("package");
        for (name, text) in PACKAGE {
            assert_eq!(std::fs::read_to_string(root.join("dlflow").join(name)).expect("file"), *text);
        }
        assert_eq!(package_root().expect("again"), root);
    }

    #[test]
    fn every_module_of_the_package_is_embedded() {
        // A module left out of PACKAGE is missing on the nodes, which then fail to import dlflow.
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../python/dlflow");
        for entry in std::fs::read_dir(&source).expect("python/dlflow") {
            let name = entry.expect("entry").file_name().to_string_lossy().into_owned();
            if name.ends_with(".py") {
                assert!(PACKAGE.iter().any(|(embedded, _)| *embedded == name), "python/dlflow/{name} is not in PACKAGE");
            }
        }
    }
}
