//! SavedModels from the wild: the twelve models in ../shared/external_models, written by other
//! projects with TensorFlow 1.0 to 2.15. Every signature that takes inputs runs through the
//! table path (`Predictor` over record batches) and matches TensorFlow's own outputs bit for
//! bit, computed in the test by `python/tools/tf_reference.py` on the same inputs: with
//! `tf.saved_model.load`, or with the TF1 Session loader for the two models TF2 Python cannot
//! load. Signatures without inputs and stateful ones run through `SavedModel::call`.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BinaryArray, FixedSizeListArray, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, FieldRef};
use dlflow_testkit::external::{assert_matches_tensorflow, example_rows, external_model, outputs, serialized_examples, tensor_json, tf_reference};
use dlflow_tf::{DType, FeatureKind, LoadOptions, PredictOptions, Predictor, SavedModel, Shape, TensorValue, TfError};
use serde_json::{json, Value};

fn load(name: &str) -> Arc<SavedModel> {
    Arc::new(SavedModel::load(external_model(name)).unwrap_or_else(|e| panic!("load {name}: {e}")))
}

fn floats(values: impl IntoIterator<Item = f32>) -> ArrayRef {
    Arc::new(Float32Array::from_iter_values(values))
}

/// `rows` deterministic values in roughly [-3, 3].
fn sample(rows: usize, seed: f32) -> Vec<f32> {
    (0..rows).map(|i| ((i as f32 * 0.731 + seed) % 6.0) - 3.0).collect()
}

fn vectors(width: i32, values: Vec<f32>) -> ArrayRef {
    Arc::new(FixedSizeListArray::new(Arc::new(Field::new("item", DataType::Float32, false)), width, Arc::new(Float32Array::from(values)), None))
}

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(columns).expect("batch")
}

/// Run `signature` over `batch` through a `Predictor`, `batch_size` rows per run.
fn predict(model: &Arc<SavedModel>, signature: &str, batch: &RecordBatch, batch_size: usize) -> (Predictor, Vec<ArrayRef>) {
    let options = PredictOptions::default().signature(signature).batch_size(batch_size);
    let predictor = Predictor::new(model.clone(), &batch.schema(), &options).unwrap_or_else(|e| panic!("bind {signature}: {e}"));
    let columns = predictor.predict(batch).unwrap_or_else(|e| panic!("predict {signature}: {e}"));
    (predictor, columns)
}

/// A model in a reference request.
fn model_request(name: &str, loader: &str, tags: &[&str], calls: Vec<Value>) -> Value {
    json!({"id": name, "dir": external_model(name), "loader": loader, "tags": tags, "calls": calls})
}

fn reference(models: Vec<Value>) -> Value {
    tf_reference(&json!({ "models": models }))
}

fn call(signature: &str, inputs: Value) -> Value {
    json!({"signature": signature, "inputs": inputs})
}

/// A call whose `input` gets one tf.Example per row of `features`, serialized in Python.
fn examples_call(signature: &str, input: &str, features: &RecordBatch) -> Value {
    json!({"signature": signature, "examples": {"input": input, "rows": example_rows(features)}, "return_serialized": true})
}

/// TensorFlow's output `key` over several calls, concatenated in call order.
fn merged(answer: &Value, id: &str, calls: Range<usize>, key: &str) -> Value {
    let parts: Vec<&Value> = calls.map(|i| &outputs(answer, id, i)[key]).collect();
    let values: Vec<Value> = parts.iter().flat_map(|p| p["values"].as_array().expect("values").iter().cloned()).collect();
    json!({"dtype": parts[0]["dtype"], "values": values})
}

/// Every column dlflow returned against TensorFlow's output of the same name.
fn assert_outputs(what: &str, fields: &[FieldRef], columns: &[ArrayRef], expected: impl Fn(&str) -> Value) {
    assert_eq!(fields.len(), columns.len());
    assert!(!fields.is_empty(), "{what}: no outputs");
    for (field, column) in fields.iter().zip(columns) {
        assert_eq!(column.data_type(), field.data_type(), "{what}.{}: declared type", field.name());
        assert_matches_tensorflow(&format!("{what}.{}", field.name()), column, &expected(field.name()));
    }
}

