//! Input positions: where every fed row came from, logged before it is fed, so that a
//! restarted job replays exactly the rows its restored checkpoints had not trained on.
//!
//! A row's position is `(epoch, partition, offset)`: the epoch it belongs to, the source
//! partition, and its row offset in that partition. The engine attaches the partition and
//! offset to every batch it reads as a hidden column ([`POSITION_COLUMN`]), so they follow the
//! rows through dealing, shuffling and exchange between processes, whatever order rows take;
//! the feed strips the column and appends the positions of the rows it sends to each ML
//! worker to a [`PositionLog`] (written and flushed before the rows leave).
//!
//! A worker's checkpoint records how many of the rows it was fed in one epoch of one attempt
//! it had trained on ([`WorkerPosition`]); the first `rows` positions of that worker's log are
//! then trained. [`plan_replay`] turns the workers' restored positions into a [`Replay`]: the
//! epoch to start from and, per epoch and partition, the row ranges to skip. The TF
//! checkpoint is the commit point: nothing it covers is fed again, nothing after it is lost.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use arrow::array::{AsArray, BooleanArray, RecordBatch, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, UInt64Type};
use serde::{Deserialize, Serialize};

/// The hidden column that carries each row's packed (partition, offset) through the engine.
pub const POSITION_COLUMN: &str = "__dlflow_position";

/// Bits of a packed position that hold the offset (the partition is above them).
const OFFSET_BITS: u32 = 40;

/// Packs a partition and a row offset into one `u64` (partitions below 2^24, offsets below 2^40).
pub fn pack(partition: usize, offset: u64) -> u64 {
    ((partition as u64) << OFFSET_BITS) | (offset & ((1 << OFFSET_BITS) - 1))
}

/// The partition and offset of a packed position.
pub fn unpack(position: u64) -> (usize, u64) {
    ((position >> OFFSET_BITS) as usize, position & ((1 << OFFSET_BITS) - 1))
}

/// Sorted, disjoint half-open row ranges `[start, end)` of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ranges(Vec<(u64, u64)>);

impl Ranges {
    /// Adds `[start, end)`, merging with what touches it.
    pub fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let at = self.0.partition_point(|&(_, e)| e < start);
        let mut merged = (start, end);
        let mut last = at;
        while last < self.0.len() && self.0[last].0 <= merged.1 {
            merged = (merged.0.min(self.0[last].0), merged.1.max(self.0[last].1));
            last += 1;
        }
        self.0.splice(at..last, [merged]);
    }

    /// Adds every range of `other`.
    pub fn union(&mut self, other: &Ranges) {
        for &(start, end) in &other.0 {
            self.insert(start, end);
        }
    }

    /// Whether `offset` is in one of the ranges.
    pub fn contains(&self, offset: u64) -> bool {
        let at = self.0.partition_point(|&(_, e)| e <= offset);
        self.0.get(at).is_some_and(|&(s, _)| s <= offset)
    }

    /// The first offset that is in no range: where reading can start.
    pub fn first_gap(&self) -> u64 {
        match self.0.first() {
            Some(&(0, end)) => end,
            _ => 0,
        }
    }

    /// Rows in all ranges.
    pub fn rows(&self) -> u64 {
        self.0.iter().map(|(s, e)| e - s).sum()
    }

    /// Whether there is no range.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Rows of one epoch already trained on, by partition.
pub type Consumed = BTreeMap<usize, Ranges>;

/// Where a run starts: the first epoch, and the rows of that epoch and later ones to skip.
///
/// The default is a run from the beginning.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replay {
    /// The first epoch to feed.
    pub start_epoch: u64,
    /// Per epoch (at or after `start_epoch`), rows not to feed again.
    pub consumed: BTreeMap<u64, Consumed>,
}

impl Replay {
    /// The rows of `epoch` in `partition` to skip, if any.
    pub fn skipped(&self, epoch: u64, partition: usize) -> Option<&Ranges> {
        self.consumed.get(&epoch)?.get(&partition).filter(|r| !r.is_empty())
    }

    /// Rows skipped in all.
    pub fn rows_skipped(&self) -> u64 {
        self.consumed.values().flat_map(|c| c.values()).map(Ranges::rows).sum()
    }

    /// Adds what `other` skips (for merging the parts that several processes computed).
    pub fn merge(&mut self, other: &Replay) {
        for (epoch, consumed) in &other.consumed {
            let mine = self.consumed.entry(*epoch).or_default();
            for (partition, ranges) in consumed {
                mine.entry(*partition).or_default().union(ranges);
            }
        }
    }
}

