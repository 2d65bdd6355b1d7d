//! Online training end to end, as examples/online_training.rs runs it: real TensorFlow training
//! one endless pass over a TCP stream whose truth changes half way, numbered SavedModel versions
//! exported as it learns, and a streaming reader (`Model::load(BASE)`) hot-swapping to each.

#[path = "../../../../examples/online_training.rs"]
#[allow(dead_code)]
mod online_training;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{AsArray, Float32Array, RecordBatch};
use datafusion::arrow::datatypes::Float32Type;
use dlflow::{Environment, Model};
use online_training::{after, before, Settings};

/// Every numbered folder of `base` as it appears, checked complete the moment it is first seen
/// (a reader must never see half a version): the versions seen, and the incomplete ones.
fn watch_versions(base: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(BTreeSet<u64>, Vec<String>)> {
    std::thread::spawn(move || {
        let (mut seen, mut incomplete) = (BTreeSet::new(), Vec::new());
        while !stop.load(Ordering::SeqCst) {
            for entry in std::fs::read_dir(&base).into_iter().flatten().flatten() {
                let Some(version) = entry.file_name().to_str().and_then(|n| n.parse::<u64>().ok()) else { continue };
                if seen.insert(version) {
                    let dir = entry.path();
                    for part in ["saved_model.pb", "variables/variables.index"] {
                        if !dir.join(part).is_file() {
                            incomplete.push(format!("version {version} had no {part} when it appeared"));
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        (seen, incomplete)
    })
}

/// The mean absolute error of the SavedModel in `dir` against `truth` on 201 points of [-1, 1].
async fn error_of(env: &Environment, dir: &Path, truth: fn(f64) -> f64) -> f64 {
    let xs: Vec<f32> = (0..=200).map(|i| i as f32 / 100.0 - 1.0).collect();
    let batch = RecordBatch::try_from_iter([("x", Arc::new(Float32Array::from(xs.clone())) as _)]).expect("batch");
    let table = env.from_batches(vec![batch]).expect("table");
    let predicted = Model::load(dir).expect("a loadable SavedModel").transform(&table).expect("transform").collect().await.expect("predict");
    let ys: Vec<f32> = predicted.iter().flat_map(|b| b.column_by_name("y").expect("y").as_primitive::<Float32Type>().values().to_vec()).collect();
    assert_eq!(ys.len(), xs.len());
    xs.iter().zip(ys).map(|(x, y)| (y as f64 - truth(*x as f64)).abs()).sum::<f64>() / xs.len() as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_training_exports_versions_a_stream_reader_switches_to_and_learns_the_drift() {
    let work = tempfile::tempdir().expect("tempdir");
    let base = work.path().join("linear");
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_versions(base.clone(), stop.clone());
    let settings = Settings { rows_per_phase: 3000, rows_per_second: 1000.0, every_steps: 25, batch_size: 16 };
    let outcome = online_training::run(&base, settings).await.expect("online training");
    stop.store(true, Ordering::SeqCst);
    let (seen, incomplete) = watcher.join().expect("watcher");

    // Every row trained once, in one pass.
    assert_eq!(outcome.rows_trained, 6000);
    // Versions 1, 2, ... N, exported in order, each complete when it appeared, none left half
    // written (no temporary folder remains).
    let exported: Vec<i64> = outcome.exported.iter().map(|e| e.version).collect();
    let n = exported.len() as i64;
    assert!(n >= 6, "a version every 25 steps of 375: {exported:?}");
    assert_eq!(exported, (1..=n).collect::<Vec<_>>());
    assert_eq!(seen, (1..=n as u64).collect::<BTreeSet<_>>(), "the watcher saw every version");
    assert!(incomplete.is_empty(), "{incomplete:?}");
    let left: Vec<String> = std::fs::read_dir(&base).expect("base").flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(left.len(), n as usize, "only the versions remain in the base folder: {left:?}");

    // The reader switched to newer versions as they came, never back, and ended on the last.
    let versions: Vec<i64> = outcome.predictions.iter().map(|p| p.version).collect();
    assert!(versions.windows(2).all(|w| w[0] <= w[1]), "model_version went back: {versions:?}");
    let served: BTreeSet<i64> = versions.iter().copied().collect();
    assert!(served.len() >= 4, "the reader served several versions: {served:?}");
    assert_eq!(versions.last().copied(), Some(n), "the reader ended on the last version");

    // The drift: the last version exported before the truth changed fits the old truth and fails
    // the new one; the newest version fits the new truth.
    let env = Environment::new();
    let before_change = outcome.exported.iter().filter(|e| e.at < outcome.changed_at).map(|e| e.version).max().expect("a version before the change");
    let old = error_of(&env, &base.join(before_change.to_string()), before).await;
    let old_on_new = error_of(&env, &base.join(before_change.to_string()), after).await;
    let newest_on_new = error_of(&env, &base.join(n.to_string()), after).await;
    assert!(old < 0.2, "version {before_change} learned y = 2x + 1: error {old}");
    assert!(old_on_new > 1.0, "version {before_change} fails y = -x + 3: error {old_on_new}");
    assert!(newest_on_new < 0.2, "version {n} learned y = -x + 3: error {newest_on_new}");
    // And the reader's own predictions: after the change, the newest version's error is small.
    let errors = online_training::error_per_version(&outcome.predictions);
    let (rows, reader_error) = errors[&(n, true)];
    assert!(rows > 0 && reader_error < 0.2, "the reader's error with version {n} after the change: {reader_error} over {rows} rows");
    // Every version loads and predicts (each a complete SavedModel).
    for version in 1..=n {
        error_of(&env, &base.join(version.to_string()), after).await;
    }
}
