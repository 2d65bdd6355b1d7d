//! A property test of the table-to-tensor conversion ([`InputPlan`]): random Arrow columns
//! (supported and unsupported types, nulls, fixed-size and variable lists of varying lengths,
//! empty and sliced batches), random signature inputs (types, known and unknown shapes, huge
//! dimensions) and columns of another type than the one planned for. Each case must end in an
//! error or in a tensor whose type, shape and values are the column's, never in a panic.
//!
//! The cases are seeded (the same 2000 every run) and need no model: real TensorFlow makes
//! the tensors, nothing runs them.

use std::cell::Cell;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, FixedSizeListArray, Float32Array, Float64Array, Int8Array,
    Int16Array, Int32Array, Int64Array, LargeListArray, LargeStringArray, ListArray, StringArray, UInt8Array, UInt64Array,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{DataType, Field};
use dlflow_tf::convert::{tensor_values, InputPlan};
use dlflow_tf::{DType, Shape, TensorFlow, TensorSpec};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

const CASES: u32 = 2000;
const SEED: u64 = 0x5afe_7e57;

/// Element types of generated columns: every type an input accepts, and some none does.
#[derive(Debug, Clone, Copy)]
enum Element {
    Float32,
    Float64,
    Int8,
    Int16,
    Int32,
    Int64,
    UInt8,
    UInt64,
    Boolean,
    Utf8,
    LargeUtf8,
    Binary,
    Date32,
}

const ELEMENTS: [Element; 13] = [
    Element::Float32,
    Element::Float64,
    Element::Int8,
    Element::Int16,
    Element::Int32,
    Element::Int64,
    Element::UInt8,
    Element::UInt64,
    Element::Boolean,
    Element::Utf8,
    Element::LargeUtf8,
    Element::Binary,
    Element::Date32,
];

#[derive(Debug, Clone, Copy)]
enum Layout {
    Scalar,
    Fixed(usize),
    List,
    LargeList,
}

/// One column: its element type, layout, rows (`None`: a null row) of values (`None`: a
/// null value), and an optional slice of it (a batch that does not start at row 0).
#[derive(Debug, Clone)]
struct Column {
    element: Element,
    layout: Layout,
    rows: Vec<Option<Vec<Option<u32>>>>,
    slice: Option<(usize, usize)>,
}

#[derive(Debug, Clone)]
struct Case {
    column: Column,
    /// The column the plan is made for, when it is another than the one converted.
    planned_for: Option<Column>,
    dtype: DType,
    shape: Option<Vec<i64>>,
    batched: bool,
    allow_cast: bool,
}

fn element() -> impl Strategy<Value = Element> {
    (0..ELEMENTS.len()).prop_map(|i| ELEMENTS[i])
}

fn layout() -> impl Strategy<Value = Layout> {
    prop_oneof![
        3 => Just(Layout::Scalar),
        3 => (0usize..5).prop_map(Layout::Fixed),
        2 => Just(Layout::List),
        1 => Just(Layout::LargeList),
    ]
}

/// A value; null one time in `1 / null_odds` when nulls are on.
fn value(nulls: bool) -> impl Strategy<Value = Option<u32>> {
    let null_weight = if nulls { 1 } else { 0 };
    prop_oneof![null_weight => Just(None), 20 => any::<u32>().prop_map(Some)]
}

fn column() -> impl Strategy<Value = Column> {
    let sometimes = || proptest::bool::weighted(0.25);
    (element(), layout(), 0usize..7, sometimes(), sometimes(), 0usize..4)
        .prop_flat_map(|(element, layout, rows, null_rows, null_values, width)| {
            // Lists of one width (a tensor can take them) or ragged ones (it cannot).
            let uniform = width;
            let row_len = match layout {
                Layout::Scalar => (1usize..2).boxed(),
                Layout::Fixed(k) => (k..k + 1).boxed(),
                Layout::List | Layout::LargeList => prop_oneof![3 => Just(uniform), 1 => 0usize..4].boxed(),
            };
            let row = (any::<u8>(), row_len).prop_flat_map(move |(pick, len)| {
                proptest::collection::vec(value(null_values), len..=len).prop_map(move |values| if null_rows && pick % 5 == 0 { None } else { Some(values) })
            });
            (proptest::collection::vec(row, rows..=rows), proptest::option::weighted(0.2, (0usize..3, 0usize..4)))
                .prop_map(move |(rows, slice)| Column { element, layout, rows, slice })
        })
}