/// How far one worker's restored checkpoint had trained: the first `rows` rows it was fed of
/// `epoch` in attempt `attempt` (epoch `e + 1` and 0 rows for a checkpoint at the end of `e`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerPosition {
    /// The attempt in which the checkpoint was written.
    pub attempt: u32,
    /// The epoch it was in.
    pub epoch: u64,
    /// Rows of that epoch (as fed in that attempt) it had trained on.
    pub rows: u64,
    /// The training step of the checkpoint (every worker of a synchronous job saves at the same steps).
    #[serde(default)]
    pub step: u64,
}

/// The checkpoint each worker restores, from the ones each has (`None`: it does not
/// checkpoint; an empty list: it does, but has saved none yet).
///
/// Workers that checkpoint restore the newest step that all of them have, so that synchronous
/// workers restart with the same variables even when a failure hit while some had saved a newer
/// one. If one of them has saved nothing yet (a failure between the first saves of two
/// workers), none restores: a worker restarting from its initial variables beside others that
/// restored would train a different model on each side of the all-reduce. With no step in
/// common (independent workers checkpointing at their own steps), each restores its newest.
///
/// ```
/// use dlflow_engine::positions::{choose_checkpoints, WorkerPosition};
/// let at = |step| WorkerPosition { attempt: 0, epoch: 0, rows: step * 16, step };
/// // Worker 0 saved step 6; worker 1 was killed before it could: both restore step 3.
/// let chosen = choose_checkpoints(&[Some(vec![at(3), at(6)]), Some(vec![at(3)])]);
/// assert_eq!(chosen, vec![Some(at(3)), Some(at(3))]);
/// // Worker 1 had saved nothing yet: both start over.
/// assert_eq!(choose_checkpoints(&[Some(vec![at(3)]), Some(vec![])]), vec![None, None]);
/// ```
pub fn choose_checkpoints(available: &[Option<Vec<WorkerPosition>>]) -> Vec<Option<WorkerPosition>> {
    let checkpointing = || available.iter().flatten();
    if checkpointing().any(Vec::is_empty) {
        return vec![None; available.len()];
    }
    let mut steps = checkpointing().map(|c| c.iter().map(|p| p.step).collect::<std::collections::BTreeSet<u64>>());
    let first = steps.next().unwrap_or_default();
    let common = steps.fold(first, |common, mine| common.intersection(&mine).copied().collect());
    let pick = |mine: &Vec<WorkerPosition>| match common.last() {
        Some(&step) => mine.iter().find(|p| p.step == step).copied(),
        None => mine.iter().max_by_key(|p| p.step).copied(),
    };
    available.iter().map(|mine| mine.as_ref().and_then(pick)).collect()
}

/// One line of the log: rows fed, or where an attempt started. (A plain struct, not an
/// untagged enum: serde's buffered enums cannot read the integer map keys of a `Replay`.)
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fed: Option<Fed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    start: Option<Replay>,
}

/// Rows fed to `worker` in `epoch`, in order, as runs of packed positions `(first, count)`.
#[derive(Debug, Serialize, Deserialize)]
struct Fed {
    epoch: u64,
    worker: usize,
    runs: Vec<(u64, u64)>,
}

/// The append-only log of fed positions of one process (its ML workers), in the job's state
/// folder. Every record is written and flushed to the OS before the rows it names are fed,
/// and synced to disk at each epoch's end.
#[derive(Debug)]
pub struct PositionLog {
    path: PathBuf,
    attempt: u32,
    out: Mutex<BufWriter<File>>,
}

impl PositionLog {
    /// Opens (appends to) the log at `path` for attempt `attempt`.
    pub fn open(path: &Path, attempt: u32) -> std::io::Result<PositionLog> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(PositionLog { path: path.to_path_buf(), attempt, out: Mutex::new(BufWriter::new(file)) })
    }

    /// Where the log is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records where this attempt starts from.
    pub fn record_start(&self, start: &Replay) -> std::io::Result<()> {
        self.append(&Entry { attempt: self.attempt, fed: None, start: Some(start.clone()) }, true)
    }

    /// Records that the rows at `positions` go to `worker` in `epoch`, in this order.
    pub fn record_fed(&self, epoch: u64, worker: usize, positions: &UInt64Array) -> std::io::Result<()> {
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for &p in positions.values() {
            match runs.last_mut() {
                Some((start, len)) if *start + *len == p => *len += 1,
                _ => runs.push((p, 1)),
            }
        }
        self.append(&Entry { attempt: self.attempt, fed: Some(Fed { epoch, worker, runs }), start: None }, false)
    }

    /// Syncs the log to disk (at the end of each epoch).
    pub fn sync(&self) -> std::io::Result<()> {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        out.flush()?;
        out.get_ref().sync_data()
    }

    fn append(&self, entry: &Entry, sync: bool) -> std::io::Result<()> {
        let line = serde_json::to_string(entry).map_err(std::io::Error::other)?;
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
        out.flush()?;
        if sync {
            out.get_ref().sync_data()?;
        }
        Ok(())
    }
}

