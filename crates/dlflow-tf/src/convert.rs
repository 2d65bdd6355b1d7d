//! Arrow columns to tensors and back.
//!
//! Inputs: a scalar column becomes a `[n]` tensor (or `[n, 1]` when the signature asks for
//! it); a `FixedSizeList<T, k>` column (or a `List<T>` whose rows all have `k` values) becomes
//! `[n, k]`, reshaped to the signature's rank (`[n, 28, 28]` from `k = 784`). Outputs: `[n]`
//! and `[n, 1]` become scalar columns, `[n, d1, d2, ...]` a `FixedSizeList` of `d1*d2*...`
//! values per row (row-major, as TensorFlow stores it).
//!
//! A signature called once per row (its inputs and outputs have no batch dimension) gets each
//! row as its own tensor: `[]` for a scalar column, `[k]` for a vector. An output without a
//! batch dimension in a batched signature (a training step's loss) is one value per run,
//! repeated on each row of the run.
//!
//! Conversion is planned once per (column, signature input) pair, so type and shape errors
//! surface before any row is read and the per-batch path only copies.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, FixedSizeListArray, PrimitiveArray, StringArray, UInt32Array,
};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field, FieldRef, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Int8Type, UInt8Type,
};

use crate::dtype::DType;
use crate::error::{Result, TfError};
use crate::library::TensorFlow;
use crate::signature::{Shape, TensorSpec};
use crate::tensor::Tensor;

/// How one column feeds one signature input. Built by [`InputPlan::new`], which does all
/// checking that the schema allows; [`InputPlan::to_tensor`] only checks what depends on data
/// (nulls, ragged lists).
#[derive(Debug, Clone)]
pub struct InputPlan {
    /// Column name, for errors.
    pub column: String,
    /// Signature input key.
    pub input: String,
    /// The column's Arrow type the plan was made for; other arrays are refused.
    column_type: DataType,
    shape_text: String,
    dtype: DType,
    /// Cast applied to the column's values first (e.g. Float64 -> Float32), if any.
    cast_to: Option<DataType>,
    list: ListKind,
    /// Values per row.
    width: usize,
    /// Tensor dimensions after the batch dimension (all of them when not batched).
    inner_dims: Vec<i64>,
    /// Whether the tensor has a batch dimension; a plan without one feeds one row per run.
    batched: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ListKind {
    Scalar,
    Fixed,
    Variable,
}

impl InputPlan {
    /// Plan feeding `field` into `spec`. With `allow_cast`, numbers are converted to the
    /// input's number type when that cannot change a value's kind: any number to a float
    /// type, an integer to another integer type (failing on overflow). Anything else is a
    /// [`TfError::TypeMismatch`].
    pub fn new(field: &Field, spec: &TensorSpec, allow_cast: bool) -> Result<InputPlan> {
        Self::plan(field, spec, allow_cast, true)
    }

    /// Plan feeding one row at a time, as a tensor without a batch dimension: a scalar
    /// column gives `[]`, a vector column `[k]` (reshaped to the input's shape if it has one).
    pub fn per_row(field: &Field, spec: &TensorSpec, allow_cast: bool) -> Result<InputPlan> {
        Self::plan(field, spec, allow_cast, false)
    }

