//! Predictions against TensorFlow's own outputs, and every bad input a table can bring.

use dlflow_testkit as common;

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, Float32Array, Float64Array, Int32Array, Int64Array, ListArray, RecordBatch,
    StringArray,
};
use arrow::datatypes::{DataType, Field, Float32Type};
use dlflow_tf::{PredictOptions, Predictor, SavedModel, TfError};

fn load(name: &str) -> Arc<SavedModel> {
    Arc::new(SavedModel::load(common::model(name)).expect("load model"))
}

/// Run `name` over its reference inputs with `options` and compare every output with
/// what TensorFlow computed in Python.
fn check_against_tensorflow(name: &str, options: PredictOptions) {
    let reference = common::reference(name);
    let inputs = common::reference_inputs(&reference);
    // A deep copy: numeric columns are lent to TensorFlow, which must not write into them.
    let before = arrow::compute::take_record_batch(&inputs, &arrow::array::UInt32Array::from_iter_values(0..inputs.num_rows() as u32)).expect("copy");
    let predictor = Predictor::new(load(name), &inputs.schema(), &options).expect("bind");
    let outputs = predictor.predict(&inputs).expect("predict");
    assert_eq!(inputs, before, "{name}: the inputs changed while TensorFlow ran on them");
    let fields = predictor.output_fields();
    assert_eq!(outputs.len(), fields.len());
    for (field, column) in fields.iter().zip(&outputs) {
        assert_eq!(column.data_type(), field.data_type(), "{name}.{}: declared type", field.name());
        let expected = reference.column_by_name(&format!("expected.{}", field.name())).expect("expected column");
        common::assert_same_values(&format!("{name}.{}", field.name()), column, expected);
    }
}

#[test]
fn linear_matches_tensorflow_and_is_2x_plus_1() {
    check_against_tensorflow("linear", PredictOptions::default());
    let batch = RecordBatch::try_from_iter([("x", Arc::new(Float32Array::from(vec![0.0, 0.5, 3.0])) as ArrayRef)]).expect("batch");
    let predictor = Predictor::new(load("linear"), &batch.schema(), &PredictOptions::default()).expect("bind");
    let y = predictor.predict(&batch).expect("predict");
    assert_eq!(y[0].as_primitive::<Float32Type>().values().to_vec(), vec![1.0, 2.0, 7.0], "[n,1] output becomes a scalar column");
}

#[test]
fn two_inputs_two_outputs_match_tensorflow() {
    check_against_tensorflow("two_in_two_out", PredictOptions::default());
}

#[test]
fn mlp_matches_tensorflow_in_one_run_and_in_small_batches() {
    check_against_tensorflow("mlp", PredictOptions::default());
    check_against_tensorflow("mlp", PredictOptions::default().batch_size(7));
}

#[test]
fn mlp_classify_signature_matches_tensorflow_for_the_chosen_outputs() {
    let reference = common::reference("mlp");
    let inputs = common::reference_inputs(&reference);
    let predictor = Predictor::new(load("mlp"), &inputs.schema(), &PredictOptions::default().signature("classify").outputs(["classes"])).expect("bind");
    let classes = predictor.predict(&inputs).expect("predict").remove(0);
    assert_eq!(classes.data_type(), &DataType::Int64);
    // The class is the argmax of TensorFlow's own logits.
    let logits = reference.column_by_name("expected.logits").expect("logits");
    let logits = logits.as_fixed_size_list();
    for row in 0..inputs.num_rows() {
        let values = logits.value(row);
        let values = values.as_primitive::<Float32Type>().values();
        let argmax = (0..10).max_by(|a, b| values[*a].total_cmp(&values[*b])).expect("10 logits") as i64;
        assert_eq!(classes.as_primitive::<arrow::datatypes::Int64Type>().value(row), argmax, "row {row}");
    }
}

#[test]
fn strings_in_and_out_match_tensorflow() {
    check_against_tensorflow("strings", PredictOptions::default());
}

