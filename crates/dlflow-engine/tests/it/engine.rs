//! The engine against in-memory sources and sinks: shares, epochs, flow control, closed sinks
//! and failing sources, on several timely worker threads.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{Int64Array, RecordBatch};
use dlflow_engine::{BatchIter, EngineConfig, EngineError, PartitionSource, Progress, SinkClosed, WorkerSink, run};

/// Partition `p` holds `sizes[p]` rows, in batches of `batch` rows; values are global row ids.
struct Rows {
    sizes: Vec<i64>,
    batch: i64,
    fail_at: Option<usize>,
}

impl PartitionSource for Rows {
    fn partitions(&self) -> usize {
        self.sizes.len()
    }

    fn open(&self, partition: usize, _epoch: u64) -> Result<BatchIter, String> {
        if self.fail_at == Some(partition) {
            return Err(format!("partition {partition} is unreadable"));
        }
        let start: i64 = self.sizes[..partition].iter().sum();
        let (end, batch) = (start + self.sizes[partition], self.batch);
        Ok(Box::new((start..end).step_by(batch as usize).map(move |from| {
            let to = (from + batch).min(end);
            Ok(RecordBatch::try_from_iter([("id", Arc::new(Int64Array::from_iter_values(from..to)) as _)]).expect("batch"))
        })))
    }
}

/// Records what it gets; optionally consumes slowly (a queue drained by a thread) or closes.
#[derive(Default)]
struct Recorder {
    ids: Mutex<Vec<(u64, i64)>>,
    epoch: Mutex<u64>,
    markers: Mutex<Vec<(u64, u64, u64)>>,
    ended: AtomicBool,
    queued: AtomicUsize,
    max_queued: AtomicUsize,
    slow: bool,
    closed: AtomicBool,
}

