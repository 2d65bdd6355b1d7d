//! Benchmark: tf.Example inference from feature columns. dlflow builds the protos from the
//! table's columns and runs the signature in-process (`Model::transform`); the baseline is
//! TFX's usual Python path: serialize one `tf.train.Example` per row, call the signature on
//! batches of the same size (python/tools/bench_examples.py). Both run in one go, each
//! repeated; the ratio of the medians and the spread of the per-round ratios are printed,
//! with each side's peak RSS.
//!
//! Run with `scripts/bench.sh examples` (needs DLFLOW_EXTERNAL_MODELS for the TFX models).
//! Rows and batch size: DLFLOW_BENCH_ROWS (default 100000), DLFLOW_BENCH_BATCH (default 1024).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{ArrayRef, Float32Array, Float64Array, Int64Array, RecordBatch, StringArray};
use common::{env_usize, write_arrow};
use dlflow::{Environment, Model};
use futures::StreamExt;
use rand::{Rng, SeedableRng};

const REPEAT: usize = 5;
const BATCH_ROWS: usize = 8192;

/// Chicago taxi trips: the 17 raw features of the TFX taxi pipeline, some missing.
fn taxi_trips(rows: usize) -> Vec<RecordBatch> {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(12);
    let companies = ["Flash Cab", "Taxi Affiliation Services", "Dispatch Taxi Affiliation", "No Such Cab Co", "Blue Ribbon Taxi Association Inc."];
    let payments = ["Cash", "Credit Card", "No Charge", "Bitcoin"];
    (0..rows)
        .step_by(BATCH_ROWS)
        .map(|start| {
            let n = BATCH_ROWS.min(rows - start);
            let mut ints = |low: i64, high: i64, missing: f64| -> ArrayRef {
                Arc::new(Int64Array::from((0..n).map(|_| (!rng.gen_bool(missing)).then(|| rng.gen_range(low..high))).collect::<Vec<_>>()))
            };
            let (seconds, hour, day, month, timestamp) = (ints(60, 7200, 0.0), ints(0, 24, 0.0), ints(1, 8, 0.0), ints(1, 13, 0.0), ints(1_356_998_400, 1_483_228_800, 0.0));
            let (pickup_tract, dropoff_tract) = (ints(17_031_010_100, 17_031_980_100, 0.3), ints(17_031_010_100, 17_031_980_100, 0.3));
            let (pickup_area, dropoff_area) = (ints(1, 78, 0.05), ints(1, 78, 0.05));
            let mut floats = |low: f64, high: f64, missing: f64| -> ArrayRef {
                Arc::new(Float64Array::from((0..n).map(|_| (!rng.gen_bool(missing)).then(|| rng.gen_range(low..high))).collect::<Vec<_>>()))
            };
            let (fare, miles) = (floats(3.0, 80.0, 0.0), floats(0.0, 30.0, 0.0));
            let (pickup_lat, pickup_lon) = (floats(41.6, 42.1, 0.05), floats(-87.9, -87.5, 0.05));
            let (dropoff_lat, dropoff_lon) = (floats(41.6, 42.1, 0.05), floats(-87.9, -87.5, 0.05));
            let mut strings = |values: &[&str]| -> ArrayRef {
                Arc::new(StringArray::from((0..n).map(|_| values[rng.gen_range(0..values.len())]).collect::<Vec<_>>()))
            };
            let (company, payment) = (strings(&companies), strings(&payments));
            RecordBatch::try_from_iter([
                ("company", company),
                ("payment_type", payment),
                ("fare", fare),
                ("trip_miles", miles),
                ("trip_seconds", seconds),
                ("trip_start_hour", hour),
                ("trip_start_day", day),
                ("trip_start_month", month),
                ("trip_start_timestamp", timestamp),
                ("pickup_census_tract", pickup_tract),
                ("dropoff_census_tract", dropoff_tract),
                ("pickup_community_area", pickup_area),
                ("dropoff_community_area", dropoff_area),
                ("pickup_latitude", pickup_lat),
                ("pickup_longitude", pickup_lon),
                ("dropoff_latitude", dropoff_lat),
                ("dropoff_longitude", dropoff_lon),
            ])
            .expect("batch")
        })
        .collect()
}