#[test]
fn all_five_seed_types_match_tensorflow() {
    check_against_tensorflow("all_types", PredictOptions::default());
}

#[test]
fn vector_column_is_reshaped_to_the_signature_rank() {
    // `image` is FixedSizeList<Float32, 16> feeding a [-1, 4, 4, 1] input; `row_sums` is a
    // [-1, 4] output and comes back as FixedSizeList<4>.
    check_against_tensorflow("image", PredictOptions::default());
}

#[test]
fn equal_length_list_column_feeds_a_vector_input() {
    let values = Float32Array::from((0..784 * 3).map(|i| (i % 7) as f32 / 7.0).collect::<Vec<_>>());
    let fixed = FixedSizeListArray::new(Arc::new(Field::new("item", DataType::Float32, true)), 784, Arc::new(values.clone()), None);
    let offsets = arrow::buffer::OffsetBuffer::from_lengths([784, 784, 784]);
    let list = ListArray::new(Arc::new(Field::new("item", DataType::Float32, true)), offsets, Arc::new(values), None);
    let model = load("mlp");
    let run = |column: ArrayRef| {
        let batch = RecordBatch::try_from_iter([("pixels", column)]).expect("batch");
        Predictor::new(model.clone(), &batch.schema(), &PredictOptions::default()).expect("bind").predict(&batch).expect("predict").remove(0)
    };
    assert_eq!(run(Arc::new(fixed)).to_data(), run(Arc::new(list)).to_data());
}

#[test]
fn explicit_mapping_feeds_an_input_from_another_column() {
    let batch = RecordBatch::try_from_iter([("feature", Arc::new(Float32Array::from(vec![1.0, 2.0])) as ArrayRef)]).expect("batch");
    let predictor = Predictor::new(load("linear"), &batch.schema(), &PredictOptions::default().map_input("x", "feature")).expect("bind");
    let y = predictor.predict(&batch).expect("predict");
    assert_eq!(y[0].as_primitive::<Float32Type>().values().to_vec(), vec![3.0, 5.0]);
}

#[test]
fn doubles_are_converted_for_a_float32_input_unless_exact_types_are_asked() {
    let batch = RecordBatch::try_from_iter([("x", Arc::new(Float64Array::from(vec![1.0, 2.0])) as ArrayRef)]).expect("batch");
    let predictor = Predictor::new(load("linear"), &batch.schema(), &PredictOptions::default()).expect("bind");
    assert_eq!(predictor.predict(&batch).expect("predict")[0].as_primitive::<Float32Type>().values().to_vec(), vec![3.0, 5.0]);
    let err = Predictor::new(load("linear"), &batch.schema(), &PredictOptions::default().allow_cast(false)).err().expect("exact types");
    assert!(matches!(err, TfError::TypeMismatch { .. }), "{err}");
}

#[test]
fn integer_overflow_on_conversion_is_an_error_not_a_wrap() {
    // The all_types model wants int32 for `i32`; an Int64 value beyond i32 cannot be converted.
    let batch = RecordBatch::try_from_iter([
        ("f32", Arc::new(Float32Array::from(vec![0.0])) as ArrayRef),
        ("f64", Arc::new(Float64Array::from(vec![0.0])) as ArrayRef),
        ("i32", Arc::new(Int64Array::from(vec![i64::MAX])) as ArrayRef),
        ("i64", Arc::new(Int64Array::from(vec![0])) as ArrayRef),
        ("s", Arc::new(StringArray::from(vec!["a"])) as ArrayRef),
    ])
    .expect("batch");
    let predictor = Predictor::new(load("all_types"), &batch.schema(), &PredictOptions::default()).expect("bind");
    let err = predictor.predict(&batch).expect_err("overflow");
    assert!(err.to_string().contains("`i32`"), "{err}");
}

