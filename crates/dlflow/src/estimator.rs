//! [`Estimator`]: fit a Keras model on a table without writing a training script.
//!
//! The estimator runs dlflow's built-in node entry (`python/dlflow/estimator.py`) on a cluster
//! of workers with `MultiWorkerMirroredStrategy`: it builds the model from a Python factory or
//! a Keras model file, compiles it with the named loss and optimizer, fits it on the feature and
//! label columns, and saves a SavedModel whose `serving_default` takes one input per feature
//! column and returns the prediction column. The result is a [`Model`]: `transform` runs it
//! in-process, `save` keeps it.
//!
//! The rows are shuffled every epoch by default (the engine's seeded order), validation
//! rows (a table, or the last part of the input) are scored after every epoch, and a Keras 3
//! `.keras` file is rebuilt in Keras 2 before any node starts (`python/dlflow/keras_file.py`).

mod keras_file;
mod validation;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{DataType, Schema};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::{Job, Model, NodeName, Python, Table, TfClusterConfig};

pub(crate) use validation::transform_beside_label;

/// Where the Keras model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KerasModel {
    /// `function()` in a Python file returns a `tf.keras.Model` (the file is shipped to the nodes).
    Factory {
        /// The Python file.
        file: PathBuf,
        /// The function's name.
        function: String,
    },
    /// A saved Keras model: `.keras`, `.h5`, or `.json` from `model.to_json()`.
    File(PathBuf),
}

/// One finished epoch: the loss and metrics Keras logged (all-reduced over the workers).
#[derive(Debug, Clone, PartialEq)]
pub struct EpochMetrics {
    /// The epoch, from 0.
    pub epoch: u64,
    /// `loss` and every metric, by Keras's name; with validation rows also `val_loss` and
    /// `val_` + every metric, scored on them after the epoch.
    pub values: std::collections::BTreeMap<String, f64>,
}

/// Rows the estimator scores after every epoch, without training on them.
#[derive(Clone)]
enum Validation {
    /// The last fraction of the input's rows (in the table's order, before any shuffling).
    Split(f64),
    /// A table with the feature and label columns.
    Table(Table),
}

/// Called with every notice a node sends (rows taken, ends of epochs, metrics).
type NoticeHandler = Arc<dyn Fn(NodeName, &Value) + Send + Sync>;
type EpochHandler = Arc<dyn Fn(&EpochMetrics) + Send + Sync>;

/// DL on Flink's `TFEstimator`: model, loss, optimizer, feature and label columns, epochs,
/// batch size, workers. [`fit`](Self::fit) returns a [`Model`].
///
/// ```no_run
/// # async fn demo(samples: dlflow::Table, fresh_rows: dlflow::Table) -> dlflow::Result<()> {
/// use dlflow::Estimator;
///
/// let model = Estimator::factory("examples/estimator/linear_model.py", "build_model")
///     .loss("mse")
///     .optimizer("adam")
///     .learning_rate(0.05)
///     .feature_cols(["x1", "x2"])
///     .label_col("y")
///     .max_epochs(5)
///     .batch_size(32)          // rows per step, all workers together
///     .worker_count(2)
///     .validation_split(0.1)   // the last 10% of the rows: val_loss after every epoch
///     .seed(7)                 // the same shuffles and initial weights on every run
///     .fit(&samples)
///     .await?;
/// model.save("/tmp/linear-estimator")?;
/// let predicted = model.transform(&fresh_rows)?; // + a `y` column: the prediction
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Estimator {
    model: KerasModel,
    loss: String,
    loss_params: Option<Value>,
    optimizer: String,
    optimizer_params: serde_json::Map<String, Value>,
    metrics: Vec<String>,
    feature_cols: Vec<String>,
    label_col: Option<String>,
    prediction_col: Option<String>,
    max_epochs: u64,
    batch_size: usize,
    workers: usize,
    max_failures: Option<u32>,
    properties: Vec<(String, String)>,
    python: Option<Python>,
    quiet: bool,
    shuffle: bool,
    seed: Option<u64>,
    validation: Option<Validation>,
    on_epoch: Option<EpochHandler>,
    on_notice: Option<NoticeHandler>,
    on_output: Option<dlflow_cluster::OutputHandler>,
    tensorboard_dir: Option<PathBuf>,
}

