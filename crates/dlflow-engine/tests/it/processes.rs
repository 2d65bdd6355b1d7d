//! The engine as several processes (two endpoints on loopback in one test process, each with
//! its own timely instance over the sockets dlflow connected), and replays from logged
//! positions: every row once, whichever process reads it and whichever worker it goes to.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{Int64Array, RecordBatch};
use dlflow_engine::positions::plan_replay;
use dlflow_engine::{
    BatchIter, EngineConfig, Endpoint, Hosts, Mesh, PartitionSource, PositionLog, Progress, Replay, RunOptions, SinkClosed,
    WorkerPosition, WorkerSink, run_with,
};

/// `partitions` partitions of `rows` rows each, in batches of 10; values are global row ids.
struct Rows {
    partitions: usize,
    rows: i64,
}

impl PartitionSource for Rows {
    fn partitions(&self) -> usize {
        self.partitions
    }

    fn open(&self, partition: usize, _epoch: u64) -> Result<BatchIter, String> {
        let start = partition as i64 * self.rows;
        let end = start + self.rows;
        Ok(Box::new((start..end).step_by(10).map(move |from| {
            let to = (from + 10).min(end);
            Ok(RecordBatch::try_from_iter([("id", Arc::new(Int64Array::from_iter_values(from..to)) as _)]).expect("batch"))
        })))
    }
}

/// Records the ids it gets, in order, per epoch.
#[derive(Default)]
struct Ids {
    epoch: Mutex<u64>,
    ids: Mutex<BTreeMap<u64, Vec<i64>>>,
}

impl WorkerSink for Ids {
    fn send(&self, batch: RecordBatch) -> Result<(), SinkClosed> {
        assert_eq!(batch.num_columns(), 1, "the position column never reaches a node");
        let epoch = *self.epoch.lock().expect("lock");
        let ids = batch.column(0).as_any().downcast_ref::<Int64Array>().expect("ids");
        self.ids.lock().expect("lock").entry(epoch).or_default().extend(ids.values().iter().copied());
        Ok(())
    }
    fn end_epoch(&self, epoch: u64, _rows: u64, _dropped: u64) -> Result<(), SinkClosed> {
        *self.epoch.lock().expect("lock") = epoch + 1;
        Ok(())
    }
}

fn free_hosts(n: usize) -> Hosts {
    Hosts::parse(&dlflow_testkit::loopback_hostfile(n)).expect("hosts")
}

#[test]
fn two_processes_exchange_rows_and_keep_equal_shares() {
    let hosts = free_hosts(2);
    let sinks: Vec<Arc<Ids>> = vec![Arc::default(), Arc::default()];
    let config = EngineConfig { threads: 2, epochs: 2, ..EngineConfig::default() };
    let reports: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|process| {
                let (hosts, sinks) = (hosts.clone(), sinks.clone());
                s.spawn(move || {
                    let endpoint = Endpoint::bind("exchange", hosts, process).expect("bind");
                    let stop = Arc::new(AtomicBool::new(false));
                    let sockets = endpoint.mesh(0, Duration::from_secs(20), &stop).expect("mesh");
                    // Worker k is fed by process k % 2: each process holds only its own sink.
                    let local: Vec<Option<Arc<dyn WorkerSink>>> = (0..2)
                        .map(|k| (k % 2 == process).then(|| sinks[k].clone() as Arc<dyn WorkerSink>))
                        .collect();
                    let options = RunOptions { mesh: Some(Mesh { process, sockets }), ..RunOptions::default() };
                    let source = Arc::new(Rows { partitions: 5, rows: 101 });
                    run_with(source, local, config, Arc::new(Progress::default()), stop, options).expect("run")
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("join")).collect()
    });
    for epoch in 0..2u64 {
        let mut all: Vec<i64> = Vec::new();
        let mut shares = Vec::new();
        for sink in &sinks {
            let ids = sink.ids.lock().expect("lock").get(&epoch).cloned().unwrap_or_default();
            shares.push(ids.len());
            all.extend(ids);
        }
        assert_eq!(shares[0], shares[1], "equal shares in epoch {epoch}");
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), shares[0] * 2, "no row twice in epoch {epoch}");
        assert!(505 - all.len() < 4 * 2, "at most one row per engine worker per ML worker trimmed: {}", all.len());
        // Both processes read partitions (5 over 4 engine workers), so rows crossed between them.
        assert!(sinks[0].ids.lock().expect("lock")[&epoch].iter().any(|id| (101..202).contains(id) || (303..404).contains(id)));
    }
    // Process 0's report has every worker, including those process 1 fed.
    assert_eq!(reports[0].epochs.len(), 2);
    assert_eq!(reports[0].epochs[0].rows.len(), 2);
    assert!(reports[0].epochs[0].rows.iter().all(|&r| r as usize == sinks[0].ids.lock().expect("lock")[&0].len()));
}

#[test]
fn a_replay_feeds_exactly_the_rows_the_checkpoints_had_not_trained() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log_path = dir.path().join("positions-0.log");
    let source = Arc::new(Rows { partitions: 3, rows: 50 });
    let config = EngineConfig { threads: 2, epochs: 2, ..EngineConfig::default() };
    let run = |replay: Replay, attempt: u32, sinks: &[Arc<Ids>]| {
        let log = PositionLog::open(&log_path, attempt).expect("log");
        log.record_start(&replay).expect("start");
        let options = RunOptions { replay, log: Some(Arc::new(log)), ..RunOptions::default() };
        let sinks = sinks.iter().map(|s| Some(s.clone() as Arc<dyn WorkerSink>)).collect();
        run_with(source.clone(), sinks, config, Arc::new(Progress::default()), Arc::new(AtomicBool::new(false)), options)
            .expect("run")
    };
    let first: Vec<Arc<Ids>> = vec![Arc::default(), Arc::default()];
    run(Replay::default(), 0, &first);
    // Both workers had trained 30 rows of epoch 1 when their checkpoints were saved.
    let trained: Vec<i64> = first
        .iter()
        .flat_map(|s| s.ids.lock().expect("lock").get(&1).map(|ids| ids[..30].to_vec()).unwrap_or_default())
        .collect();
    let at = Some(WorkerPosition { attempt: 0, epoch: 1, rows: 30, step: 3 });
    let replay = plan_replay(std::slice::from_ref(&log_path), &[at, at]).expect("plan");
    assert_eq!((replay.start_epoch, replay.rows_skipped()), (1, 60));

    let second: Vec<Arc<Ids>> = vec![Arc::default(), Arc::default()];
    run(replay, 1, &second);
    let mut epoch1: Vec<i64> = trained.clone();
    for sink in &second {
        let ids = sink.ids.lock().expect("lock");
        assert!(!ids.contains_key(&1), "the replay starts at epoch 1 (the sink numbers epochs from 0)");
        epoch1.extend(ids.get(&0).cloned().unwrap_or_default());
    }
    let fed_again = epoch1.len();
    epoch1.sort_unstable();
    epoch1.dedup();
    assert_eq!(epoch1.len(), fed_again, "a trained row was fed again");
    assert!(150 - epoch1.len() <= 2 * 2, "rows lost beyond the equal-share trim: {} of 150", epoch1.len());
    for id in &trained {
        assert!(epoch1.binary_search(id).is_ok());
    }
}