fn assert_call_outputs(what: &str, predictor: &Predictor, columns: &[ArrayRef], answer: &Value, id: &str, index: usize) {
    let tf = outputs(answer, id, index);
    assert_outputs(what, &predictor.output_fields(), columns, |key| tf[key].clone());
}

fn signatures_and_methods(model: &SavedModel) -> Vec<(String, String)> {
    model.signatures().iter().map(|s| (s.name().to_string(), s.method().to_string())).collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[test]
fn half_plus_two_tf1_predict_regress_and_classify_match_tensorflow() {
    let name = "serving_half_plus_two_tf1";
    let model = load(name);
    assert_eq!(
        signatures_and_methods(&model),
        pairs(&[
            ("classify_x_to_y", "classify"),
            ("regress_x2_to_y3", "regress"),
            ("regress_x_to_y", "regress"),
            ("regress_x_to_y2", "regress"),
            ("serving_default", "predict")
        ])
    );
    let spec = model.signature("regress_x_to_y").expect("sig").example_spec("inputs").expect("the ParseExample op's spec").clone();
    let x = spec.feature("x").expect("x");
    assert!(x.is_required() && x.dtype == DType::Float, "{x}");
    assert!(matches!(&spec.feature("x2").expect("x2").kind, FeatureKind::Dense { default: Some(_), .. }), "x2 has a default");

    let rows = 9;
    let x = floats(sample(rows, 0.2));
    let x2: ArrayRef = Arc::new(Float32Array::from((0..rows).map(|i| (i % 3 != 0).then_some(i as f32 * 0.25)).collect::<Vec<_>>()));
    let features = batch(vec![("x", x.clone()), ("x2", x2)]);
    let example_signatures = ["regress_x_to_y", "regress_x_to_y2", "classify_x_to_y"];
    let mut calls = vec![
        call("serving_default", json!({"x": tensor_json("float32", &[rows, 1], &x)})),
        call("regress_x2_to_y3", json!({"inputs": tensor_json("float32", &[rows, 1], &x)})),
    ];
    calls.extend(example_signatures.iter().map(|s| examples_call(s, "inputs", &features)));
    let answer = reference(vec![model_request(name, "saved_model", &["serve"], calls)]);

    let (p, y) = predict(&model, "serving_default", &batch(vec![("x", x.clone())]), 1024);
    assert_call_outputs("serving_default", &p, &y, &answer, name, 0);
    let (p, y) = predict(&model, "regress_x2_to_y3", &batch(vec![("inputs", x.clone())]), 1024);
    assert_call_outputs("regress_x2_to_y3", &p, &y, &answer, name, 1);
    for (i, signature) in example_signatures.iter().enumerate() {
        let (p, y) = predict(&model, signature, &features, 1024);
        assert_call_outputs(signature, &p, &y, &answer, name, 2 + i);
    }
}

#[test]
fn half_plus_two_tf2_fixed_batch_of_one_and_examples_match_tensorflow() {
    let name = "serving_half_plus_two_tf2";
    let model = load(name);
    assert!(signatures_and_methods(&model).iter().all(|(_, method)| method == "predict"));
    let rows = 5;
    let x = floats(sample(rows, 1.1));
    let features = batch(vec![("x", x.clone()), ("x2", floats(sample(rows, 2.0)))]);
    let fixed = ["serving_default", "regress_x2_to_y3", "classify_x2_to_y3"];
    let mut calls = Vec::new();
    for signature in fixed {
        let key = if signature == "serving_default" { "x" } else { "inputs" };
        // TensorFlow's own calls take exactly one row each, as the signature's shape [1] says.
        calls.extend((0..rows).map(|row| call(signature, json!({ key: tensor_json("float32", &[1], &x.slice(row, 1)) }))));
    }
    let example_signatures = ["regress_x_to_y", "regress_x_to_y2", "classify_x_to_y"];
    calls.extend(example_signatures.iter().map(|s| examples_call(s, "inputs", &features)));
    let answer = reference(vec![model_request(name, "saved_model", &["serve"], calls)]);

    for (i, signature) in fixed.iter().enumerate() {
        let key = if *signature == "serving_default" { "x" } else { "inputs" };
        let (p, y) = predict(&model, signature, &batch(vec![(key, x.clone())]), 1024);
        assert_eq!(p.batch_size(), 1, "{signature}: the fixed batch dimension [1] is honoured");
        let calls = i * rows..(i + 1) * rows;
        assert_outputs(signature, &p.output_fields(), &y, |key| merged(&answer, name, calls.clone(), key));
    }
    for (i, signature) in example_signatures.iter().enumerate() {
        let (p, y) = predict(&model, signature, &features, 1024);
        assert_call_outputs(signature, &p, &y, &answer, name, 3 * rows + i);
    }
}

#[test]
fn half_plus_three_tf1_0_runs_with_the_graph_shape_and_refuses_its_mistyped_signature() {
    let name = "serving_half_plus_three_tf1_0";
    let model = load(name);
    assert_eq!(model.written_by(), Some("1.0.0-rc2"));
    let serving = model.signature("serving_default").expect("serving_default");
    let x = &serving.inputs()[0];
    assert_eq!(x.shape, Shape(None), "TF 1.0 recorded no shape: unknown, not a scalar");
    assert_eq!(x.graph_shape, Shape(Some(vec![-1, 1])), "the placeholder behind it is (None, 1)");

    let rows = 6;
    let values = floats(sample(rows, 0.0));
    // TF2 Python cannot load this model; the TF1 Session loader (the C API's path) can.
    let calls = vec![call("serving_default", json!({"x": tensor_json("float32", &[rows, 1], &values)}))];
    let answer = reference(vec![model_request(name, "session", &["serve"], calls)]);
    let (p, y) = predict(&model, "serving_default", &batch(vec![("x", values)]), 1024);
    assert_call_outputs("serving_default", &p, &y, &answer, name, 0);

    let regress = model.signature("tensorflow/serving/regress").expect("regress");
    let problem = regress.problem().expect("the declared dtype is wrong");
    assert!(problem.contains("declared float32") && problem.contains("string") && problem.contains("1.0.0-rc2"), "{problem}");
    let table = batch(vec![("inputs", Arc::new(BinaryArray::from_vec(vec![b"".as_slice()])) as ArrayRef)]);
    let err = Predictor::new(model.clone(), &table.schema(), &PredictOptions::default().signature("tensorflow/serving/regress")).err().expect("refused");
    assert!(matches!(err, TfError::UnusableSignature { .. }), "{err}");
}

#[test]
fn counter_keeps_its_state_and_gives_tensorflows_sequence() {
    let name = "serving_counter_tf1";
    let model = load(name);
    let scalar = |v: f32| TensorValue::scalar(floats([v])).expect("scalar");
    let sequence: Vec<(&str, Option<f32>)> =
        vec![("get_counter", None), ("incr_counter", None), ("incr_counter", None), ("incr_counter_by", Some(2.5)), ("get_counter", None), ("reset_counter", None), ("get_counter", None)];
    let deltas = vec![1.0f32, 2.5, -0.5, 4.0];
    let mut calls: Vec<Value> = sequence
        .iter()
        .map(|(signature, delta)| match delta {
            Some(d) => call(signature, json!({"delta": {"dtype": "float32", "shape": [], "values": [d]}})),
            None => call(signature, json!({})),
        })
        .collect();
    calls.extend(deltas.iter().map(|d| call("incr_counter_by", json!({"delta": {"dtype": "float32", "shape": [], "values": [d]}}))));
    let answer = reference(vec![model_request(name, "session", &["serve"], calls)]);

    for (i, (signature, delta)) in sequence.iter().enumerate() {
        let inputs: Vec<(&str, TensorValue)> = delta.iter().map(|d| ("delta", scalar(*d))).collect();
        let out = model.call(signature, &inputs).unwrap_or_else(|e| panic!("{signature}: {e}"));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1.dims(), &[] as &[i64], "{signature}: a scalar");
        assert_matches_tensorflow(&format!("call {i}: {signature}"), out[0].1.values(), &outputs(&answer, name, i)["output"]);
    }
    // The table path: no input has a batch dimension and the output is a scalar, so each row
    // is its own call and the column is the running count.
    let (p, counts) = predict(&model, "incr_counter_by", &batch(vec![("delta", floats(deltas.clone()))]), 1024);
    assert!(p.runs_per_row());
    let runs = sequence.len()..sequence.len() + deltas.len();
    assert_outputs("incr_counter_by", &p.output_fields(), &counts, |key| merged(&answer, name, runs.clone(), key));
}

