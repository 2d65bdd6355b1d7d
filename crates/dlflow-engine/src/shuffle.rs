//! [`ShuffledRows`]: a bounded table held in memory and dealt in a new seeded order every
//! epoch, each ML worker's share as one partition.

use std::sync::{Arc, OnceLock};

use arrow::array::RecordBatch;

use crate::{BatchIter, PartitionSource};

/// Bytes a dealt batch aims at: big enough to amortize a batch's fixed costs on the node,
/// small enough that the queues in front of a node stay small (the flow-control limits count
/// batches).
const TARGET_BATCH_BYTES: usize = 4 << 20;

/// A bounded source read once into memory and served, every epoch, in the order
/// [`epoch_order`]`(seed, epoch, rows)`: position `p` of that order goes to ML worker
/// `p % workers`, so partition `k` is worker `k`'s share, in order (deal it with
/// [`Dealer::partition_per_worker`](crate::Dealer::partition_per_worker)).
///
/// The rows are those of the inner source's partitions, in partition order, each read once
/// (the first time any partition is opened). The same seed and epoch give every worker the
/// same rows in the same order, on every run over a table read in the same order (files,
/// `datagen`), which is what an exact replay needs. Memory: the table's Arrow batches (shared,
/// not copied, when the inner source already holds them) plus 8 bytes per row for the order.
///
/// ```
/// use std::sync::Arc;
/// # use arrow::array::{Int64Array, RecordBatch};
/// use dlflow_engine::{PartitionSource, ShuffledRows};
/// # struct Ids;
/// # impl PartitionSource for Ids {
/// #     fn partitions(&self) -> usize { 2 }
/// #     fn open(&self, p: usize, _epoch: u64) -> Result<dlflow_engine::BatchIter, String> {
/// #         let ids = if p == 0 { 0..6 } else { 6..10 };
/// #         let batch = RecordBatch::try_from_iter([("id", Arc::new(Int64Array::from_iter_values(ids)) as _)]).unwrap();
/// #         Ok(Box::new(std::iter::once(Ok(batch))))
/// #     }
/// # }
/// # let ids = |p: usize, epoch: u64, s: &ShuffledRows| -> Vec<i64> { s.open(p, epoch).unwrap()
/// #     .flat_map(|b| b.unwrap().column(0).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec()).collect() };
/// let shuffled = ShuffledRows::new(Arc::new(Ids), 2, 7); // 10 rows, 2 workers, seed 7
/// assert_eq!(shuffled.partitions(), 2);
/// let (first, second) = (ids(0, 0, &shuffled), ids(1, 0, &shuffled));
/// assert_eq!((first.len(), second.len()), (5, 5));
/// let mut all = [first.clone(), second].concat();
/// all.sort();
/// assert_eq!(all, (0..10).collect::<Vec<_>>()); // every row once
/// assert_eq!(ids(0, 0, &shuffled), first);      // the same order for the same epoch
/// assert_ne!(ids(0, 1, &shuffled), first);      // another order the next epoch
/// ```
pub struct ShuffledRows {
    inner: Arc<dyn PartitionSource>,
    workers: usize,
    seed: u64,
    rows: OnceLock<Result<Arc<Rows>, String>>,
}

/// The table's batches and where each starts.
struct Rows {
    batches: Vec<RecordBatch>,
    /// `starts[i]`: the global index of batch `i`'s first row; one more entry: the row count.
    starts: Vec<usize>,
    rows_per_batch: usize,
}

impl ShuffledRows {
    /// Serves `inner`'s rows to `workers` ML workers in the order of `seed` and the epoch.
    pub fn new(inner: Arc<dyn PartitionSource>, workers: usize, seed: u64) -> Self {
        ShuffledRows { inner, workers: workers.max(1), seed, rows: OnceLock::new() }
    }

    fn rows(&self) -> Result<Arc<Rows>, String> {
        self.rows.get_or_init(|| read_all(self.inner.as_ref()).map(Arc::new)).clone()
    }
}

impl PartitionSource for ShuffledRows {
    fn partitions(&self) -> usize {
        self.workers
    }

    fn open(&self, partition: usize, epoch: u64) -> Result<BatchIter, String> {
        let rows = self.rows()?;
        let total = *rows.starts.last().unwrap_or(&0);
        // Worker k's positions: k, k + workers, ...; kept as global row indices.
        let mine: Vec<usize> =
            epoch_order(self.seed, epoch, total).into_iter().skip(partition).step_by(self.workers).collect();
        let chunks: Vec<Vec<usize>> = mine.chunks(rows.rows_per_batch).map(<[usize]>::to_vec).collect();
        Ok(Box::new(chunks.into_iter().map(move |chunk| rows.gather(&chunk))))
    }
}

