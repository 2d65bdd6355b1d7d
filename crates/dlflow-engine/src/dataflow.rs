//! The timely dataflow: `TablePartitions` (source) -> exchange by ML worker -> `FeedWorkers`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::RecordBatch;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::operator::{Operator, source};
use timely::dataflow::operators::vec::{Broadcast, Map};
use timely::dataflow::operators::Probe;
use timely::dataflow::ProbeHandle;

use crate::positions::{self, PositionLog, Replay};
use crate::{
    ArrowBatch, BatchIter, Dealer, EngineConfig, EngineError, EngineReport, EpochReport, PartitionSource, Placement,
    Progress, RunOptions, ShuffledRows, WorkerSink,
};

/// How long a source waits before looking again when the nodes are busy.
const BACKOFF: Duration = Duration::from_millis(1);

type Dealt = (usize, ArrowBatch);

/// State shared by all engine workers of one run.
struct Shared {
    /// Cloned into every engine worker: the clones share one count of the rows dealt.
    dealer: Dealer,
    source: Arc<dyn PartitionSource>,
    /// One per ML worker of the job; `None` for the workers other processes feed.
    sinks: Vec<Option<Arc<dyn WorkerSink>>>,
    config: EngineConfig,
    placement: Placement,
    replay: Replay,
    log: Option<Arc<PositionLog>>,
    progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
    error: Mutex<Option<String>>,
    epochs: Mutex<BTreeMap<u64, EpochReport>>,
}

