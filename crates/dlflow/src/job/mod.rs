//! Jobs on a cluster of Python TensorFlow nodes: [`train`], [`inference`], [`Job`].
//!
//! A job wires the three layers together: the table is planned by DataFusion, its partitions
//! run on the engine's timely workers ([`dlflow_engine`]), and the engine feeds the workers of
//! a [`Cluster`] of Python nodes ([`dlflow_cluster`]), epoch by epoch. The job runs on its own
//! thread; the async API waits for it, and dropping the future cancels it (every node is
//! stopped, nothing is left running).

mod distributed;
mod output;
mod report;
mod sink;
mod source;
mod state;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use dlflow_cluster::{Cluster, ClusterError, ClusterReport, JobIo, NodeEvent, NodeName, TfClusterConfig};
use dlflow_engine::{EngineConfig, EngineReport, PartitionSource, PositionLog, Progress, Replay, RunOptions, WorkerPosition, WorkerSink};
use serde_json::Value;

use crate::Table;
use crate::error::{Error, Result};

pub use output::inference;
pub use report::{JobReport, Restart};
use sink::FeedSink;
use source::TablePartitions;
use state::State;

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
/// Use it instead of [`train`] to watch [`progress`](Self::progress), receive notices and
/// restarts, keep its state for a later [`resume`](Self::resume), or run it as one process
/// of several ([`on_hosts`](Self::on_hosts)).
pub struct Job {
    config: TfClusterConfig,
    input: Option<Table>,
    epochs: u64,
    output_schema: Option<SchemaRef>,
    progress: Arc<Progress>,
    on_notice: Option<NoticeHandler>,
    shuffle: Option<u64>,
    on_restart: Option<RestartHandler>,
    state_dir: Option<PathBuf>,
    resume: bool,
    hosts: Option<distributed::Processes>,
    stop: Arc<AtomicBool>,
}