fn dtype() -> impl Strategy<Value = DType> {
    prop_oneof![
        Just(DType::Float),
        Just(DType::Double),
        Just(DType::Int32),
        Just(DType::Int64),
        Just(DType::UInt8),
        Just(DType::Int8),
        Just(DType::Int16),
        Just(DType::String),
        Just(DType::Bool),
        // half and complex64: types dlflow does not convert.
        Just(DType::Other(19)),
        Just(DType::Other(8)),
    ]
}

fn shape() -> impl Strategy<Value = Option<Vec<i64>>> {
    let dim = prop_oneof![4 => Just(-1i64), 1 => Just(0), 3 => 1i64..5, 1 => Just(1i64 << 40), 1 => Just(i64::MAX)];
    proptest::option::weighted(0.8, proptest::collection::vec(dim, 0..4))
}

/// Half the cases at random, half with a type and shape that fit the column (else nearly all
/// would stop at the first check).
fn case() -> impl Strategy<Value = Case> {
    // Mostly batched plans (how tables are fed), some per-row ones.
    let batched = prop_oneof![4 => Just(true), 1 => Just(false)];
    let random = (column(), proptest::option::weighted(0.15, column()), dtype(), shape(), batched, any::<bool>())
        .prop_map(|(column, planned_for, dtype, shape, batched, allow_cast)| Case { column, planned_for, dtype, shape, batched, allow_cast });
    let fitting = column().prop_flat_map(|column| {
        let width = match column.layout {
            Layout::Scalar => 1,
            Layout::Fixed(k) => k as i64,
            Layout::List | Layout::LargeList => column.rows.iter().flatten().next().map_or(2, |r| r.len() as i64),
        };
        let one_row = column.rows.len() == 1 && column.slice.is_none();
        let shapes = prop_oneof![
            Just(Some(vec![-1])),
            Just(Some(vec![-1, width])),
            Just(None),
            Just(Some(vec![-1, -1])),
            Just(Some(vec![-1, width, 1])),
            Just(Some(vec![-1, 1, -1])),
        ];
        let per_row_shapes = prop_oneof![Just(Some(vec![width])), Just(Some(vec![])), Just(None), Just(Some(vec![1, width]))];
        let batched = if one_row { prop_oneof![Just(true), Just(false)].boxed() } else { Just(true).boxed() };
        (Just(column.clone()), fitting_dtype(column.element), batched, shapes, per_row_shapes, any::<bool>()).prop_map(
            |(column, dtype, batched, shape, per_row_shape, allow_cast)| Case {
                column,
                planned_for: None,
                dtype,
                shape: if batched { shape } else { per_row_shape },
                batched,
                allow_cast,
            },
        )
    });
    prop_oneof![random, fitting]
}

/// Input types a column of `element` feeds directly or by a cast (Date32 feeds none).
fn fitting_dtype(element: Element) -> BoxedStrategy<DType> {
    let one_of = |types: Vec<DType>| proptest::sample::select(types).boxed();
    match element {
        Element::Float32 => one_of(vec![DType::Float, DType::Double]),
        Element::Float64 => one_of(vec![DType::Double, DType::Float]),
        Element::Int8 => one_of(vec![DType::Int8, DType::Int64, DType::Float]),
        Element::Int16 => one_of(vec![DType::Int16, DType::Int8, DType::Double]),
        Element::Int32 => one_of(vec![DType::Int32, DType::Int64, DType::Float]),
        Element::Int64 => one_of(vec![DType::Int64, DType::Int32, DType::Double]),
        Element::UInt8 => one_of(vec![DType::UInt8, DType::Int32]),
        Element::UInt64 => one_of(vec![DType::Int64, DType::Float]),
        Element::Boolean => one_of(vec![DType::Bool]),
        Element::Utf8 | Element::LargeUtf8 | Element::Binary => one_of(vec![DType::String]),
        Element::Date32 => one_of(vec![DType::Int32]),
    }
}