impl WorkerSink for Recorder {
    fn send(&self, batch: RecordBatch) -> Result<(), SinkClosed> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(SinkClosed);
        }
        let epoch = *self.epoch.lock().expect("lock");
        let ids = batch.column(0).as_any().downcast_ref::<Int64Array>().expect("ids");
        self.ids.lock().expect("lock").extend(ids.values().iter().map(|&id| (epoch, id)));
        if self.slow {
            let queued = self.queued.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_queued.fetch_max(queued, Ordering::SeqCst);
        }
        Ok(())
    }
    fn end_epoch(&self, epoch: u64, rows: u64, dropped: u64) -> Result<(), SinkClosed> {
        self.markers.lock().expect("lock").push((epoch, rows, dropped));
        *self.epoch.lock().expect("lock") = epoch + 1;
        Ok(())
    }
    fn end_input(&self) -> Result<(), SinkClosed> {
        self.ended.store(true, Ordering::SeqCst);
        Ok(())
    }
    fn backlog(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

fn go(source: Rows, sinks: &[Arc<Recorder>], config: EngineConfig) -> Result<dlflow_engine::EngineReport, EngineError> {
    let sinks = sinks.iter().map(|s| s.clone() as Arc<dyn WorkerSink>).collect();
    run(Arc::new(source), sinks, config, Arc::new(Progress::default()), Arc::new(AtomicBool::new(false)))
}

#[test]
fn uneven_partitions_give_every_worker_the_same_rows_in_every_epoch() {
    let sinks: Vec<Arc<Recorder>> = (0..3).map(|_| Arc::default()).collect();
    let source = Rows { sizes: vec![1000, 7, 0, 333, 1], batch: 64, fail_at: None };
    let config = EngineConfig { threads: 2, epochs: 3, ..EngineConfig::default() };
    let report = go(source, &sinks, config).expect("run");
    assert_eq!(report.epochs.len(), 3);
    // 1341 rows divide evenly: 447 each, nothing dropped, whichever thread read which batch.
    let share = 447;
    for epoch in &report.epochs {
        assert_eq!(epoch.rows, vec![share; 3], "{epoch:?}");
        assert_eq!(epoch.dropped(), 0);
    }
    for sink in &sinks {
        assert!(sink.ended.load(Ordering::SeqCst));
        let markers = sink.markers.lock().expect("lock").clone();
        assert_eq!(markers.iter().map(|m| (m.0, m.1)).collect::<Vec<_>>(), vec![(0, share), (1, share), (2, share)]);
        // Rows never cross an epoch marker: each epoch's rows arrived before its marker.
        let ids = sink.ids.lock().expect("lock").clone();
        for epoch in 0..3 {
            assert_eq!(ids.iter().filter(|(e, _)| *e == epoch).count() as u64, share);
        }
    }
    // No row twice within an epoch, across workers.
    let mut epoch0: Vec<i64> = sinks.iter().flat_map(|s| s.ids.lock().expect("lock").iter().filter(|(e, _)| *e == 0).map(|(_, id)| *id).collect::<Vec<_>>()).collect();
    epoch0.sort_unstable();
    epoch0.dedup();
    assert_eq!(epoch0.len() as u64, 3 * share);
}

#[test]
fn inference_mode_delivers_every_row() {
    let sinks: Vec<Arc<Recorder>> = (0..2).map(|_| Arc::default()).collect();
    let source = Rows { sizes: vec![500, 1], batch: 7, fail_at: None };
    let config = EngineConfig { threads: 2, epochs: 1, equal_shards: false, ..EngineConfig::default() };
    let report = go(source, &sinks, config).expect("run");
    assert_eq!(report.epochs[0].rows.iter().sum::<u64>(), 501);
    assert_eq!(report.epochs[0].dropped(), 0);
}

#[test]
fn a_slow_worker_holds_the_source_back() {
    let slow = Arc::new(Recorder { slow: true, ..Recorder::default() });
    let sinks = vec![slow.clone()];
    // The "node": takes one queued batch every millisecond.
    let stop = Arc::new(AtomicBool::new(false));
    let consumer = {
        let (slow, stop) = (slow.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let _ = slow.queued.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |q| q.checked_sub(1));
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let source = Rows { sizes: vec![20_000], batch: 10, fail_at: None };
    let config = EngineConfig { threads: 1, epochs: 1, max_backlog: 4, ..EngineConfig::default() };
    let report = go(source, &sinks, config).expect("run");
    stop.store(true, Ordering::SeqCst);
    consumer.join().expect("consumer");
    assert_eq!(report.epochs[0].rows, vec![20_000]);
    // 2000 batches went through, never more than the limit (plus the one in hand) queued.
    assert!(slow.max_queued.load(Ordering::SeqCst) <= 5, "{}", slow.max_queued.load(Ordering::SeqCst));
}

#[test]
fn a_closed_worker_is_not_waited_for() {
    let sinks: Vec<Arc<Recorder>> = (0..2).map(|_| Arc::default()).collect();
    sinks[1].closed.store(true, Ordering::SeqCst);
    // Worker 1 never drains: were it waited for, a backlog of 1 would stop everything.
    sinks[1].queued.store(100, Ordering::SeqCst);
    let source = Rows { sizes: vec![300], batch: 10, fail_at: None };
    let config = EngineConfig { threads: 1, epochs: 2, max_backlog: 1, ..EngineConfig::default() };
    go(source, &sinks, config).expect("run");
    assert_eq!(sinks[0].markers.lock().expect("lock").len(), 2);
}

#[test]
fn a_failing_source_is_an_error_naming_it() {
    let sinks: Vec<Arc<Recorder>> = (0..2).map(|_| Arc::default()).collect();
    let source = Rows { sizes: vec![10, 10, 10], batch: 5, fail_at: Some(2) };
    let error = go(source, &sinks, EngineConfig { threads: 2, epochs: 2, ..EngineConfig::default() }).expect_err("fails");
    assert!(error.to_string().contains("partition 2 is unreadable"), "{error}");
    // Every sink still hears that the input ended: no node is left waiting.
    assert!(sinks.iter().all(|s| s.ended.load(Ordering::SeqCst)));
}

#[test]
fn an_uneven_row_count_drops_at_most_workers_minus_one_rows() {
    for (rows, workers) in [(1342i64, 3usize), (1343, 3), (7, 4), (2, 3)] {
        let sinks: Vec<Arc<Recorder>> = (0..workers).map(|_| Arc::default()).collect();
        let source = Rows { sizes: vec![rows - rows / 3, 0, rows / 3], batch: 5, fail_at: None };
        let report = go(source, &sinks, EngineConfig { threads: 2, epochs: 2, ..EngineConfig::default() }).expect("run");
        for epoch in &report.epochs {
            assert_eq!(epoch.rows, vec![rows as u64 / workers as u64; workers], "{rows} rows: {epoch:?}");
            assert_eq!(epoch.dropped(), rows as u64 % workers as u64, "{rows} rows: {epoch:?}");
        }
    }
}

/// Each sink's ids per epoch, in arrival order.
fn per_epoch(sink: &Recorder, epochs: u64) -> Vec<Vec<i64>> {
    let ids = sink.ids.lock().expect("lock").clone();
    (0..epochs).map(|e| ids.iter().filter(|(epoch, _)| *epoch == e).map(|(_, id)| *id).collect()).collect()
}

#[test]
fn a_shuffled_run_deals_every_row_once_per_epoch_in_a_new_order_the_same_for_a_seed() {
    let run = |seed: u64| {
        let sinks: Vec<Arc<Recorder>> = (0..3).map(|_| Arc::default()).collect();
        let source = Rows { sizes: vec![400, 3, 0, 198], batch: 16, fail_at: None };
        let config = EngineConfig { threads: 2, epochs: 3, shuffle: Some(seed), ..EngineConfig::default() };
        let report = go(source, &sinks, config).expect("run");
        for epoch in &report.epochs {
            assert_eq!((epoch.rows.clone(), epoch.dropped()), (vec![200; 3], 1), "{epoch:?}");
        }
        sinks.iter().map(|s| per_epoch(s, 3)).collect::<Vec<_>>()
    };
    let first = run(9);
    for epoch in 0..3 {
        let mut all: Vec<i64> = first.iter().flat_map(|w| w[epoch].clone()).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 600, "601 rows, one trimmed, none twice");
    }
    assert_ne!(first[0][0], first[0][1], "a new order every epoch");
    // Rows of the first partition (ids < 400) and of the last (>= 403) are mixed from the start.
    assert!(first[0][0][..20].iter().any(|&id| id < 400) && first[0][0][..20].iter().any(|&id| id >= 403));
    assert_eq!(run(9), first, "the same seed, the same rows in the same order");
    assert_ne!(run(10), first);
}