/// What the logs say: fed runs by (attempt, epoch, worker), and each attempt's start.
#[derive(Default)]
struct History {
    fed: HashMap<(u32, u64, usize), Vec<(u64, u64)>>,
    starts: HashMap<u32, Replay>,
}

impl History {
    fn read(paths: &[PathBuf]) -> std::io::Result<History> {
        let mut history = History::default();
        for path in paths {
            let file = match File::open(path) {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for line in BufReader::new(file).lines() {
                let line = line?;
                // A line cut short by a crash is the last one, and names rows never fed.
                let Ok(entry) = serde_json::from_str::<Entry>(&line) else { continue };
                if let Some(Fed { epoch, worker, runs }) = entry.fed {
                    history.fed.entry((entry.attempt, epoch, worker)).or_default().extend(runs);
                }
                if let Some(start) = entry.start {
                    history.starts.insert(entry.attempt, start);
                }
            }
        }
        Ok(history)
    }

    /// The rows of `epoch` that worker `worker` had trained on at `position`, and what the
    /// attempt of that position had started from (rows trained before it).
    fn consumed(&self, worker: usize, position: &WorkerPosition, epoch: u64) -> Consumed {
        let mut consumed = self.starts.get(&position.attempt).and_then(|s| s.consumed.get(&epoch)).cloned().unwrap_or_default();
        if epoch > position.epoch {
            return consumed;
        }
        let limit = if epoch < position.epoch { u64::MAX } else { position.rows };
        let mut taken = 0u64;
        for &(start, len) in self.fed.get(&(position.attempt, epoch, worker)).into_iter().flatten() {
            if taken >= limit {
                break;
            }
            let len = len.min(limit - taken);
            let (partition, offset) = unpack(start);
            consumed.entry(partition).or_default().insert(offset, offset + len);
            taken += len;
        }
        consumed
    }
}

/// The replay for workers restored at `positions` (by worker index; `None`: no checkpoint,
/// nothing trained), from the position logs at `logs`.
///
/// Training restarts at the earliest restored epoch; in it and in later epochs, every row that
/// some worker's checkpoint covers is skipped. With synchronous training (every worker at the
/// same step) that is exactly the rows before the checkpoint step.
pub fn plan_replay(logs: &[PathBuf], positions: &[Option<WorkerPosition>]) -> std::io::Result<Replay> {
    let restored: Vec<(usize, WorkerPosition)> =
        positions.iter().enumerate().filter_map(|(k, p)| p.map(|p| (k, p))).collect();
    if restored.is_empty() {
        return Ok(Replay::default());
    }
    let history = History::read(logs)?;
    let start_epoch = if restored.len() < positions.len() { 0 } else { restored.iter().map(|(_, p)| p.epoch).min().unwrap_or(0) };
    let last_epoch = restored.iter().map(|(_, p)| p.epoch).max().unwrap_or(0);
    let mut replay = Replay { start_epoch, consumed: BTreeMap::new() };
    for epoch in start_epoch..=last_epoch {
        let mut consumed = Consumed::new();
        for (worker, position) in &restored {
            for (partition, ranges) in history.consumed(*worker, position, epoch) {
                consumed.entry(partition).or_default().union(&ranges);
            }
        }
        if !consumed.is_empty() {
            replay.consumed.insert(epoch, consumed);
        }
    }
    Ok(replay)
}

/// `batch` with the position column added: rows are `offset..` of `partition`.
pub(crate) fn with_positions(batch: &RecordBatch, partition: usize, offset: u64) -> Result<RecordBatch, String> {
    let positions = UInt64Array::from_iter_values((0..batch.num_rows() as u64).map(|i| pack(partition, offset + i)));
    let mut fields: Vec<_> = batch.schema().fields().iter().cloned().collect();
    fields.push(std::sync::Arc::new(Field::new(POSITION_COLUMN, DataType::UInt64, false)));
    let mut columns = batch.columns().to_vec();
    columns.push(std::sync::Arc::new(positions));
    RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), columns).map_err(|e| e.to_string())
}

/// `batch` without the rows whose offsets `skip` holds (its position column tells them).
pub(crate) fn without_skipped(batch: RecordBatch, skip: &Ranges) -> Result<RecordBatch, String> {
    let Some(column) = batch.column_by_name(POSITION_COLUMN) else { return Ok(batch) };
    let keep: BooleanArray =
        column.as_primitive::<UInt64Type>().values().iter().map(|&p| Some(!skip.contains(unpack(p).1))).collect();
    if keep.true_count() == batch.num_rows() {
        return Ok(batch);
    }
    arrow::compute::filter_record_batch(&batch, &keep).map_err(|e| e.to_string())
}