impl Shared {
    fn fail(&self, error: String) {
        self.error.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(error);
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Whether sources should wait: some live node of this process has a full queue.
    fn busy(&self) -> bool {
        self.sinks.iter().flatten().any(|s| !s.is_closed() && s.backlog() >= self.config.max_backlog)
    }

    /// Whether no worker takes rows any more (never, while other processes feed some).
    fn all_closed(&self) -> bool {
        self.sinks.iter().all(|s| s.as_ref().is_some_and(|s| s.is_closed()))
    }

    fn sink(&self, k: usize) -> Option<&Arc<dyn WorkerSink>> {
        self.sinks[k].as_ref()
    }
}

/// Runs the table through `config.threads` timely workers into `sinks`, epoch by epoch.
///
/// Blocks until every epoch is complete, the sinks are all closed, or `stop` is set; every
/// sink gets its end-of-epoch markers and its end-of-input on every path.
pub fn run(
    source: Arc<dyn PartitionSource>,
    sinks: Vec<Arc<dyn WorkerSink>>,
    config: EngineConfig,
    progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
) -> Result<EngineReport, EngineError> {
    run_with(source, sinks.into_iter().map(Some).collect(), config, progress, stop, RunOptions::default())
}

/// [`run`] as one process of several, or from a replay position: `sinks` has one entry per ML
/// worker of the job, `None` for the workers that other processes feed ([`Placement`]).
///
/// With [`RunOptions::mesh`], every process of the job calls this with the same source, config
/// and replay; timely's exchange carries the rows between them as Arrow IPC.
pub fn run_with(
    source: Arc<dyn PartitionSource>,
    sinks: Vec<Option<Arc<dyn WorkerSink>>>,
    config: EngineConfig,
    progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
    options: RunOptions,
) -> Result<EngineReport, EngineError> {
    if sinks.is_empty() {
        // The dealer would deal to worker 0 of none; a run that reads the table for nobody
        // is a mistake of the caller, said so rather than reported as a finished job.
        return Err(EngineError::NoWorkers);
    }
    let config = EngineConfig { threads: config.threads.max(1), epochs: config.epochs.max(1), ..config };
    // A shuffled source has cut the shares itself: one partition per ML worker.
    let (source, dealer) = match config.shuffle {
        Some(seed) => (
            Arc::new(ShuffledRows::new(source, sinks.len(), seed)) as Arc<dyn PartitionSource>,
            Dealer::partition_per_worker(sinks.len()),
        ),
        None => (source, Dealer::even(sinks.len())),
    };
    let (process, processes) = options.mesh.as_ref().map_or((0, 1), |m| (m.process, m.sockets.len()));
    let placement = Placement { processes, threads: config.threads };
    let shared = Arc::new(Shared {
        dealer,
        source,
        sinks,
        config,
        placement,
        replay: options.replay,
        log: options.log,
        progress,
        stop,
        error: Mutex::new(None),
        epochs: Mutex::new(BTreeMap::new()),
    });
    let logic = {
        let shared = shared.clone();
        move |worker: &mut timely::worker::Worker| build(worker, &shared)
    };
    // A process of the job going away panics timely's network threads and, through them,
    // the workers: that is an error of this run, not of the caller's thread.
    let joined = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<Vec<Result<(), String>>, EngineError> {
        let guards = match options.mesh {
            None => timely::execute(timely::Config::process(config.threads), logic).map_err(EngineError::Runtime)?,
            Some(mesh) => {
                let (builders, network) = crate::network::timely_allocators(mesh.sockets, process, config.threads)?;
                timely::execute::execute_from(builders, network, timely::WorkerConfig::default(), logic)
                    .map_err(EngineError::Runtime)?
            }
        };
        Ok(guards.join())
    }));
    let results = match joined {
        Ok(results) => results?,
        Err(panic) => {
            return Err(EngineError::Network(format!("the connection to another process broke ({})", panic_text(&*panic))));
        }
    };
    for result in results {
        result.map_err(|e| {
            if processes > 1 {
                EngineError::Network(format!("the connection to another process broke (an engine worker stopped: {e})"))
            } else {
                EngineError::Runtime(format!("an engine worker stopped: {e}"))
            }
        })?;
    }
    if let Some(error) = shared.error.lock().unwrap_or_else(|e| e.into_inner()).take() {
        return Err(EngineError::Source(error));
    }
    let epochs = std::mem::take(&mut *shared.epochs.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(EngineReport { epochs: epochs.into_values().collect() })
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

fn build(worker: &mut timely::worker::Worker, shared: &Arc<Shared>) {
    let index = worker.index();
    let peers = worker.peers();
    let probe = ProbeHandle::new();
    worker.dataflow::<u64, _, _>(|scope| {
        let dealt = source(scope, "TablePartitions", |capability, info| {
            let activator = scope.activator_for(info.address);
            let mut reader = PartitionReader::new(shared.clone(), index, peers);
            let probe = probe.clone();
            let mut capability = capability;
            // A replay starts at the epoch of the restored checkpoint.
            capability.downgrade(&reader.epoch);
            let mut capability = Some(capability);
            move |output| {
                let Some(cap) = capability.as_mut() else { return };
                if *cap.time() >= reader.shared.config.epochs {
                    capability = None;
                    return;
                }
                if reader.shared.stop.load(Ordering::SeqCst) || reader.shared.all_closed() {
                    capability = None;
                    return;
                }
                // Epoch e starts once e - 1 is complete everywhere, and rows flow only while
                // the nodes keep up: both are waits, never unbounded buffers.
                if probe.less_than(cap.time()) || reader.shared.busy() {
                    activator.activate_after(BACKOFF);
                    return;
                }
                match reader.next_batch() {
                    Next::Batch(batch) => {
                        let mut session = output.session(&*cap);
                        for (k, slice) in reader.dealer.deal(reader.epoch, reader.partition, &batch) {
                            session.give((k, ArrowBatch(slice)));
                        }
                    }
                    Next::EpochDone => {
                        let next = *cap.time() + 1;
                        if next >= reader.shared.config.epochs {
                            capability = None;
                            return;
                        }
                        cap.downgrade(&next);
                        reader.start_epoch(next);
                    }
                    Next::Failed(error) => {
                        reader.shared.fail(error);
                        capability = None;
                        return;
                    }
                }
                activator.activate();
            }
        })
        .container::<Vec<Dealt>>();

        let counts = dealt.clone().map(|(k, batch): Dealt| (k, batch.0.num_rows() as u64)).broadcast();
        let mut feed = Feed::new(shared.clone(), index, peers);
        let placement = shared.placement;
        dealt
            .binary_frontier::<_, CapacityContainerBuilder<Vec<()>>, _, _, _, _>(
                counts,
                Exchange::new(move |(k, _): &Dealt| placement.engine_worker(*k) as u64),
                Pipeline,
                "FeedWorkers",
                move |_capability, _info| {
                    move |(data, data_frontier), (counts, count_frontier), _output| {
                        data.for_each(|cap, batches| {
                            let Some(&epoch) = cap.least() else { return };
                            for (k, batch) in batches.drain(..) {
                                feed.hold(epoch, k, batch.0);
                            }
                        });
                        counts.for_each(|cap, pairs| {
                            let Some(&epoch) = cap.least() else { return };
                            for (k, rows) in pairs.drain(..) {
                                feed.count(epoch, k, rows);
                            }
                        });
                        let complete = |epoch: u64| {
                            !data_frontier.frontier().less_equal(&epoch) && !count_frontier.frontier().less_equal(&epoch)
                        };
                        feed.advance(complete);
                    }
                },
            )
            .probe_with(&probe);
    });
}

enum Next {
    Batch(RecordBatch),
    EpochDone,
    Failed(String),
}

/// One engine worker's partitions, read in turn, again for every epoch.
struct PartitionReader {
    shared: Arc<Shared>,
    mine: Vec<usize>,
    next: usize,
    epoch: u64,
    current: Option<BatchIter>,
    /// The partition being read, and the offset of its next row.
    partition: usize,
    offset: u64,
    dealer: Dealer,
}

impl PartitionReader {
    fn new(shared: Arc<Shared>, index: usize, peers: usize) -> Self {
        let mine = (index..shared.source.partitions()).step_by(peers).collect();
        let dealer = shared.dealer.clone();
        let epoch = shared.replay.start_epoch;
        PartitionReader { shared, mine, next: 0, epoch, current: None, partition: 0, offset: 0, dealer }
    }

    fn start_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.next = 0;
        self.current = None;
    }

    /// The next batch of this worker's partitions for the current epoch.
    ///
    /// A panic inside the source (a query operator's bug) becomes an error: a panicking
    /// engine thread would leave its peers waiting for its progress forever.
    fn next_batch(&mut self) -> Next {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.pull())) {
            Ok(next) => next,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                self.current = None;
                Next::Failed(format!("the table's query panicked: {message}"))
            }
        }
    }

    fn pull(&mut self) -> Next {
        loop {
            if let Some(batches) = self.current.as_mut() {
                match batches.next() {
                    Some(Ok(batch)) if batch.num_rows() == 0 => continue,
                    Some(Ok(batch)) => {
                        // Every row carries its position, so the feed can log what it feeds and a
                        // replay can skip what a checkpoint already holds.
                        let tagged = positions::with_positions(&batch, self.partition, self.offset);
                        self.offset += batch.num_rows() as u64;
                        let tagged = match self.shared.replay.skipped(self.epoch, self.partition) {
                            Some(skip) => tagged.and_then(|b| positions::without_skipped(b, skip)),
                            None => tagged,
                        };
                        let batch = match tagged {
                            Ok(batch) if batch.num_rows() == 0 => continue,
                            Ok(batch) => batch,
                            Err(error) => return Next::Failed(error),
                        };
                        self.shared.progress.rows_read.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                        return Next::Batch(batch);
                    }
                    Some(Err(error)) => return Next::Failed(error),
                    None => self.current = None,
                }
            }
            let Some(&partition) = self.mine.get(self.next) else { return Next::EpochDone };
            self.next += 1;
            // A replay starts each partition at its first row not yet trained on.
            let from = self.shared.replay.skipped(self.epoch, partition).map_or(0, |skip| skip.first_gap());
            match self.shared.source.open_at(partition, self.epoch, from) {
                Ok(batches) => {
                    self.current = Some(batches);
                    (self.partition, self.offset) = (partition, from);
                }
                Err(error) => return Next::Failed(error),
            }
        }
    }
}

