//! What `dlflow` prints and leaves behind, as a user sees it: the loss curve at the end of
//! training (and its SVG, checked against TensorBoard's own reading of the event files),
//! `--log-level` / `DLFLOW_LOG`, TensorFlow's start-up lines (hidden unless `--tf-log`),
//! `report(...)` lines, and the files it writes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dlflow_testkit as common;

fn dlflow() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dlflow"));
    command.env_remove("DLFLOW_LOG").env_remove("DLFLOW_TF_LOG").env_remove("TF_CPP_MIN_LOG_LEVEL");
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("run dlflow")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// TensorFlow's start-up lines on a CPU machine (see `dlflow_tf::logs`).
fn tensorflow_start_up_lines(output: &str) -> Vec<&str> {
    output
        .lines()
        .filter(|l| ["oneDNN custom operations", "Could not find cuda drivers", "cuInit", "absl::InitializeLog"].iter().any(|n| l.contains(n)))
        .collect()
}

fn python() -> PathBuf {
    PathBuf::from(std::env::var_os("DLFLOW_VENV").expect("DLFLOW_VENV is not set: run scripts/test.sh")).join("bin/python")
}

/// An entry that trains a one-unit model on x -> 2x + 1 with the TensorBoard callback (per-step
/// loss every 5 steps) and reports a milestone; every worker saves (a collective), the chief keeps it.
const ENTRY: &str = r#"
import shutil, tempfile
import tensorflow as tf
from dlflow import TFContext, tensorboard_callback

def train_entry(context):
    ctx = TFContext(context)
    ctx.export_tf_config()
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        model = tf.keras.Sequential([tf.keras.Input(shape=(1,)), tf.keras.layers.Dense(1)])
        model.compile(optimizer=tf.keras.optimizers.Adam(0.1), loss="mse")
    dataset = ctx.get_tfdataset(features="x", label="y").batch(16)
    model.fit(dataset, epochs=ctx.get_epochs(), verbose=0, callbacks=[tensorboard_callback(ctx, update_freq=5)])
    ctx.report("milestone", worker=ctx.get_index(), note="fitted")
    target = ctx.get_property("model_dir") if ctx.is_chief() else tempfile.mkdtemp()
    model.save(target)
    if not ctx.is_chief():
        shutil.rmtree(target)

def import_entry(context):
    import tensorflow as tf
    print("tensorflow", tf.__version__, "imported")
"#;

fn write_entry(dir: &Path) -> PathBuf {
    let path = dir.join("entry.py");
    std::fs::write(&path, ENTRY).expect("entry");
    path
}

const SAMPLES: &str = "CREATE EXTERNAL TABLE p (x FLOAT) STORED AS DATAGEN LOCATION 'datagen://' \
                       OPTIONS ('number-of-rows' '640', 'seed' '3'); SELECT x, 2 * x + 1 AS y FROM p";

/// The values TensorBoard's own reader finds in `log_dir`, by tag: `run tag step value` lines.
fn tensorboard_reads(log_dir: &Path) -> Vec<(String, String, i64, f64)> {
    let script = r#"
import sys, os
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.util import tensor_util
root = sys.argv[1]
for run in sorted(os.listdir(root)):
    acc = ea.EventAccumulator(os.path.join(root, run), size_guidance={ea.TENSORS: 0})
    acc.Reload()
    for tag in ("epoch_loss", "batch_loss"):
        if tag in acc.Tags()["tensors"]:
            for e in acc.Tensors(tag):
                print(run, tag, e.step, repr(float(tensor_util.make_ndarray(e.tensor_proto))))
"#;
    let output = Command::new(python()).args(["-c", script]).arg(log_dir).env("TF_CPP_MIN_LOG_LEVEL", "3").output().expect("python");
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout)
        .lines()
        .map(|line| {
            let parts: Vec<&str> = line.split(' ').collect();
            (parts[0].to_string(), parts[1].to_string(), parts[2].parse().expect("step"), parts[3].parse().expect("value"))
        })
        .collect()
}