    fn plan(field: &Field, spec: &TensorSpec, allow_cast: bool, batched: bool) -> Result<InputPlan> {
        let (element, list, list_width) = match field.data_type() {
            // A negative size is refused by Arrow's arrays but not by a field: 0 never matches.
            DataType::FixedSizeList(child, k) => (child.data_type(), ListKind::Fixed, Some(usize::try_from(*k).unwrap_or(0))),
            DataType::List(child) | DataType::LargeList(child) => (child.data_type(), ListKind::Variable, None),
            other => (other, ListKind::Scalar, Some(1)),
        };
        let mismatch = || TfError::TypeMismatch {
            column: field.name().clone(),
            input: spec.key.clone(),
            found: field.data_type().to_string(),
            expected: expected_text(spec),
        };
        let target = spec.dtype.arrow_type().ok_or_else(mismatch)?;
        let cast_to = if accepts_directly(spec.dtype, element) {
            None
        } else if allow_cast && castable(element, &target) {
            Some(target)
        } else {
            return Err(mismatch());
        };
        let shape_error = |message: String| TfError::ShapeMismatch {
            column: field.name().clone(),
            input: spec.key.clone(),
            shape: spec.shape.to_string(),
            message,
        };
        let layout = if batched { row_layout(spec, list, list_width) } else { single_row_layout(spec, list, list_width) };
        let (width, inner_dims) = layout.map_err(shape_error)?;
        Ok(InputPlan {
            column: field.name().clone(),
            input: spec.key.clone(),
            column_type: field.data_type().clone(),
            shape_text: spec.shape.to_string(),
            dtype: spec.dtype,
            cast_to,
            list,
            width,
            inner_dims,
            batched,
        })
    }

    /// The shape of the tensor fed for one row, or for a batch (`-1` rows).
    pub fn tensor_dims(&self) -> Vec<i64> {
        let batch = self.batched.then_some(-1);
        batch.into_iter().chain(self.inner_dims.iter().copied()).collect()
    }

    /// Build the tensor for `array`, a column of the planned type (of one row when the plan
    /// is per row).
    pub fn to_tensor(&self, tf: &'static TensorFlow, array: &dyn Array) -> Result<Tensor> {
        let rows = array.len();
        if array.data_type() != &self.column_type {
            return Err(TfError::TypeMismatch {
                column: self.column.clone(),
                input: self.input.clone(),
                found: array.data_type().to_string(),
                expected: format!("{} (the type this input was planned for)", self.column_type),
            });
        }
        if !self.batched && rows != 1 {
            return Err(self.shape_error(format!("the input takes one row per run, got {rows}")));
        }
        let values = self.flat_values(array)?;
        let values = match &self.cast_to {
            Some(target) => cast_with_options(&values, target, &CastOptions { safe: false, ..Default::default() })
                .map_err(|e| self.shape_error(format!("cannot convert to {}: {e}", self.dtype)))?,
            None => values,
        };
        let mut dims = Vec::with_capacity(1 + self.inner_dims.len());
        if self.batched {
            dims.push(i64::try_from(rows).map_err(|_| self.shape_error(format!("{rows} rows do not fit a tensor dimension")))?);
        }
        dims.extend_from_slice(&self.inner_dims);
        values_to_tensor(tf, self.dtype, &dims, &values).map_err(|e| match e {
            TfError::TensorAllocation { message, .. } => self.shape_error(message),
            other => other,
        })
    }

    /// The column's element values, one after another, checked for nulls and ragged rows.
    fn flat_values(&self, array: &dyn Array) -> Result<ArrayRef> {
        let null_error = |count| TfError::NullValues { column: self.column.clone(), count };
        if array.null_count() > 0 {
            return Err(null_error(array.null_count()));
        }
        let values = match self.list {
            ListKind::Scalar => return Ok(arrow::array::make_array(array.to_data())),
            ListKind::Fixed => {
                let list = array.as_fixed_size_list();
                let start = list.offset() * self.width;
                list.values().slice(start, list.len() * self.width)
            }
            ListKind::Variable => self.variable_list_values(array)?,
        };
        if values.null_count() > 0 {
            return Err(null_error(values.null_count()));
        }
        Ok(values)
    }

    fn variable_list_values(&self, array: &dyn Array) -> Result<ArrayRef> {
        let (offsets, values): (Vec<usize>, &ArrayRef) = match array.data_type() {
            DataType::LargeList(_) => {
                let list = array.as_list::<i64>();
                (list.value_offsets().iter().map(|o| *o as usize).collect(), list.values())
            }
            _ => {
                let list = array.as_list::<i32>();
                (list.value_offsets().iter().map(|o| *o as usize).collect(), list.values())
            }
        };
        if let Some(row) = offsets.windows(2).position(|w| w[1] - w[0] != self.width) {
            let found = offsets[row + 1] - offsets[row];
            return Err(self.shape_error(format!("row {row} has {found} values, expected {}", self.width)));
        }
        let start = offsets.first().copied().unwrap_or(0);
        Ok(values.slice(start, array.len() * self.width))
    }

