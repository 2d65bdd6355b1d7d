//! The element type table: one row per Arrow type dlflow turns into tensors, with the names
//! every layer gives it.
//!
//! The in-process TensorFlow runtime (`dlflow_tf::DType`, `dlflow_tf::DlType`), the job's
//! check of what may go to training nodes, and the Python nodes (`python/dlflow/_types.py`,
//! compared with this table by a test) all read their type rules from here.
//!
//! | Arrow | TensorFlow | seed name | to training nodes | a number for the Estimator |
//! |---|---|---|---|---|
//! | Float32 | float32 | `FLOAT_32` | yes | yes |
//! | Float64 | float64 | `FLOAT_64` | yes | yes |
//! | Int32 | int32 | `INT_32` | yes | yes |
//! | Int64 | int64 | `INT_64` | yes | yes |
//! | Boolean | bool | | yes | yes |
//! | Utf8, LargeUtf8, Utf8View | string | `STRING` | yes | no |
//! | Binary, LargeBinary | string | | yes | no |
//! | Int8, Int16, UInt8 | int8, int16, uint8 | | no | no |
//!
//! A fixed-size list of a number type is a vector column: one tensor dimension more, same
//! element type ([`element_of`]).

use arrow_schema::DataType;

/// One Arrow type and its names elsewhere.
#[derive(Debug, Clone, PartialEq)]
pub struct ElementType {
    /// The Arrow type of a column of these values.
    pub arrow: DataType,
    /// TensorFlow's name of the dtype (`tf.as_dtype(name)` in Python).
    pub tf_name: &'static str,
    /// TensorFlow's `DataType` code ([`tf_code`]).
    pub tf_code: i32,
    /// The seed's name in `input_types` / `output_types`, if it has one.
    pub seed_name: Option<&'static str>,
    /// Whether training nodes (Python) take columns of it.
    pub to_nodes: bool,
    /// Whether the Estimator takes it as a number (features and labels).
    pub number: bool,
}

/// TensorFlow's `DataType` codes (`tensorflow/core/framework/types.proto`) that dlflow names.
pub mod tf_code {
    /// float32
    pub const FLOAT: i32 = 1;
    /// float64
    pub const DOUBLE: i32 = 2;
    /// int32
    pub const INT32: i32 = 3;
    /// uint8
    pub const UINT8: i32 = 4;
    /// int16
    pub const INT16: i32 = 5;
    /// int8
    pub const INT8: i32 = 6;
    /// string (bytes)
    pub const STRING: i32 = 7;
    /// int64
    pub const INT64: i32 = 9;
    /// bool
    pub const BOOL: i32 = 10;
    /// bfloat16 (TensorBoard scalars can be)
    pub const BFLOAT16: i32 = 14;
    /// float16 (TensorBoard scalars can be)
    pub const HALF: i32 = 19;
    /// Reference types (TF1 variables) are their value type's code plus this.
    pub const REF_OFFSET: i32 = 100;
}

const fn row(
    arrow: DataType,
    tf_name: &'static str,
    tf_code: i32,
    seed_name: Option<&'static str>,
    to_nodes: bool,
    number: bool,
) -> ElementType {
    ElementType { arrow, tf_name, tf_code, seed_name, to_nodes, number }
}

/// The table. For each TensorFlow dtype, its first row is the Arrow type dlflow makes for
/// tensors of it ([`by_tf_code`]).
pub static ELEMENT_TYPES: [ElementType; 13] = [
    row(DataType::Float32, "float32", tf_code::FLOAT, Some("FLOAT_32"), true, true),
    row(DataType::Float64, "float64", tf_code::DOUBLE, Some("FLOAT_64"), true, true),
    row(DataType::Int32, "int32", tf_code::INT32, Some("INT_32"), true, true),
    row(DataType::Int64, "int64", tf_code::INT64, Some("INT_64"), true, true),
    row(DataType::Boolean, "bool", tf_code::BOOL, None, true, true),
    row(DataType::Utf8, "string", tf_code::STRING, Some("STRING"), true, false),
    row(DataType::LargeUtf8, "string", tf_code::STRING, Some("STRING"), true, false),
    row(DataType::Utf8View, "string", tf_code::STRING, Some("STRING"), true, false),
    row(DataType::Binary, "string", tf_code::STRING, None, true, false),
    row(DataType::LargeBinary, "string", tf_code::STRING, None, true, false),
    row(DataType::UInt8, "uint8", tf_code::UINT8, None, false, false),
    row(DataType::Int8, "int8", tf_code::INT8, None, false, false),
    row(DataType::Int16, "int16", tf_code::INT16, None, false, false),
];

/// The row of an Arrow type, `None` for types that are no tensor element (lists, structs,
/// dates...).
///
/// ```
/// use arrow_schema::DataType;
/// assert_eq!(dlflow_common::types::by_arrow(&DataType::LargeUtf8).map(|t| t.tf_name), Some("string"));
/// assert!(dlflow_common::types::by_arrow(&DataType::Date32).is_none());
/// ```
pub fn by_arrow(data_type: &DataType) -> Option<&'static ElementType> {
    ELEMENT_TYPES.iter().find(|t| &t.arrow == data_type)
}

/// The first row of a TensorFlow dtype code: the Arrow type its tensors become.
///
/// ```
/// use arrow_schema::DataType;
/// use dlflow_common::types::{by_tf_code, tf_code};
/// assert_eq!(by_tf_code(tf_code::STRING).map(|t| &t.arrow), Some(&DataType::Utf8));
/// ```
pub fn by_tf_code(code: i32) -> Option<&'static ElementType> {
    ELEMENT_TYPES.iter().find(|t| t.tf_code == code)
}

/// The seed names, in table order, without repeats: `FLOAT_32, FLOAT_64, INT_32, INT_64, STRING`.
pub fn seed_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for name in ELEMENT_TYPES.iter().filter_map(|t| t.seed_name) {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// The element type of a column: its own row, or its items' for a fixed-size list of numbers
/// (a vector column). `None` for anything else.
///
/// ```
/// use std::sync::Arc;
/// use arrow_schema::{DataType, Field};
/// let vector = DataType::FixedSizeList(Arc::new(Field::new_list_field(DataType::Float32, false)), 784);
/// assert_eq!(dlflow_common::types::element_of(&vector).map(|t| t.tf_name), Some("float32"));
/// ```
pub fn element_of(data_type: &DataType) -> Option<&'static ElementType> {
    match data_type {
        DataType::FixedSizeList(item, _) => by_arrow(item.data_type()).filter(|t| t.number),
        other => by_arrow(other),
    }
}

/// What training nodes take, in words, for error messages.
pub const TO_NODES_IN_WORDS: &str =
    "FLOAT_32, FLOAT_64, INT_32, INT_64, STRING, BOOL, or a fixed-size list of numbers";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_words_name_what_the_table_sends_to_nodes() {
        for name in seed_names() {
            assert!(TO_NODES_IN_WORDS.contains(name), "{name}");
        }
        assert_eq!(seed_names(), ["FLOAT_32", "FLOAT_64", "INT_32", "INT_64", "STRING"]);
    }

    #[test]
    fn arrow_types_are_unique_and_codes_agree_with_names() {
        for (i, a) in ELEMENT_TYPES.iter().enumerate() {
            assert!(ELEMENT_TYPES[i + 1..].iter().all(|b| b.arrow != a.arrow), "{:?} twice", a.arrow);
            let first = by_tf_code(a.tf_code).expect("own code");
            assert_eq!(first.tf_name, a.tf_name, "one name per code");
            assert!(!a.number || a.to_nodes, "numbers go to nodes");
        }
    }
}
