//! Element types: TensorFlow's `DataType`, its Arrow counterpart, and the seed's `DL` names
//! (`FLOAT_32`, `FLOAT_64`, `INT_32`, `INT_64`, `STRING`) used by `input_types`/`output_types`.

use std::fmt;
use std::str::FromStr;

use arrow::datatypes::{DataType, Schema};

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
            1 => DType::Float,
            2 => DType::Double,
            3 => DType::Int32,
            4 => DType::UInt8,
            5 => DType::Int16,
            6 => DType::Int8,
            7 => DType::String,
            9 => DType::Int64,
            10 => DType::Bool,
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
            DType::Other(code) if code > 100 => DType::from_code(code - 100),
            other => other,
        }
    }

    /// The `TF_DataType` code.
    pub fn code(self) -> i32 {
        match self {
            DType::Float => 1,
            DType::Double => 2,
            DType::Int32 => 3,
            DType::UInt8 => 4,
            DType::Int16 => 5,
            DType::Int8 => 6,
            DType::String => 7,
            DType::Int64 => 9,
            DType::Bool => 10,
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
        Some(match self {
            DType::Float => DataType::Float32,
            DType::Double => DataType::Float64,
            DType::Int32 => DataType::Int32,
            DType::Int64 => DataType::Int64,
            DType::UInt8 => DataType::UInt8,
            DType::Int8 => DataType::Int8,
            DType::Int16 => DataType::Int16,
            DType::String => DataType::Utf8,
            DType::Bool => DataType::Boolean,
            DType::Other(_) => return None,
        })
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DType::Float => f.write_str("float32"),
            DType::Double => f.write_str("float64"),
            DType::Int32 => f.write_str("int32"),
            DType::Int64 => f.write_str("int64"),
            DType::UInt8 => f.write_str("uint8"),
            DType::Int8 => f.write_str("int8"),
            DType::Int16 => f.write_str("int16"),
            DType::String => f.write_str("string"),
            DType::Bool => f.write_str("bool"),
            DType::Other(code) => write!(f, "DataType({code})"),
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
            _ => matches!(
                (self, data_type),
                (DlType::Float32, DataType::Float32)
                    | (DlType::Float64, DataType::Float64)
                    | (DlType::Int32, DataType::Int32)
                    | (DlType::Int64, DataType::Int64)
                    | (DlType::String, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
            ),
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
        Ok(match s.to_ascii_uppercase().replace('_', "").as_str() {
            "FLOAT32" => DlType::Float32,
            "FLOAT64" => DlType::Float64,
            "INT32" => DlType::Int32,
            "INT64" => DlType::Int64,
            "STRING" => DlType::String,
            _ => {
                return Err(TfError::DeclaredTypes(format!(
                    "unknown data type `{s}`: expected one of FLOAT_32, FLOAT_64, INT_32, INT_64, STRING"
                )))
            }
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
