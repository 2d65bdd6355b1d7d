//! Finding and loading libtensorflow at run time.
//!
//! The library is loaded once per process and never unloaded (TensorFlow registers kernels
//! and threads at load time; unloading it is not supported), so it is handed out as
//! `&'static TensorFlow`. A failed load is not cached: a user who fixes the environment can
//! try again in the same process.

use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

pub use dlflow_common::paths::{dlflow_home, project_venv};

use crate::error::{Result, TfError};
use crate::ffi::Api;

/// File names of the TensorFlow C API library, most specific first. The `tensorflow-cpu`
/// wheel ships `libtensorflow_cc.so.2`; the standalone C library is `libtensorflow.so.2`.
const LIBRARY_NAMES: &[&str] = &[
    "libtensorflow_cc.so.2",
    "libtensorflow.so.2",
    "libtensorflow.so",
    "libtensorflow_cc.2.dylib",
    "libtensorflow.2.dylib",
];

/// Oldest TensorFlow minor version (2.x) whose C API dlflow relies on (`TF_TString`).
const MIN_MINOR_VERSION: u32 = 16;

/// A loaded TensorFlow C library.
///
/// ```no_run
/// let tf = dlflow_tf::TensorFlow::get()?;
/// println!("TensorFlow {} from {}", tf.version(), tf.path().display());
/// # Ok::<(), dlflow_tf::TfError>(())
/// ```
pub struct TensorFlow {
    pub(crate) api: Api,
    path: PathBuf,
    version: String,
}

static LOADED: OnceLock<TensorFlow> = OnceLock::new();
static LOADING: Mutex<()> = Mutex::new(());

impl TensorFlow {
    /// The process's TensorFlow, found as [`locate`] describes and loaded on first use.
    pub fn get() -> Result<&'static TensorFlow> {
        match LOADED.get() {
            Some(tf) => Ok(tf),
            None => Self::load_once(None),
        }
    }

    /// Load TensorFlow from `path` (the library file, or the directory holding it). If a
    /// TensorFlow is already loaded in this process, that one is returned: a process can only
    /// hold one.
    pub fn load_from(path: &Path) -> Result<&'static TensorFlow> {
        match LOADED.get() {
            Some(tf) => Ok(tf),
            None => Self::load_once(Some(path)),
        }
    }

    fn load_once(path: Option<&Path>) -> Result<&'static TensorFlow> {
        // Serialize loaders so that two threads do not dlopen at once; OnceLock::get_or_try_init
        // is not stable yet.
        let _guard = LOADING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(tf) = LOADED.get() {
            return Ok(tf);
        }
        let file = match path {
            Some(path) => library_in(path).ok_or_else(|| TfError::LibraryNotFound {
                searched: format!("  - {} (no TensorFlow library there)", path.display()),
            })?,
            None => locate()?,
        };
        let tf = Self::open(&file)?;
        Ok(LOADED.get_or_init(|| tf))
    }

    fn open(file: &Path) -> Result<TensorFlow> {
        // Loading prints TensorFlow's start-up lines (oneDNN, CUDA drivers): see `logs`.
        // SAFETY: loading a shared library runs its initializers; libtensorflow's are sound to
        // run once per process, which LOADING guarantees.
        let lib = crate::logs::quietly(|| unsafe { libloading::Library::new(file) }).map_err(|e| TfError::LibraryLoad {
            path: file.to_path_buf(),
            message: e.to_string(),
        })?;
        let version = library_version(&lib).ok_or_else(|| TfError::NotTensorFlow { path: file.to_path_buf(), symbol: "TF_Version" })?;
        if !is_supported(&version) {
            return Err(TfError::UnsupportedVersion { path: file.to_path_buf(), found: version });
        }
        // SAFETY: the symbols are looked up by their C API names, whose signatures ffi.rs copies.
        let api = unsafe { Api::load(&lib) }.map_err(|symbol| TfError::NotTensorFlow {
            path: file.to_path_buf(),
            symbol,
        })?;
        // Never unload: see the module comment.
        std::mem::forget(lib);
        tracing::debug!(%version, path = %file.display(), "loaded TensorFlow");
        Ok(TensorFlow { api, path: file.to_path_buf(), version })
    }

    /// The TensorFlow version, as `TF_Version()` reports it (e.g. `2.21.0`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The library file that was loaded.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `TF_Version()`, read before anything else so that an old TensorFlow is reported as such
