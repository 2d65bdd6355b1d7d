//! The twelve SavedModels from the wild through the `dlflow` binary: `model inspect` lists
//! every signature with its method, and at least one signature per model runs from a file
//! (`dlflow predict`) or is called (`dlflow model call`), matching TensorFlow's own outputs
//! computed in the test with the project's TensorFlow (one Python process for the file).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, OnceLock};

use arrow::array::{ArrayRef, FixedSizeListArray, Float32Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field};
use dlflow_testkit::external::{assert_matches_tensorflow, example_rows, external_model, outputs, tensor_json, tf_reference};
use serde_json::{json, Value};

fn dlflow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dlflow")).args(args).output().expect("run dlflow")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn path(name: &str) -> String {
    external_model(name).display().to_string()
}

fn floats(values: impl IntoIterator<Item = f32>) -> ArrayRef {
    Arc::new(Float32Array::from_iter_values(values))
}

fn vectors(width: i32, values: Vec<f32>) -> ArrayRef {
    Arc::new(FixedSizeListArray::new(Arc::new(Field::new("item", DataType::Float32, false)), width, Arc::new(Float32Array::from(values)), None))
}

/// Values in [-3, 3) that CSV text keeps exactly (multiples of 1/8).
fn sample(rows: usize, seed: usize) -> Vec<f32> {
    (0..rows).map(|i| ((i * 5 + seed * 3) % 48) as f32 / 8.0 - 3.0).collect()
}

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(columns).expect("batch")
}

fn write_arrow(batch: &RecordBatch, path: &Path) {
    let file = std::fs::File::create(path).expect("create");
    let mut writer = arrow::ipc::writer::FileWriter::try_new(file, &batch.schema()).expect("writer");
    writer.write(batch).expect("write");
    writer.finish().expect("finish");
}

fn write_parquet(batch: &RecordBatch, path: &Path) {
    let file = std::fs::File::create(path).expect("create");
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    writer.write(batch).expect("write");
    writer.close().expect("close");
}

fn read_arrow(path: &Path) -> RecordBatch {
    let reader = arrow::ipc::reader::FileReader::try_new(std::fs::File::open(path).expect("open output"), None).expect("arrow file");
    let schema = reader.schema();
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().expect("batches");
    arrow::compute::concat_batches(&schema, &batches).expect("concat")
}

/// `dlflow predict --model DIR --input FILE --output out.arrow [extra...]`, its output read back.
fn predict(model: &str, input: &Path, extra: &[&str]) -> RecordBatch {
    let out = input.with_extension("predicted.arrow");
    let mut args = vec!["predict", "--model", model, "--input", input.to_str().expect("utf8"), "--output", out.to_str().expect("utf8")];
    args.extend_from_slice(extra);
    let output = dlflow(&args);
    assert!(output.status.success(), "dlflow {}: {}", args.join(" "), text(&output.stderr));
    read_arrow(&out)
}

/// Write `batch` to `file_name` (Arrow IPC) and run `dlflow predict` with model `name` over it.
fn predict_batch(name: &str, file_name: &str, batch: &RecordBatch, extra: &[&str]) -> RecordBatch {
    let input = file(file_name);
    write_arrow(batch, &input);
    predict(&path(name), &input, extra)
}

fn assert_columns(what: &str, table: &RecordBatch, tf: &Value, keys: &[&str]) {
    for key in keys {
        let column = table.column_by_name(key).unwrap_or_else(|| panic!("{what}: no column {key} in {:?}", table.schema()));
        assert_matches_tensorflow(&format!("{what}.{key}"), column, &tf[*key]);
    }
}

fn merged(answer: &Value, id: &str, calls: std::ops::Range<usize>, key: &str) -> Value {
    let parts: Vec<&Value> = calls.map(|i| &outputs(answer, id, i)[key]).collect();
    let values: Vec<Value> = parts.iter().flat_map(|p| p["values"].as_array().expect("values").iter().cloned()).collect();
    json!({"dtype": parts[0]["dtype"], "values": values})
}

/// The inputs each test feeds through the CLI, made once.
struct Inputs {
    dir: tempfile::TempDir,
    plus_two: RecordBatch,
    single: RecordBatch,
    regression: RecordBatch,
    two_inputs: RecordBatch,
    add: RecordBatch,
    trips: RecordBatch,
    penguins: RecordBatch,
}