/// The numbers the SVG keeps in `<desc id="dlflow-loss-data">`, as (run, tag, step, value).
fn svg_numbers(svg: &str) -> Vec<(String, String, i64, f64)> {
    let start = svg.find("<desc id=\"dlflow-loss-data\">").expect("the data element") + "<desc id=\"dlflow-loss-data\">".len();
    let end = start + svg[start..].find("</desc>").expect("its end");
    let json = svg[start..end].replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&");
    let data: serde_json::Value = serde_json::from_str(&json).expect("json");
    let mut numbers = Vec::new();
    for kind in ["per_epoch", "per_step"] {
        for series in data[kind].as_array().expect(kind) {
            let steps = series["steps"].as_array().expect("steps");
            let values = series["values"].as_array().expect("values");
            for (step, value) in steps.iter().zip(values) {
                numbers.push((
                    series["run"].as_str().expect("run").to_string(),
                    series["tag"].as_str().expect("tag").to_string(),
                    step.as_i64().expect("step"),
                    value.as_f64().expect("value"),
                ));
            }
        }
    }
    numbers
}

#[test]
fn training_draws_the_loss_curve_and_its_svg_holds_the_event_files_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let entry = write_entry(dir.path());
    let model_dir = dir.path().join("linear");
    let output = run(dlflow().args([
        "train", "--sql", SAMPLES, "--entry", &format!("{}:train_entry", entry.display()), "--workers", "2", "--epochs", "3",
        "--property", &format!("model_dir={}", model_dir.display()),
    ]));
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");

    // The chief's events, beside the model; no other worker wrote any.
    let events = dir.path().join("linear.tensorboard");
    let runs: Vec<String> = std::fs::read_dir(&events).expect("events").map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(runs, ["train"], "{runs:?}");
    assert_eq!(std::fs::read_dir(events.join("train")).expect("train").count(), 1, "one event file: the chief's");

    // The terminal curve, then the SVG with the same numbers as TensorBoard reads.
    assert!(stderr.contains("loss per epoch") && stderr.contains("loss per step"), "{stderr}");
    assert!(stderr.contains(&format!("loss curve: {}", dir.path().join("linear.loss.svg").display())), "{stderr}");
    let svg = std::fs::read_to_string(dir.path().join("linear.loss.svg")).expect("the SVG");
    assert!(svg.starts_with("<svg") && svg.contains("<polyline"), "{svg}");
    let ours = svg_numbers(&svg);
    let theirs = tensorboard_reads(&events);
    assert_eq!(ours.iter().filter(|n| n.1 == "epoch_loss").count(), 3, "one loss per epoch: {ours:?}");
    assert!(ours.iter().filter(|n| n.1 == "batch_loss").count() >= 3, "the loss every 5 steps: {ours:?}");
    let mut sorted_ours = ours.clone();
    sorted_ours.sort_by(|a, b| (&a.0, &a.1, a.2).cmp(&(&b.0, &b.1, b.2)));
    let mut sorted_theirs = theirs.clone();
    sorted_theirs.sort_by(|a, b| (&a.0, &a.1, a.2).cmp(&(&b.0, &b.1, b.2)));
    assert_eq!(sorted_ours.len(), sorted_theirs.len(), "as many numbers in the SVG as in the event files:\n{sorted_ours:?}\n{sorted_theirs:?}");
    for (ours, theirs) in sorted_ours.iter().zip(&sorted_theirs) {
        // Exactly, at the float32 precision the events store (serde_json's default parser may
        // be one unit off in the last place of a double).
        assert_eq!((&ours.0, &ours.1, ours.2, ours.3 as f32), (&theirs.0, &theirs.1, theirs.2, theirs.3 as f32), "the SVG's numbers are the event files' numbers");
    }
    let epochs: Vec<f64> = sorted_ours.iter().filter(|n| n.1 == "epoch_loss").map(|n| n.3).collect();
    assert!(epochs[2] < epochs[0], "the loss falls: {epochs:?}");

    // What the entry reported, on its own line per worker.
    assert!(stderr.contains("[worker 0] report: milestone note=fitted worker=0"), "{stderr}");
    assert!(stderr.contains("[worker 1] report: milestone note=fitted worker=1"), "{stderr}");
    // Quiet by default: no TensorFlow start-up lines from the nodes, no dlflow info logs.
    assert_eq!(tensorflow_start_up_lines(&stderr), Vec::<&str>::new(), "{stderr}");
    assert!(!stderr.contains("started a node"), "{stderr}");
}

