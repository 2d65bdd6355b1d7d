//! Hot model reload: the newest complete version of a versioned model directory.
//!
//! TensorFlow Serving's layout: a base directory holds one folder per version, named by its
//! number (`BASE/1`, `BASE/2`, …). [`VersionedModel`] serves the highest version that loads,
//! watches the base directory, and when a higher version appears loads it and warms it (one
//! call on a row of zeros, so the first real batch does not pay TensorFlow's first-run cost)
//! beside the one in service, then switches. Callers take [`VersionedModel::current`] once per
//! micro-batch, so a switch happens between two batches: no record is lost or computed twice,
//! and versions only go up. A version that fails to load is reported and skipped; the one in
//! service keeps serving.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, FixedSizeListArray, Float64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use dlflow_tf::{DType, LoadOptions, PredictOptions, Predictor, SavedModel, Signature};

use crate::error::TableError;

/// How often the base directory is listed for new versions unless told otherwise.
pub const DEFAULT_POLL: Duration = Duration::from_millis(250);

/// What happened to a version, for logs and status lines.
#[derive(Debug, Clone, PartialEq)]
pub enum VersionEvent {
    /// `version` loaded and warmed in `seconds`, and now serves.
    Serving {
        /// The version number.
        version: u64,
        /// Load and warm-up time.
        seconds: f64,
    },
    /// `version` could not be loaded; the version in service (if any) keeps serving.
    Failed {
        /// The version number.
        version: u64,
        /// Why, in words.
        error: String,
    },
}

impl fmt::Display for VersionEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionEvent::Serving { version, seconds } => write!(f, "model version {version} loaded and serving ({seconds:.2} s to load and warm)"),
            VersionEvent::Failed { version, error } => write!(f, "model version {version} skipped: {error}"),
        }
    }
}

/// Called with every [`VersionEvent`].
pub type VersionListener = Arc<dyn Fn(&VersionEvent) + Send + Sync>;

/// The newest complete version of a versioned model directory; see the [module docs](self).
///
/// ```no_run
/// use std::time::Duration;
/// use dlflow_table::inference::VersionedModel;
///
/// let model = VersionedModel::open("models/mlp", &Default::default(), Duration::from_millis(250))?;
/// let (version, saved_model) = model.current();
/// println!("serving version {version} from {}", saved_model.dir().display());
/// # Ok::<(), dlflow_table::TableError>(())
/// ```
pub struct VersionedModel {
    base: PathBuf,
    current: RwLock<(u64, Arc<SavedModel>)>,
    listeners: Mutex<Vec<VersionListener>>,
    stop: Arc<AtomicBool>,
    watcher: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for VersionedModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VersionedModel").field("base", &self.base).field("version", &self.current().0).finish()
    }
}

impl VersionedModel {
    /// Whether `dir` is a versioned base directory: it has no `saved_model.pb` of its own and at
    /// least one folder named by a number.
    pub fn is_versioned_dir(dir: &Path) -> bool {
        !is_saved_model_dir(dir) && !version_dirs(dir).is_empty()
    }

    /// Serve the highest version in `base` that loads, and watch `base` every `poll` for
    /// higher ones. Fails when no version loads (naming each version and why).
    pub fn open(base: impl AsRef<Path>, options: &LoadOptions, poll: Duration) -> crate::Result<Arc<VersionedModel>> {
        let base = base.as_ref().to_path_buf();
        let versions = version_dirs(&base);
        let mut failures = Vec::new();
        let mut first = None;
        for (version, dir) in versions.iter().rev() {
            match load_and_warm(dir, options) {
                Ok(model) => {
                    first = Some((*version, model));
                    break;
                }
                Err(error) => failures.push(format!("version {version}: {error}")),
            }
        }
        let Some((version, model)) = first else {
            return Err(TableError::ModelVersions {
                base: base.clone(),
                message: if versions.is_empty() {
                    "expected a SavedModel directory, or a base directory of numbered versions (BASE/1, BASE/2, ...)".into()
                } else {
                    format!("no version loads: {}", failures.join("; "))
                },
            });
        };
        let model = Arc::new(VersionedModel {
            base: base.clone(),
            current: RwLock::new((version, model)),
            listeners: Mutex::new(Vec::new()),
            stop: Arc::new(AtomicBool::new(false)),
            watcher: Mutex::new(None),
        });
        let tried: BTreeSet<u64> = versions.iter().map(|(v, _)| *v).filter(|v| *v >= version).collect();
        let watcher = std::thread::Builder::new()
            .name("dlflow-model-versions".into())
            .spawn({
                let weak = Arc::downgrade(&model);
                let stop = model.stop.clone();
                let options = options.clone();
                move || watch(weak, stop, options, poll, tried)
            })
            .map_err(|e| TableError::ModelVersions { base, message: format!("cannot start the version watcher: {e}") })?;
        *model.watcher.lock().unwrap_or_else(|e| e.into_inner()) = Some(watcher);
        Ok(model)
    }