fn inputs() -> &'static Inputs {
    static INPUTS: OnceLock<Inputs> = OnceLock::new();
    INPUTS.get_or_init(|| {
        let rows = 6;
        let companies = ["Flash Cab", "No Such Cab Co", "Taxi Affiliation Services"];
        let trips = batch(vec![
            ("company", Arc::new(StringArray::from((0..rows).map(|i| companies[i % 3]).collect::<Vec<_>>())) as ArrayRef),
            ("payment_type", Arc::new(StringArray::from((0..rows).map(|i| if i % 2 == 0 { "Cash" } else { "Bitcoin" }).collect::<Vec<_>>())) as ArrayRef),
            ("fare", Arc::new(Float64Array::from((0..rows).map(|i| 4.5 + i as f64 * 3.25).collect::<Vec<_>>())) as ArrayRef),
            ("trip_seconds", Arc::new(Int64Array::from((0..rows).map(|i| (i != 2).then_some(400 + 60 * i as i64)).collect::<Vec<_>>())) as ArrayRef),
            ("trip_start_hour", Arc::new(Int64Array::from((0..rows).map(|i| 3 * i as i64).collect::<Vec<_>>())) as ArrayRef),
            ("trip_miles", Arc::new(Float64Array::from((0..rows).map(|i| 0.5 + i as f64).collect::<Vec<_>>())) as ArrayRef),
        ]);
        let penguins = batch(vec![
            ("culmen_length_mm", floats(sample(rows, 1).into_iter().map(|v| v / 2.0))),
            ("culmen_depth_mm", floats(sample(rows, 2).into_iter().map(|v| v / 2.0))),
            ("flipper_length_mm", floats(sample(rows, 3).into_iter().map(|v| v / 2.0))),
            ("body_mass_g", floats(sample(rows, 4).into_iter().map(|v| v / 2.0))),
        ]);
        Inputs {
            dir: tempfile::tempdir().expect("tempdir"),
            plus_two: batch(vec![("x", floats(sample(rows, 0))), ("x2", floats(sample(rows, 7)))]),
            single: batch(vec![("x", floats(sample(3, 5)))]),
            regression: batch(vec![("x", floats(sample(rows, 2))), ("y", floats(sample(rows, 9))), ("X", floats(sample(rows, 4)))]),
            two_inputs: batch(vec![("test_in1", vectors(5, sample(rows * 5, 1))), ("test_in2", vectors(5, sample(rows * 5, 2)))]),
            add: batch(vec![("a", floats(sample(rows, 3))), ("b", floats(sample(rows, 6))), ("x", vectors(10, sample(rows * 10, 8))), ("y", vectors(10, sample(rows * 10, 9)))]),
            trips,
            penguins,
        }
    })
}

fn file(name: &str) -> PathBuf {
    inputs().dir.path().join(name)
}

/// TensorFlow's outputs for every call the tests make, in one Python process.
fn answer() -> &'static Value {
    static ANSWER: OnceLock<Value> = OnceLock::new();
    ANSWER.get_or_init(|| {
        let i = inputs();
        let rows = i.plus_two.num_rows();
        let model = |name: &str, loader: &str, tags: &[&str], calls: Vec<Value>| json!({"id": name, "dir": external_model(name), "loader": loader, "tags": tags, "calls": calls});
        let call = |signature: &str, inputs: Value| json!({"signature": signature, "inputs": inputs});
        let col = |b: &RecordBatch, name: &str| b.column_by_name(name).expect("column").clone();
        let scalar = |v: f32| json!({"dtype": "float32", "shape": [], "values": [v]});
        tf_reference(&json!({"models": [
            model("serving_half_plus_two_tf1", "saved_model", &["serve"], vec![
                json!({"signature": "regress_x_to_y2", "examples": {"input": "inputs", "rows": example_rows(&i.plus_two)}}),
            ]),
            model("serving_half_plus_two_tf2", "saved_model", &["serve"],
                (0..3).map(|r| call("serving_default", json!({"x": tensor_json("float32", &[1], &col(&i.single, "x").slice(r, 1))}))).collect()),
            model("serving_half_plus_three_tf1_0", "session", &["serve"], vec![
                call("serving_default", json!({"x": tensor_json("float32", &[rows, 1], &col(&i.plus_two, "x"))})),
            ]),
            model("serving_counter_tf1", "session", &["serve"], vec![
                call("incr_counter", json!({})), call("incr_counter", json!({})), call("incr_counter", json!({})),
                call("reset_counter", json!({})), call("incr_counter_by", json!({"delta": scalar(2.5)})),
            ]),
            model("java_multi_signature_tf2", "saved_model", &["serve"], vec![
                call("add", json!({"a": tensor_json("float32", &[rows], &col(&i.add, "a")), "b": tensor_json("float32", &[rows], &col(&i.add, "b"))})),
            ]),
            model("rust_regression_train_tf2", "saved_model", &["serve"], vec![call("w", json!({})), call("b", json!({}))]),
            model("rust_regression_tf1_train_serve", "session", &["train", "serve"], vec![
                call("tensorflow/serving/regress", json!({"x": tensor_json("float32", &[rows], &col(&i.regression, "x")), "y": tensor_json("float32", &[rows], &col(&i.regression, "y"))})),
            ]),
            model("rust_keras_two_inputs", "saved_model", &["serve"], vec![
                call("serving_default", json!({"test_in1": tensor_json("float32", &[rows, 5], &col(&i.two_inputs, "test_in1")), "test_in2": tensor_json("float32", &[rows, 5], &col(&i.two_inputs, "test_in2"))})),
            ]),
            model("onnx_add_no_variables", "saved_model", &["serve"],
                (0..rows).map(|r| call("serving_default", json!({"x": tensor_json("float32", &[1, 10], &col(&i.add, "x").slice(r, 1)), "y": tensor_json("float32", &[1, 10], &col(&i.add, "y").slice(r, 1))}))).collect()),
            model("onnx_regression_tf1", "saved_model", &["serve"], vec![
                call("serving_default", json!({"X": tensor_json("float32", &[rows], &col(&i.regression, "X"))})),
            ]),
            model("tfx_taxi_estimator", "saved_model", &["serve"], vec![
                json!({"signature": "serving_default", "examples": {"input": "inputs", "rows": example_rows(&i.trips)}}),
            ]),
            model("tfx_penguin_keras", "saved_model", &["serve"], vec![
                json!({"signature": "serving_default", "examples": {"input": "examples", "rows": example_rows(&i.penguins)}}),
            ]),
        ]}))
    })
}

