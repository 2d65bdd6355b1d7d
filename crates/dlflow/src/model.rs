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
}

impl Model {
    /// Load the SavedModel in `dir` (tag `serve`).
    pub fn load(dir: impl AsRef<Path>) -> Result<Model> {
        Self::load_with(dir, &LoadOptions::default())
    }

    /// Load with explicit tags or TensorFlow library.
    pub fn load_with(dir: impl AsRef<Path>, options: &LoadOptions) -> Result<Model> {
        Ok(Self::from_saved_model(Arc::new(SavedModel::load_with(dir, options)?)))
    }

    /// Wrap an already loaded model.
    pub fn from_saved_model(model: Arc<SavedModel>) -> Model {
        let concurrency = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Model { model, options: PredictOptions::default(), concurrency }
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
