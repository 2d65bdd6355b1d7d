//! Loading SavedModels and reading their signatures, against models made by real TensorFlow.

use dlflow_testkit as common;

use dlflow_tf::{DType, LoadOptions, SavedModel, Shape, TfError};

#[test]
fn lists_signatures_with_names_dtypes_and_shapes() {
    let model = SavedModel::load(common::model("mlp")).expect("load mlp");
    let names: Vec<&str> = model.signatures().iter().map(|s| s.name()).collect();
    assert_eq!(names, vec!["classify", "predict", "serving_default"], "internal signatures are hidden, the rest sorted");

    let serving = model.signature("serving_default").expect("serving_default");
    assert_eq!(serving.method_name(), "tensorflow/serving/predict");
    let input = &serving.inputs()[0];
    assert_eq!((input.key.as_str(), input.dtype, &input.shape), ("pixels", DType::Float, &Shape(Some(vec![-1, 784]))));
    assert_eq!(serving.outputs()[0].key, "logits");
    assert_eq!(serving.outputs()[0].shape.to_string(), "[-1, 10]");

    let classify = model.signature("classify").expect("classify");
    let outputs: Vec<(&str, DType)> = classify.outputs().iter().map(|o| (o.key.as_str(), o.dtype)).collect();
    assert_eq!(outputs, vec![("classes", DType::Int64), ("scores", DType::Float)]);
}

#[test]
fn default_signature_prefers_serving_default_then_standard_names() {
    let linear = SavedModel::load(common::model("linear")).expect("load linear");
    assert_eq!(linear.default_signature().expect("default").name(), "serving_default");
    assert!(linear.signature("regress").is_ok(), "the standard `regress` signature is found by name");
    let mlp = SavedModel::load(common::model("mlp")).expect("load mlp");
    assert!(mlp.signature("predict").is_ok() && mlp.signature("classify").is_ok());
}

#[test]
fn string_and_multi_input_signatures() {
    let model = SavedModel::load(common::model("all_types")).expect("load");
    let inputs: Vec<(&str, DType)> = model.default_signature().expect("sig").inputs().iter().map(|s| (s.key.as_str(), s.dtype)).collect();
    assert_eq!(inputs, vec![("f32", DType::Float), ("f64", DType::Double), ("i32", DType::Int32), ("i64", DType::Int64), ("s", DType::String)]);
}

#[test]
fn unknown_signature_lists_the_available_ones() {
    let model = SavedModel::load(common::model("mlp")).expect("load");
    let err = model.signature("regress").expect_err("no regress signature");
    assert!(matches!(err, TfError::UnknownSignature { .. }));
    let message = err.to_string();
    assert!(message.contains("`regress`") && message.contains("classify, predict, serving_default"), "{message}");
}

#[test]
fn missing_model_directory_is_named() {
    let err = SavedModel::load("/nonexistent/model").err().expect("must fail");
    assert!(matches!(err, TfError::ModelNotFound { .. }));
    assert!(err.to_string().contains("/nonexistent/model"), "{err}");
}

#[test]
fn directory_without_saved_model_pb_is_not_a_saved_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("model.h5"), b"not a saved model").expect("write");
    let err = SavedModel::load(dir.path()).err().expect("must fail");
    assert!(matches!(err, TfError::NotASavedModel { .. }), "{err}");
    assert!(err.to_string().contains("saved_model.pb"), "{err}");
}

#[test]
fn corrupt_saved_model_pb_is_a_load_error_not_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("saved_model.pb"), b"\x08\x96\x01garbage that is not a protobuf").expect("write");
    let err = SavedModel::load(dir.path()).err().expect("must fail");
    assert!(matches!(err, TfError::ModelLoad { .. }), "{err}");
    assert!(err.to_string().contains(&dir.path().display().to_string()), "{err}");
}

#[test]
fn wrong_tags_are_a_load_error_naming_the_tags() {
    let options = LoadOptions { tags: vec!["train".into()], ..LoadOptions::default() };
    let err = SavedModel::load_with(common::model("linear"), &options).err().expect("must fail");
    assert!(matches!(err, TfError::NoSuchTags { .. }), "{err}");
    assert!(err.to_string().contains("tagged {train}") && err.to_string().contains("its tag sets are: {serve}"), "{err}");
}
