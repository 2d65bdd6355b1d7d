//! Benchmark: dlflow's table inference against TensorFlow's own batched inference in Python,
//! in one run, on the same rows held in memory, with the same model and batch size.
//!
//! Run with `scripts/bench.sh inference` (or `cargo bench --workspace --bench
//! inference_vs_tensorflow` with DLFLOW_MODELS and the virtualenv set up). Rows and batch
//! size: DLFLOW_BENCH_ROWS (default 200000), DLFLOW_BENCH_BATCH (default 1024).

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{FixedSizeListArray, Float32Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field};
use common::{env_usize, write_arrow};
use dlflow::{Environment, Model};
use futures::StreamExt;
use rand::{Rng, SeedableRng};

const REPEAT: usize = 3;
const BATCH_ROWS: usize = 8192;

/// `rows` MNIST-sized rows of uniform pixels, as record batches of BATCH_ROWS rows.
fn make_rows(rows: usize) -> Vec<RecordBatch> {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(2026);
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    (0..rows)
        .step_by(BATCH_ROWS)
        .map(|start| {
            let n = BATCH_ROWS.min(rows - start);
            let values = Float32Array::from_iter_values((0..n * 784).map(|_| rng.r#gen::<f32>()));
            let column = FixedSizeListArray::new(item.clone(), 784, Arc::new(values), None);
            RecordBatch::try_from_iter([("pixels", Arc::new(column) as _)]).expect("batch")
        })
        .collect()
}

async fn dlflow_rows_per_second(model: &Model, batches: &[RecordBatch]) -> (usize, f64) {
    let env = Environment::new();
    let table = env.from_batches(batches.to_vec()).expect("table");
    let mut best = f64::INFINITY;
    let mut rows = 0;
    // One untimed pass warms TensorFlow up, as the Python side does.
    for round in 0..=REPEAT {
        let started = Instant::now();
        let mut stream = model.transform(&table).expect("transform").stream().await.expect("stream");
        rows = 0;
        while let Some(batch) = stream.next().await {
            rows += batch.expect("batch").num_rows();
        }
        if round > 0 {
            best = best.min(started.elapsed().as_secs_f64());
        }
    }
    (rows, rows as f64 / best)
}

fn python() -> std::path::PathBuf {
    dlflow::layers::dlflow_common::paths::project_venv().join("bin/python")
}

#[tokio::main]
async fn main() {
    let rows = env_usize("DLFLOW_BENCH_ROWS", 200_000);
    let batch_size = env_usize("DLFLOW_BENCH_BATCH", 1024);
    let models = std::env::var("DLFLOW_MODELS").expect("DLFLOW_MODELS: run scripts/bench.sh");
    let model_dir = std::path::Path::new(&models).join("mlp");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");

    println!("inference benchmark: MLP 784-128-10, {rows} rows in memory, batch size {batch_size}");
    let batches = make_rows(rows);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("rows.arrow");
    write_arrow(&batches, &data);

    let baseline = Command::new(python())
        .arg(root.join("python/tools/bench_inference.py"))
        .args(["--data", data.to_str().expect("utf8"), "--model", model_dir.to_str().expect("utf8")])
        .args(["--column", "pixels", "--batch-size", &batch_size.to_string(), "--repeat", &REPEAT.to_string()])
        .output()
        .expect("run the Python baseline");
    assert!(baseline.status.success(), "baseline failed: {}", String::from_utf8_lossy(&baseline.stderr));
    let line = String::from_utf8_lossy(&baseline.stdout);
    let tf_rate: f64 = line
        .split("\"rows_per_second\": ")
        .nth(1)
        .and_then(|rest| rest.trim().trim_end_matches('}').parse().ok())
        .unwrap_or_else(|| panic!("unexpected baseline output: {line}"));

    let model = Model::load(&model_dir).expect("load").with_batch_size(batch_size);
    let (dlflow_rows, dlflow_rate) = dlflow_rows_per_second(&model, &batches).await;
    assert_eq!(dlflow_rows, rows);
    // The same with one batch in the model at a time, as the Python loop runs.
    let (_, serial_rate) = dlflow_rows_per_second(&model.clone().with_concurrency(1), &batches).await;

    println!("  TensorFlow (Python, signature calls): {tf_rate:>12.0} rows/s");
    println!("  dlflow (Model::transform):            {dlflow_rate:>12.0} rows/s");
    println!("  dlflow, one batch at a time:          {serial_rate:>12.0} rows/s");
    println!("  ratio dlflow / TensorFlow:            {:>12.2}x (target >= 0.9x)", dlflow_rate / tf_rate);
    println!("  ratio, one batch at a time:           {:>12.2}x", serial_rate / tf_rate);
}