#[test]
fn java_multi_signature_unknown_rank_inputs_run_as_scalars_vectors_and_matrices() {
    let name = "java_multi_signature_tf2";
    let model = load(name);
    let names: Vec<String> = model.signatures().iter().map(|s| s.name().to_string()).collect();
    assert_eq!(names, vec!["add", "get_const_matrix", "get_const_scalar", "get_const_vector", "get_variable"]);
    assert!(model.signatures().iter().all(|s| s.inputs().iter().all(|i| i.shape == Shape(None))), "every input has unknown rank");

    let rows = 4;
    let scalars = floats(sample(rows, 0.5));
    let other = floats(sample(rows, 2.5));
    let triples = vectors(3, sample(rows * 3, 1.0));
    let per_row = |signature: &str, key: &str, column: &ArrayRef| -> Vec<Value> {
        (0..rows).map(|row| call(signature, json!({ key: tensor_json("float32", &[], &column.slice(row, 1)) }))).collect()
    };
    let mut calls = vec![
        call("get_const_scalar", json!({"input": tensor_json("float32", &[rows], &scalars)})),
        call("get_const_vector", json!({"input": tensor_json("float32", &[rows, 3], &triples)})),
        call("add", json!({"a": tensor_json("float32", &[rows], &scalars), "b": tensor_json("float32", &[rows], &other)})),
    ];
    calls.extend(per_row("get_const_vector", "input", &scalars));
    calls.extend(per_row("get_const_matrix", "input", &scalars));
    calls.extend(per_row("get_variable", "dummy", &scalars));
    let answer = reference(vec![model_request(name, "saved_model", &["serve"], calls)]);

    let (p, out) = predict(&model, "get_const_scalar", &batch(vec![("input", scalars.clone())]), 1024);
    assert!(!p.runs_per_row(), "0 + x keeps the batch dimension");
    assert_call_outputs("get_const_scalar", &p, &out, &answer, name, 0);
    let (p, out) = predict(&model, "get_const_vector", &batch(vec![("input", triples)]), 1024);
    assert_eq!(p.output_fields()[0].data_type(), &DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, false)), 3));
    assert_call_outputs("get_const_vector (matrix in)", &p, &out, &answer, name, 1);
    let (p, out) = predict(&model, "add", &batch(vec![("a", scalars.clone()), ("b", other)]), 1024);
    assert_call_outputs("add", &p, &out, &answer, name, 2);
    for (i, (signature, key)) in [("get_const_vector", "input"), ("get_const_matrix", "input"), ("get_variable", "dummy")].into_iter().enumerate() {
        let (p, out) = predict(&model, signature, &batch(vec![(key, scalars.clone())]), 1024);
        assert!(p.runs_per_row(), "{signature}: its output does not keep a batch dimension");
        let calls = 3 + i * rows..3 + (i + 1) * rows;
        assert_outputs(signature, &p.output_fields(), &out, |key| merged(&answer, name, calls.clone(), key));
    }
}

