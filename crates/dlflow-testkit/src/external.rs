//! SavedModels from the wild (`../shared/external_models`, written by other projects with
//! TensorFlow 1.0 to 2.15) and TensorFlow's own outputs for them, computed in the test by
//! `python/tools/tf_reference.py` with the project's TensorFlow.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float32Type, Float64Type, Int32Type, Int64Type};
use serde_json::{json, Value};

use crate::flatten;

/// The folder of external SavedModels: `DLFLOW_EXTERNAL_MODELS`, which `scripts/setup.sh`
/// sets when `../shared/external_models` (or `/work/shared/external_models`) exists.
pub fn external_models_dir() -> PathBuf {
    let dir = std::env::var_os("DLFLOW_EXTERNAL_MODELS").map(PathBuf::from).expect(
        "DLFLOW_EXTERNAL_MODELS is not set: these tests need the SavedModels in ../shared/external_models (next to \
         the checkout); run them with scripts/test.sh, which finds the folder, or set DLFLOW_EXTERNAL_MODELS",
    );
    assert!(dir.join("README.md").is_file(), "DLFLOW_EXTERNAL_MODELS={} does not hold the external models", dir.display());
    dir
}

/// One external model's directory.
pub fn external_model(name: &str) -> PathBuf {
    let dir = external_models_dir().join(name);
    assert!(dir.join("saved_model.pb").is_file(), "no SavedModel {} in {}", name, external_models_dir().display());
    dir
}

/// The project virtualenv's python (`DLFLOW_VENV`, set by scripts/setup.sh).
pub fn python() -> PathBuf {
    let venv = std::env::var_os("DLFLOW_VENV")
        .map(PathBuf::from)
        .expect("DLFLOW_VENV is not set: run the tests with scripts/test.sh, which makes the project virtualenv");
    venv.join("bin/python")
}

/// Run `python/tools/tf_reference.py` on `request` (see its docstring) and return its answer
/// for each model id: one entry per call, `{"outputs": {...}}` or `{"error": "..."}`.
///
/// One Python process (`--serve`) answers all the requests of a test binary, one at a time,
/// so TensorFlow is imported once; it ends when the binary does (its stdin closes).
pub fn tf_reference(request: &Value) -> Value {
    static WORKER: Mutex<Option<Worker>> = Mutex::new(None);
    let mut worker = WORKER.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let worker = worker.get_or_insert_with(Worker::start);
    writeln!(worker.stdin, "{request}").expect("send the request to tf_reference.py");
    let mut line = String::new();
    worker.stdout.read_line(&mut line).expect("read tf_reference.py's answer");
    assert!(!line.is_empty(), "tf_reference.py ended without answering (its stderr is above)");
    let answer: Value = serde_json::from_str(&line).expect("a JSON answer");
    answer["models"].clone()
}

/// The reference script, serving requests line by line.
struct Worker {
    /// Kept so the process is owned: it ends when its stdin closes with the test process.
    _child: std::process::Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    fn start() -> Worker {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../python/tools/tf_reference.py");
        let mut child = Command::new(python())
            .arg(&script)
            .arg("--serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the TensorFlow reference script");
        let (stdin, stdout) = (child.stdin.take().expect("stdin"), BufReader::new(child.stdout.take().expect("stdout")));
        Worker { _child: child, stdin, stdout }
    }
}

/// A request tensor from a column: its values flattened, with `shape`.
pub fn tensor_json(dtype: &str, shape: &[usize], column: &ArrayRef) -> Value {
    json!({"dtype": dtype, "shape": shape, "values": json_values(column)})
}

/// The rows of `batch` as tf.Example feature maps for `tf_reference.py`: float columns as
/// float lists, integer columns as int64 lists, strings as bytes lists, a null as absent.
pub fn example_rows(batch: &RecordBatch) -> Value {
    let rows: Vec<Value> = (0..batch.num_rows())
        .map(|row| {
            let mut features = serde_json::Map::new();
            for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
                if column.is_null(row) {
                    continue;
                }
                let values = match column.data_type() {
                    DataType::List(_) | DataType::FixedSizeList(_, _) | DataType::LargeList(_) => json_values(&list_row(column, row)),
                    _ => json_values(&column.slice(row, 1)),
                };
                let element = match column.data_type() {
                    DataType::List(f) | DataType::FixedSizeList(f, _) | DataType::LargeList(f) => f.data_type().clone(),
                    other => other.clone(),
                };
                let kind = if element.is_floating() {
                    "float"
                } else if element.is_integer() {
                    "int"
                } else {
                    "bytes"
                };
                features.insert(field.name().clone(), json!({ kind: values }));
            }
            Value::Object(features)
        })
        .collect();
    Value::Array(rows)
}

