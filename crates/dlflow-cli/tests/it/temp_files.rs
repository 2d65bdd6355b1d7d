//! Every temporary file and folder `dlflow` makes is gone after success, after a failure and
//! after Ctrl-C (SIGINT to the real process), observed through a private TMPDIR per test and
//! the folders the outputs go to (issue 14, point 5).
//!
//! What dlflow makes, and where:
//! - `dlflow predict` / `dlflow sql --output FILE`: `.FILE.*.tmp` beside the output, renamed at
//!   the end (`dlflow_table::sink`);
//! - `dlflow train`: the job's state folder `$DLFLOW_HOME/jobs/TOKEN` (`dlflow::job::state`)
//!   with `attempt.tmp` and the nodes' TMPDIR `tmp/tmp-*`, where Python's and TensorFlow's
//!   temporary files land (`dlflow_cluster::local`); `.dlflow-python-*` in
//!   `$DLFLOW_HOME/python` while the node package is written (`dlflow_cluster::python`);
//! - `dlflow fit`: the fitted model's folder `$TMPDIR/dlflow-fitted-*` (`dlflow::estimator`),
//!   the job's folders, and `.dlflow-model-*` beside the output while it is copied there
//!   (`dlflow::model`).
//!
//! Each test has its own TMPDIR and DLFLOW_HOME (the virtualenv stays `$DLFLOW_VENV`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use dlflow_testkit as common;

/// A private TMPDIR, DLFLOW_HOME and work folder for one test.
struct Sandbox {
    root: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(root.path().join("tmp")).expect("tmp");
        std::fs::create_dir(root.path().join("work")).expect("work");
        std::fs::create_dir(root.path().join("home")).expect("home");
        Sandbox { root }
    }

    fn tmp(&self) -> PathBuf {
        self.root.path().join("tmp")
    }

    fn work(&self) -> PathBuf {
        self.root.path().join("work")
    }

    fn home(&self) -> PathBuf {
        self.root.path().join("home")
    }

    /// The nodes' temporary folders of the running jobs.
    fn node_temp_dirs(&self) -> Vec<PathBuf> {
        walk(&self.home().join("jobs")).into_iter().filter(|p| p.parent().is_some_and(|d| d.ends_with("tmp")) && p.is_dir()).collect()
    }

    fn dlflow(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_dlflow"));
        command.args(args).current_dir(self.work()).env("TMPDIR", self.tmp()).env("DLFLOW_HOME", self.home()).stdin(Stdio::null());
        assert!(std::env::var_os("DLFLOW_VENV").is_some(), "DLFLOW_VENV is not set: run the tests with scripts/test.sh");
        command
    }

    fn run(&self, args: &[&str]) -> (ExitStatus, String) {
        let output = self.dlflow(args).output().expect("run dlflow");
        (output.status, String::from_utf8_lossy(&output.stderr).into_owned())
    }

    /// Starts dlflow, waits until `started` holds, sends SIGINT and waits for it to end.
    fn interrupt(&self, args: &[&str], started: impl Fn(&Sandbox) -> bool) -> ExitStatus {
        let mut child: Child = self.dlflow(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn dlflow");
        let deadline = Instant::now() + Duration::from_secs(120);
        while !started(self) {
            if let Some(status) = child.try_wait().expect("try_wait") {
                panic!("dlflow ended ({status}) before it was interrupted: make the job longer");
            }
            assert!(Instant::now() < deadline, "dlflow did not get to the point of interruption");
            std::thread::sleep(Duration::from_millis(20));
        }
        let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill -INT");
        assert!(sent.success());
        child.wait().expect("wait")
    }

    /// Everything under TMPDIR and the jobs' folder, and the temporary names in the work
    /// folder and dlflow's home (whose node package stays: it is a cache, not a temporary).
    fn leftovers(&self) -> Vec<PathBuf> {
        let mut found = walk(&self.tmp());
        found.extend(walk(&self.home().join("jobs")));
        found.extend(walk(&self.work()).into_iter().chain(walk(&self.home())).filter(|p| is_temporary(p)));
        found
    }

    fn assert_clean(&self, after: &str) {
        let left = self.leftovers();
        assert!(left.is_empty(), "after {after}, temporary files are left: {left:#?}");
    }
}

/// Every file and folder under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        }
        found.push(path);
    }
    found
}

fn is_temporary(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    name.ends_with(".tmp") || name.starts_with(".tmp") || name.starts_with(".dlflow-") || name.starts_with("dlflow-fitted-")
}

/// Files of the work folder whose names start with `.` (dlflow's half-written outputs).
fn hidden_in(dir: &Path) -> bool {
    std::fs::read_dir(dir).into_iter().flatten().flatten().any(|e| e.file_name().to_string_lossy().starts_with('.'))
}

fn refs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

fn datagen(rows: u64) -> String {
    format!(
        "CREATE EXTERNAL TABLE t (x FLOAT) STORED AS DATAGEN LOCATION 'datagen://' OPTIONS ('number-of-rows' '{rows}', 'seed' '3'); \
         SELECT x FROM t"
    )
}

fn linear() -> String {
    common::model("linear").display().to_string()
}

