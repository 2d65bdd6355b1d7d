//! The `dlflow` binary as a user runs it: real processes, real files, real TensorFlow.

use std::path::Path;
use std::process::{Command, Output};

use dlflow_testkit as common;

fn dlflow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dlflow")).args(args).output().expect("run dlflow")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A failed run: exit code 1, a one-line `error:` naming the problem, never a panic.
fn assert_clean_failure(output: &Output) -> String {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn model_arg(name: &str) -> String {
    common::model(name).display().to_string()
}

#[test]
fn model_inspect_prints_signatures_inputs_and_outputs() {
    let output = dlflow(&["model", "inspect", &model_arg("linear")]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(stdout.contains("serving_default (default)"), "{stdout}");
    assert!(stdout.contains("regress"), "{stdout}");
    let x_line = stdout.lines().find(|l| l.contains(" input ") && l.contains(" x ")).unwrap_or_else(|| panic!("no input x row: {stdout}"));
    assert!(x_line.contains("float32") && x_line.contains("[-1, 1]"), "{x_line}");
    assert!(stdout.contains("TensorFlow 2."), "{stdout}");
}

#[test]
fn predict_from_csv_to_parquet_writes_every_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "x\n0.0\n0.5\n1.0\n").expect("write");
    let out = dir.path().join("out.parquet");
    let output = dlflow(&["predict", "--model", &model_arg("linear"), "--input", input.to_str().expect("utf8"), "--output", out.to_str().expect("utf8")]);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("wrote 3 rows"), "{stderr}");
    // Read it back through the CLI itself.
    let check = dlflow(&["sql", "--table", &format!("p={}", out.display()), "SELECT CAST(SUM(y) AS DOUBLE) AS total FROM p"]);
    assert!(text(&check.stdout).contains("| 6.0"), "y = 1 + 2 + 3: {}", text(&check.stdout));
}

#[test]
fn predict_over_generated_rows_prints_the_first_rows_and_a_summary() {
    let sql = "CREATE EXTERNAL TABLE t (x FLOAT) STORED AS DATAGEN LOCATION 'datagen://' OPTIONS ('number-of-rows' '5000'); SELECT x FROM t";
    let output = dlflow(&["predict", "--model", &model_arg("linear"), "--sql", sql, "--show", "3"]);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("| x") && stdout.contains("| y"), "{stdout}");
    let data_rows = stdout.lines().filter(|l| l.starts_with("| ")).count() - 1; // minus the header
    assert_eq!(data_rows, 3, "--show 3: {stdout}");
    assert!(stderr.contains("predicted: 5000 rows"), "{stderr}");
}

#[test]
fn sql_command_calls_registered_models() {
    let output = dlflow(&["sql", "--model", &format!("lin={}", model_arg("linear")), "SELECT predict('lin', CAST(2.0 AS FLOAT)) AS y"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("5.0"), "{}", text(&output.stdout));
}

#[test]
fn missing_model_directory_fails_cleanly() {
    let stderr = assert_clean_failure(&dlflow(&["model", "inspect", "/nonexistent/model"]));
    assert!(stderr.contains("/nonexistent/model") && stderr.contains("does not exist"), "{stderr}");
}

#[test]
fn malformed_input_file_is_named_and_no_output_is_left() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("broken.parquet");
    std::fs::write(&input, "this is not parquet").expect("write");
    let out = dir.path().join("out.csv");
    let output = dlflow(&["predict", "--model", &model_arg("linear"), "--input", input.to_str().expect("utf8"), "--output", out.to_str().expect("utf8")]);
    let stderr = assert_clean_failure(&output);
    assert!(stderr.contains("broken.parquet"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("broken.parquet")], "no output or temp file");
}