    fn shape_error(&self, message: String) -> TfError {
        TfError::ShapeMismatch { column: self.column.clone(), input: self.input.clone(), shape: self.shape_text.clone(), message }
    }
}

/// What an input accepts, for error messages.
fn expected_text(spec: &TensorSpec) -> String {
    let arrow = spec.dtype.arrow_type().map(|t| t.to_string()).unwrap_or_else(|| "an unsupported type".into());
    let vector = matches!(spec.shape.dims(), Some(dims) if dims.len() >= 2 && dims[1..].iter().product::<i64>() != 1);
    if vector {
        format!("{} (a FixedSizeList<{arrow}> column, shape {})", spec.dtype, spec.shape)
    } else {
        format!("{} (a {arrow} column)", spec.dtype)
    }
}

fn accepts_directly(dtype: DType, element: &DataType) -> bool {
    match dtype {
        DType::String => matches!(
            element,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Binary | DataType::LargeBinary | DataType::BinaryView
        ),
        other => other.arrow_type().as_ref() == Some(element),
    }
}

fn castable(from: &DataType, to: &DataType) -> bool {
    let numeric = from.is_integer() || from.is_floating();
    (to.is_floating() && numeric) || (to.is_integer() && from.is_integer())
}

/// A tensor of `dims` holding `values`, which must be of `dtype`'s Arrow type (or a string
/// or binary type for string tensors) and number `dims.product()`.
pub(crate) fn values_to_tensor(tf: &'static TensorFlow, dtype: DType, dims: &[i64], values: &ArrayRef) -> Result<Tensor> {
    let error = |message: String| TfError::TensorAllocation { dtype: dtype.to_string(), dims: dims.to_vec(), message };
    if !accepts_directly(dtype, values.data_type()) {
        return Err(error(format!("its values are {}, not {dtype}", values.data_type())));
    }
    let count = dims.iter().try_fold(1i64, |n, d| n.checked_mul(*d));
    if count != i64::try_from(values.len()).ok() {
        return Err(error(format!("{} value(s) were given", values.len())));
    }
    match dtype {
        DType::String => {
            let strings = string_values(values);
            Tensor::strings(tf, dims, strings.iter().copied())
        }
        DType::Bool => {
            let mut tensor = Tensor::allocate(tf, DType::Bool, dims)?;
            for (slot, value) in tensor.bytes_mut().iter_mut().zip(values.as_boolean().values().iter()) {
                *slot = value as u8;
            }
            Ok(tensor)
        }
        _ => {
            // Lend TensorFlow the column's own bytes where it can take them; copy otherwise.
            if let Some(buffer) = primitive_buffer(values)
                && let Some(tensor) = Tensor::sharing(tf, dtype, dims, buffer)?
            {
                return Ok(tensor);
            }
            let mut tensor = Tensor::allocate(tf, dtype, dims)?;
            copy_primitive_bytes(values, tensor.bytes_mut()).map_err(error)?;
            Ok(tensor)
        }
    }
}

/// The bytes of a primitive array's values (offset applied), as a shareable buffer.
fn primitive_buffer(values: &ArrayRef) -> Option<arrow::buffer::Buffer> {
    fn inner<T: ArrowPrimitiveType>(values: &ArrayRef) -> arrow::buffer::Buffer {
        values.as_primitive::<T>().values().inner().clone()
    }
    Some(match values.data_type() {
        DataType::Float32 => inner::<Float32Type>(values),
        DataType::Float64 => inner::<Float64Type>(values),
        DataType::Int32 => inner::<Int32Type>(values),
        DataType::Int64 => inner::<Int64Type>(values),
        DataType::Int16 => inner::<Int16Type>(values),
        DataType::Int8 => inner::<Int8Type>(values),
        DataType::UInt8 => inner::<UInt8Type>(values),
        _ => return None,
    })
}

/// `values` converted for a `dtype` tensor, when that conversion cannot change a value's
/// kind (see [`InputPlan::new`]); `None` when it is not allowed.
pub(crate) fn convert_values(values: &ArrayRef, dtype: DType) -> Option<Result<ArrayRef, arrow::error::ArrowError>> {
    let target = dtype.arrow_type()?;
    if accepts_directly(dtype, values.data_type()) {
        Some(Ok(values.clone()))
    } else if castable(values.data_type(), &target) {
        Some(cast_with_options(values, &target, &CastOptions { safe: false, ..Default::default() }))
    } else {
        None
    }
}

/// Values per row and the tensor dimensions after the batch dimension.
fn row_layout(spec: &TensorSpec, list: ListKind, list_width: Option<usize>) -> Result<(usize, Vec<i64>), String> {
    let Some(dims) = spec.shape.dims() else {
        // Unknown rank: feed [n] for scalars, [n, k] for vectors.
        return match (list, list_width) {
            (ListKind::Scalar, _) => Ok((1, vec![])),
            (_, Some(k)) => Ok((k, vec![k as i64])),
            (_, None) => Err("a variable-length list needs a signature input with a static shape".into()),
        };
    };
    match dims.len() {
        0 => Err("the input is a scalar, but dlflow feeds a batch of rows (rank >= 1)".into()),
        1 if list == ListKind::Scalar || list_width == Some(1) => Ok((1, vec![])),
        1 => Err("the input takes one value per row, but the column is a list".into()),
        _ => {
            let inner = &dims[1..];
            let known = checked_product(inner.iter().filter(|d| **d >= 0))?;
            let unknown = inner.iter().filter(|d| **d < 0).count();
            let width = match (list_width, unknown) {
                (Some(k), _) => k as i64,
                (None, 0) => known,
                (None, _) => return Err("a variable-length list needs a signature input with a static shape".into()),
            };
            match unknown {
                0 if width == known => Ok((width as usize, inner.to_vec())),
                0 => Err(format!("the column has {width} value(s) per row, the input expects {known}")),
                1 if known > 0 && width % known == 0 => {
                    Ok((width as usize, inner.iter().map(|d| if *d < 0 { width / known } else { *d }).collect()))
                }
                1 => Err(format!("the column has {width} value(s) per row, which is not a multiple of {known}")),
                _ => Err("the input has several unknown dimensions; dlflow cannot tell how to reshape a row".into()),
            }
        }
    }
}

/// The product of non-negative dimensions, or an error when it overflows (TensorFlow would
/// abort on such a shape).
fn checked_product<'a>(dims: impl IntoIterator<Item = &'a i64>) -> Result<i64, String> {
    let dims: Vec<i64> = dims.into_iter().copied().collect();
    dims.iter()
        .try_fold(1i64, |n, d| n.checked_mul(*d).filter(|p| usize::try_from(*p).is_ok()))
        .ok_or_else(|| format!("the dimensions {dims:?} hold more values than a tensor can"))
}