impl Estimator {
    /// An estimator whose model `function()` in `file` builds.
    pub fn factory(file: impl Into<PathBuf>, function: impl Into<String>) -> Estimator {
        Self::new(KerasModel::Factory { file: file.into(), function: function.into() })
    }

    /// An estimator that starts from a saved Keras model (`.keras`, `.h5`, `.json`).
    pub fn model_file(path: impl Into<PathBuf>) -> Estimator {
        Self::new(KerasModel::File(path.into()))
    }

    fn new(model: KerasModel) -> Estimator {
        Estimator {
            model,
            loss: "mse".into(),
            loss_params: None,
            optimizer: "adam".into(),
            optimizer_params: serde_json::Map::new(),
            metrics: Vec::new(),
            feature_cols: Vec::new(),
            label_col: None,
            prediction_col: None,
            max_epochs: 1,
            batch_size: 32,
            workers: 1,
            max_failures: None,
            properties: Vec::new(),
            python: None,
            quiet: false,
            shuffle: true,
            seed: None,
            validation: None,
            on_epoch: None,
            on_notice: None,
            on_output: None,
            tensorboard_dir: None,
        }
    }

    /// The loss, by Keras name (`"mse"`, `"sparse_categorical_crossentropy"`) or `FILE.py:FUNCTION`.
    pub fn loss(mut self, loss: impl Into<String>) -> Self {
        self.loss = loss.into();
        self
    }

    /// Keyword arguments of the loss, for example `{"from_logits": true}`.
    pub fn loss_params(mut self, params: Value) -> Self {
        self.loss_params = Some(params);
        self
    }

    /// The optimizer, by Keras name (`"adam"`, `"sgd"`) or `FILE.py:FUNCTION` (default adam).
    pub fn optimizer(mut self, optimizer: impl Into<String>) -> Self {
        self.optimizer = optimizer.into();
        self
    }

    /// The optimizer's learning rate.
    pub fn learning_rate(mut self, rate: f64) -> Self {
        self.optimizer_params.insert("learning_rate".into(), rate.into());
        self
    }

    /// Another keyword argument of the optimizer.
    pub fn optimizer_param(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.optimizer_params.insert(key.into(), value.into());
        self
    }

    /// Metrics by Keras name (`"accuracy"`, `"mae"`), reported per epoch with the loss.
    pub fn metrics<S: Into<String>>(mut self, metrics: impl IntoIterator<Item = S>) -> Self {
        self.metrics = metrics.into_iter().map(Into::into).collect();
        self
    }

    /// The feature columns, in the order the model takes them.
    pub fn feature_cols<S: Into<String>>(mut self, columns: impl IntoIterator<Item = S>) -> Self {
        self.feature_cols = columns.into_iter().map(Into::into).collect();
        self
    }

    /// The label column.
    pub fn label_col(mut self, column: impl Into<String>) -> Self {
        self.label_col = Some(column.into());
        self
    }

    /// The column `transform` appends (default: the label column's name).
    pub fn prediction_col(mut self, column: impl Into<String>) -> Self {
        self.prediction_col = Some(column.into());
        self
    }

    /// Passes over the table (default 1).
    pub fn max_epochs(mut self, epochs: u64) -> Self {
        self.max_epochs = epochs;
        self
    }

    /// Rows per training step, all workers together (default 32): the global batch, as in
    /// `MultiWorkerMirroredStrategy`. Each of `n` workers takes `rows / n` rows per step, so
    /// `rows` must be a multiple of the worker count; the gradients of one step are averaged
    /// over all `rows` rows, whatever the worker count.
    pub fn batch_size(mut self, rows: usize) -> Self {
        self.batch_size = rows;
        self
    }