#[test]
fn regression_train_tf2_trains_through_the_table_path_like_tensorflow() {
    let name = "rust_regression_train_tf2";
    let model = load(name);
    let (rows, steps) = (8, 3);
    let x = sample(rows * steps, 0.3);
    let y: Vec<f32> = x.iter().map(|v| 0.1 * v + 0.3).collect();
    let (x, y) = (floats(x), floats(y));
    let mut calls: Vec<Value> = (0..steps)
        .map(|s| {
            let (xs, ys) = (x.slice(s * rows, rows), y.slice(s * rows, rows));
            call("train", json!({"x": tensor_json("float32", &[rows], &xs), "y": tensor_json("float32", &[rows], &ys)}))
        })
        .collect();
    calls.push(call("w", json!({})));
    calls.push(call("b", json!({})));
    let answer = reference(vec![model_request(name, "saved_model", &["serve"], calls)]);

    // One training step per run of `rows` rows; the loss (a scalar per run) on each of its rows.
    let (p, loss) = predict(&model, "train", &batch(vec![("x", x), ("y", y)]), rows);
    let per_row_losses = |key: &str| {
        let losses = merged(&answer, name, 0..steps, key);
        let repeated: Vec<Value> = losses["values"].as_array().expect("losses").iter().flat_map(|l| std::iter::repeat_n(l.clone(), rows)).collect();
        json!({"dtype": "float32", "values": repeated})
    };
    assert_outputs("train", &p.output_fields(), &loss, per_row_losses);
    for (i, variable) in ["w", "b"].into_iter().enumerate() {
        let out = model.call(variable, &[]).expect("no-input signature");
        assert_matches_tensorflow(variable, out[0].1.values(), &outputs(&answer, name, steps + i)["output"]);
    }
    let err = Predictor::new(model.clone(), &batch(vec![("x", floats([1.0]))]).schema(), &PredictOptions::default().signature("w")).err().expect("no inputs");
    assert!(matches!(err, TfError::NoInputs { .. }) && err.to_string().contains("dlflow model call"), "{err}");
}

