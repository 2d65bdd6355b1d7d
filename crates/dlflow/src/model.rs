//! [`Model`]: a SavedModel as a function over tables (seed 003's "a model becomes a function
//! that transforms a stream", seed 000's `TFModel.transform`).

use std::path::Path;
use std::sync::Arc;

use datafusion::execution::session_state::SessionStateBuilder;
use dlflow_table::inference::ModelHandle;
use dlflow_table::options::{MicroBatching, ModelSettings};
use dlflow_tf::{LoadOptions, PredictOptions, SavedModel, Signature};

use crate::error::Result;
use crate::table::Table;

/// A loaded SavedModel plus how to apply it: signature, input columns, outputs, batch size.
///
/// Load once, use everywhere: clones share the loaded weights, and inference runs
/// in-process, batched, on every core. A directory of numbered versions (`BASE/1`, `BASE/2`,
/// …, TensorFlow Serving's layout) is served with hot reload: the newest version that loads
/// serves, and a newer one replaces it between two batches (outputs gain `model_version`).
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
    model: ModelHandle,
    options: PredictOptions,
    /// Overrides of the session's model settings (concurrency, micro-batches).
    settings: Option<ModelSettings>,
    /// What an [`Estimator`](crate::Estimator) recorded with the model, if it made it.
    fitted: Option<FittedWith>,
    /// The folder a freshly fitted model lives in until saved; deleted with the last clone.
    _folder: Option<Arc<tempfile::TempDir>>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("model", &self.model).field("fitted_with", &self.fitted).finish_non_exhaustive()
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
    /// Load the SavedModel in `dir` (tag `serve`), or serve the newest version of a versioned
    /// base directory with hot reload.
    pub fn load(dir: impl AsRef<Path>) -> Result<Model> {
        Self::load_with(dir, &LoadOptions::default())
    }

    /// Load with explicit tags or TensorFlow library.
    pub fn load_with(dir: impl AsRef<Path>, options: &LoadOptions) -> Result<Model> {
        let mut model = Self::from_handle(ModelHandle::open(dir.as_ref(), options)?);
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
        copy_tree(self.saved_model().dir(), staging.path()).map_err(|e| io("copying", e))?;
        std::fs::rename(staging.path(), dir).map_err(|e| io("renaming into place", e))?;
        std::mem::forget(staging); // renamed: nothing left to delete
        self.save_training_events(dir);
        Ok(())
    }

    /// A fitted model's TensorBoard events, beside its temporary folder, to beside `dir`; a
    /// failure here loses the logs, not the model, so it is a warning.
    fn save_training_events(&self, dir: &Path) {
        let (from, to) = (dlflow_tensorboard::tensorboard_dir_for(self.saved_model().dir()), dlflow_tensorboard::tensorboard_dir_for(dir));
        if self._folder.is_none() || !from.is_dir() || to.exists() {
            return;
        }
        if let Err(e) = std::fs::create_dir(&to).and_then(|()| copy_tree(&from, &to)) {
            tracing::warn!(from = %from.display(), to = %to.display(), "could not copy the TensorBoard events: {e}");
        }
    }

    /// Wrap an already loaded model.
    pub fn from_saved_model(model: Arc<SavedModel>) -> Model {
        Self::from_handle(ModelHandle::Fixed(model))
    }

    /// Wrap a model handle (one SavedModel, or a versioned directory served with hot reload).
    pub fn from_handle(model: ModelHandle) -> Model {
        Model { model, options: PredictOptions::default(), settings: None, fitted: None, _folder: None }
    }

    /// The loaded SavedModel (for a versioned model, the version serving now).
    pub fn saved_model(&self) -> Arc<SavedModel> {
        self.model.current().0
    }

    /// The model as queries see it: fixed or versioned.
    pub fn handle(&self) -> &ModelHandle {
        &self.model
    }

    /// The model's signatures ("methods").
    pub fn signatures(&self) -> Vec<Signature> {
        self.saved_model().signatures().to_vec()
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
        self.settings_mut().concurrency = batches.max(1);
        self
    }

    /// On a stream, how records are cut into micro-batches: at most `batching.max_rows` rows,
    /// and no record waits longer than `batching.max_delay` (defaults in
    /// [`dlflow_table::options`]).
    pub fn with_micro_batching(mut self, batching: MicroBatching) -> Model {
        let settings = self.settings_mut();
        settings.max_batch_rows = batching.max_rows.max(1);
        settings.max_batch_delay_ms = batching.max_delay.as_millis() as u64;
        self
    }

    fn settings_mut(&mut self) -> &mut ModelSettings {
        self.settings.get_or_insert_with(ModelSettings::default)
    }

    /// The prediction options in force.
    pub fn options(&self) -> &PredictOptions {
        &self.options
    }

    /// `batch` with the model's outputs appended, computed now on this thread (TensorFlow runs in
    /// `batch_size` chunks): for a window's rows as one batch
    /// ([`Table::windows`](crate::Table::windows)), or any batch already in memory.
    ///
    /// ```no_run
    /// # fn demo(batch: &arrow::array::RecordBatch) -> dlflow::Result<()> {
    /// let scored = dlflow::Model::load("models/linear")?.predict_batch(batch)?; // x, y
    /// # Ok(()) }
    /// ```
    pub fn predict_batch(&self, batch: &arrow::array::RecordBatch) -> Result<arrow::array::RecordBatch> {
        let (model, version) = self.model.current();
        let predictor = dlflow_tf::Predictor::new(model, &batch.schema(), &self.options)?;
        let mut fields: Vec<arrow::datatypes::FieldRef> = batch.schema().fields().iter().cloned().collect();
        let mut columns = batch.columns().to_vec();
        fields.extend(predictor.output_fields());
        columns.extend(predictor.predict(batch)?);
        if let Some(version) = version {
            fields.push(std::sync::Arc::new(arrow::datatypes::Field::new(dlflow_table::inference::MODEL_VERSION_COLUMN, arrow::datatypes::DataType::Int64, false)));
            columns.push(std::sync::Arc::new(arrow::array::Int64Array::from_value(version as i64, batch.num_rows())));
        }
        Ok(arrow::array::RecordBatch::try_new(std::sync::Arc::new(arrow::datatypes::Schema::new(fields)), columns)?)
    }

    /// `table` with the model's outputs appended to each row (and `model_version` for a
    /// versioned model). Columns feed the signature's inputs by name (or
    /// [`Model::map_input`]); types and shapes are checked here, before any row is read. The
    /// result is lazy: it runs, streaming, when collected or written; rows keep the input's
    /// order (on a stream: the order within each source partition).
    ///
    /// On a stream (an unbounded table) this is flink-tensorflow's "model as a map": the model
    /// is loaded once, records go through it in micro-batches (see
    /// [`Model::with_micro_batching`]), with back-pressure when the model is slower than the
    /// source.
    ///
    /// A model an [`Estimator`](crate::Estimator) fitted also takes a table that still has the
    /// label column (named like the prediction): the label stays, and the prediction is
    /// appended as `{prediction}_predicted`.
    pub fn transform(&self, table: &Table) -> Result<Table> {
        if let Some(fitted) = &self.fitted
            && table.schema().column_with_name(&fitted.prediction_col).is_some() {
                return crate::estimator::transform_beside_label(self, &fitted.prediction_col, table);
            }
        let mut df = table.dataframe().clone();
        if let Some(settings) = &self.settings {
            let (state, plan) = df.into_parts();
            let mut config = state.config().clone();
            config.options_mut().extensions.insert(settings.clone());
            df = datafusion::dataframe::DataFrame::new(SessionStateBuilder::new_from_existing(state).with_config(config).build(), plan);
        }
        let df = dlflow_table::inference::transform(df, self.model.clone(), self.options.clone())?;
        Ok(Table::in_order(df))
    }

    /// Writes `table` with the model's outputs appended to `path` (format from the extension):
    /// the same file as `self.transform(table)?.write(path, on_batch)`, and `on_batch` sees
    /// each batch of outputs as it is written. Returns the number of rows written.
    ///
    /// When `table` is Parquet files read as they are and `path` is a Parquet file, the files'
    /// column chunks are copied into `path` byte for byte and only the model's outputs are
    /// encoded: the columns the model does not read are never decoded, and the output keeps
    /// the input's row groups, encodings and compression. This is what `dlflow predict
    /// IN.parquet --output OUT.parquet` does.
    ///
    /// ```no_run
    /// # async fn demo() -> dlflow::Result<()> {
    /// let env = dlflow::Environment::new();
    /// let images = env.read_file("images.parquet").await?;
    /// let model = dlflow::Model::load("models/mlp")?;
    /// let rows = model.write_transformed(&images, "scored.parquet", |_batch| {}).await?;
    /// # Ok(()) }
    /// ```
    pub async fn write_transformed(&self, table: &Table, path: impl AsRef<Path>, on_batch: impl FnMut(&arrow::array::RecordBatch) + Send) -> Result<u64> {
        let path = path.as_ref();
        let transformed = self.transform(table)?;
        if let Some((stored, appended)) = stored_and_appended(table, &transformed, path).await? {
            let appended = appended.stream().await?;
            return Ok(dlflow_table::sink::write_with_stored_columns(stored, appended, path, on_batch).await?);
        }
        transformed.write(path, on_batch).await
    }
}

