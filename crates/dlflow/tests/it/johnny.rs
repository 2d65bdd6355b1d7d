//! The Johnny example end to end, as examples/johnny.rs runs it: a digits classifier trained by
//! dlflow's Python nodes (real TensorFlow), the camera script serving PNG frames on a socket on a
//! fixed schedule, the SavedModel decoding and labelling them in-process, the door pattern on
//! event time; the exact GRANTED / DENIED lines for the schedule.

#[path = "../../../../examples/johnny.rs"]
#[allow(dead_code)]
mod example;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float32Type, Int64Type};
use dlflow::{Environment, Model, TfClusterConfig};
use futures::StreamExt;
use serde_json::{json, Value};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn digits() -> PathBuf {
    let data = std::env::var_os("DLFLOW_DATA").expect("DLFLOW_DATA is not set: run the tests with scripts/test.sh (source scripts/setup.sh)");
    Path::new(&data).join("digits.parquet")
}

fn i64s(batches: &[RecordBatch], column: &str) -> Vec<i64> {
    batches.iter().flat_map(|b| b.column_by_name(column).expect(column).as_primitive::<Int64Type>().values().to_vec()).collect()
}

/// Trains the example's classifier with `dlflow train`'s API and entry: one worker, 12 epochs.
async fn train(env: &Environment, model_dir: &Path) {
    let rows = env.sql("SELECT pixels, label FROM digits").await.expect("rows");
    let config = TfClusterConfig::builder()
        .worker_count(1)
        .node_entry(repo().join("examples/johnny/train.py"), "train_entry")
        .property("model_dir", model_dir.display().to_string())
        .quiet(true)
        .build()
        .expect("config");
    let report = dlflow::train(&rows, &config, 12).await.expect("train");
    assert_eq!(report.rows_fed(), 12 * 1797, "every image, every epoch");
}

/// For each digit, image ids the model labels right with a probability of at least 0.95 (so
/// that the PNG's 8-bit rounding cannot change the label), lowest first; and the accuracy.
async fn confidently_right(env: &Environment, model_dir: &Path) -> (Vec<Vec<i64>>, f64) {
    let images = env.sql("SELECT id, pixels, label AS truth FROM digits").await.expect("images");
    let labelled = Model::load(model_dir).expect("model").with_signature("pixels").transform(&images).expect("transform");
    let batches = labelled.collect().await.expect("labels");
    let (ids, truth, label) = (i64s(&batches, "id"), i64s(&batches, "truth"), i64s(&batches, "label"));
    let score: Vec<f32> = batches.iter().flat_map(|b| b.column_by_name("score").expect("score").as_primitive::<Float32Type>().values().to_vec()).collect();
    let mut right = vec![Vec::new(); 10];
    let mut correct = 0;
    for i in 0..ids.len() {
        if label[i] == truth[i] {
            correct += 1;
            if score[i] >= 0.95 {
                right[truth[i] as usize].push(ids[i]);
            }
        }
    }
    (right, correct as f64 / ids.len() as f64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn johnny_grants_and_denies_exactly_on_the_schedule() {
    let work = tempfile::tempdir().expect("tempdir");
    let model_dir = work.path().join("model");
    let env = Environment::new();
    env.register_file("digits", digits()).await.expect("digits");
    train(&env, &model_dir).await;
    let (mut right, accuracy) = confidently_right(&env, &model_dir).await;
    assert!(accuracy > 0.9, "the classifier learned the digits: accuracy {accuracy}");

    // The example's schedule, each frame given an image its digit's model label is sure of.
    let schedule: Value = serde_json::from_str(&std::fs::read_to_string(repo().join("examples/johnny/schedule.json")).expect("schedule")).expect("json");
    let mut frames = schedule["frames"].as_array().expect("frames").clone();
    let mut shown = Vec::new();
    for frame in &mut frames {
        let digit = frame["digit"].as_u64().expect("digit") as usize;
        assert!(!right[digit].is_empty(), "enough images of {digit} labelled with confidence");
        let id = right[digit].remove(0);
        frame["image"] = json!(id);
        shown.push(id);
    }
    let schedule_file = work.path().join("schedule.json");
    std::fs::write(&schedule_file, json!({"start": schedule["start"], "frames": frames}).to_string()).expect("write schedule");

    let python = dlflow::layers::dlflow_common::paths::project_venv().join("bin/python");
    let mut camera = Command::new(python)
        .arg(repo().join("examples/johnny/camera.py"))
        .args(["--schedule", schedule_file.to_str().expect("utf8"), "--digits", digits().to_str().expect("utf8")])
        .args(["--speed", "100", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the camera");
    let mut greeting = String::new();
    BufReader::new(camera.stdout.take().expect("stdout")).read_line(&mut greeting).expect("the camera says where it listens");
    let address = greeting.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("camera said: {greeting}")).to_string();

    let decisions = example::watch_doors(&model_dir, &format!("tcp://{address}")).await.expect("watch the doors");
    let run = decisions.map(|d| example::decision(&d.expect("a decision"))).collect::<Vec<Value>>();
    let lines = tokio::time::timeout(Duration::from_secs(120), run).await.expect("the doors decide within 2 minutes");
    assert!(camera.wait().expect("camera").success(), "the camera played the whole schedule");

    // Frames by their place in the schedule (0-based), as (ids, labels, times).
    let at = |frames: &[usize]| {
        let ids: Vec<i64> = frames.iter().map(|&i| shown[i]).collect();
        let labels: Vec<i64> = frames.iter().map(|&i| schedule["frames"][i]["digit"].as_i64().expect("digit")).collect();
        let times: Vec<String> = frames
            .iter()
            .map(|&i| {
                let t = schedule["frames"][i]["t"].as_u64().expect("t");
                format!("2026-01-01T08:{:02}:{:02}.000", t / 60, t % 60)
            })
            .collect();
        (ids, labels, times)
    };
    let line = |decision: &str, door: &str, frames: &[usize]| {
        let (ids, labels, times) = at(frames);
        json!({"decision": decision, "door": door, "ids": ids, "labels": labels, "times": times})
    };
    let expected = vec![
        // 3, 1, 4 at the front door within 20 s.
        line("GRANTED", "front", &[0, 2, 4]),
        // back: 3, (8), 1 and no 4: denied when event time passes 5 + 60 s.
        line("DENIED", "back", &[1, 5]),
        // back: 3 at 100, then the 4 at 118 arrives before the 1 at 110: in event time 3, 1, 4.
        line("GRANTED", "back", &[9, 11, 10]),
        // front: 3 at 70, 1 at 80, the 4 at 140 too late: denied when event time passes 130.
        line("DENIED", "front", &[6, 7]),
        // front: two 3s, then 1 and 4: one grant, for the first 3.
        line("GRANTED", "front", &[13, 15, 16]),
        // side: a lone 3; the camera's end ends event time.
        line("DENIED", "side", &[17]),
    ];
    assert_eq!(lines, expected);
}