/// Values per row and the tensor dimensions of one row fed on its own (no batch dimension).
fn single_row_layout(spec: &TensorSpec, list: ListKind, list_width: Option<usize>) -> Result<(usize, Vec<i64>), String> {
    let width = match (list, list_width) {
        (ListKind::Scalar, _) => 1,
        (_, Some(k)) => k,
        (_, None) => match spec.shape.dims() {
            Some(dims) if dims.iter().all(|d| *d >= 0) => checked_product(dims)? as usize,
            _ => return Err("a variable-length list needs a signature input with a static shape".into()),
        },
    };
    match spec.shape.dims() {
        None if list == ListKind::Scalar => Ok((1, vec![])),
        None => Ok((width, vec![width as i64])),
        Some(dims) if dims.iter().all(|d| *d >= 0) => {
            let expected = checked_product(dims)? as usize;
            if expected == width {
                Ok((width, dims.to_vec()))
            } else {
                Err(format!("the column has {width} value(s) per row, the input expects {expected}"))
            }
        }
        Some(_) => Err("the input has unknown dimensions; dlflow cannot tell how to reshape a row".into()),
    }
}

/// The elements of a string or binary array as bytes (empty for other types).
pub(crate) fn string_values(values: &ArrayRef) -> Vec<&[u8]> {
    match values.data_type() {
        DataType::Utf8 => values.as_string::<i32>().iter().map(|v| v.unwrap_or("").as_bytes()).collect(),
        DataType::LargeUtf8 => values.as_string::<i64>().iter().map(|v| v.unwrap_or("").as_bytes()).collect(),
        DataType::Utf8View => values.as_string_view().iter().map(|v| v.unwrap_or("").as_bytes()).collect(),
        DataType::Binary => values.as_binary::<i32>().iter().map(|v| v.unwrap_or(&[])).collect(),
        DataType::LargeBinary => values.as_binary::<i64>().iter().map(|v| v.unwrap_or(&[])).collect(),
        DataType::BinaryView => values.as_binary_view().iter().map(|v| v.unwrap_or(&[])).collect(),
        _ => Vec::new(),
    }
}

