//! A property test of the table-to-tensor conversion ([`InputPlan`]): random Arrow columns
//! (supported and unsupported types, nulls, fixed-size and variable lists of varying lengths,
//! empty and sliced batches), random signature inputs (types, known and unknown shapes, huge
//! dimensions) and columns of another type than the one planned for. Each case must end in an
//! error or in a tensor whose type, shape and values are the column's, never in a panic.
//!
//! The cases are seeded (the same 2000 every run; a failure names its case) and need no model: real TensorFlow makes
//! the tensors, nothing runs them.

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

const CASES: u32 = 2000;
const SEED: u64 = 0x5afe_7e57;

/// Fails the case (with the case printed by the caller) unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

macro_rules! ensure_eq {
    ($found:expr, $expected:expr) => {
        ensure_eq!($found, $expected, "")
    };
    ($found:expr, $expected:expr, $($msg:tt)+) => {{
        let (found, expected) = (&$found, &$expected);
        ensure!(found == expected, "{:?} != {:?}: {}", found, expected, format!($($msg)+));
    }};
}

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

/// A small seeded generator (splitmix64): the same cases every run, and no test-only
/// dependency that would change the features, and so the build, of crates the product shares.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `range`.
    fn int(&mut self, range: std::ops::Range<usize>) -> usize {
        range.start + (self.next() % (range.end - range.start) as u64) as usize
    }

    fn u32(&mut self) -> u32 {
        (self.next() >> 32) as u32
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.int(0..items.len())].clone()
    }

    /// One of `choices`, each as likely as its weight.
    fn weighted<T: Clone>(&mut self, choices: &[(usize, T)]) -> T {
        let total: usize = choices.iter().map(|(w, _)| w).sum();
        let mut at = self.int(0..total);
        for (weight, item) in choices {
            if at < *weight {
                return item.clone();
            }
            at -= weight;
        }
        unreachable!("weights sum to {total}")
    }
}

fn layout(g: &mut Gen) -> Layout {
    match g.weighted(&[(3, 0), (3, 1), (2, 2), (1, 3)]) {
        0 => Layout::Scalar,
        1 => Layout::Fixed(g.int(0..5)),
        2 => Layout::List,
        _ => Layout::LargeList,
    }
}

/// A value; null one time in 21 when nulls are on.
fn value(g: &mut Gen, nulls: bool) -> Option<u32> {
    if nulls && g.int(0..21) == 0 { None } else { Some(g.u32()) }
}

fn column(g: &mut Gen) -> Column {
    let (element, layout) = (g.pick(&ELEMENTS), layout(g));
    let (rows, null_rows, null_values, width) = (g.int(0..7), g.chance(0.25), g.chance(0.25), g.int(0..4));
    let rows = (0..rows)
        .map(|_| {
            let pick = g.int(0..256);
            // Lists of one width (a tensor can take them) or ragged ones (it cannot).
            let len = match layout {
                Layout::Scalar => 1,
                Layout::Fixed(k) => k,
                Layout::List | Layout::LargeList => {
                    if g.weighted(&[(3, true), (1, false)]) { width } else { g.int(0..4) }
                }
            };
            let values = (0..len).map(|_| value(g, null_values)).collect();
            if null_rows && pick.is_multiple_of(5) { None } else { Some(values) }
        })
        .collect();
    let slice = g.chance(0.2).then(|| (g.int(0..3), g.int(0..4)));
    Column { element, layout, rows, slice }
}

fn dtype(g: &mut Gen) -> DType {
    g.pick(&[
        DType::Float,
        DType::Double,
        DType::Int32,
        DType::Int64,
        DType::UInt8,
        DType::Int8,
        DType::Int16,
        DType::String,
        DType::Bool,
        // half and complex64: types dlflow does not convert.
        DType::Other(19),
        DType::Other(8),
    ])
}

fn shape(g: &mut Gen) -> Option<Vec<i64>> {
    let dim = |g: &mut Gen| match g.weighted(&[(4, 0), (1, 1), (3, 2), (1, 3), (1, 4)]) {
        0 => -1,
        1 => 0,
        2 => g.int(1..5) as i64,
        3 => 1i64 << 40,
        _ => i64::MAX,
    };
    g.chance(0.8).then(|| {
        let rank = g.int(0..4);
        (0..rank).map(|_| dim(g)).collect()
    })
}

/// Half the cases at random, half with a type and shape that fit the column (else nearly all
/// would stop at the first check).
fn case(g: &mut Gen) -> Case {
    if g.chance(0.5) {
        let column = column(g);
        let planned_for = g.chance(0.15).then(|| self::column(g));
        // Mostly batched plans (how tables are fed), some per-row ones.
        let (dtype, shape, batched, allow_cast) = (dtype(g), shape(g), g.weighted(&[(4, true), (1, false)]), g.chance(0.5));
        return Case { column, planned_for, dtype, shape, batched, allow_cast };
    }
    let column = column(g);
    let width = match column.layout {
        Layout::Scalar => 1,
        Layout::Fixed(k) => k as i64,
        Layout::List | Layout::LargeList => column.rows.iter().flatten().next().map_or(2, |r| r.len() as i64),
    };
    let one_row = column.rows.len() == 1 && column.slice.is_none();
    let batched = !one_row || g.chance(0.5);
    let shape = if batched {
        g.pick(&[Some(vec![-1]), Some(vec![-1, width]), None, Some(vec![-1, -1]), Some(vec![-1, width, 1]), Some(vec![-1, 1, -1])])
    } else {
        g.pick(&[Some(vec![width]), Some(vec![]), None, Some(vec![1, width])])
    };
    let dtype = g.pick(fitting_dtypes(column.element));
    Case { column, planned_for: None, dtype, shape, batched, allow_cast: g.chance(0.5) }
}

