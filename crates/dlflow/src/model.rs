//! [`Model`]: a SavedModel as a function over tables (seed 003's "a model becomes a function
//! that transforms a stream", seed 000's `TFModel.transform`).

use std::path::Path;
use std::sync::Arc;

use dlflow_tf::{LoadOptions, PredictOptions, Predictor, SavedModel, Signature};

use crate::error::Result;
use crate::table::Table;

/// A loaded SavedModel plus how to apply it: signature, input columns, outputs, batch size.
///
/// Load once, use everywhere: clones share the loaded weights, and inference runs
/// in-process, batched, on every core.
///
/// ```no_run
/// # async fn demo(table: dlflow::Table) -> dlflow::Result<()> {
/// use dlflow::Model;
/// let model = Model::load("models/mlp")?
///     .with_signature("classify")
///     .map_input("pixels", "image")
///     .with_batch_size(2048);
/// let predicted = model.transform(&table)?; // table + `classes` + `scores` columns
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Model {
    model: Arc<SavedModel>,
    options: PredictOptions,
    concurrency: usize,
    /// What an [`Estimator`](crate::Estimator) recorded with the model, if it made it.
    fitted: Option<FittedWith>,
    /// The folder a freshly fitted model lives in until saved; deleted with the last clone.
    _folder: Option<Arc<tempfile::TempDir>>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("dir", &self.model.dir()).field("fitted_with", &self.fitted).finish_non_exhaustive()
    }
}

/// What an [`Estimator`](crate::Estimator) saves next to the SavedModel
/// (`dlflow_estimator.json`): what `transform` feeds and appends.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct FittedWith {
    /// The feature columns, in order: the signature's inputs.
    pub feature_cols: Vec<String>,
    /// The label column the model learned.
    pub label_col: String,
    /// The column `transform` appends.
    pub prediction_col: String,
}

/// The file an estimator writes next to its SavedModel.
pub(crate) const FITTED_WITH_FILE: &str = "dlflow_estimator.json";

impl Model {
    /// Load the SavedModel in `dir` (tag `serve`).
    pub fn load(dir: impl AsRef<Path>) -> Result<Model> {
        Self::load_with(dir, &LoadOptions::default())
    }

    /// Load with explicit tags or TensorFlow library.
    pub fn load_with(dir: impl AsRef<Path>, options: &LoadOptions) -> Result<Model> {
        let mut model = Self::from_saved_model(Arc::new(SavedModel::load_with(dir.as_ref(), options)?));
        model.fitted = read_fitted_with(dir.as_ref())?;
        Ok(model)
    }

    /// A model an estimator just trained into `dir` inside `folder` (deleted when the last
    /// clone of the model is dropped; [`save`](Self::save) keeps a copy).
    pub(crate) fn fitted(folder: tempfile::TempDir, dir: &Path) -> Result<Model> {
        let mut model = Self::load(dir)?;
        model._folder = Some(Arc::new(folder));
        Ok(model)
    }

    /// What the estimator that made this model recorded: feature, label and prediction columns.
    pub fn fitted_with(&self) -> Option<&FittedWith> {
        self.fitted.as_ref()
    }

