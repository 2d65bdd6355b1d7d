//! Seed 003's "Johnny", on real data: a camera at each door shows digit images; a model trained
//! by dlflow labels each image from its PNG bytes; the door opens when 3, 1, 4 are shown in
//! that order within 60 seconds (event time), and an attempt that runs out of time is denied.
//!
//! ```text
//! camera (examples/johnny/camera.py)          NDJSON frames: id, door, ts, image (base64url PNG)
//!   -> stream table, watermark ts - 10 s       tcp://HOST:PORT or a followed directory
//!   -> Model::transform                        the SavedModel decodes the PNG and labels it
//!   -> Pattern 3, 1, 4 within 60 s per door    in event-time order, by the watermark
//!   -> one NDJSON line per decision            {"decision": "GRANTED", "door": "front", "ids": [...], ...}
//! ```
//!
//! Run it (the model first, then the camera, then the doors):
//!
//! ```sh
//! source scripts/setup.sh
//! dlflow train --input "$DLFLOW_DATA/digits.parquet" --entry examples/johnny/train.py:train_entry \
//!     --epochs 12 --property model_dir=/tmp/johnny-model
//! $DLFLOW_VENV/bin/python examples/johnny/camera.py --schedule examples/johnny/schedule.json \
//!     --digits "$DLFLOW_DATA/digits.parquet" --speed 20 --listen 127.0.0.1:7000 &
//! cargo run --release --example johnny -- /tmp/johnny-model tcp://127.0.0.1:7000
//! ```
//!
//! With `--dir /tmp/camera` instead of `--listen`, the camera drops one file per frame into a
//! folder, and `johnny /tmp/johnny-model /tmp/camera` follows it until Ctrl-C.

use std::path::Path;
use std::time::Duration;

use dlflow::pattern::{Pattern, PatternEvent, PatternStream};
use dlflow::{Environment, Model};
use serde_json::{json, Value};

/// A labelled camera frame: the image's id and the digit the model saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The image's id (in scikit-learn's digits).
    pub id: i64,
    /// The model's label.
    pub label: i64,
}

/// The secret: 3, then 1, then 4, within 60 seconds of the 3.
pub fn door_code() -> Pattern<Frame> {
    Pattern::begin("3", |f: &Frame| f.label == 3)
        .followed_by("1", |f| f.label == 1)
        .followed_by("4", |f| f.label == 4)
        .within(Duration::from_secs(60))
}

/// How far out of order frames may arrive (the watermark's delay).
pub const OUT_OF_ORDER: &str = "10s";

/// The decisions for the frames at `camera` (`tcp://HOST:PORT`, whose end ends the stream, or a
/// directory followed for new files), labelled by the SavedModel in `model_dir`.
pub async fn watch_doors(model_dir: &Path, camera: &str) -> dlflow::Result<PatternStream<String, Frame>> {
    let env = Environment::new();
    let end_with_peer = if camera.starts_with("tcp://") { ", 'reconnect' 'false'" } else { "" };
    let frames = env
        .sql(&format!(
            "CREATE UNBOUNDED EXTERNAL TABLE frames (id BIGINT, door VARCHAR, ts TIMESTAMP, image VARCHAR)
               STORED AS JSON LOCATION '{camera}'
               OPTIONS ('watermark.column' 'ts', 'watermark.delay' '{OUT_OF_ORDER}'{end_with_peer});
             SELECT id, door, ts, image FROM frames"
        ))
        .await?;
    // The model's `serving_default` takes the `image` column (PNG bytes, base64url) and adds
    // `label` (and `score`, not needed here).
    let labelled = Model::load(model_dir)?.with_outputs(["label"]).transform(&frames)?;
    door_code().run(&labelled, "ts", |row| Ok((row.string("door")?, Frame { id: row.i64("id")?, label: row.i64("label")? }))).await
}

/// A decision as one JSON object: GRANTED or DENIED, the door, the frames' ids, labels and
/// event times.
pub fn decision(event: &PatternEvent<String, Frame>) -> Value {
    let frames = event.events();
    json!({
        "decision": if event.is_match() { "GRANTED" } else { "DENIED" },
        "door": event.key(),
        "ids": frames.iter().map(|f| f.event.id).collect::<Vec<_>>(),
        "labels": frames.iter().map(|f| f.event.label).collect::<Vec<_>>(),
        "times": frames.iter().map(|f| event_time(f.time)).collect::<Vec<_>>(),
    })
}

/// `2026-01-01T08:00:12.000` (UTC).
fn event_time(time: Duration) -> String {
    let nanos = i64::try_from(time.as_nanos()).unwrap_or(i64::MAX);
    arrow::temporal_conversions::timestamp_ns_to_datetime(nanos).map_or_else(|| format!("{nanos} ns"), |t| t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string())
}

#[allow(dead_code)] // The end-to-end test includes this file as a module and calls the rest.
#[tokio::main]
async fn main() -> dlflow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model_dir, camera] = args.as_slice() else {
        eprintln!("usage: johnny MODEL_DIR tcp://HOST:PORT|DIR");
        std::process::exit(2);
    };
    // Ctrl-C ends the camera stream gracefully: event time runs out, pending attempts are denied.
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            dlflow::layers::dlflow_table::stream::request_stop();
        }
    });
    use futures::StreamExt;
    let mut decisions = watch_doors(Path::new(model_dir), camera).await?;
    while let Some(event) = decisions.next().await {
        println!("{}", decision(&event?));
    }
    if decisions.late_events() > 0 {
        eprintln!("{} frames came later than {OUT_OF_ORDER} out of order and were dropped", decisions.late_events());
    }
    Ok(())
}