/// Copy a primitive array's values (already of the tensor's type) into `out`, which must
/// be exactly their size.
fn copy_primitive_bytes(values: &ArrayRef, out: &mut [u8]) -> Result<(), String> {
    let buffer = primitive_buffer(values).ok_or_else(|| format!("values of type {} are not a tensor's numbers", values.data_type()))?;
    if buffer.len() != out.len() {
        return Err(format!("{} bytes of values for a buffer of {}", buffer.len(), out.len()));
    }
    out.copy_from_slice(buffer.as_slice());
    Ok(())
}

/// How an output tensor lines up with the rows of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputLayout {
    /// `[rows, ...]`: one value (or vector) per row.
    Batched,
    /// No batch dimension in a batched run (a training step's loss): one value (or vector)
    /// per run, repeated on each of its rows.
    PerRun,
    /// A run of one row without a batch dimension: the whole tensor is the row's value.
    Single,
}

/// The Arrow field a signature output becomes, or why it cannot become one.
pub fn output_field(spec: &TensorSpec, name: &str) -> Result<FieldRef> {
    output_field_with(spec, name, &spec.shape, OutputLayout::Batched)
}

/// The Arrow field of output `spec` when its tensors have `shape` and line up with rows as
/// `layout` says.
pub fn output_field_with(spec: &TensorSpec, name: &str, shape: &Shape, layout: OutputLayout) -> Result<FieldRef> {
    let error = |message: String| TfError::Output { output: spec.key.clone(), message };
    let element = spec
        .dtype
        .arrow_type()
        .ok_or_else(|| error(format!("element type {} has no Arrow counterpart", spec.dtype)))?;
    let data_type = match output_width(shape, layout).map_err(error)? {
        None => element,
        Some(width) => {
            let width = i32::try_from(width).map_err(|_| error(format!("{width} values per row do not fit an Arrow list (at most {})", i32::MAX)))?;
            DataType::FixedSizeList(Arc::new(Field::new("item", element, false)), width)
        }
    };
    Ok(Arc::new(Field::new(name, data_type, false)))
}

/// `None` for a scalar column, `Some(k)` for k values per row.
fn output_width(shape: &Shape, layout: OutputLayout) -> Result<Option<usize>, String> {
    let dims = shape.dims().ok_or(
        "its shape has unknown rank, and TensorFlow cannot infer it from the inputs' shapes; dlflow needs \
         [batch, ...] with static inner dimensions",
    )?;
    let per_row: &[i64] = match layout {
        OutputLayout::Batched => match dims {
            [] => return Err("it is a scalar; dlflow needs one value (or vector) per row, shape [batch, ...]".into()),
            [_, inner @ ..] => inner,
        },
        OutputLayout::PerRun | OutputLayout::Single => dims,
    };
    if per_row.iter().any(|d| *d < 0) {
        return Err(format!("its shape {shape} has unknown inner dimensions; dlflow needs them static"));
    }
    Ok(match checked_product(per_row)? as usize {
        1 => None,
        width => Some(width),
    })
}

