//! # dlflow-engine: a table's partitions on timely-dataflow, dealt to ML workers by epoch
//!
//! [`run`] executes a bounded (or unbounded) table on timely workers and feeds its rows to
//! ML workers ([`WorkerSink`]s), epoch after epoch:
//!
//! - **partitions on workers**: engine worker `i` reads partitions `i, i + n, ...` of the
//!   [`PartitionSource`]; a bounded table is read again for every epoch;
//! - **epoch = timestamp**: rows of epoch `e` carry timestamp `e`, and "epoch `e` is complete on
//!   every worker" is the frontier passing `e`; only then does a node get its end-of-epoch;
//! - **equal shards**: a [`Dealer`] cuts batches so that every ML worker gets the same rows
//!   give or take one; at the end of an epoch the feed trims the extra rows (none when the row
//!   count divides evenly, at most `workers - 1` otherwise), so a synchronous strategy never
//!   waits for a step that one worker cannot take;
//! - **shuffling** (`EngineConfig::shuffle`): a bounded table is read once into memory and
//!   dealt in a new order every epoch, the same for the same seed and epoch ([`ShuffledRows`],
//!   [`epoch_order`]);
//! - **flow control**: sources stop reading while any node has `max_backlog` batches queued,
//!   and no source starts epoch `e + 1` before epoch `e` is complete everywhere, so a fast
//!   source never fills memory ahead of a slow trainer.
//!
//! ```
//! use std::sync::{Arc, Mutex, atomic::AtomicBool};
//! # use arrow::array::{Int64Array, RecordBatch};
//! use dlflow_engine::{EngineConfig, Progress, run};
//! # use dlflow_engine::{BatchIter, PartitionSource, SinkClosed, WorkerSink};
//! # struct Rows;
//! # impl PartitionSource for Rows {
//! #     fn partitions(&self) -> usize { 2 }
//! #     fn open(&self, p: usize, _epoch: u64) -> Result<BatchIter, String> {
//! #         let n = if p == 0 { 7 } else { 4 };
//! #         let batch = RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from_iter_values(0..n)) as _)]).unwrap();
//! #         Ok(Box::new(std::iter::once(Ok(batch))))
//! #     }
//! # }
//! # #[derive(Default)] struct Count(Mutex<usize>);
//! # impl WorkerSink for Count {
//! #     fn send(&self, b: RecordBatch) -> Result<(), SinkClosed> { *self.0.lock().unwrap() += b.num_rows(); Ok(()) }
//! # }
//! let workers: Vec<Arc<Count>> = vec![Arc::default(), Arc::default()];
//! let sinks = workers.iter().map(|w| w.clone() as Arc<dyn WorkerSink>).collect();
//! let config = EngineConfig { threads: 2, epochs: 3, ..EngineConfig::default() };
//! let report = run(Arc::new(Rows), sinks, config, Arc::new(Progress::default()), Arc::new(AtomicBool::new(false)))?;
//! // 11 rows per epoch: 5 to each worker, 1 dropped to keep the shares equal.
//! assert_eq!(report.epochs.len(), 3);
//! assert_eq!((report.epochs[0].rows.clone(), report.epochs[0].dropped()), (vec![5, 5], 1));
//! assert_eq!(*workers[0].0.lock().unwrap(), 15);
//! # Ok::<(), dlflow_engine::EngineError>(())
//! ```

mod batch;
mod dataflow;
mod dealer;
pub mod network;
pub mod positions;
mod shuffle;

use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use arrow::array::RecordBatch;

pub use batch::ArrowBatch;
pub use dataflow::{run, run_with};
pub use dealer::Dealer;
pub use network::{Endpoint, Hosts};
pub use positions::{PositionLog, Replay, WorkerPosition};
pub use shuffle::{ShuffledRows, epoch_order};

/// The batches of one partition, pulled one at a time.
pub type BatchIter = Box<dyn Iterator<Item = Result<RecordBatch, String>> + Send>;

/// A table the engine can read partition by partition, as many times as there are epochs.
pub trait PartitionSource: Send + Sync + 'static {
    /// How many partitions the table has.
    fn partitions(&self) -> usize;
    /// Starts reading partition `partition` from its beginning, for epoch `epoch`.
    ///
    /// All partitions of one epoch are opened before any of the next (an epoch starts when
    /// the previous one is complete), so a source may keep one plan instance per epoch.
    fn open(&self, partition: usize, epoch: u64) -> Result<BatchIter, String>;

    /// Starts reading partition `partition` for epoch `epoch` at row `offset` (a replay).
    ///
    /// The default re-reads the partition and skips `offset` rows, right for files and
    /// generated tables; a source that can seek (a stream at an offset) overrides it.
    fn open_at(&self, partition: usize, epoch: u64, offset: u64) -> Result<BatchIter, String> {
        Ok(skip_rows(self.open(partition, epoch)?, offset))
    }
}

/// The batches of `batches` without their first `rows` rows.
pub fn skip_rows(batches: BatchIter, rows: u64) -> BatchIter {
    if rows == 0 {
        return batches;
    }
    let mut left = rows;
    Box::new(batches.filter_map(move |batch| match batch {
        Ok(batch) if left > 0 => {
            let n = batch.num_rows() as u64;
            let skip = left.min(n);
            left -= skip;
            (skip < n).then(|| Ok(batch.slice(skip as usize, (n - skip) as usize)))
        }
        other => Some(other),
    }))
}