    /// Copies the SavedModel (and what the estimator recorded) to `dir`, which must not exist.
    /// A model an [`Estimator`](crate::Estimator) just fitted also has its TensorBoard events
    /// copied beside it, to `<dir>.tensorboard`.
    ///
    /// The copy is written next to `dir` and renamed into place: a failed save leaves nothing.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        if dir.exists() {
            return Err(crate::Error::Invalid(format!("cannot save the model: {} already exists", dir.display())));
        }
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let io = |what: &str, e: std::io::Error| crate::Error::Invalid(format!("cannot save the model to {}: {what}: {e}", dir.display()));
        std::fs::create_dir_all(parent).map_err(|e| io("creating the parent folder", e))?;
        let staging = tempfile::Builder::new().prefix(".dlflow-model-").tempdir_in(parent).map_err(|e| io("a staging folder", e))?;
        copy_tree(self.model.dir(), staging.path()).map_err(|e| io("copying", e))?;
        std::fs::rename(staging.path(), dir).map_err(|e| io("renaming into place", e))?;
        std::mem::forget(staging); // renamed: nothing left to delete
        self.save_training_events(dir);
        Ok(())
    }

    /// A fitted model's TensorBoard events, beside its temporary folder, to beside `dir`; a
    /// failure here loses the logs, not the model, so it is a warning.
    fn save_training_events(&self, dir: &Path) {
        let (from, to) = (dlflow_tensorboard::tensorboard_dir_for(self.model.dir()), dlflow_tensorboard::tensorboard_dir_for(dir));
        if self._folder.is_none() || !from.is_dir() || to.exists() {
            return;
        }
        if let Err(e) = std::fs::create_dir(&to).and_then(|()| copy_tree(&from, &to)) {
            tracing::warn!(from = %from.display(), to = %to.display(), "could not copy the TensorBoard events: {e}");
        }
    }

    /// Wrap an already loaded model.
    pub fn from_saved_model(model: Arc<SavedModel>) -> Model {
        let concurrency = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Model { model, options: PredictOptions::default(), concurrency, fitted: None, _folder: None }
    }

    /// The loaded SavedModel.
    pub fn saved_model(&self) -> &Arc<SavedModel> {
        &self.model
    }

    /// The model's signatures ("methods").
    pub fn signatures(&self) -> &[Signature] {
        self.model.signatures()
    }

    /// Apply the signature `name` instead of the default (`serving_default`, `predict`, ...).
    pub fn with_signature(mut self, name: impl Into<String>) -> Model {
        self.options = self.options.signature(name);
        self
    }

    /// Feed signature input `input` from column `column` (default: the column named like the input).
    pub fn map_input(mut self, input: impl Into<String>, column: impl Into<String>) -> Model {
        self.options = self.options.map_input(input, column);
        self
    }

    /// Append only these outputs.
    pub fn with_outputs<S: Into<String>>(mut self, outputs: impl IntoIterator<Item = S>) -> Model {
        self.options = self.options.outputs(outputs);
        self
    }

    /// Rows per TensorFlow run (default [`dlflow_tf::DEFAULT_BATCH_SIZE`]).
    pub fn with_batch_size(mut self, rows: usize) -> Model {
        self.options = self.options.batch_size(rows);
        self
    }

    /// Require column types to match the signature exactly (no DOUBLE -> float32 conversion).
    pub fn with_exact_types(mut self) -> Model {
        self.options = self.options.allow_cast(false);
        self
    }

    /// Batches predicted at once (default: the number of cores).
    pub fn with_concurrency(mut self, batches: usize) -> Model {
        self.concurrency = batches.max(1);
        self
    }

    /// The prediction options in force.
    pub fn options(&self) -> &PredictOptions {
        &self.options
    }

    /// `table` with the model's outputs appended to each row, in the input's row order.
    /// Columns feed the signature's inputs by name (or [`Model::map_input`]); types and
    /// shapes are checked here, before any row is read. The result is lazy: it runs, streaming,
    /// when collected or written.
    pub fn transform(&self, table: &Table) -> Result<Table> {
        let predictor = Predictor::new(self.model.clone(), &table.schema(), &self.options)?;
        let df = dlflow_table::inference::transform(table.dataframe().clone(), Arc::new(predictor), self.concurrency)?;
        Ok(Table::new(df))
    }
}

fn read_fitted_with(dir: &Path) -> Result<Option<FittedWith>> {
    let path = dir.join(FITTED_WITH_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(None) };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| crate::Error::Invalid(format!("{} is not what an estimator writes: {e}", path.display())))
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            std::fs::create_dir_all(&target)?;
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