#[test]
fn regression_tf1_needs_its_train_serve_tags_and_then_matches_tensorflow() {
    let name = "rust_regression_tf1_train_serve";
    let dir = external_model(name);
    assert_eq!(SavedModel::tag_sets(&dir).expect("tag sets"), vec![vec!["train".to_string(), "serve".to_string()]]);
    let err = SavedModel::load(&dir).err().expect("no {serve} MetaGraph");
    assert!(matches!(err, TfError::NoSuchTags { .. }), "{err}");
    assert!(err.to_string().contains("{train, serve}") && err.to_string().contains("--tags train,serve"), "{err}");

    let model = Arc::new(SavedModel::load_with(&dir, &LoadOptions::default().with_tags(["serve", "train"])).expect("tags as a set"));
    let signature = model.default_signature().expect("the only signature is the default");
    assert_eq!((signature.name(), signature.method()), ("tensorflow/serving/regress", "regress"));
    let rows = 7;
    let (x, y) = (floats(sample(rows, 0.1)), floats(sample(rows, 4.0)));
    let calls = vec![call("tensorflow/serving/regress", json!({"x": tensor_json("float32", &[rows], &x), "y": tensor_json("float32", &[rows], &y)}))];
    let answer = reference(vec![model_request(name, "session", &["train", "serve"], calls)]);
    let (p, out) = predict(&model, "tensorflow/serving/regress", &batch(vec![("x", x), ("y", y)]), 1024);
    assert_call_outputs("regress", &p, &out, &answer, name, 0);
}