/// Penguins: the 4 float features of the TFX penguin example (already scaled to about [0, 1]).
fn penguins(rows: usize) -> Vec<RecordBatch> {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    (0..rows)
        .step_by(BATCH_ROWS)
        .map(|start| {
            let n = BATCH_ROWS.min(rows - start);
            let mut column = || Arc::new(Float32Array::from_iter_values((0..n).map(|_| rng.r#gen::<f32>()))) as ArrayRef;
            let (length, depth, flipper, mass) = (column(), column(), column(), column());
            RecordBatch::try_from_iter([("culmen_length_mm", length), ("culmen_depth_mm", depth), ("flipper_length_mm", flipper), ("body_mass_g", mass)])
                .expect("batch")
        })
        .collect()
}

/// Seconds per round of `model.transform` over the batches, after one untimed round.
async fn dlflow_rounds(model: &Model, batches: &[RecordBatch]) -> Vec<f64> {
    let env = Environment::new();
    let table = env.from_batches(batches.to_vec()).expect("table");
    let expected: usize = batches.iter().map(|b| b.num_rows()).sum();
    let mut seconds = Vec::new();
    for round in 0..=REPEAT {
        let started = Instant::now();
        let mut stream = model.transform(&table).expect("transform").stream().await.expect("stream");
        let mut rows = 0;
        while let Some(batch) = stream.next().await {
            rows += batch.expect("batch").num_rows();
        }
        assert_eq!(rows, expected);
        if round > 0 {
            seconds.push(started.elapsed().as_secs_f64());
        }
    }
    seconds
}

struct Baseline {
    seconds: Vec<f64>,
    peak_rss_mb: f64,
}

fn python_rounds(data: &Path, model: &Path, input: &str, batch_size: usize) -> Baseline {
    let python = dlflow::layers::dlflow_common::paths::project_venv().join("bin/python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../python/tools/bench_examples.py");
    let output = Command::new(python)
        .arg(script)
        .args(["--data", data.to_str().expect("utf8"), "--model", model.to_str().expect("utf8"), "--input", input])
        .args(["--batch-size", &batch_size.to_string(), "--repeat", &REPEAT.to_string()])
        .output()
        .expect("run the Python baseline");
    assert!(output.status.success(), "baseline failed: {}", String::from_utf8_lossy(&output.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| panic!("unexpected baseline output: {}", String::from_utf8_lossy(&output.stdout)));
    Baseline {
        seconds: answer["seconds"].as_array().expect("seconds").iter().map(|s| s.as_f64().expect("number")).collect(),
        peak_rss_mb: answer["peak_rss_mb"].as_f64().unwrap_or(0.0),
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// This process's peak resident memory, from /proc (Linux).
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok()).map_or(0.0, |kb| kb / 1024.0)
}

fn report(label: &str, rows: usize, python: &[f64], dlflow: &[f64]) {
    let ratios: Vec<f64> = python.iter().zip(dlflow).map(|(p, d)| p / d).collect();
    let (low, high) = (ratios.iter().copied().fold(f64::INFINITY, f64::min), ratios.iter().copied().fold(0.0, f64::max));
    println!(
        "  {label:<38} {:>10.0} rows/s (median of {REPEAT}, {:.3}..{:.3} s)   ratio {:.2}x (rounds {low:.2}x..{high:.2}x)",
        rows as f64 / median(dlflow),
        dlflow.iter().copied().fold(f64::INFINITY, f64::min),
        dlflow.iter().copied().fold(0.0, f64::max),
        median(python) / median(dlflow),
    );
}

async fn compare(name: &str, dir: PathBuf, input: &str, batches: Vec<RecordBatch>, batch_size: usize) {
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("rows.arrow");
    write_arrow(&batches, &data);
    println!("{name}: {rows} rows in memory, {} features, batch size {batch_size}", batches[0].num_columns());
    let baseline = python_rounds(&data, &dir, input, batch_size);
    let model = Model::load(&dir).expect("load").with_batch_size(batch_size);
    let parallel = dlflow_rounds(&model, &batches).await;
    let serial = dlflow_rounds(&model.clone().with_concurrency(1), &batches).await;
    println!(
        "  Python (tf.train.Example per row + signature): {:>10.0} rows/s (median of {REPEAT}, {:.3}..{:.3} s), peak RSS {:.0} MB",
        rows as f64 / median(&baseline.seconds),
        baseline.seconds.iter().copied().fold(f64::INFINITY, f64::min),
        baseline.seconds.iter().copied().fold(0.0, f64::max),
        baseline.peak_rss_mb
    );
    report("dlflow (Model::transform, protos in Rust)", rows, &baseline.seconds, &parallel);
    report("dlflow, one batch at a time", rows, &baseline.seconds, &serial);
}

#[tokio::main]
async fn main() {
    let rows = env_usize("DLFLOW_BENCH_ROWS", 100_000);
    let batch_size = env_usize("DLFLOW_BENCH_BATCH", 1024);
    let external = std::env::var_os("DLFLOW_EXTERNAL_MODELS")
        .map(PathBuf::from)
        .expect("DLFLOW_EXTERNAL_MODELS: run scripts/bench.sh examples, with ../shared/external_models next to the checkout");
    println!("tf.Example inference from feature columns, dlflow vs Python (target >= 2x)");
    compare("TFX taxi (Estimator + tf.Transform, 17 var-len features)", external.join("tfx_taxi_estimator"), "inputs", taxi_trips(rows), batch_size).await;
    compare("TFX penguin (Keras, 4 required float features)", external.join("tfx_penguin_keras"), "examples", penguins(rows), batch_size).await;
    println!("  dlflow peak RSS (both models, this process): {:.0} MB", peak_rss_mb());
}