/// Input types a column of `element` feeds directly or by a cast (Date32 feeds none).
fn fitting_dtypes(element: Element) -> &'static [DType] {
    match element {
        Element::Float32 => &[DType::Float, DType::Double],
        Element::Float64 => &[DType::Double, DType::Float],
        Element::Int8 => &[DType::Int8, DType::Int64, DType::Float],
        Element::Int16 => &[DType::Int16, DType::Int8, DType::Double],
        Element::Int32 => &[DType::Int32, DType::Int64, DType::Float],
        Element::Int64 => &[DType::Int64, DType::Int32, DType::Double],
        Element::UInt8 => &[DType::UInt8, DType::Int32],
        Element::UInt64 => &[DType::Int64, DType::Float],
        Element::Boolean => &[DType::Bool],
        Element::Utf8 | Element::LargeUtf8 | Element::Binary => &[DType::String],
        Element::Date32 => &[DType::Int32],
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
fn check(tf: &'static TensorFlow, case: &Case) -> Result<bool, String> {
    let array = build(&case.column);
    let planned = case.planned_for.as_ref().map_or_else(|| array.clone(), build);
    let field = Field::new("c", planned.data_type().clone(), true);
    let spec = TensorSpec { key: "x".into(), tensor_name: "x:0".into(), dtype: case.dtype, shape: Shape(case.shape.clone()), graph_shape: Shape(None) };
    let plan = if case.batched { InputPlan::new(&field, &spec, case.allow_cast) } else { InputPlan::per_row(&field, &spec, case.allow_cast) };
    let Ok(plan) = plan else { return Ok(false) };
    let Ok(tensor) = plan.to_tensor(tf, array.as_ref()) else { return Ok(false) };

    ensure_eq!(array.data_type(), planned.data_type(), "converted a column of another type than planned");
    ensure_eq!(array.null_count(), 0, "a column with null rows became a tensor");
    let flat = flat_values(&array);
    ensure_eq!(flat.null_count(), 0, "null values became a tensor");
    ensure_eq!(tensor.dtype(), case.dtype);

    let dims = tensor.dims();
    let count: i64 = dims.iter().product();
    ensure_eq!(count, flat.len() as i64, "tensor of {:?} for {} values", dims, flat.len());
    let rows = array.len() as i64;
    if case.batched {
        ensure_eq!(dims.first().copied(), Some(rows), "batch dimension");
        if let Some(shape) = &case.shape {
            ensure_eq!(dims.len(), shape.len().max(1), "rank of {:?} for declared {:?}", dims, shape);
            for (d, s) in dims.iter().zip(shape).skip(1) {
                ensure!(*s < 0 || d == s, "{:?} for declared {:?}", dims, shape);
            }
        }
    } else {
        ensure_eq!(rows, 1, "a per-row plan took {} rows", rows);
        if let Some(shape) = &case.shape {
            ensure_eq!(&dims, shape);
        }
    }

    // Values: the column's, converted to the input's type as the table path does.
    if case.dtype == DType::String {
        let found: Vec<Vec<u8>> = tensor.string_values().map(<[u8]>::to_vec).collect();
        ensure_eq!(found, bytes_of(&flat));
    } else {
        let target = case.dtype.arrow_type().expect("converted types have an Arrow type");
        let expected = cast_with_options(&flat, &target, &CastOptions { safe: false, ..Default::default() }).expect("the cast the tensor got");
        let found = tensor_values(&tensor).map_err(|e| e.to_string())?;
        ensure_eq!(found.as_ref(), expected.as_ref());
    }
    Ok(true)
}

#[test]
fn random_columns_and_signatures_give_an_error_or_the_same_tensor_never_a_panic() {
    let tf = TensorFlow::get().expect("TensorFlow");
    let mut g = Gen(SEED);
    let (mut tensors, mut errors) = (0u32, 0u32);
    for n in 0..CASES {
        let case = case(&mut g);
        match check(tf, &case) {
            Ok(true) => tensors += 1,
            Ok(false) => errors += 1,
            Err(failure) => panic!("case {n} of seed {SEED:#x}: {failure}\n{case:#?}"),
        }
    }
    // Not a vacuous pass: a good share of the cases must reach a tensor, and of the errors too.
    eprintln!("{tensors} tensors, {errors} errors");
    assert!(tensors >= CASES / 10 && errors >= CASES / 10, "{tensors} tensors and {errors} errors in {CASES} cases");
}
