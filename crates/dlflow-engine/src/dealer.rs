//! [`Dealer`]: cuts batches into contiguous slices so that every ML worker gets the same
//! number of rows in every epoch, give or take one.

use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;

/// Deals the batches of all engine workers of a run to `workers` ML workers.
///
/// Clones share one count of the rows dealt in the current epoch: a batch takes the next
/// `rows` positions of the epoch, and position `p` belongs to ML worker `p % workers`. Each
/// batch is cut into one contiguous, zero-copy slice per worker holding that many rows. Over
/// an epoch of `n` rows, worker `k` gets `n / workers` rows, plus one when `k < n % workers`,
/// whichever engine worker read which batch: when `n` divides evenly the shares are equal,
/// and otherwise trimming them equal drops `n % workers` rows, at most `workers - 1`.
///
/// [`partition_per_worker`](Self::partition_per_worker) deals differently: partition `p`
/// goes whole to worker `p % workers` (a source that already cut the shares, such as
/// [`ShuffledRows`](crate::ShuffledRows)).
///
/// ```
/// use dlflow_engine::Dealer;
/// # use std::sync::Arc;
/// # use arrow::array::{Int64Array, RecordBatch};
/// # let batch = |n: i64| RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from_iter_values(0..n)) as _)]).unwrap();
/// let dealer = Dealer::even(2);
/// let other_engine_worker = dealer.clone(); // shares the count
/// let mut rows = [0, 0];
/// for (n, by) in [(5, &dealer), (3, &other_engine_worker), (7, &dealer)] {
///     for (worker, slice) in by.deal(0, 0, &batch(n)) {
///         rows[worker] += slice.num_rows();
///     }
/// }
/// assert_eq!(rows, [8, 7]); // 15 rows: one worker has one more, trimmed at the epoch's end
/// ```
#[derive(Debug, Clone)]
pub struct Dealer {
    workers: usize,
    /// `None`: partition `p` goes to worker `p % workers`.
    position: Option<Arc<Mutex<Position>>>,
}

/// Rows dealt so far in `epoch`, by all clones of one dealer.
#[derive(Debug, Default)]
struct Position {
    epoch: u64,
    dealt: u64,
}

impl Dealer {
    /// A dealer that keeps every worker's share within one row of the others (see above).
    pub fn even(workers: usize) -> Self {
        Dealer { workers: workers.max(1), position: Some(Arc::default()) }
    }

    /// A dealer that sends partition `p` whole to worker `p % workers`.
    pub fn partition_per_worker(workers: usize) -> Self {
        Dealer { workers: workers.max(1), position: None }
    }

    /// The slices of `batch` (read from `partition` in `epoch`), as (ML worker, rows); empty
    /// slices are left out.
    ///
    /// Epochs must come in order: once any clone deals a batch of epoch `e + 1`, no clone
    /// deals one of epoch `e` (the engine starts an epoch when the previous one is complete).
    pub fn deal(&self, epoch: u64, partition: usize, batch: &RecordBatch) -> Vec<(usize, RecordBatch)> {
        let Some(position) = &self.position else {
            return vec![(partition % self.workers, batch.clone())];
        };
        let rows = batch.num_rows() as u64;
        let start = {
            let mut position = position.lock().unwrap_or_else(|e| e.into_inner());
            if position.epoch != epoch {
                *position = Position { epoch, dealt: 0 };
            }
            position.dealt += rows;
            position.dealt - rows
        };
        let workers = self.workers as u64;
        let mut slices = Vec::with_capacity(self.workers);
        let mut offset = 0;
        for k in 0..workers {
            // Positions start..start + rows that are k modulo `workers`.
            let first = start + (k + workers - start % workers) % workers;
            let size = if first < start + rows { (start + rows - first).div_ceil(workers) } else { 0 };
            if size > 0 {
                slices.push((k as usize, batch.slice(offset as usize, size as usize)));
                offset += size;
            }
        }
        slices
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::Int64Array;

    use super::*;

    fn batch(values: std::ops::Range<i64>) -> RecordBatch {
        RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from_iter_values(values)) as _)]).expect("batch")
    }

    #[test]
    fn every_row_goes_to_exactly_one_worker_and_shares_are_exact_across_clones() {
        let dealer = Dealer::even(3);
        let clones = [dealer.clone(), dealer.clone(), dealer];
        let mut seen = Vec::new();
        let mut counts = [0usize; 3];
        let mut next = 0;
        for (i, size) in [1, 2, 7, 0, 10, 4, 1, 5].into_iter().enumerate() {
            for (k, slice) in clones[i % 3].deal(0, i, &batch(next..next + size)) {
                counts[k] += slice.num_rows();
                let column = slice.column(0).as_any().downcast_ref::<Int64Array>().expect("ints");
                seen.extend(column.values().iter().copied());
            }
            next += size;
            // After any batch, worker k has the positions < next that are k modulo 3.
            let expected: Vec<usize> = (0..3).map(|k| (next as usize + 2 - k) / 3).collect();
            assert_eq!(counts.to_vec(), expected, "after a batch of {size}");
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..next).collect::<Vec<_>>());
    }

    #[test]
    fn a_new_epoch_starts_counting_again() {
        let dealer = Dealer::even(2);
        let first: Vec<usize> = dealer.deal(0, 0, &batch(0..3)).iter().map(|(_, s)| s.num_rows()).collect();
        let second: Vec<usize> = dealer.deal(1, 0, &batch(0..3)).iter().map(|(_, s)| s.num_rows()).collect();
        assert_eq!((first, second), (vec![2, 1], vec![2, 1]));
    }

    #[test]
    fn partition_per_worker_sends_each_partition_whole() {
        let dealer = Dealer::partition_per_worker(2);
        let dealt = dealer.deal(0, 3, &batch(0..5));
        assert_eq!(dealt.iter().map(|(k, s)| (*k, s.num_rows())).collect::<Vec<_>>(), vec![(1, 5)]);
    }
}
