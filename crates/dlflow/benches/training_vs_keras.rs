//! Benchmarks of training through dlflow, each against its baseline in the same run:
//!
//! - `feed`: rows/s reaching `tf.data` in one Python worker from a 10-float-column table, against
//!   the same rows from an in-memory `tf.data.Dataset.from_tensor_slices` (target >= 0.8x);
//! - `train`: the MLP 784-128-10 trained through dlflow on one worker, against Keras `fit` on the
//!   same rows preloaded in memory (target >= 0.9x) and against the seed's feed, each row a CSV
//!   text line decoded by `tf.io.decode_csv` (target >= 2x);
//! - `startup`: seconds from the call to `train` to the first batch in `tf.data`, minus Python's
//!   and TensorFlow's own import time, measured apart (target < 2 s).
//!
//! Run with `scripts/bench.sh training [feed|train|startup]`. Sizes: DLFLOW_BENCH_FEED_ROWS
//! (default 1000000), DLFLOW_BENCH_TRAIN_ROWS (default 30000).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use datafusion::arrow::datatypes::DataType;
use dlflow::{DataGen, Environment, Generator, Job, JobReport, TfClusterConfig};
use serde_json::Value;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn entries() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/entries/training_bench.py")
}

fn config(function: &str, properties: &[(&str, String)]) -> TfClusterConfig {
    let mut builder = TfClusterConfig::builder().worker_count(1).node_entry(entries(), function).quiet(true);
    for (key, value) in properties {
        builder = builder.property(*key, value);
    }
    builder.build().expect("config")
}

fn notice<'a>(report: &'a JobReport, event: &'a str) -> &'a Value {
    &report.notices_of(event).next().unwrap_or_else(|| panic!("no {event} notice in {report}")).1
}

fn number(value: &Value, key: &str) -> f64 {
    value[key].as_f64().unwrap_or_else(|| panic!("{key} missing in {value}"))
}

async fn feed() {
    let rows = env_u64("DLFLOW_BENCH_FEED_ROWS", 1_000_000);
    let env = Environment::new();
    let mut generator = DataGen::new(rows).seed(3).batch_size(8192);
    for c in 0..10 {
        generator = generator.column(format!("f{c}"), Generator::uniform(0.0, 1.0).with_data_type(DataType::Float32));
    }
    let table = env.datagen(generator).expect("datagen");
    let report = dlflow::train(&table, &config("feed_entry", &[("batch_size", "1024".into())]), 2).await.expect("feed job");
    let result = notice(&report, "feed_bench");
    let (ours, memory) = (number(result, "dlflow_rows_per_s"), number(result, "memory_rows_per_s"));
    println!("feed: {rows} rows x 10 float32 columns into tf.data, batch 1024, one worker");
    println!("  dlflow (Arrow from the engine)     {ours:>12.0} rows/s");
    println!("  from_tensor_slices (in memory)     {memory:>12.0} rows/s");
    println!("  ratio dlflow / in-memory: {:.2}x (target >= 0.8x)", ours / memory);
}

async fn train() {
    let rows = env_u64("DLFLOW_BENCH_TRAIN_ROWS", 30_000);
    let env = Environment::new();
    let table = env
        .datagen(
            DataGen::new(rows)
                .seed(4)
                .column("pixels", Generator::uniform_vector(784, 0.0, 1.0).with_data_type(DataType::new_fixed_size_list(
                    DataType::Float32,
                    784,
                    false,
                )))
                .column("label", Generator::uniform_int(0, 9)),
        )
        .expect("datagen");
    let properties = [("batch_size", "256".to_string()), ("rows", rows.to_string())];
    // Epochs 0 and 1 train through dlflow; epoch 2 is collected for the baselines.
    let report = dlflow::train(&table, &config("train_entry", &properties), 3).await.expect("train job");
    let result = notice(&report, "train_bench");
    let (ours, memory, csv) =
        (number(result, "dlflow_samples_per_s"), number(result, "memory_samples_per_s"), number(result, "csv_samples_per_s"));
    println!("train: MLP 784-128-10, {rows} rows, batch 256, one worker, second epoch timed");
    println!("  dlflow (Arrow -> tf.data)            {ours:>10.0} samples/s");
    println!("  Keras fit, rows preloaded in memory  {memory:>10.0} samples/s");
    println!("  the seed's feed (CSV text lines)     {csv:>10.0} samples/s");
    println!("  ratio dlflow / in-memory: {:.2}x (target >= 0.9x)", ours / memory);
    println!("  ratio dlflow / CSV text:  {:.2}x (target >= 2x)", ours / csv);
}

/// Wall seconds of `python -c CODE` with dlflow's Python (the floor under any node's start-up).
fn python_seconds(code: &str) -> f64 {
    let python = dlflow::layers::dlflow_cluster::interpreter(&dlflow::Python::Default).expect("python");
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let started = Instant::now();
        let status = Command::new(&python)
            .args(["-c", code])
            .env("TF_CPP_MIN_LOG_LEVEL", "2")
            .env("TF_USE_LEGACY_KERAS", "1")
            .status()
            .expect("python");
        assert!(status.success(), "python -c {code} failed");
        best = best.min(started.elapsed().as_secs_f64());
    }
    best
}

async fn startup() {
    let env = Environment::new();
    let table = env.datagen(DataGen::new(10_000).column("x", Generator::uniform(0.0, 1.0))).expect("datagen");
    let imports = python_seconds("import pyarrow, numpy, tensorflow");
    let mut best = f64::INFINITY;
    let mut registered = f64::INFINITY;
    for _ in 0..3 {
        let started = Instant::now();
        let report = Job::train(&table, &config("first_batch_entry", &[]), 1).run().await.expect("startup job");
        let first = report.cluster.first_batch_after.expect("a first batch").as_secs_f64();
        // The report's clock starts at the cluster; count from the call, as a user does.
        let from_call = first + (started.elapsed().as_secs_f64() - report.elapsed.as_secs_f64()).max(0.0);
        best = best.min(from_call);
        registered = registered.min(report.cluster.registered_after.as_secs_f64());
    }
    println!("startup: call to train -> first batch in tf.data, one worker (best of 3)");
    println!("  from the call to the first batch      {best:>6.2} s");
    println!("  of which: nodes registered after      {registered:>6.2} s");
    println!("  python + import pyarrow, numpy, tensorflow (measured apart) {imports:>6.2} s");
    println!("  dlflow's own start-up: {:.2} s (target < 2 s)", best - imports);
}

#[tokio::main]
async fn main() {
    let which: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let all = which.is_empty() || which.iter().any(|w| w == "all");
    if all || which.iter().any(|w| w == "startup") {
        startup().await;
    }
    if all || which.iter().any(|w| w == "feed") {
        feed().await;
    }
    if all || which.iter().any(|w| w == "train") {
        train().await;
    }
}
