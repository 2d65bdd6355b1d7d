//! ParameterServerStrategy training for real: separate processes for TF's coordinator, a
//! parameter server and two workers (examples/parameter_server/train.py), reaching the quick
//! start's accuracy.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Float32Array, RecordBatch};
use datafusion::arrow::datatypes::Float32Type;
use dlflow::{DataGen, Environment, Generator, Model, TfClusterConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameter_server_strategy_learns_y_equals_2x_plus_1() {
    let env = Environment::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let model_dir = dir.path().join("linear");
    let points = env.datagen(DataGen::new(5120).seed(1).column("x", Generator::uniform(0.0, 1.0))).expect("datagen");
    env.context().register_table("points", points.dataframe().clone().into_view()).expect("register");
    let samples = env.sql("SELECT x, 2 * x + 1 AS y FROM points").await.expect("sql");
    let entry = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/parameter_server/train.py");
    let config = TfClusterConfig::builder()
        .worker_count(1)
        .ps_count(3)
        .node_entry(entry, "train_entry")
        .property("ps_tasks", "1")
        .property("model_dir", model_dir.to_string_lossy())
        .quiet(true)
        .build()
        .expect("config");
    let report = dlflow::train(&samples, &config, 4).await.expect("train");
    // The coordinator took every row, and its steps ran on TF's workers.
    assert!(report.epochs.iter().all(|e| e.rows == vec![5120] && e.dropped() == 0), "{report}");
    let steps: Vec<u64> = report.notices_of("epoch").map(|(_, n)| n["steps"].as_u64().expect("steps")).collect();
    assert_eq!(steps, vec![160; 4], "{report}");
    for (node, pid) in &report.cluster.nodes {
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "{node} (pid {pid}) outlived the job");
    }

    let probe = env
        .from_batches(vec![RecordBatch::try_from_iter([("x", Arc::new(Float32Array::from(vec![0.0f32, 1.0])) as Arc<dyn Array>)]).expect("batch")])
        .expect("probe");
    let batches = Model::load(&model_dir).expect("saved model").transform(&probe).expect("transform").collect().await.expect("predict");
    let y = batches[0].column_by_name("y").expect("y").as_primitive::<Float32Type>();
    let (bias, weight) = (y.value(0), y.value(1) - y.value(0));
    assert!((weight - 2.0).abs() < 0.05, "weight {weight}");
    assert!((bias - 1.0).abs() < 0.05, "bias {bias}");
}