#[test]
fn tensorflow_start_up_lines_show_only_with_tf_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let entry = write_entry(dir.path());
    let train = |extra: &[&str]| {
        let mut command = dlflow();
        command.args(extra).args(["train", "--entry", &format!("{}:import_entry", entry.display())]);
        text(&run(&mut command).stderr)
    };
    let quiet = train(&[]);
    assert!(quiet.contains("[worker 0] tensorflow 2."), "{quiet}");
    assert_eq!(tensorflow_start_up_lines(&quiet), Vec::<&str>::new(), "{quiet}");
    let loud = train(&["--tf-log"]);
    assert!(tensorflow_start_up_lines(&loud).iter().any(|l| l.starts_with("[worker 0]")), "the nodes' lines with --tf-log: {loud}");

    // In-process: loading a SavedModel.
    let linear = common::model("linear");
    let inspect = |command: &mut Command| run(command.args(["model", "inspect"]).arg(&linear));
    let quiet = inspect(&mut dlflow());
    assert!(quiet.status.success());
    assert_eq!(tensorflow_start_up_lines(&text(&quiet.stderr)), Vec::<&str>::new(), "{}", text(&quiet.stderr));
    let loud = inspect(dlflow().arg("--tf-log"));
    assert!(!tensorflow_start_up_lines(&text(&loud.stderr)).is_empty(), "in-process lines with --tf-log: {}", text(&loud.stderr));
    let loud = inspect(dlflow().env("DLFLOW_TF_LOG", "1"));
    assert!(!tensorflow_start_up_lines(&text(&loud.stderr)).is_empty(), "DLFLOW_TF_LOG=1 is the flag");
}

#[test]
fn log_levels_tell_the_story_of_a_job_without_colours_in_a_pipe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let entry = dir.path().join("count.py");
    std::fs::write(&entry, "from dlflow import TFContext\ndef count(context):\n    ctx = TFContext(context)\n    [sum(1 for _ in ctx.get_tfdataset()) for _ in range(ctx.get_epochs())]\n").expect("entry");
    let args = |command: &mut Command| {
        command.args([
            "train", "--sql", "CREATE EXTERNAL TABLE t (x DOUBLE) STORED AS DATAGEN LOCATION 'datagen://' OPTIONS ('number-of-rows' '101'); SELECT x FROM t",
            "--entry", &format!("{}:count", entry.display()), "--workers", "2", "--epochs", "2",
        ]);
        let output = run(command);
        assert!(output.status.success(), "{}", text(&output.stderr));
        text(&output.stderr)
    };
    let quiet = args(&mut dlflow());
    assert!(!quiet.contains(" INFO "), "warnings only by default: {quiet}");
    for logged in [args(dlflow().args(["--log-level", "info"])), args(dlflow().env("DLFLOW_LOG", "info"))] {
        for event in [
            "planned the input",
            "started a node",
            "node registered",
            "every node registered",
            "handing out the cluster spec",
            "epoch started",
            "epoch ended: rows dealt to a worker",
            "node read an epoch",
            "node finished its entry",
        ] {
            assert!(logged.contains(event), "`{event}` is logged: {logged}");
        }
        for node in ["worker 0", "worker 1"] {
            // It ended on its own, or dlflow stopped it once its entry had finished.
            assert!(
                logged.lines().any(|l| (l.contains("node exited") || l.contains("stopped a node")) && l.contains(&format!("node={node}"))),
                "{node}'s end is logged: {logged}"
            );
        }
        assert!(
            logged.lines().any(|l| l.contains("epoch ended") && l.contains("dropped=") && !l.contains("dropped=0")),
            "101 rows for 2 workers: a row dropped, and said so: {logged}"
        );
        assert!(!logged.contains('\u{1b}'), "no colour codes in a pipe: {logged}");
    }
    let bad = run(dlflow().args(["--log-level", "dlflow=loud", "model", "inspect", "x"]));
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad.stderr));
    assert!(text(&bad.stderr).contains("--log-level"), "{}", text(&bad.stderr));
}

