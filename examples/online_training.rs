//! Online training with concept drift: a model trained on an unbounded stream serves as it
//! learns, and learns again when the truth changes.
//!
//! A producer streams NDJSON samples `{"x": .., "y": ..}` over TCP whose truth is y = 2x + 1 for
//! the first half and y = -x + 3 after. `train` over that stream makes one endless pass (one
//! TensorFlow worker, `examples/online/train.py`) and exports a numbered version of the model
//! (`BASE/1`, `BASE/2`, …) every few steps. Meanwhile a second pipeline, `Model::load(BASE)` over
//! another stream of x values, predicts with the newest version (hot reload). The example prints
//! the mean absolute error of the predictions per model version: low, high right after the
//! change (the old truth), low again once newer versions learned the new one.
//!
//! Run: `cargo run --release --example online_training -- [BASE]` (about 20 s; `scripts/setup.sh`
//! makes the Python side).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float32Type, Int64Type};
use dlflow::layers::dlflow_table::options::MicroBatching;
use dlflow::{Environment, Job, Model, TfClusterConfig};
use futures::StreamExt;

/// The truth before the change.
pub fn before(x: f64) -> f64 {
    2.0 * x + 1.0
}

/// The truth after the change.
pub fn after(x: f64) -> f64 {
    -x + 3.0
}

/// How big and how fast the example runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Samples before the change, and as many after it.
    pub rows_per_phase: usize,
    /// The training stream's pace.
    pub rows_per_second: f64,
    /// A version every this many training steps.
    pub every_steps: u32,
    /// Rows per training step.
    pub batch_size: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { rows_per_phase: 4000, rows_per_second: 500.0, every_steps: 50, batch_size: 16 }
    }
}

/// One prediction of the reader: the version that made it, whether the truth had changed when
/// its x was sent, its absolute error against the truth then, and when it came out.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// The model version that made it.
    pub version: i64,
    /// Whether the truth had changed when its x was sent.
    pub drifted: bool,
    /// |prediction - truth|.
    pub error: f64,
    /// When the reader got it.
    pub at: SystemTime,
}

/// A version the trainer exported: its number and when it was renamed into place.
#[derive(Debug, Clone)]
pub struct Exported {
    /// The version number.
    pub version: i64,
    /// When it was renamed into place (the trainer's clock: the same machine).
    pub at: SystemTime,
}

/// What a run gives: the reader's predictions in order, the versions exported, when the truth
/// changed, the training job's report.
#[derive(Debug)]
pub struct Outcome {
    /// The reader's predictions, in the order they came out.
    pub predictions: Vec<Prediction>,
    /// The versions exported, in order.
    pub exported: Vec<Exported>,
    /// When the producer switched to the new truth.
    pub changed_at: SystemTime,
    /// Rows the training job fed its worker.
    pub rows_trained: u64,
    /// From the start of the training to the end of the reader.
    pub training_seconds: f64,
}

