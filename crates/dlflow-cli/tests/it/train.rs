//! `dlflow train` as a user runs it: a job file, real node processes, the report, bad jobs,
//! and an interrupted run leaving no process behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn dlflow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dlflow")).args(args).output().expect("run dlflow")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const COUNT_ENTRY: &str = r#"
import os
from dlflow import TFContext

def count_entry(context):
    ctx = TFContext(context)
    counts = [sum(1 for _ in ctx.get_tfdataset()) for _ in range(ctx.get_epochs())]
    print(f"worker {ctx.get_index()} saw {counts}")
    with open(os.path.join(ctx.get_property("out_dir"), f"worker_{ctx.get_index()}.txt"), "w") as f:
        f.write(",".join(map(str, counts)))

def job_error_entry(context):
    from dlflow import JobError
    raise JobError("the job asks for a column this table lacks")

def flaky_entry(context):
    raise ValueError("a failure a restart may get past")

def sleep_entry(context):
    import time
    ctx = TFContext(context)
    with open(os.path.join(ctx.get_property("out_dir"), f"{ctx.get_node_type()}_{ctx.get_index()}.pid"), "w") as f:
        f.write(str(os.getpid()))
    time.sleep(600)
"#;

/// A job folder: the entry file and a job file that runs `function` over 300 generated rows.
fn job(dir: &Path, function: &str, workers: usize) -> PathBuf {
    std::fs::write(dir.join("entries.py"), COUNT_ENTRY).expect("entry");
    let job = format!(
        r#"
epochs = 2

[input]
sql = """
CREATE EXTERNAL TABLE t (x DOUBLE) STORED AS DATAGEN LOCATION 'datagen://' OPTIONS ('number-of-rows' '301');
SELECT x FROM t
"""

[cluster]
workers = {workers}
entry = "entries.py"
function = "{function}"

[properties]
out_dir = "{}"
"#,
        dir.display()
    );
    let path = dir.join("job.toml");
    std::fs::write(&path, job).expect("job file");
    path
}

#[test]
fn a_job_file_trains_and_reports_every_epoch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = job(dir.path(), "count_entry", 2);
    let output = dlflow(&["train", "--job", path.to_str().expect("utf8")]);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // 301 rows, two workers: equal shares, the odd rows trimmed and reported.
    let counts = std::fs::read_to_string(dir.path().join("worker_0.txt")).expect("counts");
    assert_eq!(std::fs::read_to_string(dir.path().join("worker_1.txt")).expect("counts"), counts);
    let share: u64 = counts.split(',').next().and_then(|c| c.parse().ok()).expect("a count");
    assert!((148..=150).contains(&share), "{counts}");
    assert_eq!(counts, format!("{share},{share}"));
    let dropped = 301 - 2 * share;
    assert!(stderr.contains(&format!("epoch 1/2: rows per worker {share} / {share} ({dropped} row(s) dropped")), "{stderr}");
    assert!(stderr.contains(&format!("[worker 1] worker 1 saw [{share}, {share}]")), "node output is shown: {stderr}");
    assert!(stderr.contains(&format!("{} rows fed in all", 4 * share)), "{stderr}");
}

#[test]
fn flags_override_the_job_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = job(dir.path(), "count_entry", 2);
    let output = dlflow(&["train", "--job", path.to_str().expect("utf8"), "--workers", "1", "--epochs", "3"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(std::fs::read_to_string(dir.path().join("worker_0.txt")).expect("counts"), "301,301,301");
    assert!(!dir.path().join("worker_1.txt").exists());
}

#[test]
fn bad_jobs_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "epochs = 2\n[cluster]\nworkerz = 2\n").expect("write");
    let output = dlflow(&["train", "--job", bad.to_str().expect("utf8")]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("bad.toml") && stderr.contains("unknown field `workerz`"), "{stderr}");

    let output = dlflow(&["train", "--sql", "SELECT 1 AS x"]);
    assert!(text(&output.stderr).contains("no node entry"), "{}", text(&output.stderr));

    let output = dlflow(&["train", "--sql", "SELECT 1 AS x", "--entry", "missing.py:train_entry"]);
    assert!(text(&output.stderr).contains("the node entry file missing.py does not exist"), "{}", text(&output.stderr));

    let output = dlflow(&["train", "--sql", "SELECT 1 AS x", "--entry", "train_entry"]);
    assert!(text(&output.stderr).contains("expected FILE:FUNCTION"), "{}", text(&output.stderr));
}