#[test]
fn keras_two_inputs_match_tensorflow() {
    let name = "rust_keras_two_inputs";
    let model = load(name);
    let rows = 10;
    let (a, b) = (vectors(5, sample(rows * 5, 0.0)), vectors(5, sample(rows * 5, 3.3)));
    let calls = vec![call("serving_default", json!({"test_in1": tensor_json("float32", &[rows, 5], &a), "test_in2": tensor_json("float32", &[rows, 5], &b)}))];
    let answer = reference(vec![model_request(name, "saved_model", &["serve"], calls)]);
    let (p, out) = predict(&model, "serving_default", &batch(vec![("test_in1", a), ("test_in2", b)]), 1024);
    assert_call_outputs("serving_default", &p, &out, &answer, name, 0);
}

#[test]
fn add_without_variables_folder_runs_one_fixed_row_per_call() {
    let name = "onnx_add_no_variables";
    assert!(!external_model(name).join("variables").exists(), "the model has no variables/ folder");
    let model = load(name);
    let rows = 3;
    let (x, y) = (vectors(10, sample(rows * 10, 0.0)), vectors(10, sample(rows * 10, 1.7)));
    let calls: Vec<Value> = (0..rows)
        .map(|r| call("serving_default", json!({"x": tensor_json("float32", &[1, 10], &x.slice(r, 1)), "y": tensor_json("float32", &[1, 10], &y.slice(r, 1))})))
        .collect();
    let answer = reference(vec![model_request(name, "saved_model", &["serve"], calls)]);
    let (p, out) = predict(&model, "serving_default", &batch(vec![("x", x), ("y", y)]), 1024);
    assert_eq!(p.batch_size(), 1, "[1, 10] fixes the batch at one row");
    assert_outputs("serving_default", &p.output_fields(), &out, |key| merged(&answer, name, 0..rows, key));
}

#[test]
fn regression_tf1_unknown_rank_input_takes_vectors_and_matrices() {
    let name = "onnx_regression_tf1";
    let model = load(name);
    let rows = 6;
    let (x, pairs) = (floats(sample(rows, 0.9)), vectors(2, sample(rows * 2, 0.4)));
    let calls = vec![
        call("serving_default", json!({"X": tensor_json("float32", &[rows], &x)})),
        call("serving_default", json!({"X": tensor_json("float32", &[rows, 2], &pairs)})),
    ];
    let answer = reference(vec![model_request(name, "saved_model", &["serve"], calls)]);
    let (p, out) = predict(&model, "serving_default", &batch(vec![("X", x)]), 1024);
    assert_eq!(p.output_fields()[0].data_type(), &DataType::Float32);
    assert_call_outputs("serving_default (rank 1)", &p, &out, &answer, name, 0);
    let (p, out) = predict(&model, "serving_default", &batch(vec![("X", pairs)]), 1024);
    assert_call_outputs("serving_default (rank 2)", &p, &out, &answer, name, 1);
}