/// Splits the position column off a batch: the rows as the nodes see them, and their positions.
pub(crate) fn split_positions(batch: RecordBatch) -> (RecordBatch, Option<UInt64Array>) {
    let Ok(index) = batch.schema().index_of(POSITION_COLUMN) else { return (batch, None) };
    let positions = batch.column(index).as_primitive::<UInt64Type>().clone();
    let mut batch = batch;
    batch.remove_column(index);
    (batch, Some(positions))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_and_answer() {
        let mut r = Ranges::default();
        r.insert(10, 20);
        r.insert(0, 5);
        r.insert(5, 10);
        r.insert(30, 40);
        assert_eq!(r.0, vec![(0, 20), (30, 40)]);
        assert!(r.contains(0) && r.contains(19) && !r.contains(20) && r.contains(35) && !r.contains(40));
        assert_eq!((r.first_gap(), r.rows()), (20, 30));
        r.insert(15, 35);
        assert_eq!(r.0, vec![(0, 40)]);
    }

    #[test]
    fn a_restored_prefix_skips_exactly_the_rows_trained() {
        let dir = tempfile_dir();
        let path = dir.join("positions.log");
        let log = PositionLog::open(&path, 0).expect("log");
        // Worker 0 gets rows 0..4 of partition 0 then 0..2 of partition 1; worker 1 rows 4..8 of partition 0.
        log.record_fed(0, 0, &UInt64Array::from_iter_values((0..4).map(|o| pack(0, o)))).expect("write");
        log.record_fed(0, 1, &UInt64Array::from_iter_values((4..8).map(|o| pack(0, o)))).expect("write");
        log.record_fed(0, 0, &UInt64Array::from_iter_values((0..2).map(|o| pack(1, o)))).expect("write");
        drop(log);
        let at = |rows| Some(WorkerPosition { attempt: 0, epoch: 0, rows, step: 0 });
        let replay = plan_replay(std::slice::from_ref(&path), &[at(5), at(3)]).expect("plan");
        assert_eq!(replay.start_epoch, 0);
        let skipped = &replay.consumed[&0];
        assert_eq!(skipped[&0].0, vec![(0, 7)]);
        assert_eq!(skipped[&1].0, vec![(0, 1)]);

        // Attempt 1 starts from there, feeds more, and is restored at its own prefix.
        let log = PositionLog::open(&path, 1).expect("log");
        log.record_start(&replay).expect("write");
        log.record_fed(0, 0, &UInt64Array::from_iter_values([pack(0, 7), pack(1, 1)])).expect("write");
        drop(log);
        let again = plan_replay(std::slice::from_ref(&path), &[
            Some(WorkerPosition { attempt: 1, epoch: 0, rows: 1, step: 0 }),
            Some(WorkerPosition { attempt: 1, epoch: 0, rows: 0, step: 0 }),
        ])
        .expect("plan");
        assert_eq!(again.consumed[&0][&0].0, vec![(0, 8)]);
        assert_eq!(again.consumed[&0][&1].0, vec![(0, 1)]);
        // A checkpoint at the end of epoch 0 starts epoch 1 with nothing to skip.
        let next = plan_replay(&[path], &[Some(WorkerPosition { attempt: 1, epoch: 1, rows: 0, step: 0 }); 2]).expect("plan");
        assert_eq!(next, Replay { start_epoch: 1, consumed: BTreeMap::new() });
        std::fs::remove_dir_all(dir).expect("cleanup");
    }

    #[test]
    fn the_newest_checkpoint_every_worker_has_is_chosen() {
        let at = |step| WorkerPosition { attempt: 0, epoch: 0, rows: step * 10, step };
        // Worker 0 saved step 6, worker 1 was killed before it could.
        let chosen = choose_checkpoints(&[Some(vec![at(3), at(6)]), Some(vec![at(0), at(3)])]);
        assert_eq!(chosen, vec![Some(at(3)), Some(at(3))]);
        // A worker that does not checkpoint neither restores nor holds the others back.
        let chosen = choose_checkpoints(&[Some(vec![at(3)]), None]);
        assert_eq!(chosen, vec![Some(at(3)), None]);
        // One that checkpoints but had saved nothing yet: all start over, or the workers'
        // variables would differ (worker 0's step 3, worker 1's initial values).
        let chosen = choose_checkpoints(&[Some(vec![at(3)]), Some(vec![])]);
        assert_eq!(chosen, vec![None, None]);
        // Independent workers with no step in common: each its newest.
        let chosen = choose_checkpoints(&[Some(vec![at(2), at(4)]), Some(vec![at(3)])]);
        assert_eq!(chosen, vec![Some(at(4)), Some(at(3))]);
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dlflow-positions-{}-{:?}", std::process::id(), std::thread::current().id()));
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }
}
