//! [`TensorValue`]: a tensor held as Arrow values and a shape (seed 003's `TensorValue`),
//! what [`SavedModel::call`](crate::SavedModel::call) takes and returns.

use std::fmt;

use arrow::array::ArrayRef;
use arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::convert::{convert_values, tensor_values, values_to_tensor};
use crate::dtype::DType;
use crate::library::TensorFlow;
use crate::tensor::Tensor;

/// A tensor as a flat Arrow array of its elements (row-major) and its dimensions.
///
/// ```
/// use std::sync::Arc;
/// use arrow::array::Float32Array;
/// use dlflow_tf::TensorValue;
/// let matrix = TensorValue::new(vec![2, 2], Arc::new(Float32Array::from(vec![1.0, 2.0, 3.0, 4.0])))?;
/// assert_eq!(matrix.to_string(), "[[1.0, 2.0], [3.0, 4.0]]");
/// let scalar = TensorValue::scalar(Arc::new(Float32Array::from(vec![2.5])))?;
/// assert_eq!((scalar.dims(), scalar.to_string().as_str()), (&[][..], "2.5"));
/// # Ok::<(), String>(())
/// ```
#[derive(Debug, Clone)]
pub struct TensorValue {
    dims: Vec<i64>,
    values: ArrayRef,
}

impl TensorValue {
    /// A tensor of shape `dims` with these elements; their number must be `dims.product()`
    /// and none may be null.
    pub fn new(dims: Vec<i64>, values: ArrayRef) -> Result<TensorValue, String> {
        if dims.iter().any(|d| *d < 0) {
            return Err(format!("shape {dims:?} has a negative dimension"));
        }
        // TensorFlow aborts the process on a shape whose size overflows: refuse it here.
        let count = dims.iter().try_fold(1i64, |n, d| n.checked_mul(*d)).ok_or_else(|| format!("shape {dims:?} has more elements than a tensor can hold"))?;
        if count != values.len() as i64 {
            return Err(format!("shape {dims:?} holds {count} value(s), {} were given", values.len()));
        }
        if values.null_count() > 0 {
            return Err(format!("{} null value(s): tensors cannot hold nulls", values.null_count()));
        }
        Ok(TensorValue { dims, values })
    }

    /// A scalar (shape `[]`) from a one-element array.
    pub fn scalar(value: ArrayRef) -> Result<TensorValue, String> {
        Self::new(Vec::new(), value)
    }

    /// A vector (shape `[n]`).
    pub fn vector(values: ArrayRef) -> Result<TensorValue, String> {
        Self::new(vec![values.len() as i64], values)
    }

    /// The dimensions.
    pub fn dims(&self) -> &[i64] {
        &self.dims
    }

    /// The elements, row-major.
    pub fn values(&self) -> &ArrayRef {
        &self.values
    }

    /// A TensorFlow tensor of `dtype`, converting numbers as the table path does (any number
    /// to a float type, integers to other integer types).
    pub(crate) fn to_tensor(&self, tf: &'static TensorFlow, dtype: DType) -> Result<Tensor, String> {
        let values = convert_values(&self.values, dtype)
            .ok_or_else(|| format!("values of type {} cannot feed a {dtype} tensor", self.values.data_type()))?
            .map_err(|e| format!("cannot convert the values to {dtype}: {e}"))?;
        values_to_tensor(tf, dtype, &self.dims, &values).map_err(|e| e.to_string())
    }

    /// The value of a tensor TensorFlow returned.
    pub(crate) fn from_tensor(tensor: &Tensor) -> Result<TensorValue, String> {
        Ok(TensorValue { dims: tensor.dims(), values: tensor_values(tensor)? })
    }
}

impl fmt::Display for TensorValue {
    /// Nested brackets, one level per dimension: `2.5`, `[1, 2]`, `[[1, 2], [3, 4]]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let formatter = ArrayFormatter::try_new(self.values.as_ref(), &FormatOptions::default()).map_err(|_| fmt::Error)?;
        fn nested(f: &mut fmt::Formatter<'_>, formatter: &ArrayFormatter<'_>, dims: &[i64], start: usize) -> fmt::Result {
            let Some((&first, rest)) = dims.split_first() else {
                return write!(f, "{}", formatter.value(start));
            };
            let stride = rest.iter().product::<i64>() as usize;
            f.write_str("[")?;
            for i in 0..first as usize {
                if i > 0 {
                    f.write_str(", ")?;
                }
                nested(f, formatter, rest, start + i * stride)?;
            }
            f.write_str("]")
        }
        nested(f, &formatter, &self.dims, 0)
    }
}