#[test]
fn predict_leaves_only_its_output_after_success_failure_and_ctrl_c() {
    let sandbox = Sandbox::new();
    let (status, stderr) = sandbox.run(&["predict", "--model", &linear(), "--sql", &datagen(1000), "--output", "out.parquet"]);
    assert!(status.success(), "{stderr}");
    assert!(sandbox.work().join("out.parquet").is_file());
    sandbox.assert_clean("a prediction");

    // Fails after the output file was opened: a null in a later batch.
    let rows: Vec<String> = (0..50).map(|i| if i == 40 { format!("{i},") } else { format!("{i},{i}.5") }).collect();
    std::fs::write(sandbox.work().join("in.csv"), format!("id,x\n{}\n", rows.join("\n"))).expect("csv");
    let (status, stderr) = sandbox.run(&["predict", "--model", &linear(), "--input", "in.csv", "--batch-size", "4", "--output", "failed.csv"]);
    assert!(!status.success() && stderr.contains("null"), "{stderr}");
    assert!(!sandbox.work().join("failed.csv").exists(), "no half output");
    sandbox.assert_clean("a failed prediction");

    // Ctrl-C once the output is being written (its hidden temporary file exists).
    let status = sandbox.interrupt(
        &["predict", "--model", &linear(), "--sql", &datagen(500_000_000), "--output", "big.csv"],
        |s| hidden_in(&s.work()),
    );
    assert_eq!(status.code(), Some(130), "dlflow exits 130 on Ctrl-C");
    assert!(!sandbox.work().join("big.csv").exists(), "no half output");
    sandbox.assert_clean("Ctrl-C during a prediction");
}

const ENTRIES: &str = r#"
import os, tempfile, time
from dlflow import TFContext

def count_entry(context):
    ctx = TFContext(context)
    # A temporary file of the entry's own: it lands in the job folder, removed with it.
    handle, _ = tempfile.mkstemp(prefix="entry-")
    os.close(handle)
    sum(1 for _ in ctx.get_tfdataset())

def failing_entry(context):
    tempfile.mkdtemp(prefix="entry-")
    raise ValueError("the entry fails on purpose")

def sleep_entry(context):
    ctx = TFContext(context)
    tempfile.mkdtemp(prefix="entry-")
    with open(os.path.join(ctx.get_property("out_dir"), f"started_{ctx.get_index()}"), "w") as f:
        f.write("yes")
    time.sleep(600)
"#;

fn train_args<'a>(entry: &'a str, sql: &'a str, out_dir: &'a str) -> Vec<&'a str> {
    vec!["train", "--entry", entry, "--sql", sql, "--workers", "2", "--property", out_dir]
}

#[test]
fn train_removes_its_job_folder_after_success_failure_and_ctrl_c() {
    let sandbox = Sandbox::new();
    let entries = sandbox.root.path().join("entries.py");
    std::fs::write(&entries, ENTRIES).expect("entries");
    let marks = sandbox.root.path().join("marks");
    std::fs::create_dir(&marks).expect("marks");
    let out_dir = format!("out_dir={}", marks.display());
    let sql = datagen(300);
    let entry = |function: &str| format!("{}:{function}", entries.display());

    let (status, stderr) = sandbox.run(&train_args(&entry("count_entry"), &sql, &out_dir));
    assert!(status.success(), "{stderr}");
    sandbox.assert_clean("training");

    let (status, stderr) = sandbox.run(&train_args(&entry("failing_entry"), &sql, &out_dir));
    assert!(!status.success() && stderr.contains("the entry fails on purpose"), "{stderr}");
    sandbox.assert_clean("a failed training");

    let started = |_: &Sandbox| (0..2).all(|i| marks.join(format!("started_{i}")).exists());
    let status = sandbox.interrupt(&train_args(&entry("sleep_entry"), &sql, &out_dir), started);
    assert_eq!(status.code(), Some(130), "dlflow exits 130 on Ctrl-C");
    sandbox.assert_clean("Ctrl-C during training");
}

#[test]
fn fit_leaves_only_the_model_after_success_failure_and_ctrl_c() {
    let sandbox = Sandbox::new();
    let factory = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/estimator/linear_model.py");
    let factory = format!("{}:build_model", factory.display());
    let data = |rows: u64| {
        format!(
            "CREATE EXTERNAL TABLE r (x1 DOUBLE, x2 DOUBLE) STORED AS DATAGEN LOCATION 'datagen://' \
             OPTIONS ('number-of-rows' '{rows}', 'seed' '5'); SELECT x1, x2, 2 * x1 + 3 * x2 + 1 AS y FROM r"
        )
    };
    let fit = |sql: &str, factory: &str, epochs: &str, output: &str| -> Vec<String> {
        ["fit", "--sql", sql, "--model-factory", factory, "--features", "x1,x2", "--label", "y", "--epochs", epochs, "--output", output]
            .map(String::from)
            .to_vec()
    };

    let (status, stderr) = sandbox.run(&refs(&fit(&data(256), &factory, "1", "model")));
    assert!(status.success(), "{stderr}");
    assert!(sandbox.work().join("model").join("saved_model.pb").is_file(), "{stderr}");
    sandbox.assert_clean("a fit");

    let bad_factory = sandbox.root.path().join("bad_model.py");
    std::fs::write(&bad_factory, "def build_model():\n    raise ValueError('no model today')\n").expect("factory");
    let failing = fit(&data(256), &format!("{}:build_model", bad_factory.display()), "1", "failed_model");
    let (status, stderr) = sandbox.run(&refs(&failing));
    assert!(!status.success() && stderr.contains("no model today"), "{stderr}");
    assert!(!sandbox.work().join("failed_model").exists(), "no half model");
    sandbox.assert_clean("a failed fit");

    // Ctrl-C once the nodes train (the job folder and the fit folder exist).
    let long = fit(&data(50_000_000), &factory, "100", "interrupted_model");
    let training = |s: &Sandbox| !s.node_temp_dirs().is_empty();
    let status = sandbox.interrupt(&refs(&long), training);
    assert_eq!(status.code(), Some(130), "dlflow exits 130 on Ctrl-C");
    assert!(!sandbox.work().join("interrupted_model").exists(), "no half model");
    sandbox.assert_clean("Ctrl-C during a fit");
}