    /// The version in service and its model.
    pub fn current(&self) -> (u64, Arc<SavedModel>) {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        (current.0, current.1.clone())
    }

    /// The base directory.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// Call `listener` on every later [`VersionEvent`].
    pub fn on_event(&self, listener: VersionListener) {
        self.listeners.lock().unwrap_or_else(|e| e.into_inner()).push(listener);
    }

    fn publish(&self, event: VersionEvent) {
        match &event {
            VersionEvent::Serving { .. } => tracing::info!(base = %self.base.display(), "{event}"),
            VersionEvent::Failed { .. } => tracing::warn!(base = %self.base.display(), "{event}"),
        }
        let listeners = self.listeners.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for listener in listeners {
            listener(&event);
        }
    }
}

impl Drop for VersionedModel {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // The watcher holds only a weak reference; it notices the flag within one poll.
        // Not joined: drop may run on the watcher thread itself (its last strong reference).
    }
}

/// The watcher thread: lists `base`, loads versions higher than the one in service.
fn watch(model: std::sync::Weak<VersionedModel>, stop: Arc<AtomicBool>, options: LoadOptions, poll: Duration, mut tried: BTreeSet<u64>) {
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(poll);
        let Some(model) = model.upgrade() else { return };
        let serving = model.current().0;
        let newest = version_dirs(&model.base).into_iter().rfind(|(v, _)| *v > serving && !tried.contains(v));
        let Some((version, dir)) = newest else { continue };
        tried.insert(version);
        let started = Instant::now();
        match load_and_warm(&dir, &options) {
            Ok(loaded) => {
                *model.current.write().unwrap_or_else(|e| e.into_inner()) = (version, loaded);
                model.publish(VersionEvent::Serving { version, seconds: started.elapsed().as_secs_f64() });
            }
            Err(error) => model.publish(VersionEvent::Failed { version, error: error.to_string() }),
        }
    }
}

fn is_saved_model_dir(dir: &Path) -> bool {
    dir.join("saved_model.pb").is_file() || dir.join("saved_model.pbtxt").is_file()
}

/// The numbered version folders of `base` that hold a SavedModel, lowest first. Folders still
/// being written are invisible when exporters rename them into place (as dlflow's do); a
/// folder without `saved_model.pb` yet is not a version.
fn version_dirs(base: &Path) -> Vec<(u64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(base) else { return Vec::new() };
    let mut versions: Vec<(u64, PathBuf)> = entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u64>().ok()?;
            let path = entry.path();
            is_saved_model_dir(&path).then_some((version, path))
        })
        .collect();
    versions.sort();
    versions
}

fn load_and_warm(dir: &Path, options: &LoadOptions) -> dlflow_tf::Result<Arc<SavedModel>> {
    let model = Arc::new(SavedModel::load_with(dir, options)?);
    if let Ok(signature) = model.default_signature() {
        // Best effort: a model whose inputs a row of zeros cannot feed (tf.Example strings)
        // simply starts cold.
        if let Some(batch) = zeros(signature) {
            let warmed = Predictor::new(model.clone(), &batch.schema(), &PredictOptions::default()).and_then(|p| p.predict(&batch));
            if let Err(error) = warmed {
                tracing::debug!(dir = %dir.display(), "warm-up call failed, the version starts cold: {error}");
            }
        }
    }
    Ok(model)
}

/// One row of zeros for `signature`'s inputs, or `None` for inputs a zero cannot feed.
fn zeros(signature: &Signature) -> Option<RecordBatch> {
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for spec in signature.inputs() {
        let element = match spec.dtype {
            DType::Float => DataType::Float32,
            DType::Double => DataType::Float64,
            DType::Int32 => DataType::Int32,
            DType::Int64 => DataType::Int64,
            DType::Bool => DataType::Boolean,
            _ => return None,
        };
        let width: i64 = spec.shape.dims().map(|dims| dims.iter().skip(1).product()).unwrap_or(1);
        if width < 1 {
            return None;
        }
        let values = arrow::compute::cast(&Float64Array::from(vec![0.0; width as usize]), &element).ok()?;
        let (data_type, column): (DataType, ArrayRef) = if width == 1 && spec.shape.dims().is_none_or(|d| d.len() <= 2) {
            (element, values)
        } else {
            let item = Arc::new(Field::new("item", element, false));
            let list = FixedSizeListArray::try_new(item.clone(), width as i32, values, None).ok()?;
            (DataType::FixedSizeList(item, width as i32), Arc::new(list))
        };
        fields.push(Field::new(&spec.key, data_type, false));
        columns.push(column);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).ok()
}