#[test]
fn unreadable_and_unknown_inputs_are_named() {
    let stderr = assert_clean_failure(&dlflow(&["predict", "--model", &model_arg("linear"), "--input", "/nonexistent/in.csv"]));
    assert!(stderr.contains("/nonexistent/in.csv"), "{stderr}");
    let dir = tempfile::tempdir().expect("tempdir");
    let odd = dir.path().join("data.xlsx");
    std::fs::write(&odd, "x").expect("write");
    let stderr = assert_clean_failure(&dlflow(&["predict", "--model", &model_arg("linear"), "--input", odd.to_str().expect("utf8")]));
    assert!(stderr.contains("data.xlsx") && stderr.contains(".parquet"), "{stderr}");
}

#[test]
fn a_table_location_that_does_not_exist_is_an_error_not_an_empty_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("poinst.parquet");
    let sql = format!("CREATE EXTERNAL TABLE q (x FLOAT) STORED AS PARQUET LOCATION '{}'; SELECT * FROM q", missing.display());
    let out = dir.path().join("pred.csv");
    let stderr = assert_clean_failure(&dlflow(&["predict", "--model", &model_arg("linear"), "--sql", &sql, "--output", out.to_str().expect("utf8")]));
    assert!(stderr.contains("table `q`") && stderr.contains("poinst.parquet") && stderr.contains("does not exist"), "{stderr}");
    assert!(!out.exists(), "no output for a failed query");
    let stderr = assert_clean_failure(&dlflow(&["sql", &sql]));
    assert!(stderr.contains("poinst.parquet") && stderr.contains("does not exist"), "{stderr}");
}

#[test]
fn a_declared_column_the_parquet_files_lack_is_an_error_not_nulls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("points.parquet");
    let out = dlflow(&["sql", "SELECT CAST(1 AS BIGINT) AS id, CAST(0.5 AS FLOAT) AS \"Pixels\"", "--output", file.to_str().expect("utf8")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let create = |columns: &str| format!("CREATE EXTERNAL TABLE q ({columns}) STORED AS PARQUET LOCATION '{}'; SELECT * FROM q", file.display());
    for (columns, missing) in [("id BIGINT, labels INT", "`labels`"), ("id BIGINT, Pixels FLOAT", "`pixels`")] {
        let stderr = assert_clean_failure(&dlflow(&["sql", &create(columns)]));
        assert!(stderr.contains("table `q`") && stderr.contains(missing) && stderr.contains("whose columns are id, Pixels"), "{columns}: {stderr}");
    }
    let out = dlflow(&["sql", &create("id BIGINT, \"Pixels\" FLOAT")]);
    assert!(out.status.success(), "quoted, the name is the file's: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_bad_value_in_a_file_of_a_declared_table_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("counts.csv");
    std::fs::write(&file, "n\n1\n2\nthree\n").expect("write");
    let sql = format!("CREATE EXTERNAL TABLE c (n INT) STORED AS CSV LOCATION '{}' OPTIONS ('format.has_header' 'true'); SELECT * FROM c", file.display());
    let stderr = assert_clean_failure(&dlflow(&["sql", &sql]));
    assert!(stderr.contains("counts.csv") && stderr.contains("three"), "{stderr}");
}

#[test]
fn a_line_that_is_not_json_is_named_by_its_number() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("events.jsonl");
    std::fs::write(&file, "{\"x\": 1.0}\n\n{\"x\": 2.0}\n{\"x\": oops}\n").expect("write");
    let stderr = assert_clean_failure(&dlflow(&["sql", "--table", &format!("t={}", file.display()), "SELECT * FROM t"]));
    assert!(stderr.contains("events.jsonl") && stderr.contains("line 4 is not valid JSON"), "{stderr}");
}

#[test]
fn an_output_that_is_also_the_input_is_refused_and_the_input_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("same.csv");
    std::fs::write(&input, "x\n1.0\n2.0\n").expect("write");
    let path = input.to_str().expect("utf8");
    let stderr = assert_clean_failure(&dlflow(&["predict", "--model", &model_arg("linear"), "--input", path, "--output", path]));
    assert!(stderr.contains("--output") && stderr.contains("is also the input"), "{stderr}");
    // The same file by another spelling is the same file.
    let other_spelling = dir.path().join(".").join("same.csv");
    let stderr = assert_clean_failure(&dlflow(&["sql", "--table", &format!("t={path}"), "SELECT x FROM t", "--output", other_spelling.to_str().expect("utf8")]));
    assert!(stderr.contains("is also the input"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&input).expect("input"), "x\n1.0\n2.0\n", "the input is untouched");
}