/// `x` in [-1, 1), a fixed pseudo-random sequence (no extra dependency for the example).
fn x_at(i: u64) -> f64 {
    let mixed = i.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    (mixed >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

/// How far the producer may run ahead of the rows the trainer took: the truth changes when the
/// trainer is there, not seconds earlier in a socket buffer (TensorFlow's start-up alone takes
/// seconds).
const LEAD_ROWS: u64 = 256;

/// Streams the training samples to the first peer of `listener`, paced and at most
/// [`LEAD_ROWS`] ahead of the rows the trainer `taken`, the truth changing half way (`drifted`
/// set then); closing the connection ends the stream.
fn produce_samples(listener: TcpListener, settings: Settings, taken: Arc<AtomicU64>, drifted: Arc<AtomicBool>, changed_at: Arc<Mutex<Option<SystemTime>>>) -> std::io::Result<()> {
    let (peer, _) = listener.accept()?;
    let mut peer = std::io::BufWriter::new(peer);
    let mut next_due = Instant::now();
    for i in 0..2 * settings.rows_per_phase as u64 {
        if i == settings.rows_per_phase as u64 {
            *changed_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(SystemTime::now());
            drifted.store(true, Ordering::SeqCst);
        }
        let x = x_at(i);
        let y = if drifted.load(Ordering::SeqCst) { after(x) } else { before(x) };
        writeln!(peer, "{{\"x\": {x}, \"y\": {y}}}")?;
        // Paced, and never far ahead of the trainer: flush, then wait for both.
        next_due += Duration::from_secs_f64(1.0 / settings.rows_per_second);
        let ahead = || i + 1 >= taken.load(Ordering::SeqCst) + LEAD_ROWS;
        if next_due > Instant::now() || ahead() {
            peer.flush()?;
        }
        while ahead() {
            std::thread::sleep(Duration::from_millis(2));
            next_due = next_due.max(Instant::now());
        }
        if let Some(wait) = next_due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    peer.flush()
}

/// Streams x values to the reader, one every 5 ms, each marked with whether the truth had
/// changed, until `done` says the reader has seen the last version (or after `limit`).
fn produce_queries(listener: TcpListener, drifted: Arc<AtomicBool>, done: Arc<AtomicBool>, limit: Duration) -> std::io::Result<()> {
    let (mut peer, _) = listener.accept()?;
    let start = Instant::now();
    let mut i = 1u64 << 32;
    while !done.load(Ordering::SeqCst) && start.elapsed() < limit {
        writeln!(peer, "{{\"x\": {}, \"drifted\": {}}}", x_at(i), drifted.load(Ordering::SeqCst))?;
        i += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// Waits for `BASE/1` (the reader needs a version to start with); fails when the training ended
/// or took two minutes without one.
/// A listener on a free loopback port (where the example's producer writes) and the unbounded
/// table `name` that dlflow reads from it, one NDJSON record per line; its end ends the table.
async fn tcp_stream(env: &Environment, name: &str, columns: &str, select: &str) -> dlflow::Result<(TcpListener, dlflow::Table)> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| dlflow::Error::Invalid(format!("bind: {e}")))?;
    let port = listener.local_addr().map_err(|e| dlflow::Error::Invalid(format!("address: {e}")))?.port();
    let table = env
        .sql(&format!(
            "CREATE UNBOUNDED EXTERNAL TABLE {name} ({columns}) STORED AS JSON
             LOCATION 'tcp://127.0.0.1:{port}' OPTIONS ('reconnect' 'false');
             SELECT {select} FROM {name}"
        ))
        .await?;
    Ok((listener, table))
}

async fn wait_for_first_version(base: &Path, training: &tokio::task::JoinHandle<dlflow::Result<dlflow::JobReport>>) -> dlflow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !base.join("1").is_dir() {
        if training.is_finished() || Instant::now() > deadline {
            return Err(dlflow::Error::Invalid(format!("the trainer exported no first version into {}", base.display())));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Trains online into `base` while a reader predicts with its newest version; see the module docs.
pub async fn run(base: &Path, settings: Settings) -> dlflow::Result<Outcome> {
    let entry = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/online/train.py");
    let env = Environment::new();
    let drifted = Arc::new(AtomicBool::new(false));
    let changed_at = Arc::new(Mutex::new(None));

    // The training stream: dlflow connects to the producer; its end ends the pass.
    let (samples_listener, samples) = tcp_stream(&env, "samples", "x FLOAT, y FLOAT", "x, y").await?;
    let taken = Arc::new(AtomicU64::new(0));
    let producer = std::thread::spawn({
        let (settings, taken, drifted, changed_at) = (settings.clone(), taken.clone(), drifted.clone(), changed_at.clone());
        move || produce_samples(samples_listener, settings, taken, drifted, changed_at)
    });

    let config = TfClusterConfig::builder()
        .worker_count(1)
        .node_entry(entry, "train_entry")
        .property("model_dir", base.display().to_string())
        .property("every_steps", settings.every_steps.to_string())
        .property("batch_size", settings.batch_size.to_string())
        .quiet(true)
        .build()?;
    let exported = Arc::new(Mutex::new(Vec::new()));
    let job = Job::train(&samples, &config, 1).on_notice({
        let (exported, taken) = (exported.clone(), taken.clone());
        move |_, notice| {
            if notice["event"] == "rows" {
                taken.fetch_add(notice["rows"].as_u64().unwrap_or(0), Ordering::SeqCst);
            }
            if notice["event"] == "version_exported" {
                let at = UNIX_EPOCH + Duration::from_secs_f64(notice["exported_at"].as_f64().unwrap_or(0.0));
                exported.lock().unwrap_or_else(|e| e.into_inner()).push(Exported { version: notice["version"].as_i64().unwrap_or(0), at });
            }
        }
    });
    let started = Instant::now();
    let training = tokio::spawn(job.run());

    // The reader: the newest version over a stream of x values, from the first version on.
    wait_for_first_version(base, &training).await?;
    let (queries_listener, queries) = tcp_stream(&env, "queries", "x FLOAT, drifted BOOLEAN", "x, drifted").await?;
    let done = Arc::new(AtomicBool::new(false));
    let query_producer = std::thread::spawn({
        let (drifted, done) = (drifted.clone(), done.clone());
        move || produce_queries(queries_listener, drifted, done, Duration::from_secs(300))
    });
    let model = Model::load(base)?.with_micro_batching(MicroBatching::default().max_rows(64).max_delay(Duration::from_millis(2)));
    let mut predicted = model.transform(&queries)?.stream().await?;
    let last_served = Arc::new(AtomicI64::new(0));
    let mut predictions = Vec::new();
    let mut report = None;
    let mut training = Some(training);
    loop {
        // The trainer's last version, once it has ended; the reader stops after serving it.
        if let Some(handle) = training.take_if(|t| t.is_finished()) {
            report = Some(handle.await.map_err(|e| dlflow::Error::Invalid(format!("the training task: {e}")))??);
        }
        let last = exported.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|e| e.version).max().unwrap_or(0);
        if report.is_some() && last_served.load(Ordering::SeqCst) >= last {
            done.store(true, Ordering::SeqCst);
        }
        let Ok(next) = tokio::time::timeout(Duration::from_millis(100), predicted.next()).await else { continue };
        let Some(batch) = next else { break };
        let batch = batch?;
        for prediction in predictions_of(&batch) {
            last_served.fetch_max(prediction.version, Ordering::SeqCst);
            predictions.push(prediction);
        }
    }
    let training_seconds = started.elapsed().as_secs_f64();
    let report = match report {
        Some(report) => report,
        None => training.expect("not taken").await.map_err(|e| dlflow::Error::Invalid(format!("the training task: {e}")))??,
    };
    producer.join().expect("producer thread").map_err(|e| dlflow::Error::Invalid(format!("the sample producer: {e}")))?;
    query_producer.join().expect("query thread").map_err(|e| dlflow::Error::Invalid(format!("the query producer: {e}")))?;
    let exported = std::mem::take(&mut *exported.lock().unwrap_or_else(|e| e.into_inner()));
    let changed_at = changed_at.lock().unwrap_or_else(|e| e.into_inner()).unwrap_or(UNIX_EPOCH);
    Ok(Outcome { predictions, exported, changed_at, rows_trained: report.rows_fed(), training_seconds })
}

fn predictions_of(batch: &RecordBatch) -> Vec<Prediction> {
    let at = SystemTime::now();
    let x = batch.column_by_name("x").expect("x").as_primitive::<Float32Type>();
    let y = batch.column_by_name("y").expect("y").as_primitive::<Float32Type>();
    let drifted = batch.column_by_name("drifted").expect("drifted").as_boolean();
    let version = batch.column_by_name("model_version").expect("model_version").as_primitive::<Int64Type>();
    (0..batch.num_rows())
        .map(|i| {
            let (x, drifted) = (x.value(i) as f64, drifted.value(i));
            let truth = if drifted { after(x) } else { before(x) };
            Prediction { version: version.value(i), drifted, error: (y.value(i) as f64 - truth).abs(), at }
        })
        .collect()
}

/// Mean absolute error per (version, drifted): the example's table.
pub fn error_per_version(predictions: &[Prediction]) -> BTreeMap<(i64, bool), (usize, f64)> {
    let mut sums: BTreeMap<(i64, bool), (usize, f64)> = BTreeMap::new();
    for p in predictions {
        let entry = sums.entry((p.version, p.drifted)).or_default();
        entry.0 += 1;
        entry.1 += p.error;
    }
    sums.into_iter().map(|(key, (n, sum))| (key, (n, sum / n as f64))).collect()
}

#[allow(dead_code)] // the integration test includes this file for `run`, not `main`
#[tokio::main]
async fn main() -> dlflow::Result<()> {
    let base = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "/tmp/dlflow-online/linear".into()));
    if base.exists() {
        std::fs::remove_dir_all(&base).map_err(|e| dlflow::Error::Invalid(format!("cannot clear {}: {e}", base.display())))?;
    }
    let outcome = run(&base, Settings::default()).await?;
    println!(
        "trained online on {} rows in {:.1} s; {} versions exported into {}",
        outcome.rows_trained,
        outcome.training_seconds,
        outcome.exported.len(),
        base.display()
    );
    println!("{:>7}  {:<24}  {:>5}  {:>9}", "version", "truth when asked", "rows", "mean |err|");
    for ((version, drifted), (rows, mae)) in error_per_version(&outcome.predictions) {
        let truth = if drifted { "y = -x + 3 (after)" } else { "y = 2x + 1 (before)" };
        println!("{version:>7}  {truth:<24}  {rows:>5}  {mae:>9.3}");
    }
    Ok(())
}
