//! Jobs on a cluster of Python TensorFlow nodes: [`train`], [`inference`], [`Job`].
//!
//! A job wires the three layers together: the table is planned by DataFusion, its partitions
//! run on the engine's timely workers ([`dlflow_engine`]), and the engine feeds the workers of
//! a [`Cluster`] of Python nodes ([`dlflow_cluster`]), epoch by epoch. The job runs on its own
//! thread; the async API waits for it, and dropping the future cancels it (every node is
//! stopped, nothing is left running).

mod output;
mod report;
mod sink;
mod source;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use dlflow_cluster::{Cluster, ClusterError, JobIo, NodeEvent, NodeName, TfClusterConfig};
use dlflow_engine::{EngineConfig, PartitionSource, Progress, WorkerSink};
use serde_json::Value;

use crate::Table;
use crate::error::{Error, Result};

pub use output::inference;
pub use report::JobReport;
use sink::FeedSink;
use source::TablePartitions;

/// How long the engine may take to wind down once the nodes have ended.
const ENGINE_STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Called with every notice a node sends (`TFContext.report(...)`, per-epoch metrics).
pub type NoticeHandler = Arc<dyn Fn(NodeName, &Value) + Send + Sync>;

/// Trains on `table`: `epochs` passes over a bounded table (one pass over an unbounded one),
/// each worker fed its equal share as a `tf.data.Dataset`. DL on Flink's `TFUtils.train`.
///
/// ```no_run
/// # async fn demo(points: dlflow::Table) -> dlflow::Result<()> {
/// use dlflow::TfClusterConfig;
///
/// let config = TfClusterConfig::builder()
///     .worker_count(2)
///     .node_entry("examples/quickstart/train.py", "train_entry")
///     .property("model_dir", "/tmp/linear")
///     .build()?;
/// let report = dlflow::train(&points, &config, 4).await?;
/// println!("{report}");
/// # Ok(()) }
/// ```
pub async fn train(table: &Table, config: &TfClusterConfig, epochs: u64) -> Result<JobReport> {
    Job::train(table, config, epochs).run().await
}

/// Runs the cluster with no input table: the entry reads its own data.
pub async fn train_without_input(config: &TfClusterConfig) -> Result<JobReport> {
    Job::without_input(config).run().await
}

/// A job, set up and not yet started: [`run`](Self::run) starts it.
///
/// Use it instead of [`train`] to watch [`progress`](Self::progress) or receive notices.
pub struct Job {
    config: TfClusterConfig,
    input: Option<Table>,
    epochs: u64,
    output_schema: Option<SchemaRef>,
    progress: Arc<Progress>,
    on_notice: Option<NoticeHandler>,
    shuffle: Option<u64>,
}

impl Job {
    /// A training job over `table` (see [`train`]).
    pub fn train(table: &Table, config: &TfClusterConfig, epochs: u64) -> Job {
        Job { input: Some(table.clone()), epochs, ..Job::without_input(config) }
    }

    /// A job whose nodes read their own data.
    pub fn without_input(config: &TfClusterConfig) -> Job {
        Job {
            config: config.clone(),
            input: None,
            epochs: 1,
            output_schema: None,
            progress: Arc::new(Progress::default()),
            on_notice: None,
            shuffle: None,
        }
    }

    /// Live counters: rows read, epochs complete everywhere.
    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    /// Deals a bounded table's rows in a new order every epoch, the same for the same `seed`
    /// and epoch (`None`, the default: every epoch in the table's own order).
    ///
    /// The table is read once into memory (its Arrow batches; see
    /// [`ShuffledRows`](dlflow_engine::ShuffledRows)); an unbounded table is never shuffled.
    pub fn shuffle(mut self, seed: Option<u64>) -> Job {
        self.shuffle = seed;
        self
    }

    /// Calls `handler` with every notice a node sends.
    pub fn on_notice(mut self, handler: impl Fn(NodeName, &Value) + Send + Sync + 'static) -> Job {
        self.on_notice = Some(Arc::new(handler));
        self
    }