#[test]
fn an_empty_input_file_is_named_as_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("empty.csv");
    std::fs::write(&input, "").expect("write");
    let stderr = assert_clean_failure(&dlflow(&["predict", "--model", &model_arg("linear"), "--input", input.to_str().expect("utf8")]));
    assert!(stderr.contains("empty.csv") && stderr.contains("no columns") && stderr.contains("header line"), "{stderr}");
}

#[test]
fn zero_rows_per_file_and_zero_calls_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "x\n1.0\n2.0\n").expect("write");
    let rolled = dir.path().join("rolled/");
    let output = dlflow(&["predict", "--model", &model_arg("linear"), "--input", input.to_str().expect("utf8"), "--output", rolled.to_str().expect("utf8"), "--roll-rows", "0"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "a usage error: {stderr}");
    assert!(stderr.contains("--roll-rows") && stderr.contains("0"), "{stderr}");
    assert!(!rolled.exists(), "nothing written");
    let output = dlflow(&["model", "call", &model_arg("linear"), "--signature", "serving_default", "--input", "x=1", "--repeat", "0"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "a usage error: {stderr}");
    assert!(stderr.contains("--repeat"), "{stderr}");
}

#[test]
fn an_output_folder_that_is_a_file_or_unwritable_is_named_without_temporary_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "x\n1.0\n").expect("write");
    let out = dir.path().join("in.csv").join("out.csv");
    let stderr = assert_clean_failure(&dlflow(&["predict", "--model", &model_arg("linear"), "--input", input.to_str().expect("utf8"), "--output", out.to_str().expect("utf8")]));
    assert!(stderr.contains("in.csv is a file, not a folder"), "{stderr}");
    let stderr = assert_clean_failure(&dlflow(&["predict", "--model", &model_arg("linear"), "--input", input.to_str().expect("utf8"), "--output", "/proc/out.csv"]));
    assert!(stderr.contains("cannot create a file in the folder /proc"), "{stderr}");
    assert!(!stderr.contains(".tmp"), "the temporary file is not the user's business: {stderr}");
}

#[test]
fn a_wrong_column_type_fails_before_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("words.csv");
    std::fs::write(&input, "x\n1.0\nhello\n").expect("write");
    let stderr = assert_clean_failure(&dlflow(&["predict", "--model", &model_arg("linear"), "--input", input.to_str().expect("utf8")]));
    assert!(stderr.contains("column `x`") && stderr.contains("float32"), "{stderr}");
    // Text where numbers were meant: why, and how to find the values.
    assert!(stderr.contains("one of its values is not a number") && stderr.contains("TRY_CAST(x AS DOUBLE) IS NULL"), "{stderr}");
}

#[test]
fn first_errors_of_sql_say_the_way_out() {
    let stderr = assert_clean_failure(&dlflow(&["sql", "SELECT x FROM nope"]));
    assert!(stderr.contains("'datafusion.public.nope' not found") && stderr.contains("--table NAME=FILE"), "{stderr}");
    let stderr = assert_clean_failure(&dlflow(&["sql", "CREATE EXTERNAL TABLE q (x FLOAT) STORED AS XLSX LOCATION 'q.xlsx'; SELECT * FROM q"]));
    assert!(stderr.contains("XLSX") && stderr.contains("STORED AS takes CSV, PARQUET"), "{stderr}");
    let stderr = assert_clean_failure(&dlflow(&["predict", "--model", &model_arg("linear"), "--input", "tcp://notahost"]));
    assert!(stderr.contains("tcp://notahost: not a stream address; expected tcp://HOST:PORT"), "{stderr}");
}

