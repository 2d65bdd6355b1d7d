//! [`Dealer`]: cuts batches into contiguous slices so that every ML worker gets the same
//! number of rows, give or take one, from each engine worker.

use arrow::array::RecordBatch;

/// Deals one engine worker's batches to `workers` ML workers.
///
/// Each batch is cut into one contiguous slice per worker (slicing is zero-copy). The
/// remainder rows go to the workers that have had the fewest so far, so after any number of
/// batches the counts differ by at most one. Across `n` engine workers they differ by at
/// most `n`, which the feed operator evens out at the end of the epoch.
///
/// ```
/// use dlflow_engine::Dealer;
/// # use std::sync::Arc;
/// # use arrow::array::{Int64Array, RecordBatch};
/// # let batch = |n: i64| RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from_iter_values(0..n)) as _)]).unwrap();
/// let mut dealer = Dealer::new(2, 0);
/// let mut rows = [0, 0];
/// for n in [5, 3, 7] {
///     for (worker, slice) in dealer.deal(&batch(n)) {
///         rows[worker] += slice.num_rows();
///     }
/// }
/// assert_eq!(rows, [8, 7]);
/// ```
#[derive(Debug, Clone)]
pub struct Dealer {
    dealt: Vec<u64>,
    /// Breaks ties differently on each engine worker, so remainders spread across ML workers.
    offset: usize,
}

impl Dealer {
    /// A dealer for `workers` ML workers; `offset` is the engine worker's index.
    pub fn new(workers: usize, offset: usize) -> Self {
        Dealer { dealt: vec![0; workers.max(1)], offset }
    }

    /// Starts a new epoch: the counts start again from zero.
    pub fn reset(&mut self) {
        self.dealt.iter_mut().for_each(|d| *d = 0);
    }

    /// The slices of `batch`, as (ML worker, rows); empty slices are left out.
    pub fn deal(&mut self, batch: &RecordBatch) -> Vec<(usize, RecordBatch)> {
        let workers = self.dealt.len();
        let rows = batch.num_rows();
        let mut sizes = vec![rows / workers; workers];
        let mut order: Vec<usize> = (0..workers).collect();
        order.sort_by_key(|&k| (self.dealt[k], (k + workers - self.offset % workers) % workers));
        for &k in order.iter().take(rows % workers) {
            sizes[k] += 1;
        }
        let mut start = 0;
        let mut slices = Vec::with_capacity(workers);
        for (k, size) in sizes.into_iter().enumerate() {
            if size > 0 {
                slices.push((k, batch.slice(start, size)));
                self.dealt[k] += size as u64;
                start += size;
            }
        }
        slices
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int64Array;

    use super::*;

    fn batch(values: std::ops::Range<i64>) -> RecordBatch {
        RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from_iter_values(values)) as _)]).expect("batch")
    }

    #[test]
    fn every_row_goes_to_exactly_one_worker_and_counts_stay_within_one() {
        let mut dealer = Dealer::new(3, 1);
        let mut seen = Vec::new();
        let mut counts = [0usize; 3];
        let mut next = 0;
        for size in [1, 2, 7, 0, 10, 4, 1] {
            for (k, slice) in dealer.deal(&batch(next..next + size)) {
                counts[k] += slice.num_rows();
                let column = slice.column(0).as_any().downcast_ref::<Int64Array>().expect("ints");
                seen.extend(column.values().iter().copied());
            }
            next += size;
            let (min, max) = (counts.iter().min().expect("min"), counts.iter().max().expect("max"));
            assert!(max - min <= 1, "counts {counts:?} after a batch of {size}");
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..next).collect::<Vec<_>>());
    }
}
