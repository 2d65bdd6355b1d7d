//! Element types: TensorFlow's `DataType`, its Arrow counterpart, and the seed's `DL` names
//! (`FLOAT_32`, `FLOAT_64`, `INT_32`, `INT_64`, `STRING`) used by `input_types`/`output_types`.
//! Names, codes and Arrow types come from the one table, [`dlflow_common::types`].

use std::fmt;
use std::str::FromStr;

use arrow::datatypes::{DataType, Schema};

use dlflow_common::types::{self, tf_code};

use crate::error::TfError;

/// A TensorFlow element type (`TF_DataType`), limited to the ones dlflow converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// float32
    Float,
    /// float64
    Double,
    /// int32
    Int32,
    /// int64
    Int64,
    /// uint8
    UInt8,
    /// int8
    Int8,
    /// int16
    Int16,
    /// string (bytes)
    String,
    /// bool
    Bool,
    /// Any other TensorFlow type, by its `TF_DataType` code.
    Other(i32),
}

impl DType {
    /// From a `TF_DataType` / `DataType` proto code.
    pub fn from_code(code: i32) -> DType {
        match code {
            tf_code::FLOAT => DType::Float,
            tf_code::DOUBLE => DType::Double,
            tf_code::INT32 => DType::Int32,
            tf_code::UINT8 => DType::UInt8,
            tf_code::INT16 => DType::Int16,
            tf_code::INT8 => DType::Int8,
            tf_code::STRING => DType::String,
            tf_code::INT64 => DType::Int64,
            tf_code::BOOL => DType::Bool,
            other => DType::Other(other),
        }
    }

    /// The value type of a reference type (`float_ref`, code 101, is float32): TF1
    /// variables and their assign ops output references, and a session fetches their values.
    ///
    /// ```
    /// use dlflow_tf::DType;
    /// assert_eq!(DType::from_code(101).without_ref(), DType::Float);
    /// assert_eq!(DType::Int64.without_ref(), DType::Int64);
    /// ```
    pub fn without_ref(self) -> DType {
        match self {
            DType::Other(code) if code > tf_code::REF_OFFSET => DType::from_code(code - tf_code::REF_OFFSET),
            other => other,
        }
    }

    /// The `TF_DataType` code.
    pub fn code(self) -> i32 {
        match self {
            DType::Float => tf_code::FLOAT,
            DType::Double => tf_code::DOUBLE,
            DType::Int32 => tf_code::INT32,
            DType::UInt8 => tf_code::UINT8,
            DType::Int16 => tf_code::INT16,
            DType::Int8 => tf_code::INT8,
            DType::String => tf_code::STRING,
            DType::Int64 => tf_code::INT64,
            DType::Bool => tf_code::BOOL,
            DType::Other(code) => code,
        }
    }

    /// The Arrow type of a column holding this element type, if dlflow converts it.
    ///
    /// ```
    /// use dlflow_tf::DType;
    /// use arrow::datatypes::DataType;
    /// assert_eq!(DType::Float.arrow_type(), Some(DataType::Float32));
    /// assert_eq!(DType::String.arrow_type(), Some(DataType::Utf8));
    /// ```
    pub fn arrow_type(self) -> Option<DataType> {
        match self {
            DType::Other(_) => None,
            known => types::by_tf_code(known.code()).map(|t| t.arrow.clone()),
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match types::by_tf_code(self.code()) {
            Some(known) => f.write_str(known.tf_name),
            None => write!(f, "DataType({})", self.code()),
        }
    }
}

/// The seed's data type names, as written in `input_types` / `output_types` properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DlType {
    /// `FLOAT_32`: Arrow Float32, SQL FLOAT, TF float32.
    Float32,
    /// `FLOAT_64`: Arrow Float64, SQL DOUBLE, TF float64.
    Float64,
    /// `INT_32`: Arrow Int32, SQL INT, TF int32.
    Int32,
    /// `INT_64`: Arrow Int64, SQL BIGINT, TF int64.
    Int64,
    /// `STRING`: Arrow Utf8 or LargeUtf8, SQL STRING, TF string.
    String,
}

impl DlType {
    /// Every seed type, in the table's order.
    pub const ALL: [DlType; 5] = [DlType::Float32, DlType::Float64, DlType::Int32, DlType::Int64, DlType::String];