/// Taxi trips with all 17 features, some missing, and the out-of-vocabulary values the
/// TFX test data uses.
fn taxi_trips() -> RecordBatch {
    let rows = 12;
    let companies = ["Flash Cab", "Taxi Affiliation Services", "No Such Cab Co", "Blue Ribbon Taxi Association Inc."];
    let payments = ["Cash", "Credit Card", "Bitcoin"];
    let int64 = |f: fn(usize) -> Option<i64>| Arc::new(Int64Array::from((0..rows).map(f).collect::<Vec<_>>())) as ArrayRef;
    let float64 = |seed: f64, scale: f64| Arc::new(Float64Array::from((0..rows).map(|i| ((i as f64 * 0.37 + seed) % 1.0) * scale).collect::<Vec<_>>())) as ArrayRef;
    batch(vec![
        ("company", Arc::new(StringArray::from((0..rows).map(|i| (i != 5).then(|| companies[i % 4])).collect::<Vec<_>>())) as ArrayRef),
        ("payment_type", Arc::new(StringArray::from((0..rows).map(|i| payments[i % 3]).collect::<Vec<_>>())) as ArrayRef),
        ("fare", float64(0.1, 40.0)),
        ("trip_miles", float64(0.5, 12.0)),
        ("trip_seconds", int64(|i| Some(300 + 97 * i as i64))),
        ("trip_start_hour", int64(|i| Some((i as i64 * 5) % 24))),
        ("trip_start_day", int64(|i| Some(1 + i as i64 % 7))),
        ("trip_start_month", int64(|i| Some(1 + i as i64 % 12))),
        ("trip_start_timestamp", int64(|i| Some(1_400_000_000 + 3600 * i as i64))),
        ("pickup_census_tract", int64(|i| (i % 4 != 1).then_some(17_031_081_800 + i as i64))),
        ("dropoff_census_tract", int64(|i| (i % 3 != 2).then_some(17_031_320_100 + i as i64))),
        ("pickup_community_area", Arc::new(Int32Array::from((0..rows).map(|i| Some(1 + (i as i32 * 7) % 77)).collect::<Vec<_>>())) as ArrayRef),
        ("dropoff_community_area", int64(|i| (i != 3).then_some(1 + (i as i64 * 11) % 77))),
        ("pickup_latitude", float64(0.2, 1.0)),
        ("pickup_longitude", float64(0.7, -1.0)),
        ("dropoff_latitude", float64(0.3, 1.0)),
        ("dropoff_longitude", float64(0.9, -1.0)),
    ])
}

#[test]
fn taxi_estimator_runs_from_feature_columns_like_from_python_protos() {
    let name = "tfx_taxi_estimator";
    let model = load(name);
    let signatures = ["classification", "predict", "regression", "serving_default"];
    assert_eq!(
        signatures_and_methods(&model),
        pairs(&[("classification", "classify"), ("predict", "predict"), ("regression", "regress"), ("serving_default", "classify")])
    );
    let spec = model.signature("predict").expect("predict").example_spec("examples").expect("the ParseExampleV2 spec").clone();
    assert_eq!(spec.features.len(), 17);
    assert!(spec.features.iter().all(|f| f.kind == FeatureKind::VarLen && !f.is_required()));
    assert_eq!(spec.feature("company").map(|f| f.dtype), Some(DType::String));
    assert_eq!(spec.feature("fare").map(|f| f.dtype), Some(DType::Float));
    assert_eq!(spec.feature("trip_seconds").map(|f| f.dtype), Some(DType::Int64));

    let trips = taxi_trips();
    let input = |s: &str| if s == "predict" { "examples" } else { "inputs" };
    let mut calls: Vec<Value> = signatures.iter().map(|s| examples_call(s, input(s), &trips)).collect();
    // The same rows in runs of 5, 5 and 2.
    let runs = [0..5, 5..10, 10..12];
    calls.extend(runs.iter().map(|r| examples_call("predict", "examples", &trips.slice(r.start, r.len()))));
    let answer = reference(vec![model_request(name, "saved_model", &["serve"], calls)]);
    for (i, signature) in signatures.iter().enumerate() {
        // One run, as TensorFlow's call: a matmul over another batch size may round differently.
        let (p, out) = predict(&model, signature, &trips, 1024);
        assert_call_outputs(signature, &p, &out, &answer, name, i);
        if *signature == "predict" {
            let types: Vec<(String, DataType)> = p.output_fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect();
            let item = |t: DataType| Arc::new(Field::new("item", t, false));
            assert!(types.contains(&("all_class_ids".into(), DataType::FixedSizeList(item(DataType::Int32), 2))), "{types:?}");
            assert!(types.contains(&("class_ids".into(), DataType::Int64)), "{types:?}");
            assert!(types.contains(&("classes".into(), DataType::Utf8)), "{types:?}");
            assert!(types.contains(&("all_classes".into(), DataType::FixedSizeList(item(DataType::Utf8), 2))), "{types:?}");
        }
    }
    let (p, out) = predict(&model, "predict", &trips, 5);
    assert_outputs("predict in runs of 5", &p.output_fields(), &out, |key| merged(&answer, name, 4..7, key));
    // Protos serialized by Python, in a binary column named like the input, are fed as they are.
    let serialized = serialized_examples(&answer, name, 1);
    let column: ArrayRef = Arc::new(BinaryArray::from_iter_values(serialized.iter()));
    let (p, out) = predict(&model, "predict", &batch(vec![("examples", column)]), 1024);
    assert_call_outputs("predict from Python's protos", &p, &out, &answer, name, 1);
}

