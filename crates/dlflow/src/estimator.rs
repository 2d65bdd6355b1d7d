//! [`Estimator`]: fit a Keras model on a table without writing a training script.
//!
//! The estimator runs dlflow's built-in node entry (`python/dlflow/estimator.py`) on a cluster
//! of workers with `MultiWorkerMirroredStrategy`: it builds the model from a Python factory or
//! a Keras model file, compiles it with the named loss and optimizer, fits it on the feature and
//! label columns, and saves a SavedModel whose `serving_default` takes one input per feature
//! column and returns the prediction column. The result is a [`Model`]: `transform` runs it
//! in-process, `save` keeps it.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::{DataType, Schema};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::{Job, Model, Python, Table, TfClusterConfig};

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
    /// `loss` and every metric, by Keras's name.
    pub values: std::collections::BTreeMap<String, f64>,
}

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
///     .batch_size(32)
///     .worker_count(2)
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
    properties: Vec<(String, String)>,
    python: Option<Python>,
    quiet: bool,
    on_epoch: Option<Arc<dyn Fn(&EpochMetrics) + Send + Sync>>,
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
            properties: Vec::new(),
            python: None,
            quiet: false,
            on_epoch: None,
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

    /// Rows per step on each worker (default 32).
    pub fn batch_size(mut self, rows: usize) -> Self {
        self.batch_size = rows;
        self
    }

    /// Workers (default 1); with more, `MultiWorkerMirroredStrategy` keeps them in step.
    pub fn worker_count(mut self, workers: usize) -> Self {
        self.workers = workers;
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

    /// Trains on `table` and returns the fitted model (a SavedModel in a folder of its own,
    /// deleted with the model unless [`Model::save`]d).
    ///
    /// Columns, their types and the row count are checked before any process starts.
    pub async fn fit(&self, table: &Table) -> Result<Model> {
        let label = self.check(&table.schema())?;
        let columns: Vec<&str> = self.feature_cols.iter().map(String::as_str).chain([label.as_str()]).collect();
        // Only what the model needs crosses to the nodes.
        let input = Table::new(table.dataframe().clone().select_columns(&columns)?);
        if input.count().await? == 0 {
            return Err(Error::Invalid("the estimator's input table has no rows".into()));
        }
        let folder = tempfile::Builder::new()
            .prefix("dlflow-fitted-")
            .tempdir()
            .map_err(|e| Error::Invalid(format!("cannot make a folder for the fitted model: {e}")))?;
        let model_dir = folder.path().join("model");
        let config = self.cluster_config(&label, &model_dir)?;
        let on_epoch = self.on_epoch.clone();
        let job = Job::train(&input, &config, self.max_epochs).on_notice(move |node, notice| {
            if node.index == 0 && notice["event"] == "epoch" {
                if let (Some(handler), Some(metrics)) = (&on_epoch, epoch_metrics(notice)) {
                    handler(&metrics);
                }
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
        let (KerasModel::Factory { file, .. } | KerasModel::File(file)) = &self.model;
        if !file.is_file() {
            return Err(Error::Invalid(format!("the estimator's model file {} does not exist", file.display())));
        }
        let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        for (name, what) in self.feature_cols.iter().map(|c| (c, "feature")).chain([(&label, "label")]) {
            let field = schema.field_with_name(name).map_err(|_| {
                Error::Invalid(format!("{what} column `{name}` is not in the table; it has {}", columns.join(", ")))
            })?;
            if !is_number(field.data_type()) {
                return Err(Error::Invalid(format!(
                    "{what} column `{name}` has type {}; the estimator needs numbers (FLOAT_32, FLOAT_64, INT_32, \
                     INT_64, or a fixed-size list of them)",
                    field.data_type()
                )));
            }
        }
        Ok(label)
    }

    fn cluster_config(&self, label: &str, model_dir: &std::path::Path) -> Result<TfClusterConfig> {
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
            .property("estimator.model_dir", model_dir.to_string_lossy())
            .property(
                "tensorboard_dir",
                self.tensorboard_dir.clone().unwrap_or_else(|| dlflow_tensorboard::tensorboard_dir_for(model_dir)).to_string_lossy(),
            );
        builder = match &self.model {
            KerasModel::Factory { file, function } => {
                let file = std::path::absolute(file).unwrap_or_else(|_| file.clone());
                if let Some(dir) = file.parent() {
                    builder = builder.python_path(dir);
                }
                builder.property("estimator.model", format!("{}:{function}", file.display()))
            }
            KerasModel::File(path) => {
                builder.property("estimator.model", std::path::absolute(path).unwrap_or_else(|_| path.clone()).to_string_lossy())
            }
        };
        if let Some(params) = &self.loss_params {
            builder = builder.property("estimator.loss_params", params.to_string());
        }
        if let Some(column) = &self.prediction_col {
            builder = builder.property("estimator.prediction_col", column);
        }
        if let Some(python) = &self.python {
            builder = builder.python(python.clone());
        }
        for (key, value) in &self.properties {
            builder = builder.property(key, value);
        }
        Ok(builder.build()?)
    }
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