/// The ML workers one engine worker owns (`k % peers == index`): what each has been sent,
/// what is held back, and the per-epoch counts of every worker (for the equal-share trim).
struct Feed {
    shared: Arc<Shared>,
    index: usize,
    owned: Vec<usize>,
    /// Rows a worker's share may exceed the smallest share by: the dealer keeps shares within one.
    lag: u64,
    held: BTreeMap<(u64, usize), VecDeque<RecordBatch>>,
    sent: BTreeMap<(u64, usize), u64>,
    counts: BTreeMap<u64, Vec<u64>>,
    next_epoch: u64,
    ended: bool,
}

impl Feed {
    fn new(shared: Arc<Shared>, index: usize, _peers: usize) -> Self {
        let owned = (0..shared.sinks.len()).filter(|&k| shared.placement.engine_worker(k) == index).collect();
        // Each process's dealer keeps shares within one row: within one per process overall.
        let lag = if shared.config.equal_shards { shared.placement.processes as u64 } else { 0 };
        let next_epoch = shared.replay.start_epoch;
        Feed {
            shared,
            index,
            owned,
            lag,
            held: BTreeMap::new(),
            sent: BTreeMap::new(),
            counts: BTreeMap::new(),
            next_epoch,
            ended: false,
        }
    }

    fn hold(&mut self, epoch: u64, k: usize, batch: RecordBatch) {
        self.held.entry((epoch, k)).or_default().push_back(batch);
    }

    fn count(&mut self, epoch: u64, k: usize, rows: u64) {
        let workers = self.shared.sinks.len();
        self.counts.entry(epoch).or_insert_with(|| vec![0; workers])[k] += rows;
    }

