//! `dlflow fit`: fit a Keras model on a table with the Estimator (no training script), and
//! save it as a SavedModel that `dlflow predict` runs.
//!
//! While it runs, a bar per epoch shows the rows the workers have taken and the rows/s; each
//! finished epoch prints a line with its rows, time, rate, loss and metrics (and the
//! validation values).

use std::path::PathBuf;

use clap::Args;
use dlflow::{Environment, Estimator, Table};

use crate::progress::EpochProgress;

/// Arguments of `dlflow fit`.
#[derive(Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["input", "sql"])))]
#[command(group(clap::ArgGroup::new("keras").required(true).args(["model_factory", "model_file"])))]
pub struct FitArgs {
    /// Input file: .csv, .parquet, .json/.jsonl, .arrow.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Input query; `;`-separated statements, the last one a query.
    #[arg(long)]
    sql: Option<String>,
    /// A file the query reads, registered as a table (repeatable): NAME=FILE, or FILE (named
    /// after it: `points` for points.csv).
    #[arg(long = "table", value_parser = super::parse_named_table)]
    tables: Vec<(Option<String>, PathBuf)>,
    /// The model: FILE.py:FUNCTION returning a tf.keras.Model.
    #[arg(long, value_parser = super::train::parse_entry)]
    model_factory: Option<(PathBuf, String)>,
    /// The model: a saved Keras model (.keras, .h5, .json).
    #[arg(long)]
    model_file: Option<PathBuf>,
    /// Feature columns, comma separated.
    #[arg(long, value_delimiter = ',', required = true)]
    features: Vec<String>,
    /// The label column.
    #[arg(long)]
    label: String,
    /// The column predictions get (default: the label's name).
    #[arg(long)]
    prediction: Option<String>,
    /// Loss by Keras name, or FILE.py:FUNCTION.
    #[arg(long, default_value = "mse")]
    loss: String,
    /// The loss's keyword arguments as JSON, for example '{"from_logits": true}'.
    #[arg(long)]
    loss_params: Option<String>,
    /// Optimizer by Keras name, or FILE.py:FUNCTION.
    #[arg(long, default_value = "adam")]
    optimizer: String,
    /// The optimizer's learning rate.
    #[arg(long)]
    learning_rate: Option<f64>,
    /// Metrics by Keras name, comma separated.
    #[arg(long, value_delimiter = ',')]
    metrics: Vec<String>,
    /// Passes over the table.
    #[arg(long, default_value_t = 1, value_parser = super::parse_positive)]
    epochs: usize,
    /// Rows per step, all workers together (each of N workers takes a 1/N part).
    #[arg(long, default_value_t = 32, value_parser = super::parse_positive)]
    batch_size: usize,
    /// Number of workers.
    #[arg(long, default_value_t = 1, value_parser = super::parse_positive)]
    workers: usize,
    /// Keep the table's order in every epoch (streams it in bounded memory) instead of
    /// dealing the rows in a new order every epoch (which holds the table in memory).
    #[arg(long)]
    no_shuffle: bool,
    /// Seed of the shuffled order and of TensorFlow's initial weights: the same run twice.
    #[arg(long)]
    seed: Option<u64>,
    /// Hold out the last fraction of the rows (for example 0.1) and report val_loss per epoch.
    #[arg(long, conflicts_with = "validation")]
    validation_split: Option<f64>,
    /// A file of validation rows (feature and label columns) scored after every epoch.
    #[arg(long)]
    validation: Option<PathBuf>,
    /// Restarts after a node fails before the job ends (default 3; 0: the first failure ends
    /// it). A mistake in the job (a column or a model that does not fit) ends it at once.
    #[arg(long)]
    max_failures: Option<u32>,
    /// Where to save the fitted SavedModel (must not exist); its TensorBoard events go to
    /// OUTPUT.tensorboard and its loss curve to OUTPUT.loss.svg.
    #[arg(long)]
    output: PathBuf,
}

impl FitArgs {
    /// Run the command.
    pub async fn run(self) -> dlflow::Result<()> {
        let env = Environment::new();
        super::register_tables(&env, &self.tables).await?;
        let table: Table = match (&self.input, &self.sql) {
            (Some(path), _) => env.read_file(path).await?,
            (None, Some(sql)) => env.sql(sql).await?,
            (None, None) => unreachable!("clap requires --input or --sql"),
        };
        let mut estimator = match (&self.model_factory, &self.model_file) {
            (Some((file, function)), _) => Estimator::factory(file, function),
            (None, Some(file)) => Estimator::model_file(file),
            (None, None) => unreachable!("clap requires --model-factory or --model-file"),
        };
        estimator = estimator
            .feature_cols(self.features.clone())
            .label_col(&self.label)
            .loss(&self.loss)
            .optimizer(&self.optimizer)
            .metrics(self.metrics.clone())
            .max_epochs(self.epochs as u64)
            .batch_size(self.batch_size)
            .worker_count(self.workers)
            .shuffle(!self.no_shuffle);
        if let Some(seed) = self.seed {
            estimator = estimator.seed(seed);
        }
        if let Some(fraction) = self.validation_split {
            estimator = estimator.validation_split(fraction);
        }
        if let Some(path) = &self.validation {
            estimator = estimator.validation_data(&env.read_file(path).await?);
        }
        if let Some(rate) = self.learning_rate {
            estimator = estimator.learning_rate(rate);
        }
        if let Some(params) = &self.loss_params {
            let params = serde_json::from_str(params)
                .map_err(|e| dlflow::Error::Invalid(format!("--loss-params `{params}` is not JSON: {e}")))?;
            estimator = estimator.loss_params(params);
        }
        if let Some(column) = &self.prediction {
            estimator = estimator.prediction_col(column);
        }
        if let Some(restarts) = self.max_failures {
            estimator = estimator.max_failures(restarts);
        }
        if self.output.exists() {
            return Err(dlflow::Error::Invalid(format!("--output {} already exists", self.output.display())));
        }
        let progress = EpochProgress::start(Some(self.epochs as u64), self.workers).with_metrics();
        let fitted = estimator.on_output(progress.printer()).on_notice(progress.notice_handler()).fit(&table).await;
        progress.finish();
        let model = fitted?;
        model.save(&self.output)?;
        eprintln!("saved the fitted model to {}", self.output.display());
        // `save` put the fit's TensorBoard events beside the model.
        use dlflow::layers::dlflow_tensorboard::{loss_svg_for, tensorboard_dir_for};
        super::show_loss_curve(&tensorboard_dir_for(&self.output), &loss_svg_for(&self.output));
        Ok(())
    }
}