/// Turn an output tensor of a batch of `rows` into a column of type `field`.
pub fn tensor_to_array(tensor: &Tensor, spec: &TensorSpec, field: &Field, rows: usize) -> Result<ArrayRef> {
    tensor_to_column(tensor, spec, field, rows, OutputLayout::Batched)
}

/// Turn an output tensor of a run over `rows` rows into a column of type `field`.
pub fn tensor_to_column(tensor: &Tensor, spec: &TensorSpec, field: &Field, rows: usize, layout: OutputLayout) -> Result<ArrayRef> {
    let error = |message: String| TfError::Output { output: spec.key.clone(), message };
    let dims = tensor.dims();
    let count: i64 = dims.iter().product();
    let (element_field, width) = match field.data_type() {
        DataType::FixedSizeList(child, k) => (Some(child.clone()), *k as i64),
        _ => (None, 1),
    };
    let expected = match layout {
        OutputLayout::Batched if dims.first().copied() != Some(rows as i64) => {
            return Err(error(format!("TensorFlow returned shape {dims:?} for a batch of {rows} rows; outputs must be batch-major")))
        }
        OutputLayout::Batched => rows as i64 * width,
        OutputLayout::PerRun | OutputLayout::Single => width,
    };
    if count != expected {
        return Err(error(format!("TensorFlow returned shape {dims:?}; dlflow expected {width} value(s) per row (declared shape {})", spec.shape)));
    }
    let mut values = tensor_values(tensor).map_err(error)?;
    if layout == OutputLayout::PerRun && rows != 1 {
        let indices = UInt32Array::from_iter_values((0..rows).flat_map(|_| 0..width as u32));
        values = arrow::compute::take(&values, &indices, None)?;
    }
    Ok(match element_field {
        None => values,
        Some(child) => Arc::new(FixedSizeListArray::try_new(child, width as i32, values, None)?),
    })
}

/// The elements of a tensor as a flat Arrow array of its element type (row-major).
pub fn tensor_values(tensor: &Tensor) -> Result<ArrayRef, String> {
    Ok(match tensor.dtype() {
        DType::Float => primitive::<Float32Type>(tensor),
        DType::Double => primitive::<Float64Type>(tensor),
        DType::Int32 => primitive::<Int32Type>(tensor),
        DType::Int64 => primitive::<Int64Type>(tensor),
        DType::Int16 => primitive::<Int16Type>(tensor),
        DType::Int8 => primitive::<Int8Type>(tensor),
        DType::UInt8 => primitive::<UInt8Type>(tensor),
        DType::Bool => Arc::new(BooleanArray::from(tensor.bytes().iter().map(|b| *b != 0).collect::<Vec<_>>())),
        DType::String => {
            let strings = tensor
                .string_values()
                .enumerate()
                .map(|(i, bytes)| std::str::from_utf8(bytes).map_err(|_| format!("value {i} is not valid UTF-8")))
                .collect::<Result<Vec<&str>, String>>()?;
            Arc::new(StringArray::from(strings))
        }
        other => return Err(format!("element type {other} is not supported")),
    })
}

fn primitive<T: ArrowPrimitiveType>(tensor: &Tensor) -> ArrayRef {
    let bytes = tensor.bytes();
    let count = bytes.len() / std::mem::size_of::<T::Native>();
    let mut values: Vec<T::Native> = Vec::with_capacity(count);
    // Copy rather than borrow: TensorFlow owns (and will free) the tensor's buffer.
    // SAFETY: `values` has room for `count` elements, the source holds count * size bytes,
    // the regions do not overlap, and every bit pattern is a valid number.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), values.as_mut_ptr().cast::<u8>(), count * std::mem::size_of::<T::Native>());
        values.set_len(count);
    }
    Arc::new(PrimitiveArray::<T>::new(values.into(), None))
}