#[test]
fn inspect_lists_every_signature_of_every_model_with_its_method() {
    /// A model, the tags it needs, and its signatures with their methods.
    type Listing = (&'static str, &'static [&'static str], &'static [(&'static str, &'static str)]);
    let expected: &[Listing] = &[
        ("serving_half_plus_two_tf1", &[], &[("classify_x_to_y", "classify"), ("regress_x_to_y", "regress"), ("serving_default", "predict")]),
        ("serving_half_plus_two_tf2", &[], &[("classify_x2_to_y3", "predict"), ("serving_default", "predict")]),
        ("serving_half_plus_three_tf1_0", &[], &[("serving_default", "predict"), ("tensorflow/serving/regress", "regress")]),
        ("serving_counter_tf1", &[], &[("get_counter", "predict"), ("incr_counter", "predict"), ("incr_counter_by", "predict"), ("reset_counter", "predict")]),
        ("java_multi_signature_tf2", &[], &[("add", "predict"), ("get_const_matrix", "predict"), ("get_const_scalar", "predict"), ("get_const_vector", "predict"), ("get_variable", "predict")]),
        ("rust_regression_train_tf2", &[], &[("b", "predict"), ("train", "predict"), ("w", "predict")]),
        ("rust_regression_tf1_train_serve", &["--tags", "train,serve"], &[("tensorflow/serving/regress", "regress")]),
        ("rust_keras_two_inputs", &[], &[("serving_default", "predict")]),
        ("onnx_add_no_variables", &[], &[("serving_default", "predict")]),
        ("onnx_regression_tf1", &[], &[("serving_default", "predict")]),
        ("tfx_taxi_estimator", &[], &[("classification", "classify"), ("predict", "predict"), ("regression", "regress"), ("serving_default", "classify")]),
        ("tfx_penguin_keras", &[], &[("serving_default", "predict")]),
    ];
    for (name, extra, signatures) in expected {
        let dir = path(name);
        let mut args = vec!["model", "inspect", dir.as_str()];
        args.extend_from_slice(extra);
        let output = dlflow(&args);
        let stdout = text(&output.stdout);
        assert!(output.status.success(), "{name}: {}", text(&output.stderr));
        for (signature, method) in *signatures {
            let line = stdout.lines().find(|l| l.starts_with(signature) && l.contains(&format!("  {method}  "))).unwrap_or_else(|| panic!("{name}: no `{signature}` with method {method}:\n{stdout}"));
            assert!(line.contains("input") || line.contains("output"), "{line}");
        }
    }
}

#[test]
fn inspect_shows_the_tf_example_features_and_what_cannot_run() {
    let output = dlflow(&["model", "inspect", &path("tfx_penguin_keras")]);
    let stdout = text(&output.stdout);
    assert!(stdout.contains("tf.Example input serving_default.examples"), "{stdout}");
    let mass = stdout.lines().find(|l| l.trim_start().starts_with("body_mass_g")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(mass.contains("float32") && mass.contains("required"), "{mass}");

    let stdout = text(&dlflow(&["model", "inspect", &path("tfx_taxi_estimator")]).stdout);
    let company = stdout.lines().find(|l| l.trim_start().starts_with("company")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(company.contains("string") && company.contains("var-len"), "{company}");

    let stdout = text(&dlflow(&["model", "inspect", &path("serving_half_plus_three_tf1_0")]).stdout);
    assert!(stdout.contains("written by TensorFlow 1.0.0-rc2"), "{stdout}");
    assert!(stdout.contains("(graph [-1, 1])"), "the graph's shape next to the absent one: {stdout}");
    assert!(stdout.contains("tensorflow/serving/regress cannot run") && stdout.contains("declared float32"), "{stdout}");

    let stdout = text(&dlflow(&["model", "inspect", &path("serving_counter_tf1")]).stdout);
    assert!(stdout.contains("get_counter takes no inputs: dlflow model call"), "{stdout}");
}

#[test]
fn a_missing_tag_set_is_listed_and_tags_load_it() {
    let output = dlflow(&["model", "inspect", &path("rust_regression_tf1_train_serve")]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("{train, serve}") && stderr.contains("--tags train,serve") && !stderr.contains("panicked"), "{stderr}");

    let i = inputs();
    let table = predict_batch("rust_regression_tf1_train_serve", "regression.arrow", &i.regression.project(&[0, 1]).expect("x, y"), &["--tags", "train,serve"]);
    assert_columns("regress", &table, outputs(answer(), "rust_regression_tf1_train_serve", 0), &["out"]);

    // The same from SQL: `--tags` applies to every `--model`, the signature key has slashes.
    let out = file("regression_sql.arrow");
    let output = dlflow(&[
        "sql",
        "--model",
        &format!("r={}", path("rust_regression_tf1_train_serve")),
        "--tags",
        "train,serve",
        "--table",
        &format!("t={}", file("regression.arrow").display()),
        "--output",
        out.to_str().expect("utf8"),
        "SELECT predict('r:tensorflow/serving/regress', x, y) AS out FROM t",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_columns("sql regress", &read_arrow(&out), outputs(answer(), "rust_regression_tf1_train_serve", 0), &["out"]);
}

#[test]
fn half_plus_two_tf1_regresses_from_a_feature_column_file() {
    let table = predict_batch("serving_half_plus_two_tf1", "plus_two.arrow", &inputs().plus_two, &["--signature", "regress_x_to_y2"]);
    assert_columns("regress_x_to_y2", &table, outputs(answer(), "serving_half_plus_two_tf1", 0), &["outputs"]);
}

#[test]
fn half_plus_two_tf2_takes_one_row_per_call() {
    let table = predict_batch("serving_half_plus_two_tf2", "single.arrow", &inputs().single, &[]);
    assert_eq!(table.num_rows(), 3);
    assert_matches_tensorflow("y", table.column_by_name("y").expect("y"), &merged(answer(), "serving_half_plus_two_tf2", 0..3, "y"));
}

#[test]
fn half_plus_three_from_tensorflow_1_0_runs() {
    let table = predict_batch("serving_half_plus_three_tf1_0", "plus_three.arrow", &inputs().plus_two.project(&[0]).expect("x"), &[]);
    assert_columns("serving_default", &table, outputs(answer(), "serving_half_plus_three_tf1_0", 0), &["y"]);
}

/// The `value` column of `dlflow model call` output, one entry per printed row.
fn called_values(stdout: &str) -> Vec<String> {
    stdout.lines().skip(2).map(|l| l.split_whitespace().last().unwrap_or_default().to_string()).collect()
}

fn assert_printed_float(what: &str, printed: &str, expected: &Value) {
    let value: f32 = printed.trim_matches(|c| c == '[' || c == ']').parse().unwrap_or_else(|_| panic!("{what}: `{printed}` is not a number"));
    let expected = expected["values"][0].as_f64().expect("number") as f32;
    assert_eq!(value.to_bits(), expected.to_bits(), "{what}: dlflow printed {printed}, TensorFlow {expected}");
}

#[test]
fn counter_called_repeatedly_keeps_its_state() {
    let dir = path("serving_counter_tf1");
    let output = dlflow(&["model", "call", &dir, "--signature", "incr_counter", "--repeat", "3"]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let values = called_values(&stdout);
    assert_eq!(values.len(), 3, "{stdout}");
    for (i, printed) in values.iter().enumerate() {
        assert_printed_float(&format!("incr_counter call {}", i + 1), printed, &outputs(answer(), "serving_counter_tf1", i)["output"]);
    }
    let output = dlflow(&["model", "call", &dir, "--signature", "incr_counter_by", "--input", "delta=2.5"]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_printed_float("incr_counter_by", &called_values(&stdout)[0], &outputs(answer(), "serving_counter_tf1", 4)["output"]);
}

#[test]
fn no_input_signatures_are_called_and_print_their_outputs() {
    let dir = path("rust_regression_train_tf2");
    for (i, signature) in ["w", "b"].into_iter().enumerate() {
        let output = dlflow(&["model", "call", &dir, "--signature", signature]);
        let stdout = text(&output.stdout);
        assert!(output.status.success(), "{}", text(&output.stderr));
        let header = stdout.lines().next().unwrap_or_default();
        assert!(header.contains("output") && header.contains("value"), "{stdout}");
        assert_printed_float(signature, &called_values(&stdout)[0], &outputs(answer(), "rust_regression_train_tf2", i)["output"]);
    }
    let output = dlflow(&["predict", "--model", &dir, "--signature", "w", "--sql", "SELECT 1.0 AS x"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("takes no inputs") && stderr.contains("dlflow model call"), "{stderr}");
}

#[test]
fn java_multi_signature_add_runs_from_a_file() {
    let table = predict_batch("java_multi_signature_tf2", "add.arrow", &inputs().add.project(&[0, 1]).expect("a, b"), &["--signature", "add"]);
    assert_columns("add", &table, outputs(answer(), "java_multi_signature_tf2", 0), &["output_0"]);
}

#[test]
fn keras_two_inputs_run_from_a_file() {
    let table = predict_batch("rust_keras_two_inputs", "two_inputs.arrow", &inputs().two_inputs, &[]);
    assert_columns("serving_default", &table, outputs(answer(), "rust_keras_two_inputs", 0), &["test_out"]);
}

#[test]
fn add_without_variables_runs_from_a_file() {
    let table = predict_batch("onnx_add_no_variables", "vectors.arrow", &inputs().add.project(&[2, 3]).expect("x, y"), &[]);
    let rows = table.num_rows();
    assert_matches_tensorflow("z", table.column_by_name("z").expect("z"), &merged(answer(), "onnx_add_no_variables", 0..rows, "z"));
}

#[test]
fn regression_tf1_runs_from_a_file() {
    let table = predict_batch("onnx_regression_tf1", "big_x.arrow", &inputs().regression.project(&[2]).expect("X"), &[]);
    assert_columns("serving_default", &table, outputs(answer(), "onnx_regression_tf1", 0), &["pred"]);
}

#[test]
fn taxi_predicts_from_a_parquet_file_of_trips() {
    let input = file("trips.parquet");
    write_parquet(&inputs().trips, &input);
    let table = predict(&path("tfx_taxi_estimator"), &input, &[]);
    assert_columns("serving_default", &table, outputs(answer(), "tfx_taxi_estimator", 0), &["classes", "scores"]);
    assert!(table.column_by_name("company").is_some(), "the input columns are kept");
}

#[test]
fn penguin_predicts_from_csv_and_names_a_missing_feature() {
    let i = inputs();
    let input = file("penguins.csv");
    let mut csv = String::from("culmen_length_mm,culmen_depth_mm,flipper_length_mm,body_mass_g\n");
    for row in 0..i.penguins.num_rows() {
        let values: Vec<String> = (0..4).map(|c| arrow::util::display::array_value_to_string(i.penguins.column(c), row).expect("value")).collect();
        csv += &(values.join(",") + "\n");
    }
    std::fs::write(&input, csv).expect("write csv");
    let table = predict(&path("tfx_penguin_keras"), &input, &[]);
    assert_columns("serving_default", &table, outputs(answer(), "tfx_penguin_keras", 0), &["output_0"]);

    let partial = file("penguins_without_mass.csv");
    std::fs::write(&partial, "culmen_length_mm,culmen_depth_mm,flipper_length_mm\n0.5,0.25,1.0\n").expect("write");
    let output = dlflow(&["predict", "--model", &path("tfx_penguin_keras"), "--input", partial.to_str().expect("utf8")]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("body_mass_g") && stderr.contains("required") && !stderr.contains("panicked"), "{stderr}");
}
