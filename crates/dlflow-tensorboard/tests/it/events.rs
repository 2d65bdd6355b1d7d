//! Event files written by the real writers (TensorFlow's `tf.summary`, and TensorBoard's own
//! writer for TF1-style `simple_value` summaries), read by dlflow and compared with what
//! TensorBoard's own reader (`EventAccumulator`) reads from the same files.

use std::path::{Path, PathBuf};
use std::process::Command;

use dlflow_tensorboard::{LossCurve, read_scalars};

fn python() -> PathBuf {
    let venv = std::env::var_os("DLFLOW_VENV").map(PathBuf::from).expect(
        "DLFLOW_VENV is not set: run the tests with scripts/test.sh (or `source scripts/setup.sh` first), which \
         makes the project virtualenv with tensorflow and tensorboard",
    );
    venv.join("bin/python")
}

/// Runs a Python script with the project's virtualenv; returns its stdout.
fn run_python(script: &str, dir: &Path) -> String {
    let output = Command::new(python())
        .args(["-c", script])
        .arg(dir)
        .env("TF_CPP_MIN_LOG_LEVEL", "3")
        .output()
        .expect("python");
    assert!(output.status.success(), "python failed:\n{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Writes TF2 scalars (tensors) with `tf.summary` in `train/`, TF1 `simple_value` scalars with
/// TensorBoard's writer in `validation/`, a histogram and a text summary that are not scalars.
const WRITE: &str = r#"
import sys, os
import tensorflow as tf
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

log_dir = sys.argv[1]
writer = tf.summary.create_file_writer(os.path.join(log_dir, "train"))
with writer.as_default():
    for epoch, loss in enumerate([0.9, 0.31, 0.0123, 2.5e-14]):
        tf.summary.scalar("epoch_loss", loss, step=epoch)
        tf.summary.scalar("epoch_mae", loss / 2, step=epoch)
    for step in range(0, 40, 10):
        tf.summary.scalar("batch_loss", 1.0 / (step + 1), step=step)
    tf.summary.scalar("epoch_lr", tf.constant(0.5, tf.float64), step=0)
    tf.summary.histogram("weights", [1.0, 2.0, 3.0], step=0)
    tf.summary.text("note", "not a number", step=0)
writer.close()

old = EventFileWriter(os.path.join(log_dir, "validation"))
for epoch, loss in enumerate([1.1, 0.5, 0.02, 1e-10]):
    value = summary_pb2.Summary.Value(tag="epoch_loss", simple_value=loss)
    old.add_event(event_pb2.Event(step=epoch, wall_time=1700000000.0 + epoch, summary=summary_pb2.Summary(value=[value])))
old.close()
"#;

/// Prints `run tag step value` for every scalar TensorBoard's own reader finds.
const READ: &str = r#"
import sys, os
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.util import tensor_util

log_dir = sys.argv[1]
for run in sorted(os.listdir(log_dir)):
    acc = ea.EventAccumulator(os.path.join(log_dir, run), size_guidance={ea.TENSORS: 0, ea.SCALARS: 0})
    acc.Reload()
    tags = acc.Tags()
    for tag in sorted(tags["scalars"]):
        for e in acc.Scalars(tag):
            print(run, tag, e.step, repr(float(e.value)))
    for tag in sorted(tags["tensors"]):
        for e in acc.Tensors(tag):
            array = tensor_util.make_ndarray(e.tensor_proto)
            if array.size == 1 and array.dtype.kind == "f":
                print(run, tag, e.step, repr(float(array.reshape(()))))
"#;

#[test]
fn scalars_read_by_dlflow_equal_what_tensorboard_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    run_python(WRITE, dir.path());
    let mut expected: Vec<String> = run_python(READ, dir.path()).lines().map(str::to_string).collect();
    expected.sort();

    let series = read_scalars(dir.path()).expect("read");
    let mut ours: Vec<String> = series
        .iter()
        .flat_map(|s| s.points.iter().map(move |p| format!("{} {} {} {:?}", s.run, s.tag, p.step, p.value)))
        .collect();
    ours.sort();
    assert_eq!(ours.len(), expected.len(), "ours:\n{}\nTensorBoard's:\n{}", ours.join("\n"), expected.join("\n"));
    for (a, b) in ours.iter().zip(&expected) {
        let (a_head, a_value) = a.rsplit_once(' ').expect("value");
        let (b_head, b_value) = b.rsplit_once(' ').expect("value");
        assert_eq!(a_head, b_head);
        let (a_value, b_value): (f64, f64) = (a_value.parse().expect("ours"), b_value.parse().expect("theirs"));
        assert_eq!(a_value, b_value, "{a_head}");
    }
    assert!(series.iter().all(|s| s.tag != "weights" && s.tag != "note"), "histograms and text are not scalars");

    let curve = LossCurve::from_series(series);
    assert_eq!(curve.per_epoch.iter().map(|s| s.run.as_str()).collect::<Vec<_>>(), ["train", "validation"]);
    let validation: Vec<f64> = curve.per_epoch[1].points.iter().map(|p| p.value).collect();
    assert_eq!(validation, [1.1f32, 0.5, 0.02, 1e-10].map(f64::from), "simple_value is a float32");
    assert_eq!(curve.per_step[0].points.iter().map(|p| p.step).collect::<Vec<_>>(), [0, 10, 20, 30]);
    let text = curve.to_text(40);
    assert!(text.contains("loss per epoch (log scale)   * train  o validation") && text.contains("loss per step"), "{text}");
}