/// When `transformed` is `table` with columns appended, `table` reads Parquet files as they are
/// stored and `path` is Parquet: those files and the appended columns alone (whose plan then
/// reads only what the model needs).
async fn stored_and_appended(table: &Table, transformed: &Table, path: &Path) -> Result<Option<(dlflow_table::sink::StoredColumns, Table)>> {
    if !matches!(dlflow_table::FileFormat::from_path(path), Ok(dlflow_table::FileFormat::Parquet)) {
        return Ok(None);
    }
    let plan = table.dataframe().clone().create_physical_plan().await?;
    let Some(files) = dlflow_table::ordered::stored_parquet_files(&plan) else { return Ok(None) };
    let (input, output) = (table.schema(), transformed.schema());
    let columns: Vec<&str> = input.fields().iter().map(|f| f.name().as_str()).collect();
    let kept: Vec<&str> = output.fields().iter().take(columns.len()).map(|f| f.name().as_str()).collect();
    if kept != columns {
        return Ok(None);
    }
    let new: Vec<&str> = output.fields().iter().skip(columns.len()).map(|f| f.name().as_str()).collect();
    let appended = Table::in_order(transformed.dataframe().clone().select_columns(&new)?);
    // The appended columns' plan must still read those files whole, in order, row for row.
    let appended_plan = appended.dataframe().clone().create_physical_plan().await?;
    if dlflow_table::ordered::whole_parquet_files(&appended_plan).as_ref() != Some(&files) {
        return Ok(None);
    }
    let Some(stored) = dlflow_table::sink::StoredColumns::open(&files, &columns)? else { return Ok(None) };
    tracing::debug!("{} file(s): stored columns copied, {} column(s) appended", files.len(), new.len());
    Ok(Some((stored, appended)))
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