#[test]
fn missing_input_column_names_the_input_and_lists_the_columns() {
    let batch = RecordBatch::try_from_iter([("z", Arc::new(Float32Array::from(vec![1.0])) as ArrayRef)]).expect("batch");
    let err = Predictor::new(load("linear"), &batch.schema(), &PredictOptions::default()).err().expect("missing x");
    assert!(matches!(err, TfError::MissingColumn { .. }));
    let message = err.to_string();
    assert!(message.contains("input `x`") && message.contains("columns: z"), "{message}");
}

#[test]
fn mapping_to_an_unknown_input_is_an_error() {
    let batch = RecordBatch::try_from_iter([("x", Arc::new(Float32Array::from(vec![1.0])) as ArrayRef)]).expect("batch");
    let err = Predictor::new(load("linear"), &batch.schema(), &PredictOptions::default().map_input("nope", "x")).err().expect("unknown input");
    assert!(matches!(err, TfError::UnknownInput { .. }), "{err}");
}

#[test]
fn wrong_column_type_says_which_column_and_what_was_expected() {
    let batch = RecordBatch::try_from_iter([("x", Arc::new(StringArray::from(vec!["1.0"])) as ArrayRef)]).expect("batch");
    let err = Predictor::new(load("linear"), &batch.schema(), &PredictOptions::default()).err().expect("type mismatch");
    let message = err.to_string();
    assert!(matches!(err, TfError::TypeMismatch { .. }), "{message}");
    assert!(message.contains("column `x`") && message.contains("Utf8") && message.contains("float32"), "{message}");

    let numbers = RecordBatch::try_from_iter([("text", Arc::new(Int32Array::from(vec![1])) as ArrayRef)]).expect("batch");
    let err = Predictor::new(load("strings"), &numbers.schema(), &PredictOptions::default()).err().expect("number into string");
    assert!(err.to_string().contains("expects string"), "{err}");
}

#[test]
fn wrong_vector_width_is_a_shape_error_with_both_widths() {
    let values = Float32Array::from(vec![0.5f32; 783 * 2]);
    let column = FixedSizeListArray::new(Arc::new(Field::new("item", DataType::Float32, true)), 783, Arc::new(values), None);
    let batch = RecordBatch::try_from_iter([("pixels", Arc::new(column) as ArrayRef)]).expect("batch");
    let err = Predictor::new(load("mlp"), &batch.schema(), &PredictOptions::default()).err().expect("width mismatch");
    assert!(matches!(err, TfError::ShapeMismatch { .. }));
    let message = err.to_string();
    assert!(message.contains("783") && message.contains("784") && message.contains("`pixels`"), "{message}");

    let scalar = RecordBatch::try_from_iter([("pixels", Arc::new(Float32Array::from(vec![1.0])) as ArrayRef)]).expect("batch");
    let err = Predictor::new(load("mlp"), &scalar.schema(), &PredictOptions::default()).err().expect("scalar for a vector");
    assert!(err.to_string().contains("784"), "{err}");
}

#[test]
fn ragged_list_rows_are_an_error_naming_the_row() {
    let values = Float32Array::from(vec![0.5f32; 784 + 700]);
    let offsets = arrow::buffer::OffsetBuffer::from_lengths([784, 700]);
    let list = ListArray::new(Arc::new(Field::new("item", DataType::Float32, true)), offsets, Arc::new(values), None);
    let batch = RecordBatch::try_from_iter([("pixels", Arc::new(list) as ArrayRef)]).expect("batch");
    let predictor = Predictor::new(load("mlp"), &batch.schema(), &PredictOptions::default()).expect("bind");
    let err = predictor.predict(&batch).expect_err("ragged");
    assert!(err.to_string().contains("row 1 has 700 values"), "{err}");
}

#[test]
fn nulls_in_an_input_column_are_an_error_with_the_count() {
    let batch = RecordBatch::try_from_iter([("x", Arc::new(Float32Array::from(vec![Some(1.0), None, None])) as ArrayRef)]).expect("batch");
    let predictor = Predictor::new(load("linear"), &batch.schema(), &PredictOptions::default()).expect("bind");
    let err = predictor.predict(&batch).expect_err("nulls");
    assert!(matches!(err, TfError::NullValues { count: 2, .. }), "{err}");
    assert!(err.to_string().contains("column `x`"), "{err}");
}