/// Called when the cluster restarts after a failure: the new attempt and its cause.
pub type RestartHandler = Arc<dyn Fn(u32, &str) + Send + Sync>;

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
            on_restart: None,
            state_dir: None,
            resume: false,
            hosts: None,
            stop: Arc::new(AtomicBool::new(false)),
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

    /// Calls `handler` with the new attempt and the cause each time the cluster restarts.
    pub fn on_restart(mut self, handler: impl Fn(u32, &str) + Send + Sync + 'static) -> Job {
        self.on_restart = Some(Arc::new(handler));
        self
    }

    /// Keeps the job's state (position log, checkpoints) in `dir`, kept when the job fails so
    /// that [`resume`](Self::resume) can continue it, removed when it succeeds. Without it the
    /// state is in a fresh folder under the dlflow home, removed on every end.
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Job {
        self.state_dir = Some(dir.into());
        self
    }

    /// Continues the run whose state is in [`state_dir`](Self::state_dir) (its processes all
    /// died: a power cut, a kill) from its last checkpoints and input positions.
    pub fn resume(mut self, resume: bool) -> Job {
        self.resume = resume;
        self
    }

    /// Runs this job as process `process` of the processes in `hosts` (one `HOST:PORT` each,
    /// timely's hostfile). Every process runs the same job; process 0 coordinates. `job_id`
    /// must be the same on every process: connections from another job are refused.
    pub fn on_hosts(mut self, hosts: dlflow_engine::Hosts, process: usize, job_id: impl Into<String>) -> Job {
        self.hosts = Some(distributed::Processes { hosts, process, job_id: job_id.into(), connect_timeout: None });
        self
    }

    /// How long processes wait for each other at start (default 60 s).
    pub fn connect_timeout(mut self, timeout: std::time::Duration) -> Job {
        if let Some(hosts) = &mut self.hosts {
            hosts.connect_timeout = Some(timeout);
        }
        self
    }

    /// A flag that cancels the job when set (what dropping the [`run`](Self::run) future does);
    /// `run` then stops every node and returns [`Error::Cluster`] with a cancel.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Runs the job to its end.
    pub async fn run(self) -> Result<JobReport> {
        let prepared = self.prepare().await?;
        let cancel = CancelOnDrop(prepared.stop.clone());
        let (done, result) = tokio::sync::oneshot::channel();
        let running = RunningJob::start();
        std::thread::Builder::new()
            .name("dlflow-job".into())
            .spawn(move || {
                let _running = running;
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
            on_restart: self.on_restart.clone(),
            state_dir: self.state_dir.clone(),
            resume: self.resume,
            hosts: self.hosts.clone(),
            stop: Arc::new(AtomicBool::new(false)),
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
            check_for_nodes(&table.schema())?;
        }
        if self.hosts.is_some() && self.output_schema.is_some() {
            return Err(Error::Invalid("node inference with an output table runs in one process; train runs on several".into()));
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
            on_restart: self.on_restart,
            state_dir: self.state_dir,
            resume: self.resume,
            hosts: self.hosts,
            stop: self.stop,
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
    on_restart: Option<RestartHandler>,
    state_dir: Option<PathBuf>,
    resume: bool,
    hosts: Option<distributed::Processes>,
    stop: Arc<AtomicBool>,
    shuffle: Option<u64>,
}

impl Prepared {
    /// Runs attempts until one succeeds, a failure is not a node's, or the restarts are used
    /// up; `on_rows` gets the rows nodes write back.
    ///
    /// Blocking. Every path ends with every node stopped and the engine wound down.
    fn run(self, mut on_rows: impl FnMut(RecordBatch) -> Result<(), String>) -> Result<JobReport> {
        let started = Instant::now();
        let (state, first_attempt) = State::open(self.state_dir.as_deref(), self.resume)?;
        // Rows written back cannot be taken back: a job with an output table does not restart.
        let max_failures = if self.io.output_schema.is_some() { 0 } else { self.config.recovery().max_failures };
        let mut network = match &self.hosts {
            Some(processes) => match distributed::Network::connect(processes, &self.stop) {
                Ok(network) => Some(network),
                Err(error) => {
                    state.finish(false);
                    return Err(error);
                }
            },
            None => None,
        };
        if let Some(follower) = network.as_mut().filter(|n| !n.is_leader()) {
            let followed = follower.follow(&self, &state);
            state.finish(followed.is_ok());
            return followed.map(|engine| JobReport::new(ClusterReport::default(), engine, Vec::new(), started.elapsed()));
        }
        let mut attempt = first_attempt;
        let mut restarts: Vec<Restart> = Vec::new();
        let outcome = loop {
            if let Err(error) = state.begin(attempt) {
                break Err(error);
            }
            let outcome = match network.as_mut() {
                Some(network) => network.run_attempt(&self, &state, attempt),
                None => self.run_attempt(&state, attempt, &mut on_rows),
            };
            match outcome {
                Ok(mut done) => {
                    if let Some(restart) = restarts.last_mut() {
                        restart.replay = done.replay.take();
                    }
                    break Ok(done);
                }
                Err(failure) => {
                    if let Some(restart) = restarts.last_mut() {
                        restart.replay = failure.replay.clone();
                    }
                    let retry = failure.error.is_node_failure()
                        && (restarts.len() as u32) < max_failures
                        && !self.stop.load(Ordering::SeqCst)
                        && network.as_ref().is_none_or(|n| n.may_restart());
                    if !retry {
                        break Err(*failure.error);
                    }
                    attempt += 1;
                    let cause = failure.error.to_string();
                    if let Some(handler) = &self.on_restart {
                        handler(attempt, &cause);
                    }
                    restarts.push(Restart { attempt, cause, replay: None });
                    let backoff = self.config.recovery().backoff * 2u32.saturating_pow(restarts.len() as u32 - 1);
                    if let Some(network) = network.as_mut()
                        && let Err(error) = network.restart(attempt, &failure.error) {
                            break Err(error);
                        }
                    if wait_or_stop(backoff, &self.stop) {
                        break Err(Error::Cluster(ClusterError::Cancelled));
                    }
                }
            }
        };
        if let Some(network) = network.as_mut() {
            network.finish(outcome.as_ref().err());
        }
        state.finish(outcome.is_ok());
        let done = outcome?;
        let mut report = JobReport::new(done.cluster, done.engine, done.notices, started.elapsed());
        report.restarts = restarts;
        Ok(report)
    }

    /// One attempt in one process: start the nodes, wait for their restored positions, replay
    /// the input from there, watch the nodes to the end.
    fn run_attempt(
        &self,
        state: &State,
        attempt: u32,
        on_rows: &mut dyn FnMut(RecordBatch) -> Result<(), String>,
    ) -> Result<AttemptDone, AttemptFailed> {
        let io = JobIo { attempt, checkpoint_dir: Some(state.checkpoints()), temp_in: Some(state.temp()), ..self.io.clone() };
        let attempt_stop = Arc::new(AtomicBool::new(false));
        let cluster = Cluster::start(&self.config, &io, &self.stop).map_err(AttemptFailed::new)?;
        let (plan, planned) = std::sync::mpsc::channel::<Plan>();
        let engine = self.source.clone().map(|source| {
            let feeds = cluster.local_feeds();
            let log = PositionLog::open(&state.log(0), attempt);
            let threads = engine_threads(source.partitions());
            self.start_engine(EngineInput { source, feeds, threads, mesh: None }, planned, log, attempt_stop.clone())
        });
        let mut positions = Positions::new(self.config.worker_count());
        let mut replay = None;
        if !state.has_checkpoints() {
            // Nothing to restore: feed from the start at once, whether or not a worker reads.
            let start = Plan::from_start(self.config.worker_count());
            replay = Some(start.replay.clone());
            let _ = plan.send(start);
        }
        let notices = Mutex::new(Vec::new());
        let output_schema = self.io.output_schema.clone();
        let logs = vec![state.log(0)];
        // The cluster's watch ends on a cancel, and on an engine failure (the nodes would wait
        // for rows that never come).
        let (watch, _relay) = either(self.stop.clone(), attempt_stop.clone());
        let watched = cluster.run(&watch, |event| match event {
            NodeEvent::Batch(node, batch) => {
                let schema = output_schema.as_ref().ok_or("wrote rows, but this job has no output table")?;
                on_rows(conform(node, batch, schema)?)
            }
            NodeEvent::Notice(node, notice) => self.notice(&notices, node, notice),
            NodeEvent::Position(node, position) => {
                if replay.is_some() {
                    return Ok(());
                }
                if let Some(restore) = positions.set(node, position)? {
                    let planned = dlflow_engine::positions::plan_replay(&logs, &restore)
                        .map_err(|e| format!("reading the position log: {e}"))?;
                    replay = Some(planned.clone());
                    let _ = plan.send(Plan { replay: planned, restore });
                }
                Ok(())
            }
        });
        // The nodes are gone, whatever happened: the engine has no one left to feed.
        attempt_stop.store(true, Ordering::SeqCst);
        let fed = engine.map(join_engine);
        attempt_outcome(watched, fed, notices, replay)
    }

    fn notice(&self, notices: &Mutex<Vec<(NodeName, Value)>>, node: NodeName, notice: Value) -> Result<(), String> {
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

    /// The engine's thread: waits for the replay plan, tells every local worker where its
    /// input starts, and feeds it.
    fn start_engine(
        &self,
        input: EngineInput,
        planned: std::sync::mpsc::Receiver<Plan>,
        log: std::io::Result<PositionLog>,
        attempt_stop: Arc<AtomicBool>,
    ) -> std::sync::mpsc::Receiver<Result<EngineReport, dlflow_engine::EngineError>> {
        let EngineInput { source, feeds, threads, mesh } = input;
        let config = EngineConfig {
            threads,
            epochs: self.io.epochs.unwrap_or(1),
            // Training needs equal steps per worker; inference needs every row.
            equal_shards: self.io.output_schema.is_none(),
            // Only a bounded table can be held and reordered.
            shuffle: self.shuffle.filter(|_| self.io.epochs.is_some()),
            ..EngineConfig::default()
        };
        let (progress, job_stop) = (self.progress.clone(), self.stop.clone());
        let (done, result) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let fed = (|| {
                let log = log.map_err(|e| dlflow_engine::EngineError::Runtime(format!("opening the position log: {e}")))?;
                let Some(Plan { replay, restore }) = wait_for_plan(&planned, &attempt_stop) else {
                    return Ok(EngineReport::default());
                };
                log.record_start(&replay)
                    .map_err(|e| dlflow_engine::EngineError::Runtime(format!("writing the position log: {e}")))?;
                for (k, feed) in feeds.iter().enumerate() {
                    if let Some(feed) = feed {
                        let chosen = restore.get(k).copied().flatten().and_then(|p| serde_json::to_value(p).ok());
                        let _ = feed.start_at(replay.start_epoch, chosen);
                    }
                }
                progress.epochs_completed.store(replay.start_epoch, Ordering::SeqCst);
                let mesh = mesh.map(|connect| connect()).transpose()?;
                let sinks: Vec<Option<Arc<dyn WorkerSink>>> =
                    feeds.into_iter().map(|f| f.map(|f| Arc::new(FeedSink(f)) as Arc<dyn WorkerSink>)).collect();
                let options = RunOptions { mesh, replay, log: Some(Arc::new(log)) };
                source.start_over();
                dlflow_engine::run_with(source as Arc<dyn PartitionSource>, sinks, config, progress, attempt_stop.clone(), options)
            })();
            if let Err(error) = &fed {
                if !matches!(error, dlflow_engine::EngineError::Network(_)) {
                    // The nodes wait for rows that will not come: stop them now.
                    job_stop.store(true, Ordering::SeqCst);
                }
                attempt_stop.store(true, Ordering::SeqCst);
            }
            let _ = done.send(fed);
        });
        result
    }
}

/// What this process's engine reads and whom it feeds in one attempt.
pub(crate) struct EngineInput {
    source: Arc<TablePartitions>,
    /// One per worker of the job: `Some` for the workers of this process.
    feeds: Vec<Option<dlflow_cluster::NodeFeed>>,
    threads: usize,
    /// Joins the engines of the other processes (`None`: a job of one process).
    mesh: Option<MeshConnector>,
}

type MeshConnector = Box<dyn FnOnce() -> Result<dlflow_engine::Mesh, dlflow_engine::EngineError> + Send>;

/// A flag that is set once `a` or `b` is (a relay thread, until the guard drops).
pub(crate) fn either(a: Arc<AtomicBool>, b: Arc<AtomicBool>) -> (Arc<AtomicBool>, Relay) {
    let both = Arc::new(AtomicBool::new(false));
    let alive = Arc::new(AtomicBool::new(true));
    let (out, running) = (both.clone(), alive.clone());
    std::thread::spawn(move || {
        while running.load(Ordering::SeqCst) {
            if a.load(Ordering::SeqCst) || b.load(Ordering::SeqCst) {
                out.store(true, Ordering::SeqCst);
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    });
    (both, Relay(alive))
}

/// Ends the relay of [`either`] when dropped.
pub(crate) struct Relay(Arc<AtomicBool>);

impl Drop for Relay {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Waits for the replay plan; `None` when the attempt ends first.
fn wait_for_plan(planned: &std::sync::mpsc::Receiver<Plan>, stop: &AtomicBool) -> Option<Plan> {
    loop {
        match planned.recv_timeout(std::time::Duration::from_millis(20)) {
            Ok(replay) => return Some(replay),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) if !stop.load(Ordering::SeqCst) => {}
            Err(_) => return None,
        }
    }
}

/// How an attempt ended, from the cluster's watch and the engine's result (`None`: this
/// process ran no engine).
fn attempt_outcome(
    watched: std::result::Result<ClusterReport, ClusterError>,
    fed: Option<std::result::Result<EngineReport, dlflow_engine::EngineError>>,
    notices: Mutex<Vec<(NodeName, Value)>>,
    replay: Option<Replay>,
) -> std::result::Result<AttemptDone, AttemptFailed> {
    let notices = notices.into_inner().unwrap_or_else(|e| e.into_inner());
    let failed = |error: Error| AttemptFailed { error: Box::new(error), replay: replay.clone() };
    match (watched, fed) {
        // A source that failed stopped the cluster: its error is the cause.
        (Err(ClusterError::Cancelled), Some(Err(engine_error))) => Err(failed(engine_error.into())),
        (Err(error), _) => Err(failed(error.into())),
        (Ok(_), Some(Err(engine_error))) => Err(failed(engine_error.into())),
        (Ok(cluster), fed) => Ok(AttemptDone {
            cluster,
            engine: fed.and_then(std::result::Result::ok).unwrap_or_default(),
            notices,
            replay: replay.clone(),
        }),
    }
}

/// Bounded: a stuck engine thread must not turn a finished job into a hang.
fn join_engine(
    result: std::sync::mpsc::Receiver<Result<EngineReport, dlflow_engine::EngineError>>,
) -> Result<EngineReport, dlflow_engine::EngineError> {
    result.recv_timeout(ENGINE_STOP_GRACE).unwrap_or_else(|_| {
        Err(dlflow_engine::EngineError::Runtime("the engine did not stop after the nodes ended".into()))
    })
}

/// Sleeps for `duration` unless `stop` is set first; true when it was.
fn wait_or_stop(duration: std::time::Duration, stop: &AtomicBool) -> bool {
    let deadline = Instant::now() + duration;
    while Instant::now() < deadline {
        if stop.load(Ordering::SeqCst) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    stop.load(Ordering::SeqCst)
}

/// The checkpoints each worker has, as they come in.
pub(crate) struct Positions(Vec<Option<Option<Vec<WorkerPosition>>>>);

impl Positions {
    pub fn new(workers: usize) -> Positions {
        Positions(vec![None; workers])
    }

    /// Records one worker's checkpoints; once every worker has sent its own, the checkpoint
    /// each is to restore.
    pub fn set(&mut self, node: NodeName, position: Option<Value>) -> Result<Option<Vec<Option<WorkerPosition>>>, String> {
        let checkpoints = match position {
            None => None,
            Some(value) => Some(serde_json::from_value::<Vec<WorkerPosition>>(value["checkpoints"].clone()).map_err(|e| {
                format!("sent checkpoints {value} that are not {{\"checkpoints\": [{{attempt, epoch, rows, step}}]}}: {e}")
            })?),
        };
        if let Some(slot) = self.0.get_mut(node.index).filter(|_| node.node_type == dlflow_cluster::NodeType::Worker) {
            *slot = Some(checkpoints);
        }
        if !self.0.iter().all(Option::is_some) {
            return Ok(None);
        }
        let available: Vec<Option<Vec<WorkerPosition>>> = self.0.iter().map(|p| p.clone().flatten()).collect();
        Ok(Some(dlflow_engine::positions::choose_checkpoints(&available)))
    }
}

/// Where an attempt starts: the input's replay, and the checkpoint each worker restores.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub replay: Replay,
    pub restore: Vec<Option<WorkerPosition>>,
}

impl Plan {
    /// From the first row, nothing restored.
    pub fn from_start(workers: usize) -> Plan {
        Plan { replay: Replay::default(), restore: vec![None; workers] }
    }
}

/// What a successful attempt brings back.
pub(crate) struct AttemptDone {
    cluster: ClusterReport,
    engine: EngineReport,
    notices: Vec<(NodeName, Value)>,
    replay: Option<Replay>,
}

/// Why an attempt failed, and where it had started from. The error is boxed: attempts return
/// it through several frames and it is large.
pub(crate) struct AttemptFailed {
    error: Box<Error>,
    replay: Option<Replay>,
}

impl AttemptFailed {
    pub fn new(error: impl Into<Error>) -> Self {
        AttemptFailed { error: Box::new(error.into()), replay: None }
    }
}

/// One engine thread per partition, up to the number of cores.
fn engine_threads(partitions: usize) -> usize {
    let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
    partitions.clamp(1, cores)
}

/// Columns the training nodes can turn into tensors (the `to_nodes` rows of
/// [`dlflow_common::types`]); anything else is refused before any node starts.
fn check_for_nodes(schema: &arrow::datatypes::Schema) -> Result<()> {
    for field in schema.fields() {
        if !dlflow_common::types::element_of(field.data_type()).is_some_and(|t| t.to_nodes) {
            return Err(Error::Invalid(format!(
                "column `{}` has type {}, which cannot be fed to TensorFlow (expected {}); cast it in SQL first",
                field.name(),
                field.data_type(),
                dlflow_common::types::TO_NODES_IN_WORDS
            )));
        }
    }
    Ok(())
}

/// Rows from a node of a job without an output table.
fn conform_none(_node: NodeName, _batch: RecordBatch) -> Result<(), String> {
    Err("wrote rows, but this job has no output table".into())
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

/// Job threads of this process that have not ended yet, cancelled ones still cleaning up.
static RUNNING_JOBS: Mutex<usize> = Mutex::new(0);
static JOB_ENDED: Condvar = Condvar::new();

/// Held by a job's thread from before it starts until it ends.
pub(crate) struct RunningJob(());

impl RunningJob {
    pub(crate) fn start() -> RunningJob {
        *RUNNING_JOBS.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        RunningJob(())
    }
}

impl Drop for RunningJob {
    fn drop(&mut self) {
        let mut running = RUNNING_JOBS.lock().unwrap_or_else(|e| e.into_inner());
        *running = running.saturating_sub(1);
        JOB_ENDED.notify_all();
    }
}

/// Waits, at most `timeout`, until every job of this process has ended; whether they all did.
///
/// A cancelled job (its [`Job::run`] future dropped, as at Ctrl-C) ends on its own thread: it
/// stops its nodes and removes its state and temporary folders. A program that exits right
/// after cancelling calls this first, or those folders stay behind.
///
/// ```
/// assert!(dlflow::wait_for_jobs(std::time::Duration::from_millis(10)), "no job runs");
/// ```
pub fn wait_for_jobs(timeout: Duration) -> bool {
    let running = RUNNING_JOBS.lock().unwrap_or_else(|e| e.into_inner());
    let (running, _) = JOB_ENDED.wait_timeout_while(running, timeout, |n| *n > 0).unwrap_or_else(|e| e.into_inner());
    *running == 0
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}