/// Where each ML worker is fed from when a job runs as several processes.
///
/// ML worker `k` runs on process `k % processes` (its node is started there and fed from
/// there), and its rows are handed to it by engine thread `(k / processes) % threads` of that
/// process. With one process this is engine thread `k % threads`.
///
/// ```
/// use dlflow_engine::Placement;
/// let placement = Placement { processes: 2, threads: 2 };
/// assert_eq!((0..4).map(|k| placement.process(k)).collect::<Vec<_>>(), [0, 1, 0, 1]);
/// assert_eq!((0..4).map(|k| placement.engine_worker(k)).collect::<Vec<_>>(), [0, 2, 1, 3]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Processes in the job.
    pub processes: usize,
    /// Engine threads per process.
    pub threads: usize,
}

impl Placement {
    /// The process that hosts and feeds ML worker `k`.
    pub fn process(&self, k: usize) -> usize {
        k % self.processes.max(1)
    }

    /// The engine worker (timely's global index) that feeds ML worker `k`.
    pub fn engine_worker(&self, k: usize) -> usize {
        let processes = self.processes.max(1);
        let threads = self.threads.max(1);
        (k % processes) * threads + (k / processes) % threads
    }

    /// The first engine worker of the process that engine worker `index` belongs to.
    pub fn first_engine_worker_here(&self, index: usize) -> usize {
        let threads = self.threads.max(1);
        index / threads * threads
    }
}

/// This process's connections to the other processes of the job, from [`Endpoint::mesh`].
#[derive(Debug)]
pub struct Mesh {
    /// This process's index.
    pub process: usize,
    /// One socket per process, `None` at this process's own place.
    pub sockets: Vec<Option<TcpStream>>,
}

/// What [`run_with`] adds to [`run`]: the other processes, and where the run starts.
#[derive(Debug, Default)]
pub struct RunOptions {
    /// The other processes of the job; `None` for a job of one process.
    pub mesh: Option<Mesh>,
    /// Where to start: the epoch, and rows already trained on (a restarted job).
    pub replay: Replay,
    /// Where to log the positions of fed rows; `None`: not logged (no replay possible).
    pub log: Option<Arc<PositionLog>>,
}

/// An ML worker's input, as the engine sees it.
pub trait WorkerSink: Send + Sync + 'static {
    /// Queues rows for the worker; must not block.
    fn send(&self, batch: RecordBatch) -> Result<(), SinkClosed>;
    /// The epoch has no more rows for this worker: `rows` sent, `dropped` trimmed.
    /// By default nothing happens.
    fn end_epoch(&self, epoch: u64, rows: u64, dropped: u64) -> Result<(), SinkClosed> {
        let _ = (epoch, rows, dropped);
        Ok(())
    }
    /// No more epochs. By default nothing happens.
    fn end_input(&self) -> Result<(), SinkClosed> {
        Ok(())
    }
    /// Batches queued and not yet taken by the worker. By default 0: a sink that handles
    /// each batch in `send` queues nothing.
    fn backlog(&self) -> usize {
        0
    }
    /// The worker takes no more rows (finished or gone): its share is dropped, not waited for.
    /// By default never.
    fn is_closed(&self) -> bool {
        false
    }
}

/// The worker behind a sink takes no more rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkClosed;

/// How the engine runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// Timely worker threads.
    pub threads: usize,
    /// Passes over the input (1 for an unbounded input: one pass until it ends).
    pub epochs: u64,
    /// Trim each epoch so that every ML worker gets the same number of rows (training);
    /// off for inference, where every row must be processed.
    pub equal_shards: bool,
    /// Stop reading while any worker has this many batches queued.
    pub max_backlog: usize,
    /// `Some(seed)`: read a bounded table once into memory and deal its rows in a new order
    /// every epoch, [`epoch_order`]`(seed, epoch, rows)` ([`ShuffledRows`]); `None`: stream
    /// the table again every epoch, in its own order, in bounded memory.
    pub shuffle: Option<u64>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig { threads: 1, epochs: 1, equal_shards: true, max_backlog: 8, shuffle: None }
    }
}

/// What the engine did in one epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpochReport {
    /// The epoch.
    pub epoch: u64,
    /// Rows sent to each ML worker.
    pub rows: Vec<u64>,
    /// Rows trimmed from each ML worker's share to keep the shares equal (one at most).
    pub dropped: Vec<u64>,
}

impl EpochReport {
    /// Rows trimmed in all.
    pub fn dropped(&self) -> u64 {
        self.dropped.iter().sum()
    }
}

/// What the engine did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineReport {
    /// One entry per completed epoch, in order.
    pub epochs: Vec<EpochReport>,
}

/// Live counters for progress bars.
#[derive(Debug, Default)]
pub struct Progress {
    /// Rows read from the table, all epochs together.
    pub rows_read: AtomicU64,
    /// Epochs complete on every worker.
    pub epochs_completed: AtomicU64,
}

/// Why the engine stopped.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Reading the table failed.
    #[error("reading the input table: {0}")]
    Source(String),
    /// Timely could not start or a worker thread panicked.
    #[error("engine: {0}")]
    Runtime(String),
    /// A run was asked to feed no ML workers.
    #[error("the engine was given no ML worker to feed (no sinks); a run needs at least one")]
    NoWorkers,
    /// The processes of a job could not connect, or lost each other.
    #[error("{0}")]
    Network(String),
}