fn penguins(rows: usize) -> RecordBatch {
    batch(vec![
        ("culmen_length_mm", floats(sample(rows, 0.3).iter().map(|v| v * 0.5))),
        ("culmen_depth_mm", floats(sample(rows, 1.3).iter().map(|v| v * 0.5))),
        ("flipper_length_mm", floats(sample(rows, 2.3).iter().map(|v| v * 0.5))),
        ("body_mass_g", floats(sample(rows, 3.3).iter().map(|v| v * 0.5))),
        ("species", Arc::new(StringArray::from(vec!["not a feature"; rows])) as ArrayRef),
    ])
}

#[test]
fn penguin_keras_runs_from_feature_columns_and_names_a_missing_feature() {
    let name = "tfx_penguin_keras";
    let model = load(name);
    let spec = model.signature("serving_default").expect("sig").example_spec("examples").expect("spec").clone();
    let names: Vec<&str> = spec.features.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, vec!["body_mass_g", "culmen_depth_mm", "culmen_length_mm", "flipper_length_mm"]);
    assert!(spec.features.iter().all(|f| f.is_required() && f.dtype == DType::Float));

    let table = penguins(11);
    let without_mass = table.project(&[0, 1, 2]).expect("project");
    let calls = vec![examples_call("serving_default", "examples", &table.project(&[0, 1, 2, 3]).expect("features")), examples_call("serving_default", "examples", &without_mass)];
    let answer = reference(vec![model_request(name, "saved_model", &["serve"], calls)]);
    let (p, out) = predict(&model, "serving_default", &table, 1024);
    assert_call_outputs("serving_default", &p, &out, &answer, name, 0);
    let column: ArrayRef = Arc::new(BinaryArray::from_iter_values(serialized_examples(&answer, name, 0).iter()));
    let (p, out) = predict(&model, "serving_default", &batch(vec![("examples", column)]), 1024);
    assert_call_outputs("serving_default from Python's protos", &p, &out, &answer, name, 0);

    // TensorFlow refuses examples without body_mass_g; dlflow says so before anything runs.
    let tf_error = answer[name][1]["error"].as_str().expect("TensorFlow refused the examples");
    assert!(tf_error.contains("body_mass_g"), "{tf_error}");
    let err = Predictor::new(model.clone(), &without_mass.schema(), &PredictOptions::default()).err().expect("missing feature");
    assert!(matches!(err, TfError::MissingFeature { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("body_mass_g") && message.contains("required") && message.contains("culmen_length_mm"), "{message}");
}

#[test]
fn an_op_this_tensorflow_lacks_is_named_with_the_version_that_wrote_the_model() {
    let source = external_model("onnx_add_no_variables");
    let dir = tempfile::tempdir().expect("tempdir");
    let pb = std::fs::read(source.join("saved_model.pb")).expect("read");
    // The NodeDef's `op: "Add"` field (tag 2, 3 bytes), renamed to an op no TensorFlow has.
    let needle = b"\x12\x03Add";
    let at = pb.windows(needle.len()).position(|w| w == needle).expect("the Add node's op field");
    let mut patched = pb.clone();
    patched[at + 2..at + 5].copy_from_slice(b"Zzz");
    std::fs::write(dir.path().join("saved_model.pb"), patched).expect("write");
    let err = SavedModel::load(dir.path()).err().expect("unknown op");
    assert!(matches!(err, TfError::UnknownOp { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("`Zzz`") && message.contains("1.12.0") && message.contains("2.21"), "{message}");
}