#[test]
fn empty_batch_gives_empty_outputs() {
    let batch = RecordBatch::try_from_iter([("x", Arc::new(Float32Array::from(Vec::<f32>::new())) as ArrayRef)]).expect("batch");
    let predictor = Predictor::new(load("linear"), &batch.schema(), &PredictOptions::default()).expect("bind");
    let y = predictor.predict(&batch).expect("predict");
    assert_eq!(y[0].len(), 0);
}

#[test]
fn one_model_serves_many_threads_at_once() {
    let reference = common::reference("mlp");
    let inputs = common::reference_inputs(&reference);
    let predictor = Arc::new(Predictor::new(load("mlp"), &inputs.schema(), &PredictOptions::default().batch_size(16)).expect("bind"));
    let expected = predictor.predict(&inputs).expect("predict")[0].to_data();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (predictor, inputs) = (predictor.clone(), inputs.clone());
            std::thread::spawn(move || predictor.predict(&inputs).expect("predict")[0].to_data())
        })
        .collect();
    for handle in handles {
        assert_eq!(handle.join().expect("thread"), expected);
    }
}

#[test]
fn a_fixed_batch_dimension_gets_exactly_that_many_rows_per_run() {
    // `pair` is [4, 2]: ten rows run as 4 + 4 + 2, the last run padded with copies of the
    // last row whose outputs are dropped.
    let reference = common::reference("fixed_batch");
    let inputs = common::reference_inputs(&reference);
    let predictor = Predictor::new(load("fixed_batch"), &inputs.schema(), &PredictOptions::default()).expect("bind");
    assert_eq!(predictor.batch_size(), 4);
    let types: Vec<DataType> = predictor.output_fields().iter().map(|f| f.data_type().clone()).collect();
    assert_eq!(types, vec![DataType::Float32, DataType::Boolean, DataType::Float32], "first, positive, total");
    let once = predictor.predict(&inputs).expect("predict");
    for (field, column) in predictor.output_fields().iter().zip(&once) {
        let expected = reference.column_by_name(&format!("expected.{}", field.name())).expect("expected column");
        common::assert_same_values(&format!("fixed_batch.{}", field.name()), column, expected);
    }
    let rows: Vec<usize> = (0..10).map(|i| i % 4).collect();
    let indices = arrow::array::UInt32Array::from_iter_values(rows.iter().map(|r| *r as u32));
    let ten = arrow::compute::take_record_batch(&inputs, &indices).expect("take");
    let outputs = predictor.predict(&ten).expect("predict 10 rows");
    for (o, column) in outputs.iter().enumerate() {
        assert_eq!(column.len(), 10);
        let expected = arrow::compute::take(once[o].as_ref(), &indices, None).expect("take");
        assert_eq!(column.to_data(), expected.to_data(), "output {o}: each row's value, whatever run it was in");
    }
}

#[test]
fn a_sparse_coo_input_is_refused_with_the_reason() {
    let model = load("sparse_coo");
    let signature = model.signature("serving_default").expect("signature");
    let problem = signature.problem().expect("sparse input");
    assert!(problem.contains("sparse") && problem.contains("COO") && problem.contains("x/indices:0"), "{problem}");
    let batch = RecordBatch::try_from_iter([("x", Arc::new(Float32Array::from(vec![1.0])) as ArrayRef)]).expect("batch");
    let err = Predictor::new(model.clone(), &batch.schema(), &PredictOptions::default()).err().expect("refused");
    assert!(matches!(err, TfError::UnusableSignature { .. }) && err.to_string().contains("dense"), "{err}");
    let err = model.call("serving_default", &[]).expect_err("refused by call too");
    assert!(err.to_string().contains("sparse"), "{err}");
}