    /// Runs the job to its end.
    pub async fn run(self) -> Result<JobReport> {
        let prepared = self.prepare().await?;
        let cancel = CancelOnDrop(prepared.stop.clone());
        let (done, result) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("dlflow-job".into())
            .spawn(move || {
                let _ = done.send(prepared.run(|_| Ok(())));
            })
            .map_err(|e| Error::Invalid(format!("could not start the job thread: {e}")))?;
        let report = result.await.map_err(|_| Error::Invalid("the job thread ended without a result".into()))?;
        drop(cancel);
        report
    }

    /// A copy of this job, with its own progress counters, to run again.
    fn fresh(&self) -> Job {
        Job {
            config: self.config.clone(),
            input: self.input.clone(),
            epochs: self.epochs,
            output_schema: self.output_schema.clone(),
            progress: Arc::new(Progress::default()),
            on_notice: self.on_notice.clone(),
            shuffle: self.shuffle,
        }
    }

    /// Everything that can be checked before a process starts: epochs, declared types,
    /// column types the nodes can take.
    fn check(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(Error::Invalid("epochs must be at least 1".into()));
        }
        if let Some(declared) = self.config.property("output_types") {
            let schema = self.output_schema.as_ref().ok_or_else(|| {
                Error::Invalid("the output_types property is set, but this job has no output schema".into())
            })?;
            dlflow_tf::dtype::check_declared_types("output_types", declared, schema)?;
        }
        if let Some(table) = &self.input {
            if let Some(declared) = self.config.property("input_types") {
                table.check_input_types(declared)?;
            }
            check_feedable(&table.schema())?;
        }
        Ok(())
    }

    /// Checks the job and plans its input.
    async fn prepare(self) -> Result<Prepared> {
        self.check()?;
        let mut io = JobIo { output_schema: self.output_schema.clone(), ..JobIo::default() };
        let mut source = None;
        if let Some(table) = &self.input {
            let partitions = TablePartitions::plan(table).await?;
            io.epochs = partitions.is_bounded().then_some(self.epochs);
            tracing::info!(
                partitions = partitions.partitions(),
                bounded = partitions.is_bounded(),
                epochs = ?io.epochs,
                columns = %table.schema().fields().iter().map(|f| format!("{}: {}", f.name(), f.data_type())).collect::<Vec<_>>().join(", "),
                "planned the input"
            );
            io.input_schema = Some(table.schema());
            source = Some(Arc::new(partitions));
        }
        Ok(Prepared {
            config: self.config,
            io,
            source,
            progress: self.progress,
            on_notice: self.on_notice,
            stop: Arc::new(AtomicBool::new(false)),
            shuffle: self.shuffle,
        })
    }
}

/// A job ready to start on its thread.
struct Prepared {
    config: TfClusterConfig,
    io: JobIo,
    source: Option<Arc<TablePartitions>>,
    progress: Arc<Progress>,
    on_notice: Option<NoticeHandler>,
    stop: Arc<AtomicBool>,
    shuffle: Option<u64>,
}