#[test]
fn output_files_follow_the_umask_and_arrows_is_an_ipc_stream() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let query = "CREATE EXTERNAL TABLE t (x FLOAT) STORED AS DATAGEN LOCATION 'datagen://' OPTIONS ('number-of-rows' '10'); SELECT x FROM t";
    for name in ["out.csv", "out.parquet", "out.arrow", "out.arrows"] {
        let path = dir.path().join(name);
        // Through a shell, so that the umask is the one a user's shell sets.
        let status = Command::new("sh")
            .args(["-c", "umask 022 && exec \"$0\" sql \"$1\" --output \"$2\""])
            .arg(env!("CARGO_BIN_EXE_dlflow"))
            .args([query, path.to_str().expect("utf8")])
            .status()
            .expect("sh");
        assert!(status.success(), "{name}");
        let mode = std::fs::metadata(&path).expect("written").permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "{name}: rw-r--r-- under umask 022, got {mode:o}");
    }
    let stream = std::fs::read(dir.path().join("out.arrows")).expect("arrows");
    assert_eq!(&stream[..4], &[0xff; 4], ".arrows starts with an IPC stream message, not the ARROW1 file magic");
    let file = std::fs::read(dir.path().join("out.arrow")).expect("arrow");
    assert_eq!(&file[..6], b"ARROW1", ".arrow is an IPC file");
    // Both read back.
    for name in ["out.arrow", "out.arrows"] {
        let output = run(dlflow().args(["sql", "--table", dir.path().join(name).to_str().expect("utf8"), "SELECT count(*) AS n FROM out"]));
        assert!(text(&output.stdout).contains("| 10"), "{name}: {}{}", text(&output.stdout), text(&output.stderr));
    }
}

#[test]
fn confusing_errors_read_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let linear = common::model("linear").display().to_string();
    let csv = dir.path().join("points.csv");
    std::fs::write(&csv, "x\n0.5\n1.5\n").expect("csv");

    // `--table FILE` is named after the file.
    let output = run(dlflow().args(["sql", "--table", csv.to_str().expect("utf8"), "SELECT sum(x) AS total FROM points"]));
    assert!(output.status.success() && text(&output.stdout).contains("2.0"), "{}{}", text(&output.stdout), text(&output.stderr));

    // A malformed CSV is named as given, not as an object-store path without its leading `/`.
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "x\n1\nabc,3\n").expect("csv");
    let stderr = text(&run(dlflow().args(["sql", "--table", bad.to_str().expect("utf8"), "SELECT * FROM bad"])).stderr);
    let given = bad.display().to_string();
    assert!(stderr.contains(&format!("cannot read '{given}'")) && stderr.contains("line 3"), "{stderr}");
    assert!(!stderr.replace(&given, "").contains(given.trim_start_matches('/')), "{stderr}");

    // A missing output folder is named, not the hidden temporary file.
    let missing = dir.path().join("no/such/folder/out.csv");
    let output = run(dlflow().args(["predict", "--model", &linear, "--input", csv.to_str().expect("utf8"), "--output", missing.to_str().expect("utf8")]));
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("the folder {} does not exist", dir.path().join("no/such/folder").display())), "{stderr}");
    assert!(!stderr.contains(".out.csv."), "not the hidden temporary file: {stderr}");

    // An output named like an input column points at the command line's flag.
    let both = dir.path().join("both.csv");
    std::fs::write(&both, "x,y\n0.5,1\n").expect("csv");
    let stderr = text(&run(dlflow().args(["predict", "--model", &linear, "--input", both.to_str().expect("utf8")])).stderr);
    assert!(stderr.contains("--output-column") && !stderr.contains("PredictOptions"), "{stderr}");

    // --batch-size 0 is a flag error; so are the other counts.
    for args in [vec!["predict", "--model", &linear, "--input", "x.csv", "--batch-size", "0"], vec!["fit", "--epochs", "0"], vec!["train", "--workers", "0"]] {
        let output = run(dlflow().args(&args));
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("at least 1"), "{args:?}: {stderr}");
    }

    // `--job`'s help points at the job file's documentation, not at itself.
    let help = text(&run(dlflow().args(["train", "--help"])).stdout);
    assert!(help.contains("docs/guide/cli.md") && !help.contains("see `dlflow train --help`"), "{help}");

    // Flag errors: `error:`, the usage, exit code 2 (cli.md says so).
    let output = run(dlflow().args(["predict", "--no-such-flag"]));
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with("error: ") && stderr.contains("Usage:"), "{stderr}");
}
