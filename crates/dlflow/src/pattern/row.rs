//! [`Row`]: one record of a batch, read by column name with typed getters.

use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, TimeUnit};

use crate::error::{Error, Result};

/// One record of a table, for turning records into typed events ([`Pattern::run`](super::Pattern::run)).
/// Getters take a column name and fail with an error naming the column, the row and the type
/// expected when the column is missing, null or of another type.
///
/// ```
/// use std::sync::Arc;
/// use arrow::array::{Int32Array, RecordBatch, StringArray};
/// use dlflow::pattern::Row;
///
/// let batch = RecordBatch::try_from_iter([
///     ("door", Arc::new(StringArray::from(vec!["front", "back"])) as _),
///     ("label", Arc::new(Int32Array::from(vec![3, 1])) as _),
/// ])?;
/// let row = Row::new(&batch, 1);
/// assert_eq!(row.string("door")?, "back");
/// assert_eq!(row.i64("label")?, 1); // any integer column
/// assert!(row.string("label").is_err()); // "column `label` ... expected a string"
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    batch: &'a RecordBatch,
    index: usize,
}

impl<'a> Row<'a> {
    /// Row `index` of `batch`.
    pub fn new(batch: &'a RecordBatch, index: usize) -> Row<'a> {
        Row { batch, index }
    }

    /// The batch the row is in.
    pub fn batch(&self) -> &'a RecordBatch {
        self.batch
    }

    /// The row's index in its batch.
    pub fn index(&self) -> usize {
        self.index
    }

    /// A string column (VARCHAR, Utf8, LargeUtf8, Utf8View).
    pub fn string(&self, column: &str) -> Result<String> {
        let array = self.column(column)?;
        Ok(match array.data_type() {
            DataType::Utf8 => array.as_string::<i32>().value(self.index).to_string(),
            DataType::LargeUtf8 => array.as_string::<i64>().value(self.index).to_string(),
            DataType::Utf8View => array.as_string_view().value(self.index).to_string(),
            other => return Err(self.wrong_type(column, other, "a string")),
        })
    }

    /// An integer column of any width (BIGINT, INT, ...; unsigned up to `i64::MAX`).
    pub fn i64(&self, column: &str) -> Result<i64> {
        use arrow::datatypes::*;
        let array = self.column(column)?;
        let i = self.index;
        Ok(match array.data_type() {
            DataType::Int8 => array.as_primitive::<Int8Type>().value(i).into(),
            DataType::Int16 => array.as_primitive::<Int16Type>().value(i).into(),
            DataType::Int32 => array.as_primitive::<Int32Type>().value(i).into(),
            DataType::Int64 => array.as_primitive::<Int64Type>().value(i),
            DataType::UInt8 => array.as_primitive::<UInt8Type>().value(i).into(),
            DataType::UInt16 => array.as_primitive::<UInt16Type>().value(i).into(),
            DataType::UInt32 => array.as_primitive::<UInt32Type>().value(i).into(),
            DataType::UInt64 => {
                let value = array.as_primitive::<UInt64Type>().value(i);
                i64::try_from(value).map_err(|_| self.invalid(column, format!("{value} does not fit a 64-bit signed integer")))?
            }
            other => return Err(self.wrong_type(column, other, "an integer")),
        })
    }

    /// A number column: floats, or integers converted.
    pub fn f64(&self, column: &str) -> Result<f64> {
        use arrow::datatypes::*;
        let array = self.column(column)?;
        match array.data_type() {
            DataType::Float32 => Ok(array.as_primitive::<Float32Type>().value(self.index).into()),
            DataType::Float64 => Ok(array.as_primitive::<Float64Type>().value(self.index)),
            other if other.is_integer() => Ok(self.i64(column)? as f64),
            other => Err(self.wrong_type(column, other, "a number")),
        }
    }

    /// A boolean column.
    pub fn bool(&self, column: &str) -> Result<bool> {
        let array = self.column(column)?;
        match array.data_type() {
            DataType::Boolean => Ok(array.as_boolean().value(self.index)),
            other => Err(self.wrong_type(column, other, "a BOOLEAN")),
        }
    }

    /// A TIMESTAMP column, as the time since the Unix epoch (the time zone, if any, is ignored:
    /// Arrow timestamps count from the epoch in UTC).
    pub fn time(&self, column: &str) -> Result<Duration> {
        let array = self.column(column)?;
        let DataType::Timestamp(unit, _) = array.data_type() else {
            return Err(self.wrong_type(column, array.data_type(), "a TIMESTAMP"));
        };
        use arrow::datatypes::{TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType};
        let i = self.index;
        let (raw, nanos) = match unit {
            TimeUnit::Second => {
                let raw = array.as_primitive::<TimestampSecondType>().value(i);
                (raw, raw.checked_mul(1_000_000_000))
            }
            TimeUnit::Millisecond => {
                let raw = array.as_primitive::<TimestampMillisecondType>().value(i);
                (raw, raw.checked_mul(1_000_000))
            }
            TimeUnit::Microsecond => {
                let raw = array.as_primitive::<TimestampMicrosecondType>().value(i);
                (raw, raw.checked_mul(1_000))
            }
            TimeUnit::Nanosecond => {
                let raw = array.as_primitive::<TimestampNanosecondType>().value(i);
                (raw, Some(raw))
            }
        };
        match nanos.and_then(|n| u64::try_from(n).ok()) {
            Some(n) => Ok(Duration::from_nanos(n)),
            None => Err(self.invalid(column, format!("{raw} ({unit:?}) is before 1970 or out of range; expected a time since the Unix epoch"))),
        }
    }

    fn column(&self, column: &str) -> Result<&'a dyn Array> {
        let array = self.batch.column_by_name(column).ok_or_else(|| {
            let names: Vec<&str> = self.batch.schema_ref().fields().iter().map(|f| f.name().as_str()).collect();
            Error::Invalid(format!("no column `{column}` in the record; its columns are {}", names.join(", ")))
        })?;
        if array.is_null(self.index) {
            return Err(self.invalid(column, "null; expected a value".into()));
        }
        Ok(array.as_ref())
    }

    fn wrong_type(&self, column: &str, got: &DataType, expected: &str) -> Error {
        self.invalid(column, format!("is {got}; expected {expected}"))
    }

    fn invalid(&self, column: &str, what: String) -> Error {
        Error::Invalid(format!("column `{column}`, row {}: {what}", self.index))
    }
}