/// rather than as a missing symbol.
fn library_version(lib: &libloading::Library) -> Option<String> {
    // SAFETY: TF_Version has this signature in every TensorFlow release; it returns a static
    // NUL-terminated string.
    unsafe {
        let version: libloading::Symbol<'_, unsafe extern "C" fn() -> *const std::ffi::c_char> = lib.get(b"TF_Version\0").ok()?;
        Some(CStr::from_ptr(version()).to_string_lossy().into_owned())
    }
}

fn is_supported(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    matches!((parts.next(), parts.next()), (Some(Some(2)), Some(Some(minor))) if minor >= MIN_MINOR_VERSION)
}

/// The library file in `path`, if `path` is one or is a directory holding one.
fn library_in(path: &Path) -> Option<PathBuf> {
    if path.is_file() {
        return Some(path.to_path_buf());
    }
    LIBRARY_NAMES.iter().map(|name| path.join(name)).find(|file| file.is_file())
}

/// Find libtensorflow. Looks, in order, at:
///
/// 1. `DLFLOW_TF_LIB`: the library file or its directory (when set, only there);
/// 2. the project virtualenv, `$DLFLOW_VENV`, by default `$DLFLOW_HOME/venv` with
///    `DLFLOW_HOME` defaulting to `~/.cache/dlflow` (what `scripts/setup.sh` creates);
/// 3. the active virtualenv, `$VIRTUAL_ENV`;
/// 4. the site-packages of `python3` on `PATH`.
///
/// In a virtualenv the library is `lib/python3.*/site-packages/tensorflow/libtensorflow_cc.so.2`.
/// The error lists every place looked and why it did not fit.
pub fn locate() -> Result<PathBuf> {
    let mut searched = Vec::new();
    match std::env::var_os("DLFLOW_TF_LIB") {
        Some(value) => {
            let path = PathBuf::from(value);
            // An explicit setting that is wrong is an error, not a reason to quietly use another TensorFlow.
            return library_in(&path).ok_or_else(|| TfError::LibraryNotFound {
                searched: format!("  - DLFLOW_TF_LIB={} (no TensorFlow library there)", path.display()),
            });
        }
        None => searched.push("DLFLOW_TF_LIB (not set)".to_string()),
    }
    let venvs = [("project virtualenv", Some(project_venv())), ("VIRTUAL_ENV", std::env::var_os("VIRTUAL_ENV").map(PathBuf::from))];
    for (what, venv) in venvs {
        let Some(venv) = venv else {
            searched.push(format!("{what} (not set)"));
            continue;
        };
        match site_packages_of_venv(&venv).iter().find_map(|sp| library_in(&sp.join("tensorflow"))) {
            Some(file) => return Ok(file),
            None => searched.push(format!("{what} {} (no tensorflow installed there)", venv.display())),
        }
    }
    match python_site_packages() {
        Some(sp) => match library_in(&sp.join("tensorflow")) {
            Some(file) => return Ok(file),
            None => searched.push(format!("python3 on PATH: {} (no tensorflow installed there)", sp.display())),
        },
        None => searched.push("python3 on PATH (not found)".to_string()),
    }
    Err(TfError::LibraryNotFound { searched: searched.iter().map(|s| format!("  - {s}")).collect::<Vec<_>>().join("\n") })
}

fn site_packages_of_venv(venv: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(venv.join("lib")) else { return Vec::new() };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| e.path().join("site-packages"))
        .collect();
    found.sort();
    found
}

fn python_site_packages() -> Option<PathBuf> {
    let output = std::process::Command::new("python3")
        .args(["-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let line = text.trim();
    (output.status.success() && !line.is_empty()).then(|| PathBuf::from(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_versions() {
        assert!(is_supported("2.21.0"));
        assert!(is_supported("2.16.1"));
        assert!(!is_supported("2.15.0"));
        assert!(!is_supported("1.15.5"));
        assert!(!is_supported("3"));
        assert!(!is_supported("garbage"));
    }
}
