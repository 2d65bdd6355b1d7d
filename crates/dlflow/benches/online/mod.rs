//! The `online` training case: samples/s of one pass over a TCP stream (an unbounded table)
//! against `train` over the same rows as a bounded table (one epoch), in alternating rounds; and
//! the time from a version's export (its rename into BASE) to the first prediction a streaming
//! reader (`Model::load(BASE)` over another stream) makes with it, over the online example's runs.
//!
//! Sizes: DLFLOW_BENCH_ONLINE_ROWS (default 50000), DLFLOW_BENCH_ONLINE_ROUNDS (default 3).

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{Float32Array, RecordBatch};
use dlflow::{Environment, JobReport, TfClusterConfig};

#[path = "../../../../examples/online_training.rs"]
#[allow(dead_code)]
mod online_training;

use super::{median, spread};

fn entry() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/entries/online_bench.py")
}


/// The rows both sides train on: x in [-1, 1), y = 2x + 1.
fn samples(rows: usize) -> (Vec<f32>, Vec<f32>) {
    let x: Vec<f32> = (0..rows).map(|i| ((i * 7919) % 2000) as f32 / 1000.0 - 1.0).collect();
    let y = x.iter().map(|x| 2.0 * x + 1.0).collect();
    (x, y)
}

/// Rows per second inside the pass, as the entry timed it.
fn rate(report: &JobReport) -> f64 {
    let (_, notice) = report.notices_of("online_bench").next().unwrap_or_else(|| panic!("no online_bench notice in {report}"));
    notice["rows"].as_f64().expect("rows") / notice["seconds"].as_f64().expect("seconds").max(1e-9)
}

async fn train(table: &dlflow::Table, model_dir: Option<&Path>) -> JobReport {
    let mut builder = TfClusterConfig::builder().worker_count(1).node_entry(entry(), "online_bench_entry").quiet(true);
    if let Some(dir) = model_dir {
        builder = builder.property("model_dir", dir.display().to_string()).property("every_steps", "200");
    }
    dlflow::train(table, &builder.build().expect("config"), 1).await.expect("training job")
}

async fn bounded(env: &Environment, rows: usize) -> f64 {
    let (x, y) = samples(rows);
    let batch = RecordBatch::try_from_iter([("x", Arc::new(Float32Array::from(x)) as _), ("y", Arc::new(Float32Array::from(y)) as _)]).expect("batch");
    let report = train(&env.from_batches(vec![batch]).expect("table"), None).await;
    assert_eq!(report.rows_fed(), rows as u64);
    rate(&report)
}

/// The same rows as NDJSON from a producer that closes the stream after the last one.
async fn over_stream(env: &Environment, rows: usize, model_dir: Option<&Path>) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let producer = std::thread::spawn(move || {
        let (peer, _) = listener.accept().expect("dlflow connects");
        let mut peer = std::io::BufWriter::new(peer);
        let (x, y) = samples(rows);
        for (x, y) in x.iter().zip(&y) {
            writeln!(peer, "{{\"x\": {x}, \"y\": {y}}}").expect("send");
        }
        peer.flush().expect("flush");
    });
    let table = env
        .sql(&format!(
            "CREATE UNBOUNDED EXTERNAL TABLE samples_{port} (x FLOAT, y FLOAT) STORED AS JSON
             LOCATION 'tcp://127.0.0.1:{port}' OPTIONS ('reconnect' 'false');
             SELECT x, y FROM samples_{port}"
        ))
        .await
        .expect("stream table");
    let report = train(&table, model_dir).await;
    producer.join().expect("producer");
    assert_eq!(report.rows_fed(), rows as u64);
    rate(&report)
}

/// Seconds from each version's export to the reader's first prediction with it.
async fn reload_latencies(work: &Path, round: usize) -> Vec<f64> {
    let base = work.join(format!("reload-{round}"));
    let settings = online_training::Settings { rows_per_phase: 2000, rows_per_second: 1000.0, every_steps: 25, batch_size: 16 };
    let outcome = online_training::run(&base, settings).await.expect("online example");
    outcome
        .exported
        .iter()
        .filter(|e| e.version > 1) // the reader starts after version 1
        .filter_map(|e| {
            let first = outcome.predictions.iter().find(|p| p.version == e.version)?;
            Some(first.at.duration_since(e.at).unwrap_or(Duration::ZERO).as_secs_f64())
        })
        .collect()
}

/// The `online` case; see the module docs.
pub async fn online() {
    let rows = super::env_u64("DLFLOW_BENCH_ONLINE_ROWS", 50_000) as usize;
    let rounds = super::env_u64("DLFLOW_BENCH_ONLINE_ROUNDS", 3).max(1) as usize;
    let work = tempfile::tempdir().expect("tempdir");
    let env = Environment::new();
    let (mut ours, mut table, mut exporting, mut ratios, mut latencies) = (vec![], vec![], vec![], vec![], vec![]);
    for round in 1..=rounds {
        let b = bounded(&env, rows).await;
        let o = over_stream(&env, rows, None).await;
        let e = over_stream(&env, rows, Some(&work.path().join(format!("versions-{round}")))).await;
        let reload = reload_latencies(work.path(), round).await;
        println!(
            "  round {round}: bounded {b:.0}, online {o:.0}, online exporting every 200 steps {e:.0} samples/s; ratio {:.2}x; {} reloads, median {:.3} s",
            o / b,
            reload.len(),
            median(&mut reload.clone())
        );
        table.push(b);
        ours.push(o);
        exporting.push(e);
        ratios.push(o / b);
        latencies.extend(reload);
    }
    println!("online: Dense(1) on y = 2x + 1, batch 32, Adam, 1 worker, {rows} rows, one pass; {rounds} rounds");
    let show = |what: &str, values: &mut Vec<f64>, unit: &str, digits: usize| {
        let (m, lo, hi) = spread(values);
        println!("  {what}: median {m:.digits$}{unit}, range {lo:.digits$}-{hi:.digits$}{unit} over {} values", values.len());
    };
    show("bounded table, one epoch (samples/s)", &mut table, "", 0);
    show("TCP stream, online pass (samples/s)", &mut ours, "", 0);
    show("TCP stream, exporting a version every 200 steps (samples/s)", &mut exporting, "", 0);
    show("ratio online / bounded (target >= 0.8x)", &mut ratios, "x", 2);
    show("export (rename) -> first prediction with that version (s; version poll every 0.25 s)", &mut latencies, " s", 3);
}