/// The element values of `element` from the generated seeds.
fn values(element: Element, seeds: &[Option<u32>]) -> ArrayRef {
    let it = || seeds.iter().copied();
    match element {
        Element::Float32 => Arc::new(it().map(|v| v.map(|v| v as f32 / 64.0 - 1.0e7)).collect::<Float32Array>()),
        Element::Float64 => Arc::new(it().map(|v| v.map(|v| f64::from(v) / 3.0 - 1.0e9)).collect::<Float64Array>()),
        Element::Int8 => Arc::new(it().map(|v| v.map(|v| v as i8)).collect::<Int8Array>()),
        Element::Int16 => Arc::new(it().map(|v| v.map(|v| v as i16)).collect::<Int16Array>()),
        Element::Int32 => Arc::new(it().map(|v| v.map(|v| v as i32)).collect::<Int32Array>()),
        // Some beyond int32: a cast to int32 must fail, not wrap.
        Element::Int64 => Arc::new(it().map(|v| v.map(|v| i64::from(v) * if v % 3 == 0 { 1 << 20 } else { 1 } - (1 << 31))).collect::<Int64Array>()),
        Element::UInt8 => Arc::new(it().map(|v| v.map(|v| v as u8)).collect::<UInt8Array>()),
        Element::UInt64 => Arc::new(it().map(|v| v.map(|v| u64::from(v) << (v % 40))).collect::<UInt64Array>()),
        Element::Boolean => Arc::new(it().map(|v| v.map(|v| v % 2 == 0)).collect::<BooleanArray>()),
        Element::Utf8 => Arc::new(it().map(|v| v.map(|v| format!("s{v}"))).collect::<StringArray>()),
        Element::LargeUtf8 => Arc::new(it().map(|v| v.map(|v| "é".repeat(v as usize % 4))).collect::<LargeStringArray>()),
        Element::Binary => {
            let bytes: Vec<Option<Vec<u8>>> = it().map(|v| v.map(|v| v.to_le_bytes()[..(v % 5) as usize].to_vec())).collect();
            Arc::new(bytes.iter().map(|b| b.as_deref()).collect::<BinaryArray>())
        }
        Element::Date32 => Arc::new(it().map(|v| v.map(|v| v as i32)).collect::<Date32Array>()),
    }
}

/// The Arrow column a generated description stands for.
fn build(column: &Column) -> ArrayRef {
    let nulls = NullBuffer::from(column.rows.iter().map(Option::is_some).collect::<Vec<_>>());
    let nulls = (nulls.null_count() > 0).then_some(nulls);
    // A null row still has its slots (a list's length 0, a fixed list's k values).
    let rows: Vec<Vec<Option<u32>>> = column
        .rows
        .iter()
        .map(|row| match (row, column.layout) {
            (Some(values), _) => values.clone(),
            (None, Layout::Fixed(k)) => vec![Some(0); k],
            (None, Layout::Scalar) => vec![Some(0)],
            (None, _) => Vec::new(),
        })
        .collect();
    let seeds: Vec<Option<u32>> = rows.iter().flatten().copied().collect();
    let items = values(column.element, &seeds);
    let item_field = Arc::new(Field::new("item", items.data_type().clone(), true));
    let array: ArrayRef = match column.layout {
        Layout::Scalar => match nulls {
            // Scalar rows: the row's null is the value's null.
            Some(nulls) => {
                let data = items.to_data().into_builder().nulls(Some(merge(&nulls, items.nulls()))).build().expect("scalar nulls");
                arrow::array::make_array(data)
            }
            None => items,
        },
        Layout::Fixed(k) => Arc::new(FixedSizeListArray::try_new(item_field, k as i32, items, nulls).expect("fixed list")),
        Layout::List => {
            Arc::new(ListArray::try_new(item_field, OffsetBuffer::from_lengths(rows.iter().map(Vec::len)), items, nulls).expect("list"))
        }
        Layout::LargeList => Arc::new(
            LargeListArray::try_new(item_field, OffsetBuffer::from_lengths(rows.iter().map(Vec::len)), items, nulls).expect("large list"),
        ),
    };
    match column.slice {
        Some((start, len)) if start <= array.len() => array.slice(start, len.min(array.len() - start)),
        _ => array,
    }
}

fn merge(rows: &NullBuffer, values: Option<&NullBuffer>) -> NullBuffer {
    match values {
        Some(values) => NullBuffer::new(rows.inner() & values.inner()),
        None => rows.clone(),
    }
}

/// The element values a column holds, one row after another (what a tensor of it must hold).
fn flat_values(array: &ArrayRef) -> ArrayRef {
    match array.data_type() {
        DataType::FixedSizeList(_, k) => {
            let list = array.as_fixed_size_list();
            let k = *k as usize;
            list.values().slice(list.offset() * k, list.len() * k)
        }
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            let offsets = list.value_offsets();
            let (first, last) = (offsets[0] as usize, offsets[offsets.len() - 1] as usize);
            list.values().slice(first, last - first)
        }
        DataType::LargeList(_) => {
            let list = array.as_list::<i64>();
            let offsets = list.value_offsets();
            let (first, last) = (offsets[0] as usize, offsets[offsets.len() - 1] as usize);
            list.values().slice(first, last - first)
        }
        _ => array.clone(),
    }
}

