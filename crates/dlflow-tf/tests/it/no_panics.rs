//! Inputs that used to panic, abort or be read at the wrong place, and now end in an error
//! that names the thing and says what was expected (issue 14, point 5).

use dlflow_testkit as common;

use std::sync::Arc;

use arrow::array::{ArrayRef, FixedSizeListArray, Float32Array, Float64Array, Int64Array, RecordBatch, RecordBatchOptions, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use dlflow_tf::{ExampleEncoder, PredictOptions, Predictor, SavedModel, TensorValue, TfError};

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(columns).expect("batch")
}

#[test]
fn a_predictor_used_with_another_schema_names_the_column_and_the_type_it_was_made_for() {
    let model = Arc::new(SavedModel::load(common::model("linear")).expect("load"));
    let made_for = batch(vec![("x", Arc::new(Float32Array::from(vec![1.0, 2.0])))]);
    let predictor = Predictor::new(model, &made_for.schema(), &PredictOptions::default()).expect("bind");
    assert_eq!(predictor.predict(&made_for).expect("the schema it was made for").len(), 1);

    // The same name, another type: read as float32 bytes before, or a panic for a list.
    let doubles = batch(vec![("x", Arc::new(Float64Array::from(vec![1.0, 2.0])))]);
    let list = FixedSizeListArray::try_new(Arc::new(Field::new("item", DataType::Float32, false)), 2, Arc::new(Float32Array::from(vec![1.0; 4])), None)
        .expect("list");
    let vectors = batch(vec![("x", Arc::new(list))]);
    for other in [doubles, vectors] {
        let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| predictor.predict(&other))).expect("no panic").expect_err("another schema");
        assert!(matches!(err, TfError::SchemaChanged { index: 0, .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains("`x`") && text.contains("Float32") && text.contains(&other.column(0).data_type().to_string()), "{text}");
    }

    // No column at all where the predictor reads one: an index out of bounds before.
    let empty = RecordBatch::try_new_with_options(Arc::new(Schema::empty()), vec![], &RecordBatchOptions::new().with_row_count(Some(3)))
        .expect("empty batch");
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| predictor.predict(&empty))).expect("no panic").expect_err("no columns");
    let text = err.to_string();
    assert!(text.contains("no column") && text.contains("Float32"), "{text}");
}

#[test]
fn an_example_encoder_used_with_another_schema_names_the_column() {
    let made_for = batch(vec![("age", Arc::new(Int64Array::from(vec![1, 2]))), ("name", Arc::new(StringArray::from(vec!["a", "b"])))]);
    let encoder = ExampleEncoder::new(&made_for.schema(), None, &[], true).expect("plan");
    assert_eq!(encoder.encode(&made_for).expect("encode").len(), 2);
    let fewer = batch(vec![("age", Arc::new(Int64Array::from(vec![1, 2])))]);
    let swapped = batch(vec![("name", Arc::new(StringArray::from(vec!["a", "b"]))), ("age", Arc::new(Int64Array::from(vec![1, 2])))]);
    for other in [fewer, swapped] {
        let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| encoder.encode(&other))).expect("no panic").expect_err("another schema");
        assert!(matches!(err, TfError::SchemaChanged { .. }), "{err}");
    }
}

#[test]
fn a_shape_whose_size_overflows_is_refused_before_tensorflow_sees_it() {
    // TensorFlow aborts the process (a CHECK in TensorShape) on a shape whose element count
    // overflows; the product of these wraps to 0, which matched the 0 values given.
    let empty: ArrayRef = Arc::new(Float32Array::from(Vec::<f32>::new()));
    let err = TensorValue::new(vec![1 << 32, 1 << 32, 0], empty.clone()).expect_err("overflowing shape");
    assert!(err.contains("more elements than a tensor can hold"), "{err}");
    assert!(TensorValue::new(vec![0, 1 << 32], empty).is_ok(), "a zero dimension is a valid empty tensor");
}