impl Prepared {
    /// Starts the nodes, feeds them, watches them; `on_rows` gets the rows nodes write back.
    ///
    /// Blocking. Every path ends with every node stopped and the engine wound down.
    fn run(self, mut on_rows: impl FnMut(RecordBatch) -> Result<(), String>) -> Result<JobReport> {
        let started = Instant::now();
        let cluster = Cluster::start(&self.config, &self.io, &self.stop)?;
        let engine = self.source.clone().map(|source| {
            let sinks: Vec<Arc<dyn WorkerSink>> =
                cluster.feeds().into_iter().map(|feed| Arc::new(FeedSink(feed)) as Arc<dyn WorkerSink>).collect();
            let config = EngineConfig {
                threads: engine_threads(source.partitions()),
                epochs: self.io.epochs.unwrap_or(1),
                // Training needs equal steps per worker; inference needs every row.
                equal_shards: self.io.output_schema.is_none(),
                // Only a bounded table can be held and reordered.
                shuffle: self.shuffle.filter(|_| self.io.epochs.is_some()),
                ..EngineConfig::default()
            };
            let (progress, stop) = (self.progress.clone(), self.stop.clone());
            let (done, result) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let fed = dlflow_engine::run(source as Arc<dyn PartitionSource>, sinks, config, progress, stop.clone());
                if fed.is_err() {
                    // The nodes wait for rows that will not come: stop them now.
                    stop.store(true, Ordering::SeqCst);
                }
                let _ = done.send(fed);
            });
            result
        });
        let notices = Mutex::new(Vec::new());
        let output_schema = self.io.output_schema.clone();
        let watched = cluster.run(&self.stop, |event| match event {
            NodeEvent::Batch(node, batch) => {
                let schema = output_schema.as_ref().ok_or("wrote rows, but this job has no output table")?;
                on_rows(conform(node, batch, schema)?)
            }
            NodeEvent::Notice(node, notice) => {
                if notice["event"] == "epoch_end" {
                    tracing::info!(node = %node, epoch = notice["epoch"].as_u64().map(|e| e + 1), rows = notice["rows"].as_u64(), "node read an epoch");
                }
                if let Some(handler) = &self.on_notice {
                    handler(node, &notice);
                }
                // Per-batch progress is for live handlers, not for the report.
                if notice["event"] != "rows" {
                    notices.lock().unwrap_or_else(|e| e.into_inner()).push((node, notice));
                }
                Ok(())
            }
        });
        // The nodes are gone, whatever happened: the engine has no one left to feed.
        self.stop.store(true, Ordering::SeqCst);
        // Bounded: a stuck engine thread must not turn a finished job into a hang.
        let fed = engine.map(|result| {
            result.recv_timeout(ENGINE_STOP_GRACE).unwrap_or_else(|_| {
                Err(dlflow_engine::EngineError::Runtime("the engine did not stop after the nodes ended".into()))
            })
        });
        let (cluster_report, engine_report) = match (watched, fed) {
            // A source that failed stopped the cluster: its error is the cause.
            (Err(ClusterError::Cancelled), Some(Err(engine_error))) => return Err(engine_error.into()),
            (Err(error), _) => return Err(error.into()),
            (Ok(_), Some(Err(engine_error))) => return Err(engine_error.into()),
            (Ok(cluster_report), fed) => (cluster_report, fed.and_then(Result::ok).unwrap_or_default()),
        };
        Ok(JobReport::new(
            cluster_report,
            engine_report,
            notices.into_inner().unwrap_or_else(|e| e.into_inner()),
            started.elapsed(),
        ))
    }
}

/// One engine thread per partition, up to the number of cores.
fn engine_threads(partitions: usize) -> usize {
    let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
    partitions.clamp(1, cores)
}

/// Columns the Python side can turn into tensors; anything else is refused before any node starts.
fn check_feedable(schema: &arrow::datatypes::Schema) -> Result<()> {
    use arrow::datatypes::DataType as T;
    let numeric = |t: &T| matches!(t, T::Float32 | T::Float64 | T::Int32 | T::Int64 | T::Boolean);
    for field in schema.fields() {
        let ok = match field.data_type() {
            T::Utf8 | T::LargeUtf8 | T::Utf8View | T::Binary | T::LargeBinary => true,
            T::FixedSizeList(item, _) => numeric(item.data_type()),
            t => numeric(t),
        };
        if !ok {
            return Err(Error::Invalid(format!(
                "column `{}` has type {}, which cannot be fed to TensorFlow (expected FLOAT_32, FLOAT_64, \
                 INT_32, INT_64, STRING, BOOL, or a fixed-size list of numbers); cast it in SQL first",
                field.name(),
                field.data_type()
            )));
        }
    }
    Ok(())
}

/// Checks a node's rows against the declared output schema and gives them that schema.
fn conform(node: NodeName, batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, String> {
    let got = batch.schema();
    if got.fields().len() != schema.fields().len() {
        return Err(format!(
            "wrote rows with {} column(s), the output schema has {}",
            got.fields().len(),
            schema.fields().len()
        ));
    }
    for (wrote, declared) in got.fields().iter().zip(schema.fields()) {
        if wrote.name() != declared.name() || wrote.data_type() != declared.data_type() {
            return Err(format!(
                "wrote column `{}` as {}, the output schema declares `{}` as {}",
                wrote.name(),
                wrote.data_type(),
                declared.name(),
                declared.data_type()
            ));
        }
    }
    RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
        .map_err(|e| format!("{node} wrote rows that do not fit the output schema: {e}"))
}

/// Sets the job's stop flag when the waiting future is dropped (cancellation).
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}