    /// Deal the rows in a new order every epoch (default `true`), across all partitions.
    ///
    /// The input is then read once and held in memory (its Arrow batches); turn shuffling off
    /// for a table larger than memory: every epoch then streams it again, in its own order,
    /// in bounded memory. An unbounded table is never shuffled.
    pub fn shuffle(mut self, shuffle: bool) -> Self {
        self.shuffle = shuffle;
        self
    }

    /// The seed of the shuffled order and of TensorFlow on the nodes (initial weights,
    /// dropout): the same seed gives every worker the same rows in the same order in every
    /// epoch, and the same starting model. Without it, each fit draws its own shuffle seed and
    /// TensorFlow is not seeded.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Hold out the last `fraction` of the input's rows (in the table's order, before any
    /// shuffling, as Keras's `validation_split`) and report `val_loss` and `val_` metrics on
    /// them after every epoch. The input is read into memory to split it.
    pub fn validation_split(mut self, fraction: f64) -> Self {
        self.validation = Some(Validation::Split(fraction));
        self
    }

    /// Score these rows (feature and label columns) after every epoch: `val_loss` and a
    /// `val_` value per metric, in [`EpochMetrics`]. Replaces a [`validation_split`](Self::validation_split).
    pub fn validation_data(mut self, table: &Table) -> Self {
        self.validation = Some(Validation::Table(table.clone()));
        self
    }

    /// Workers (default 1); with more, `MultiWorkerMirroredStrategy` keeps them in step.
    pub fn worker_count(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// Restarts from the last epoch's checkpoint after a node fails, before the failure ends
    /// `fit` (default 3; 0: the first failure ends it). A mistake in the job itself (a column
    /// or a model that does not fit) ends `fit` at once whatever this says.
    pub fn max_failures(mut self, restarts: u32) -> Self {
        self.max_failures = Some(restarts);
        self
    }

    /// An extra cluster property for the nodes.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }

    /// The Python that runs the nodes (default: dlflow's virtualenv).
    pub fn python(mut self, python: Python) -> Self {
        self.python = Some(python);
        self
    }

    /// Keep the nodes' output off stderr.
    pub fn quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }

    /// Where the chief writes TensorBoard events (loss and metrics per epoch, loss every 10
    /// steps). By default beside the fitted model, and [`Model::save`] copies them beside the
    /// saved one (`<dir>.tensorboard`).
    pub fn tensorboard_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.tensorboard_dir = Some(dir.into());
        self
    }

    /// Calls `handler` after every epoch with its loss and metrics.
    pub fn on_epoch(mut self, handler: impl Fn(&EpochMetrics) + Send + Sync + 'static) -> Self {
        self.on_epoch = Some(Arc::new(handler));
        self
    }

    /// Calls `handler` with every notice a node sends: `rows` as a worker takes rows,
    /// `epoch_end` when its share of an epoch is read, `epoch` with the metrics (see
    /// [`Job::on_notice`]). For progress displays.
    pub fn on_notice(mut self, handler: impl Fn(NodeName, &Value) + Send + Sync + 'static) -> Self {
        self.on_notice = Some(Arc::new(handler));
        self
    }

    /// Sends every line the nodes print to `handler` instead of stderr.
    pub fn on_output(mut self, handler: dlflow_cluster::OutputHandler) -> Self {
        self.on_output = Some(handler);
        self
    }

    /// Trains on `table` and returns the fitted model (a SavedModel in a folder of its own,
    /// deleted with the model unless [`Model::save`]d).
    ///
    /// Columns, their types, the row count and the model file are checked before any node
    /// starts.
    pub async fn fit(&self, table: &Table) -> Result<Model> {
        let label = self.check(&table.schema())?;
        let columns: Vec<&str> = self.feature_cols.iter().map(String::as_str).chain([label.as_str()]).collect();
        // Only what the model needs crosses to the nodes.
        let input = Table::new(table.dataframe().clone().select_columns(&columns)?);
        let folder = tempfile::Builder::new()
            .prefix("dlflow-fitted-")
            .tempdir()
            .map_err(|e| Error::Invalid(format!("cannot make a folder for the fitted model: {e}")))?;
        let (input, validation_file) = match &self.validation {
            None => (input, None),
            Some(validation) => {
                let (input, file) = validation::prepare(validation, input, &columns, self.workers, folder.path()).await?;
                (input, Some(file))
            }
        };
        match input.count().await? {
            0 => return Err(Error::Invalid("the estimator's input table has no rows".into())),
            rows if rows < self.workers => {
                return Err(Error::Invalid(format!(
                    "the estimator's input table has {rows} row(s), fewer than the {} workers: each needs a share",
                    self.workers
                )));
            }
            _ => {}
        }
        let model_file = match &self.model {
            KerasModel::File(path) => Some(keras_file::prepare(path, self.python.as_ref(), folder.path()).await?),
            KerasModel::Factory { .. } => None,
        };
        let model_dir = folder.path().join("model");
        let mut config = self.cluster_config(&label, &model_dir, model_file.as_deref(), validation_file.as_deref())?;
        if let Some(handler) = &self.on_output {
            config = config.with_output_handler(handler.clone());
        }
        let (on_epoch, on_notice) = (self.on_epoch.clone(), self.on_notice.clone());
        // Shuffled, the job deals each worker a seeded random share once and the workers train
        // from memory; otherwise every epoch streams the table again.
        let shuffle = (self.shuffle && is_bounded(&input).await?).then(|| self.seed.unwrap_or_else(random_seed));
        let passes = if shuffle.is_some() { 1 } else { self.max_epochs };
        if let Some(seed) = shuffle {
            config = config.with_property("estimator.shuffle_seed", seed.to_string());
        }
        let job = Job::train(&input, &config, passes).shuffle(shuffle).on_notice(move |node, notice| {
            if let Some(handler) = &on_notice {
                handler(node, notice);
            }
            if node.index == 0 && notice["event"] == "epoch"
                && let (Some(handler), Some(metrics)) = (&on_epoch, epoch_metrics(notice)) {
                    handler(&metrics);
                }
        });
        job.run().await?;
        Model::fitted(folder, &model_dir)
    }

    /// Everything that can be wrong before a process starts; returns the label column.
    fn check(&self, schema: &Schema) -> Result<String> {
        let label = self.label_col.clone().ok_or_else(|| Error::Invalid("the estimator needs a label column: label_col(\"y\")".into()))?;
        if self.feature_cols.is_empty() {
            return Err(Error::Invalid("the estimator needs feature columns: feature_cols([\"x\"])".into()));
        }
        if self.max_epochs == 0 || self.batch_size == 0 || self.workers == 0 {
            return Err(Error::Invalid("max_epochs, batch_size and worker_count must be at least 1".into()));
        }
        if !self.batch_size.is_multiple_of(self.workers) {
            return Err(Error::Invalid(format!(
                "batch_size {} is the global batch, split evenly across the {} workers: give a multiple of {}",
                self.batch_size, self.workers, self.workers
            )));
        }
        if let Some(Validation::Split(fraction)) = self.validation
            && !(fraction > 0.0 && fraction < 1.0) {
                return Err(Error::Invalid(format!("validation_split {fraction}: expected a fraction between 0 and 1")));
            }
        let (KerasModel::Factory { file, .. } | KerasModel::File(file)) = &self.model;
        if !file.is_file() {
            return Err(Error::Invalid(format!("the estimator's model file {} does not exist", file.display())));
        }
        check_columns(schema, &self.feature_cols, &label, "the table")?;
        if let Some(Validation::Table(validation)) = &self.validation {
            check_columns(&validation.schema(), &self.feature_cols, &label, "the validation table")?;
        }
        Ok(label)
    }

    fn cluster_config(
        &self,
        label: &str,
        model_dir: &Path,
        model_file: Option<&Path>,
        validation_file: Option<&Path>,
    ) -> Result<TfClusterConfig> {
        let entry = dlflow_cluster::package_root()?.join("dlflow/estimator.py");
        let mut builder = TfClusterConfig::builder()
            .worker_count(self.workers)
            .node_entry(entry, "estimator_entry")
            .quiet(self.quiet)
            .property("estimator.loss", &self.loss)
            .property("estimator.optimizer", &self.optimizer)
            .property("estimator.optimizer_params", Value::Object(self.optimizer_params.clone()).to_string())
            .property("estimator.metrics", Value::from(self.metrics.clone()).to_string())
            .property("estimator.feature_cols", Value::from(self.feature_cols.clone()).to_string())
            .property("estimator.label_col", label)
            .property("estimator.batch_size", self.batch_size.to_string())
            .property("estimator.epochs", self.max_epochs.to_string())
            .property("estimator.model_dir", model_dir.to_string_lossy())
            .property(
                "tensorboard_dir",
                self.tensorboard_dir.clone().unwrap_or_else(|| dlflow_tensorboard::tensorboard_dir_for(model_dir)).to_string_lossy(),
            );
        builder = match (&self.model, model_file) {
            (KerasModel::Factory { file, function }, _) => {
                let file = std::path::absolute(file).unwrap_or_else(|_| file.clone());
                if let Some(dir) = file.parent() {
                    builder = builder.python_path(dir);
                }
                builder.property("estimator.model", format!("{}:{function}", file.display()))
            }
            (KerasModel::File(path), prepared) => {
                let path = prepared.unwrap_or(path);
                builder.property("estimator.model", std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()).to_string_lossy())
            }
        };
        if let Some(params) = &self.loss_params {
            builder = builder.property("estimator.loss_params", params.to_string());
        }
        if let Some(column) = &self.prediction_col {
            builder = builder.property("estimator.prediction_col", column);
        }
        if let Some(seed) = self.seed {
            builder = builder.property("estimator.seed", seed.to_string());
        }
        if let Some(file) = validation_file {
            builder = builder.property("estimator.validation_file", file.to_string_lossy());
        }
        if let Some(python) = &self.python {
            builder = builder.python(python.clone());
        }
        if let Some(restarts) = self.max_failures {
            builder = builder.max_failures(restarts);
        }
        for (key, value) in &self.properties {
            builder = builder.property(key, value);
        }
        Ok(builder.build()?)
    }
}