fn list_row(column: &ArrayRef, row: usize) -> ArrayRef {
    match column.data_type() {
        DataType::FixedSizeList(_, _) => column.as_fixed_size_list().value(row),
        DataType::LargeList(_) => column.as_list::<i64>().value(row),
        _ => column.as_list::<i32>().value(row),
    }
}

fn json_values(column: &ArrayRef) -> Vec<Value> {
    let column = flatten(column);
    (0..column.len())
        .map(|i| match column.data_type() {
            DataType::Float32 => json!(column.as_primitive::<Float32Type>().value(i) as f64),
            DataType::Float64 => json!(column.as_primitive::<Float64Type>().value(i)),
            DataType::Int32 => json!(column.as_primitive::<Int32Type>().value(i)),
            DataType::Int64 => json!(column.as_primitive::<Int64Type>().value(i)),
            DataType::Boolean => json!(column.as_boolean().value(i)),
            DataType::Utf8 => json!(column.as_string::<i32>().value(i)),
            DataType::Binary => json!(column.as_binary::<i32>().value(i)),
            other => panic!("tensor_json: unsupported column type {other}"),
        })
        .collect()
}

/// The outputs of call `index` of model `id` in an answer of [`tf_reference`], failing with
/// TensorFlow's error if the call failed.
pub fn outputs<'a>(answer: &'a Value, id: &str, index: usize) -> &'a Value {
    let call = &answer[id][index];
    assert!(call.get("error").is_none(), "TensorFlow failed on {id} call {index}: {}", call["error"]);
    &call["outputs"]
}

/// Assert that dlflow's `column` holds exactly the values of TensorFlow's tensor `expected`
/// (`{"dtype", "shape", "values"}`), row-major; float32 values bit for bit.
pub fn assert_matches_tensorflow(what: &str, column: &ArrayRef, expected: &Value) {
    let values = expected["values"].as_array().unwrap_or_else(|| panic!("{what}: no values in {expected}"));
    let actual = flatten(column);
    assert_eq!(actual.len(), values.len(), "{what}: dlflow has {} values, TensorFlow {} (shape {})", actual.len(), values.len(), expected["shape"]);
    let dtype = expected["dtype"].as_str().unwrap_or_default();
    for (i, value) in values.iter().enumerate() {
        let same = match (dtype, actual.data_type()) {
            ("float32", DataType::Float32) => {
                let a = actual.as_primitive::<Float32Type>().value(i);
                let e = value.as_f64().expect("number") as f32;
                a.to_bits() == e.to_bits() || (a.is_nan() && e.is_nan())
            }
            ("float64", DataType::Float64) => actual.as_primitive::<Float64Type>().value(i).to_bits() == value.as_f64().expect("number").to_bits(),
            ("int32", DataType::Int32) => Some(actual.as_primitive::<Int32Type>().value(i) as i64) == value.as_i64(),
            ("int64", DataType::Int64) => Some(actual.as_primitive::<Int64Type>().value(i)) == value.as_i64(),
            ("bool", DataType::Boolean) => Some(actual.as_boolean().value(i)) == value.as_bool(),
            ("string", DataType::Utf8) => {
                let bytes: Vec<u8> = value.as_array().expect("bytes").iter().map(|b| b.as_u64().expect("byte") as u8).collect();
                actual.as_string::<i32>().value(i).as_bytes() == bytes.as_slice()
            }
            (dtype, found) => panic!("{what}: TensorFlow returned {dtype}, dlflow's column is {found}"),
        };
        assert!(same, "{what}: value {i}: dlflow {:?}, TensorFlow {value}", arrow::util::display::array_value_to_string(&actual, i));
    }
}

/// TensorFlow's serialized examples from an answer (`return_serialized`), as byte strings.
pub fn serialized_examples(answer: &Value, id: &str, index: usize) -> Vec<Vec<u8>> {
    answer[id][index]["serialized"]
        .as_array()
        .unwrap_or_else(|| panic!("no serialized examples for {id} call {index}"))
        .iter()
        .map(|s| s.as_array().expect("bytes").iter().map(|b| b.as_u64().expect("byte") as u8).collect())
        .collect()
}
