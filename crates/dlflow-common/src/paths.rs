//! Where dlflow keeps its things: the cache folder and the project's virtualenv (made by
//! `scripts/setup.sh`), found the same way by the TensorFlow loader and the node launcher.

use std::path::PathBuf;

/// The project's virtualenv: `$DLFLOW_VENV`, else `$DLFLOW_HOME/venv`, else `~/.cache/dlflow/venv`.
pub fn project_venv() -> PathBuf {
    if let Some(venv) = std::env::var_os("DLFLOW_VENV") {
        return PathBuf::from(venv);
    }
    dlflow_home().join("venv")
}

/// dlflow's cache directory: `$DLFLOW_HOME`, else `$XDG_CACHE_HOME/dlflow`, else `~/.cache/dlflow`.
pub fn dlflow_home() -> PathBuf {
    if let Some(home) = std::env::var_os("DLFLOW_HOME") {
        return PathBuf::from(home);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache"));
    cache.join("dlflow")
}