/// The feature and label columns are in `schema` and hold numbers.
fn check_columns(schema: &Schema, features: &[String], label: &str, table: &str) -> Result<()> {
    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    if features.iter().any(|feature| feature == label) {
        return Err(Error::Invalid(format!(
            "column `{label}` is both the label and a feature: the model would be given the answer; drop it from the features"
        )));
    }
    for (name, what) in features.iter().map(|c| (c.as_str(), "feature")).chain([(label, "label")]) {
        let field = schema.field_with_name(name).map_err(|_| {
            Error::Invalid(format!("{what} column `{name}` is not in {table}; it has {}", columns.join(", ")))
        })?;
        if !is_number(field.data_type()) {
            return Err(Error::Invalid(format!(
                "{what} column `{name}` has type {}; the estimator needs numbers (FLOAT_32, FLOAT_64, INT_32, \
                 INT_64, or a fixed-size list of them)",
                field.data_type()
            )));
        }
    }
    Ok(())
}

/// Whether `table` ends (files, `datagen`, memory) rather than streams.
async fn is_bounded(table: &Table) -> Result<bool> {
    use datafusion::physical_plan::ExecutionPlanProperties;
    let plan = table.dataframe().clone().create_physical_plan().await?;
    Ok(!plan.boundedness().is_unbounded())
}

/// A shuffle seed for a fit that was given none.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new().build_hasher().finish()
}

fn is_number(data_type: &DataType) -> bool {
    match data_type {
        DataType::FixedSizeList(item, _) => is_number(item.data_type()),
        t => matches!(t, DataType::Float32 | DataType::Float64 | DataType::Int32 | DataType::Int64),
    }
}

fn epoch_metrics(notice: &Value) -> Option<EpochMetrics> {
    let epoch = notice["epoch"].as_u64()?;
    let values = notice
        .as_object()?
        .iter()
        .filter(|(k, _)| *k != "event" && *k != "epoch")
        .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
        .collect();
    Some(EpochMetrics { epoch, values })
}
