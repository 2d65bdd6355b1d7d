//! Inputs the engine must refuse with an error that says what was expected, never a panic:
//! a run with no ML workers to feed (issue 14, point 5).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arrow::array::{Int64Array, RecordBatch};
use dlflow_engine::{BatchIter, EngineConfig, PartitionSource, Progress, run};

/// One partition of `rows` rows.
struct Rows(i64);

impl PartitionSource for Rows {
    fn partitions(&self) -> usize {
        1
    }

    fn open(&self, _partition: usize, _epoch: u64) -> Result<BatchIter, String> {
        let batch = RecordBatch::try_from_iter([("id", Arc::new(Int64Array::from_iter_values(0..self.0)) as _)]).map_err(|e| e.to_string());
        Ok(Box::new(std::iter::once(batch)))
    }
}

fn stop() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}

#[test]
fn a_run_with_no_sinks_is_an_error_naming_the_workers() {
    for config in [EngineConfig::default(), EngineConfig { shuffle: Some(7), threads: 2, ..EngineConfig::default() }] {
        let outcome = std::panic::catch_unwind(|| run(Arc::new(Rows(10)), Vec::new(), config, Arc::new(Progress::default()), stop()));
        let error = outcome.expect("no panic").expect_err("no workers to feed");
        let text = error.to_string();
        assert!(text.contains("no ML worker") && text.contains("at least one"), "{text}");
    }
}