    /// Closes every epoch that is complete everywhere, in order, then streams the open one.
    fn advance(&mut self, complete: impl Fn(u64) -> bool) {
        while self.next_epoch < self.shared.config.epochs && complete(self.next_epoch) {
            self.close_epoch(self.next_epoch);
            self.next_epoch += 1;
        }
        if self.next_epoch < self.shared.config.epochs {
            for i in 0..self.owned.len() {
                self.release(self.next_epoch, self.owned[i], self.lag);
            }
        } else if !self.ended && complete(self.shared.config.epochs - 1) {
            self.ended = true;
            for &k in &self.owned {
                if let Some(sink) = self.shared.sink(k) {
                    let _ = sink.end_input();
                }
            }
        }
    }

    /// Sends held batches of worker `k` while more than `keep` rows would still be held.
    fn release(&mut self, epoch: u64, k: usize, keep: u64) {
        let Some(queue) = self.held.get_mut(&(epoch, k)) else { return };
        let mut held: u64 = queue.iter().map(|b| b.num_rows() as u64).sum();
        let mut ready = Vec::new();
        while let Some(front) = queue.front() {
            let rows = front.num_rows() as u64;
            if held - rows < keep {
                break;
            }
            held -= rows;
            ready.extend(queue.pop_front());
        }
        for batch in ready {
            self.send(epoch, k, batch);
        }
    }

    fn send(&mut self, epoch: u64, k: usize, batch: RecordBatch) {
        if !self.sent.contains_key(&(epoch, k)) {
            tracing::info!(epoch = epoch + 1, worker = k, engine_worker = self.index, "epoch started: first rows to a worker");
        }
        *self.sent.entry((epoch, k)).or_default() += batch.num_rows() as u64;
        let (batch, positions) = positions::split_positions(batch);
        // Logged before the rows leave: a checkpoint can only cover rows the log names.
        if let (Some(log), Some(positions)) = (&self.shared.log, &positions)
            && let Err(error) = log.record_fed(epoch, k, positions) {
                self.shared.fail(format!("writing the position log {}: {error}", log.path().display()));
                return;
            }
        // A closed sink is a node that finished or failed: the cluster reports it, not us.
        if let Some(sink) = self.shared.sink(k) {
            let _ = sink.send(batch);
        }
    }

    fn close_epoch(&mut self, epoch: u64) {
        let totals = self.counts.remove(&epoch).unwrap_or_else(|| vec![0; self.shared.sinks.len()]);
        let share = if self.shared.config.equal_shards { totals.iter().copied().min().unwrap_or(0) } else { u64::MAX };
        let mut report = Vec::with_capacity(self.owned.len());
        for i in 0..self.owned.len() {
            let k = self.owned[i];
            let mut queue = self.held.remove(&(epoch, k)).unwrap_or_default();
            let mut allowed = share.saturating_sub(self.sent.get(&(epoch, k)).copied().unwrap_or(0));
            let mut dropped = 0u64;
            while let Some(batch) = queue.pop_front() {
                let rows = batch.num_rows() as u64;
                let take = rows.min(allowed);
                if take > 0 {
                    self.send(epoch, k, batch.slice(0, take as usize));
                }
                allowed -= take;
                dropped += rows - take;
            }
            let sent = self.sent.remove(&(epoch, k)).unwrap_or(0);
            if let Some(sink) = self.shared.sink(k) {
                let _ = sink.end_epoch(epoch, sent, dropped);
                tracing::info!(epoch = epoch + 1, worker = k, engine_worker = self.index, rows = sent, dropped, "epoch ended: rows dealt to a worker");
            }
            report.push((k, sent, dropped));
        }
        if let Some(log) = &self.shared.log
            && let Err(error) = log.sync() {
                self.shared.fail(format!("syncing the position log {}: {error}", log.path().display()));
            }
        // The first engine worker also reports the workers other processes feed: every
        // process has every worker's counts (they are broadcast), and the trim is the same.
        if self.index == 0 && self.shared.placement.processes > 1 {
            for (k, &total) in totals.iter().enumerate() {
                if self.shared.sink(k).is_none() {
                    let fed = total.min(share);
                    report.push((k, fed, total - fed));
                }
            }
        }
        if dropped_any(&report) {
            tracing::info!(epoch = epoch + 1, ?report, "trimmed rows so that every worker takes the same number of steps");
        }
        let workers = self.shared.sinks.len();
        let mut epochs = self.shared.epochs.lock().unwrap_or_else(|e| e.into_inner());
        let entry = epochs.entry(epoch).or_insert_with(|| EpochReport {
            epoch,
            rows: vec![0; workers],
            dropped: vec![0; workers],
        });
        for (k, sent, dropped) in report {
            entry.rows[k] = sent;
            entry.dropped[k] = dropped;
        }
        if self.index == self.shared.placement.first_engine_worker_here(self.index) {
            self.shared.progress.epochs_completed.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn dropped_any(report: &[(usize, u64, u64)]) -> bool {
    report.iter().any(|&(_, _, dropped)| dropped > 0)
}
