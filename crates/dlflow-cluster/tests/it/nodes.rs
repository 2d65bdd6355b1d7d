//! The cluster alone, with real Python nodes: registration, the spec, rows in and out through
//! the protocol, epoch markers, and the finish rules. (The engine and tables are tested above
//! this layer, in the `dlflow` crate.)

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arrow::array::{Float64Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use dlflow_cluster::{Cluster, ClusterError, JobIo, NodeEvent, TfClusterConfig};

fn write_entry(dir: &std::path::Path, source: &str) -> std::path::PathBuf {
    let path = dir.join("entry.py");
    std::fs::write(&path, source).expect("entry file");
    path
}

/// Sums each epoch's rows in Python (without TensorFlow: `next_epoch_batches` is the raw
/// Arrow feed under `get_tfdataset`) and writes one row per epoch back.
const SUMMING_ENTRY: &str = r#"
import pyarrow as pa
from dlflow import TFContext

def entry(context):
    ctx = TFContext(context)
    writer = ctx.get_row_writer()
    for epoch in range(ctx.get_epochs()):
        rows, total = 0, 0.0
        for batch in context.next_epoch_batches():
            rows += batch.num_rows
            total += sum(batch.column("x").to_pylist())
        writer.write({"worker": ctx.get_index(), "epoch": epoch, "rows": rows, "total": total})
"#;

#[test]
fn rows_reach_each_worker_epoch_by_epoch_and_results_come_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = TfClusterConfig::builder()
        .worker_count(2)
        .node_entry(write_entry(dir.path(), SUMMING_ENTRY), "entry")
        .quiet(true)
        .build()
        .expect("config");
    let input = Arc::new(Schema::new(vec![Field::new("x", DataType::Float64, false)]));
    let output = Arc::new(Schema::new(vec![
        Field::new("worker", DataType::Int64, true),
        Field::new("epoch", DataType::Int64, true),
        Field::new("rows", DataType::Int64, true),
        Field::new("total", DataType::Float64, true),
    ]));
    let io = JobIo { input_schema: Some(input.clone()), output_schema: Some(output), epochs: Some(2), ..JobIo::default() };
    let stop = AtomicBool::new(false);
    let cluster = Cluster::start(&config, &io, &stop).expect("start");
    let feeds = cluster.feeds();
    assert_eq!(feeds.len(), 2);
    // The first frame of every feed: where the input starts (no replay here).
    feeds.iter().for_each(|f| f.start_at(0, None).expect("start"));
    for epoch in 0..2u64 {
        for (k, feed) in feeds.iter().enumerate() {
            let values: Vec<f64> = (0..10).map(|i| (i + 100 * k) as f64).collect();
            let batch = RecordBatch::try_new(input.clone(), vec![Arc::new(Float64Array::from(values))]).expect("batch");
            feed.send_batch(batch).expect("send");
            feed.end_epoch(epoch, 10, 0).expect("end epoch");
        }
    }
    feeds.iter().for_each(|f| f.end_input().expect("end input"));
    let mut results = Vec::new();
    let report = cluster
        .run(&stop, |event| {
            if let NodeEvent::Batch(_, batch) = event {
                results.push(batch);
            }
            Ok(())
        })
        .expect("run");
    let mut seen: Vec<(i64, i64, i64, f64)> = results
        .iter()
        .flat_map(|b| {
            let int = |i: usize| b.column(i).as_any().downcast_ref::<Int64Array>().expect("ints").clone();
            let total = b.column(3).as_any().downcast_ref::<Float64Array>().expect("floats").clone();
            (0..b.num_rows()).map(move |r| (int(0).value(r), int(1).value(r), int(2).value(r), total.value(r))).collect::<Vec<_>>()
        })
        .collect();
    seen.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    assert_eq!(seen, vec![(0, 0, 10, 45.0), (0, 1, 10, 45.0), (1, 0, 10, 1045.0), (1, 1, 10, 1045.0)]);
    assert_eq!(report.nodes.len(), 2);
}

#[test]
fn a_node_whose_python_cannot_start_is_reported_with_its_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The entry file is fine; the interpreter is not Python at all.
    let fake_python = dir.path().join("python");
    std::fs::write(&fake_python, "#!/bin/sh\necho 'this is not python' >&2\nexit 7\n").expect("script");
    std::fs::set_permissions(&fake_python, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let config = TfClusterConfig::builder()
        .node_entry(write_entry(dir.path(), SUMMING_ENTRY), "entry")
        .python(dlflow_cluster::Python::Executable(fake_python))
        .quiet(true)
        .build()
        .expect("config");
    let error = Cluster::start(&config, &JobIo::default(), &AtomicBool::new(false)).expect_err("no python");
    let message = error.to_string();
    assert!(matches!(error, ClusterError::NodeExited { .. }), "{error:?}");
    assert!(message.contains("worker 0 exited unexpectedly (before it registered, exit code 7)"), "{message}");
    assert!(message.contains("this is not python"), "{message}");
}