#[test]
fn mistakes_in_the_job_end_it_at_once_and_other_failures_restart_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = job(dir.path(), "count_entry", 2);
    let run = |function: &str| {
        let output = dlflow(&["train", "--job", path.to_str().expect("utf8"), "--entry", &format!("{}:{function}", dir.path().join("entries.py").display()), "--max-failures", "1"]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        stderr
    };
    // An entry the file does not have: every restart would fail the same way.
    let stderr = run("no_such_entry");
    assert!(stderr.contains("has no function 'no_such_entry'"), "{stderr}");
    assert!(!stderr.contains("restarting the cluster"), "not retried: {stderr}");
    // The entry says the job is wrong (dlflow.JobError): not retried either.
    let stderr = run("job_error_entry");
    assert!(stderr.contains("JobError: the job asks for a column this table lacks"), "{stderr}");
    assert!(!stderr.contains("restarting the cluster"), "not retried: {stderr}");
    // Any other exception is a node failure: restarted (here once) before it ends the job.
    let stderr = run("flaky_entry");
    assert!(stderr.contains("a failure a restart may get past"), "{stderr}");
    assert_eq!(stderr.matches("restarting the cluster").count(), 1, "{stderr}");
}

/// Dead, or a zombie whose new parent has not reaped it yet: either way not running.
fn not_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn interrupting_the_cli_leaves_no_node_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = job(dir.path(), "sleep_entry", 2);
    let mut child = Command::new(env!("CARGO_BIN_EXE_dlflow"))
        .args(["train", "--job", path.to_str().expect("utf8"), "--ps", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let pid_files = || -> Vec<u32> {
        std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "pid"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok()?.trim().parse().ok())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while pid_files().len() < 3 {
        assert!(Instant::now() < deadline, "the nodes did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // What Ctrl-C in a terminal does to dlflow (the nodes have their own process group).
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let exit = child.wait().expect("wait");
    assert_eq!(exit.code(), Some(130), "dlflow handles Ctrl-C itself and exits 130");
    let pids = pid_files();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pids.iter().all(|&pid| not_running(pid)) {
        assert!(Instant::now() < deadline, "nodes outlived the interrupted CLI: {pids:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn fit_saves_a_model_that_predict_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let factory = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/estimator/linear_model.py");
    let model = dir.path().join("linear");
    let data = "CREATE EXTERNAL TABLE r (x1 DOUBLE, x2 DOUBLE) STORED AS DATAGEN LOCATION 'datagen://' \
                OPTIONS ('number-of-rows' '2048', 'seed' '5'); SELECT x1, x2, 2 * x1 + 3 * x2 + 1 AS y FROM r";
    let output = dlflow(&[
        "fit", "--sql", data, "--model-factory", &format!("{}:build_model", factory.display()), "--features", "x1,x2",
        "--label", "y", "--learning-rate", "0.1", "--epochs", "10", "--workers", "2", "--output", model.to_str().expect("utf8"),
    ]);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // A line per epoch: rows (2048, all workers), time, rate, loss.
    let last = stderr.lines().find(|l| l.starts_with("epoch 10/10: 2048 rows in ")).unwrap_or_else(|| panic!("{stderr}"));
    assert!(last.contains(" rows/s), loss "), "per-epoch rate and loss are shown: {stderr}");
    assert!(stderr.contains("saved the fitted model"), "{stderr}");
    let fresh = "CREATE EXTERNAL TABLE f (x1 DOUBLE, x2 DOUBLE) STORED AS DATAGEN LOCATION 'datagen://' \
                 OPTIONS ('number-of-rows' '100', 'seed' '9'); SELECT x1, x2 FROM f";
    let predicted = dlflow(&["sql", "--model", &format!("m={}", model.display()), &format!(
        "{}; SELECT max(abs(predict('m', x1, x2) - (2 * x1 + 3 * x2 + 1))) < 0.1 AS close FROM f",
        fresh.rsplit_once(';').expect("two statements").0
    )]);
    assert!(text(&predicted.stdout).contains("true"), "{}{}", text(&predicted.stdout), text(&predicted.stderr));

    let again = dlflow(&["fit", "--sql", data, "--model-factory", &format!("{}:build_model", factory.display()), "--features", "nope", "--label", "y", "--output", dir.path().join("other").to_str().expect("utf8")]);
    assert!(text(&again.stderr).contains("feature column `nope` is not in the table"), "{}", text(&again.stderr));
    let label_as_feature = dlflow(&["fit", "--sql", data, "--model-factory", &format!("{}:build_model", factory.display()), "--features", "x1,y", "--label", "y", "--output", dir.path().join("other").to_str().expect("utf8")]);
    assert!(text(&label_as_feature.stderr).contains("column `y` is both the label and a feature"), "{}", text(&label_as_feature.stderr));
}