impl Rows {
    /// The rows at these global indices, in this order, as one batch.
    fn gather(&self, indices: &[usize]) -> Result<RecordBatch, String> {
        let located: Vec<(usize, usize)> = indices
            .iter()
            .map(|&row| {
                let batch = self.starts.partition_point(|&start| start <= row) - 1;
                (batch, row - self.starts[batch])
            })
            .collect();
        let batches: Vec<&RecordBatch> = self.batches.iter().collect();
        arrow::compute::interleave_record_batch(&batches, &located).map_err(|e| format!("shuffling rows: {e}"))
    }
}

/// Every partition of `source` (epoch 0), read on up to one thread per core, kept in order.
fn read_all(source: &dyn PartitionSource) -> Result<Rows, String> {
    let partitions = source.partitions();
    let threads = std::thread::available_parallelism().map(usize::from).unwrap_or(1).clamp(1, partitions.max(1));
    let mut read: Vec<Result<Vec<RecordBatch>, String>> = Vec::with_capacity(partitions);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (t..partitions)
                        .step_by(threads)
                        .map(|p| (p, source.open(p, 0).and_then(|batches| batches.collect::<Result<Vec<_>, _>>())))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut by_partition: Vec<(usize, Result<Vec<RecordBatch>, String>)> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|_| vec![(0, Err("reading the table panicked".to_string()))]))
            .collect();
        by_partition.sort_by_key(|(p, _)| *p);
        read.extend(by_partition.into_iter().map(|(_, batches)| batches));
    });
    let batches: Vec<RecordBatch> =
        read.into_iter().collect::<Result<Vec<_>, _>>()?.into_iter().flatten().filter(|b| b.num_rows() > 0).collect();
    let mut starts = Vec::with_capacity(batches.len() + 1);
    let mut total = 0;
    for batch in &batches {
        starts.push(total);
        total += batch.num_rows();
    }
    starts.push(total);
    let bytes: usize = batches.iter().map(RecordBatch::get_array_memory_size).sum();
    let row_bytes = bytes.checked_div(total).unwrap_or(1).max(1);
    Ok(Rows { batches, starts, rows_per_batch: (TARGET_BATCH_BYTES / row_bytes).clamp(64, 65_536) })
}

/// The order of `rows` rows in `epoch` for `seed`: a permutation of `0..rows`.
///
/// Row `i` gets the key `splitmix64(state + (i + 1) * 0x9E3779B97F4A7C15)` where
/// `state = seed ^ splitmix64(epoch + 0x9E3779B97F4A7C15)` (`splitmix64` the output function
/// of SplitMix64), and the rows are sorted by (key, i). Written out, not taken from a random
/// number library, so that the order never changes with a library version, and so that
/// `dlflow.dataset.epoch_order` in Python (NumPy) computes the same: a replay, in this process
/// or another, finds the same rows in the same places.
///
/// ```
/// let order = dlflow_engine::epoch_order(42, 0, 5);
/// let mut sorted = order.clone();
/// sorted.sort();
/// assert_eq!(sorted, vec![0, 1, 2, 3, 4]);
/// assert_eq!(dlflow_engine::epoch_order(42, 0, 5), order);
/// ```
pub fn epoch_order(seed: u64, epoch: u64, rows: usize) -> Vec<usize> {
    let state = seed ^ mix(epoch.wrapping_add(GAMMA));
    let mut keyed: Vec<(u64, usize)> =
        (0..rows).map(|i| (mix(state.wrapping_add((i as u64).wrapping_add(1).wrapping_mul(GAMMA))), i)).collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// SplitMix64's increment.
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_are_permutations_that_differ_by_epoch_and_seed() {
        let a = epoch_order(1, 0, 1000);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
        assert_ne!(a, epoch_order(1, 1, 1000));
        assert_ne!(a, epoch_order(2, 0, 1000));
        assert_eq!(a, epoch_order(1, 0, 1000));
        // Far from the identity: few rows stay where they were.
        assert!(a.iter().enumerate().filter(|(i, p)| i == *p).count() < 10);
        assert!(epoch_order(1, 0, 0).is_empty());
    }

    #[test]
    fn the_order_is_pinned() {
        // The algorithm is part of the replay contract: this must never change.
        assert_eq!(epoch_order(42, 3, 8), vec![5, 3, 2, 0, 1, 4, 6, 7]);
        assert_eq!(epoch_order(u64::MAX, 1 << 40, 6), vec![0, 3, 4, 2, 1, 5]);
    }
}
