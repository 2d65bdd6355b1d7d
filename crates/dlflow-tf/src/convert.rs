//! Arrow columns to tensors and back.
//!
//! Inputs: a scalar column becomes a `[n]` tensor (or `[n, 1]` when the signature asks for
//! it); a `FixedSizeList<T, k>` column (or a `List<T>` whose rows all have `k` values) becomes
//! `[n, k]`, reshaped to the signature's rank (`[n, 28, 28]` from `k = 784`). Outputs: `[n]`
//! and `[n, 1]` become scalar columns, `[n, d1, d2, ...]` a `FixedSizeList` of `d1*d2*...`
//! values per row (row-major, as TensorFlow stores it).
//!
//! Conversion is planned once per (column, signature input) pair, so type and shape errors
//! surface before any row is read and the per-batch path only copies.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, FixedSizeListArray, PrimitiveArray, StringArray,
};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field, FieldRef, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Int8Type, UInt8Type,
};

use crate::dtype::DType;
use crate::error::{Result, TfError};
use crate::library::TensorFlow;
use crate::signature::TensorSpec;
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
    shape_text: String,
    dtype: DType,
    /// Cast applied to the column's values first (e.g. Float64 -> Float32), if any.
    cast_to: Option<DataType>,
    list: ListKind,
    /// Values per row.
    width: usize,
    /// Tensor dimensions after the batch dimension.
    inner_dims: Vec<i64>,
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
        let (element, list, list_width) = match field.data_type() {
            DataType::FixedSizeList(child, k) => (child.data_type(), ListKind::Fixed, Some(*k as usize)),
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
        let (width, inner_dims) = row_layout(spec, list, list_width).map_err(shape_error)?;
        Ok(InputPlan {
            column: field.name().clone(),
            input: spec.key.clone(),
            shape_text: spec.shape.to_string(),
            dtype: spec.dtype,
            cast_to,
            list,
            width,
            inner_dims,
        })
    }

    /// Build the tensor for `array`, a column of the planned type.
    pub fn to_tensor(&self, tf: &'static TensorFlow, array: &dyn Array) -> Result<Tensor> {
        let rows = array.len();
        let values = self.flat_values(array)?;
        let values = match &self.cast_to {
            Some(target) => cast_with_options(&values, target, &CastOptions { safe: false, ..Default::default() })
                .map_err(|e| self.shape_error(format!("cannot convert to {}: {e}", self.dtype)))?,
            None => values,
        };
        let mut dims = Vec::with_capacity(1 + self.inner_dims.len());
        dims.push(rows as i64);
        dims.extend_from_slice(&self.inner_dims);
        Ok(match self.dtype {
            DType::String => {
                let strings = string_values(&values);
                Tensor::strings(tf, &dims, strings.iter().copied())
            }
            DType::Bool => {
                let mut tensor = Tensor::allocate(tf, DType::Bool, &dims);
                for (slot, value) in tensor.bytes_mut().iter_mut().zip(values.as_boolean().values().iter()) {
                    *slot = value as u8;
                }
                tensor
            }
            _ => {
                let mut tensor = Tensor::allocate(tf, self.dtype, &dims);
                copy_primitive_bytes(&values, tensor.bytes_mut());
                tensor
            }
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
            let known: i64 = inner.iter().filter(|d| **d >= 0).product();
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

fn string_values(values: &ArrayRef) -> Vec<&[u8]> {
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

/// Copy a primitive array's values (already of the tensor's type) into `out`.
fn copy_primitive_bytes(values: &ArrayRef, out: &mut [u8]) {
    fn copy<T: ArrowPrimitiveType>(values: &ArrayRef, out: &mut [u8]) {
        let slice: &[T::Native] = values.as_primitive::<T>().values();
        let len = std::mem::size_of_val(slice);
        // SAFETY: a slice of plain numbers viewed as its `len` bytes.
        let bytes = unsafe { std::slice::from_raw_parts(slice.as_ptr().cast::<u8>(), len) };
        out[..len].copy_from_slice(bytes);
    }
    match values.data_type() {
        DataType::Float32 => copy::<Float32Type>(values, out),
        DataType::Float64 => copy::<Float64Type>(values, out),
        DataType::Int32 => copy::<Int32Type>(values, out),
        DataType::Int64 => copy::<Int64Type>(values, out),
        DataType::Int16 => copy::<Int16Type>(values, out),
        DataType::Int8 => copy::<Int8Type>(values, out),
        DataType::UInt8 => copy::<UInt8Type>(values, out),
        _ => {}
    }
}

/// The Arrow field a signature output becomes, or why it cannot become one.
pub fn output_field(spec: &TensorSpec, name: &str) -> Result<FieldRef> {
    let error = |message: String| TfError::Output { output: spec.key.clone(), message };
    let element = spec
        .dtype
        .arrow_type()
        .ok_or_else(|| error(format!("element type {} has no Arrow counterpart", spec.dtype)))?;
    let data_type = match output_width(spec).map_err(error)? {
        None => element,
        Some(width) => DataType::FixedSizeList(Arc::new(Field::new("item", element, false)), width as i32),
    };
    Ok(Arc::new(Field::new(name, data_type, false)))
}

/// `None` for a scalar column, `Some(k)` for k values per row.
fn output_width(spec: &TensorSpec) -> Result<Option<usize>, String> {
    let dims = spec.shape.dims().ok_or("its shape has unknown rank; dlflow needs [batch, ...] with static inner dimensions")?;
    match dims {
        [] => Err("it is a scalar; dlflow needs one value (or vector) per row, shape [batch, ...]".into()),
        [_] | [_, 1] => Ok(None),
        [_, inner @ ..] if inner.iter().all(|d| *d >= 0) => Ok(Some(inner.iter().product::<i64>() as usize)),
        _ => Err(format!("its shape {} has unknown inner dimensions; dlflow needs them static", spec.shape)),
    }
}

/// Turn an output tensor of a batch of `rows` into a column of type `field`.
pub fn tensor_to_array(tensor: &Tensor, spec: &TensorSpec, field: &Field, rows: usize) -> Result<ArrayRef> {
    let error = |message: String| TfError::Output { output: spec.key.clone(), message };
    let dims = tensor.dims();
    if dims.first().copied() != Some(rows as i64) {
        return Err(error(format!("TensorFlow returned shape {dims:?} for a batch of {rows} rows; outputs must be batch-major")));
    }
    let count: i64 = dims.iter().product();
    let (element_field, width) = match field.data_type() {
        DataType::FixedSizeList(child, k) => (Some(child.clone()), *k as i64),
        _ => (None, 1),
    };
    if count != rows as i64 * width {
        return Err(error(format!("TensorFlow returned shape {dims:?}; the declared shape is {}", spec.shape)));
    }
    let values: ArrayRef = match tensor.dtype() {
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
                .map(|(i, bytes)| std::str::from_utf8(bytes).map_err(|_| error(format!("value {i} is not valid UTF-8"))))
                .collect::<Result<Vec<&str>>>()?;
            Arc::new(StringArray::from(strings))
        }
        other => return Err(error(format!("element type {other} is not supported"))),
    };
    Ok(match element_field {
        None => values,
        Some(child) => Arc::new(FixedSizeListArray::try_new(child, width as i32, values, None)?),
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