#[test]
fn a_model_copied_without_its_variables_is_refused_when_loaded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("novars");
    std::fs::create_dir(&model).expect("dir");
    std::fs::copy(common::model("linear").join("saved_model.pb"), model.join("saved_model.pb")).expect("copy");
    for args in [vec!["model", "inspect", model.to_str().expect("utf8")], vec!["sql", "--model", &format!("m={}", model.display()), "SELECT 1"]] {
        let stderr = assert_clean_failure(&dlflow(&args));
        assert!(stderr.contains("novars") && stderr.contains("variables/ is missing") && stderr.contains("copy the whole SavedModel directory"), "{stderr}");
        assert!(!stderr.contains("rendezvous"), "no TensorFlow log line: {stderr}");
    }
}

#[test]
fn a_damaged_saved_model_pb_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let linear = std::fs::read(common::model("linear").join("saved_model.pb")).expect("read");
    for (name, bytes) in [("truncated", &linear[..linear.len() / 2]), ("garbage", &b"not a protocol buffer at all"[..]), ("empty", &b""[..])] {
        let model = dir.path().join(name);
        std::fs::create_dir(&model).expect("dir");
        std::fs::write(model.join("saved_model.pb"), bytes).expect("write");
        let stderr = assert_clean_failure(&dlflow(&["model", "inspect", model.to_str().expect("utf8")]));
        assert!(stderr.contains(&format!("{name}/saved_model.pb")) && stderr.contains("copy the model again"), "{name}: {stderr}");
        assert!(stderr.contains("does not parse as a SavedModel") || stderr.contains("holds no MetaGraph"), "{name}: {stderr}");
    }
}

fn inspect_without_tensorflow(configure: impl FnOnce(&mut Command, &Path)) -> String {
    let empty = tempfile::tempdir().expect("tempdir");
    let mut command = Command::new(env!("CARGO_BIN_EXE_dlflow"));
    command.args(["model", "inspect", &model_arg("linear")]).env_remove("DLFLOW_TF_LIB").env_remove("VIRTUAL_ENV");
    configure(&mut command, empty.path());
    let stderr = assert_clean_failure(&command.output().expect("run"));
    assert!(stderr.contains("could not find libtensorflow"), "{stderr}");
    assert!(stderr.contains("scripts/setup.sh") && stderr.contains("tensorflow-cpu==2.21.0"), "the fix: {stderr}");
    stderr
}

#[test]
fn missing_tensorflow_says_where_it_looked_and_how_to_fix_it() {
    let stderr = inspect_without_tensorflow(|command, empty| {
        command.env("DLFLOW_VENV", empty.join("no-venv")).env("PATH", empty);
    });
    assert!(stderr.contains("DLFLOW_TF_LIB (not set)") && stderr.contains("no-venv") && stderr.contains("python3 on PATH"), "{stderr}");
}

#[test]
fn a_wrong_dlflow_tf_lib_is_an_error_not_a_fallback() {
    let stderr = inspect_without_tensorflow(|command, empty| {
        command.env("DLFLOW_TF_LIB", empty);
    });
    assert!(stderr.contains("DLFLOW_TF_LIB=/"), "{stderr}");
}

#[test]
fn help_lists_the_commands() {
    let output = dlflow(&["--help"]);
    let stdout = text(&output.stdout);
    for command in ["model", "predict", "sql"] {
        assert!(stdout.contains(command), "{stdout}");
    }
    assert!(Path::new(env!("CARGO_BIN_EXE_dlflow")).exists());
}

#[test]
fn declared_input_types_are_checked_naming_the_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "x\n0.5\n").expect("write");
    let path = input.to_str().expect("utf8");
    let ok = dlflow(&["predict", "--model", &model_arg("linear"), "--input", path, "--input-types", "FLOAT_64"]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    let stderr = assert_clean_failure(&dlflow(&["predict", "--model", &model_arg("linear"), "--input", path, "--input-types", "INT_32"]));
    assert!(stderr.contains("column `x`") && stderr.contains("INT_32"), "{stderr}");
}