    /// The seed's spelling.
    pub fn name(self) -> &'static str {
        match self {
            DlType::Float32 => "FLOAT_32",
            DlType::Float64 => "FLOAT_64",
            DlType::Int32 => "INT_32",
            DlType::Int64 => "INT_64",
            DlType::String => "STRING",
        }
    }

    /// Whether a column of Arrow type `data_type` holds this type.
    pub fn matches(self, data_type: &DataType) -> bool {
        match data_type {
            // A vector column is a tensor of its element type, one rank up.
            DataType::FixedSizeList(item, _) | DataType::List(item) | DataType::LargeList(item) => {
                self.matches(item.data_type())
            }
            _ => types::by_arrow(data_type).and_then(|t| t.seed_name) == Some(self.name()),
        }
    }

    /// Parse a comma-separated list such as `"FLOAT_32,INT_64"`. `FLOAT32`-style spellings
    /// (the seed's own examples use both) are accepted too.
    ///
    /// ```
    /// use dlflow_tf::DlType;
    /// let types = DlType::parse_list("FLOAT_32, INT_64,STRING")?;
    /// assert_eq!(types, vec![DlType::Float32, DlType::Int64, DlType::String]);
    /// assert!(DlType::parse_list("FLOAT_16").is_err());
    /// # Ok::<(), dlflow_tf::TfError>(())
    /// ```
    pub fn parse_list(list: &str) -> Result<Vec<DlType>, TfError> {
        list.split(',').map(|item| item.trim().parse()).collect()
    }
}

impl FromStr for DlType {
    type Err = TfError;

    fn from_str(s: &str) -> Result<DlType, TfError> {
        let spelling = |name: &str| name.to_ascii_uppercase().replace('_', "");
        DlType::ALL.into_iter().find(|t| spelling(t.name()) == spelling(s)).ok_or_else(|| {
            TfError::DeclaredTypes(format!("unknown data type `{s}`: expected one of {}", types::seed_names().join(", ")))
        })
    }
}

impl fmt::Display for DlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Check a declared type list (the seed's `input_types` / `output_types`, named by `what`)
/// against a schema, column by column in order.
///
/// ```
/// use arrow::datatypes::{DataType, Field, Schema};
/// use dlflow_tf::dtype::check_declared_types;
/// let schema = Schema::new(vec![Field::new("x", DataType::Float32, false), Field::new("y", DataType::Float64, false)]);
/// check_declared_types("input_types", "FLOAT_32,FLOAT_64", &schema)?;
/// let err = check_declared_types("input_types", "FLOAT_32,INT_64", &schema).unwrap_err();
/// assert!(err.to_string().contains("column `y`"));
/// # Ok::<(), dlflow_tf::TfError>(())
/// ```
pub fn check_declared_types(what: &str, declared: &str, schema: &Schema) -> Result<(), TfError> {
    let types = DlType::parse_list(declared).map_err(|e| TfError::DeclaredTypes(format!("{what}: {e}")))?;
    if types.len() != schema.fields().len() {
        let columns: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        return Err(TfError::DeclaredTypes(format!(
            "{what} declares {} type(s) ({declared}) but the table has {} column(s): {}",
            types.len(),
            columns.len(),
            columns.join(", ")
        )));
    }
    for (declared_type, field) in types.iter().zip(schema.fields()) {
        if !declared_type.matches(field.data_type()) {
            return Err(TfError::DeclaredTypes(format!(
                "{what} declares {declared_type} for column `{}`, but the column has type {}",
                field.name(),
                field.data_type()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_types_are_the_tables() {
        assert_eq!(DlType::ALL.map(DlType::name).to_vec(), types::seed_names());
        for t in DlType::ALL {
            assert_eq!(t.name().parse::<DlType>().expect("own name"), t);
        }
    }

    #[test]
    fn every_known_dtype_round_trips_through_the_table() {
        let known = [DType::Float, DType::Double, DType::Int32, DType::Int64, DType::UInt8, DType::Int8, DType::Int16, DType::String, DType::Bool];
        for dtype in known {
            let arrow = dtype.arrow_type().expect("known dtypes have an Arrow type");
            assert_eq!(types::by_arrow(&arrow).map(|t| t.tf_code), Some(dtype.code()), "{dtype}");
            assert_eq!(DType::from_code(dtype.code()), dtype);
        }
        assert_eq!(DType::Other(23).to_string(), "DataType(23)");
    }
}