fn bytes_of(values: &ArrayRef) -> Vec<Vec<u8>> {
    match values.data_type() {
        DataType::Utf8 => values.as_string::<i32>().iter().map(|v| v.unwrap_or("").as_bytes().to_vec()).collect(),
        DataType::LargeUtf8 => values.as_string::<i64>().iter().map(|v| v.unwrap_or("").as_bytes().to_vec()).collect(),
        DataType::Binary => values.as_binary::<i32>().iter().map(|v| v.unwrap_or(&[]).to_vec()).collect(),
        other => panic!("the test made no {other} strings"),
    }
}

/// Runs one case: an error, or a tensor equal to the column. Returns whether a tensor came out.
fn check(tf: &'static TensorFlow, case: &Case) -> Result<bool, TestCaseError> {
    let array = build(&case.column);
    let planned = case.planned_for.as_ref().map_or_else(|| array.clone(), build);
    let field = Field::new("c", planned.data_type().clone(), true);
    let spec = TensorSpec { key: "x".into(), tensor_name: "x:0".into(), dtype: case.dtype, shape: Shape(case.shape.clone()), graph_shape: Shape(None) };
    let plan = if case.batched { InputPlan::new(&field, &spec, case.allow_cast) } else { InputPlan::per_row(&field, &spec, case.allow_cast) };
    let Ok(plan) = plan else { return Ok(false) };
    let Ok(tensor) = plan.to_tensor(tf, array.as_ref()) else { return Ok(false) };

    prop_assert_eq!(array.data_type(), planned.data_type(), "converted a column of another type than planned");
    prop_assert_eq!(array.null_count(), 0, "a column with null rows became a tensor");
    let flat = flat_values(&array);
    prop_assert_eq!(flat.null_count(), 0, "null values became a tensor");
    prop_assert_eq!(tensor.dtype(), case.dtype);

    let dims = tensor.dims();
    let count: i64 = dims.iter().product();
    prop_assert_eq!(count, flat.len() as i64, "tensor of {:?} for {} values", dims, flat.len());
    let rows = array.len() as i64;
    if case.batched {
        prop_assert_eq!(dims.first().copied(), Some(rows), "batch dimension");
        if let Some(shape) = &case.shape {
            prop_assert_eq!(dims.len(), shape.len().max(1), "rank of {:?} for declared {:?}", dims, shape);
            for (d, s) in dims.iter().zip(shape).skip(1) {
                prop_assert!(*s < 0 || d == s, "{:?} for declared {:?}", dims, shape);
            }
        }
    } else {
        prop_assert_eq!(rows, 1, "a per-row plan took {} rows", rows);
        if let Some(shape) = &case.shape {
            prop_assert_eq!(&dims, shape);
        }
    }

    // Values: the column's, converted to the input's type as the table path does.
    if case.dtype == DType::String {
        let found: Vec<Vec<u8>> = tensor.string_values().map(<[u8]>::to_vec).collect();
        prop_assert_eq!(found, bytes_of(&flat));
    } else {
        let target = case.dtype.arrow_type().expect("converted types have an Arrow type");
        let expected = cast_with_options(&flat, &target, &CastOptions { safe: false, ..Default::default() }).expect("the cast the tensor got");
        let found = tensor_values(&tensor).map_err(TestCaseError::fail)?;
        prop_assert_eq!(found.as_ref(), expected.as_ref());
    }
    Ok(true)
}

#[test]
fn random_columns_and_signatures_give_an_error_or_the_same_tensor_never_a_panic() {
    let tf = TensorFlow::get().expect("TensorFlow");
    let config = Config { cases: CASES, rng_seed: RngSeed::Fixed(SEED), failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let (tensors, errors) = (Cell::new(0u32), Cell::new(0u32));
    let outcome = runner.run(&case(), |case| {
        let made = check(tf, &case)?;
        let counter = if made { &tensors } else { &errors };
        counter.set(counter.get() + 1);
        Ok(())
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
    // Not a vacuous pass: a good share of the cases must reach a tensor, and of the errors too.
    let (tensors, errors) = (tensors.get(), errors.get());
    eprintln!("{tensors} tensors, {errors} errors");
    assert!(tensors >= CASES / 10 && errors >= CASES / 10, "{tensors} tensors and {errors} errors in {CASES} cases");
}
