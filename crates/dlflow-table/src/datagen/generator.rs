//! [`Generator`]: how the values of one datagen column are made.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, FixedSizeListArray, LargeStringArray, PrimitiveArray, StringArray, StringViewArray,
};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field, Float32Type, Float64Type, Int32Type, Int64Type,
};

use super::random::ColumnRandom;
use crate::error::{Result, TableError};

/// Longest random string a column may ask for. Strings are built a batch at a time, so this
/// bounds a batch's memory (8192 rows x 1 MiB = 8 GiB would already be absurd); it exists to
/// turn a typo such as `'length' '100000000'` into an error instead of an out-of-memory abort.
pub const MAX_STRING_LENGTH: usize = 1 << 16;

/// Characters random strings are drawn from: ASCII letters and digits, so values print and
/// round-trip through CSV without quoting.
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// How the values of one datagen column are produced, and their Arrow type.
///
/// Each constructor picks a default type; [`Generator::with_data_type`] asks for another one
/// (for example `Float32` instead of `Float64`). Invalid settings (such as `min > max`) are
/// reported when the table is built, as [`TableError::InvalidOption`] naming the column.
///
/// # Example
///
/// ```
/// use arrow::datatypes::DataType;
/// use dlflow_table::datagen::Generator;
///
/// let x = Generator::uniform(0.0, 1.0).with_data_type(DataType::Float32);
/// assert_eq!(x.data_type(), &DataType::Float32);
/// assert_eq!(Generator::sequence(1).data_type(), &DataType::Int64);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Generator {
    kind: Kind,
    data_type: DataType,
}

/// The value recipe, independent of the Arrow type it is written as.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    UniformFloat {
        min: f64,
        max: f64,
    },
    UniformInt {
        min: i64,
        max: i64,
    },
    Sequence {
        start: i64,
    },
    RandomString {
        length: usize,
    },
    UniformVector {
        dimension: usize,
        min: f64,
        max: f64,
    },
}

impl Kind {
    /// The SQL `kind` option value this recipe corresponds to.
    fn sql_kind(&self) -> &'static str {
        match self {
            Kind::Sequence { .. } => "sequence",
            _ => "random",
        }
    }

    /// Human-readable list of the types this recipe can produce, for error messages.
    fn supported_types(&self) -> &'static str {
        match self {
            Kind::UniformFloat { .. } => "Float32 (FLOAT) or Float64 (DOUBLE)",
            Kind::UniformInt { .. } | Kind::Sequence { .. } => "Int32 (INT) or Int64 (BIGINT)",
            Kind::RandomString { .. } => "Utf8, LargeUtf8 or Utf8View (VARCHAR)",
            Kind::UniformVector { .. } => {
                "FixedSizeList of Float32 or Float64 with the vector's dimension"
            }
        }
    }
}

impl Generator {
    /// Random floats uniform in `[min, max]`, as `Float64` (use
    /// [`with_data_type`](Self::with_data_type) for `Float32`).
    ///
    /// # Example
    ///
    /// ```
    /// use dlflow_table::datagen::Generator;
    /// let noise = Generator::uniform(-1.0, 1.0);
    /// assert_eq!(noise.data_type(), &arrow::datatypes::DataType::Float64);
    /// ```
    pub fn uniform(min: f64, max: f64) -> Self {
        Self::new(Kind::UniformFloat { min, max }, DataType::Float64)
    }

    /// Random integers uniform in `[min, max]` (both inclusive), as `Int64` (or `Int32`
    /// through [`with_data_type`](Self::with_data_type)).
    ///
    /// # Example
    ///
    /// ```
    /// use dlflow_table::datagen::Generator;
    /// let label = Generator::uniform_int(0, 9);
    /// assert_eq!(label.data_type(), &arrow::datatypes::DataType::Int64);
    /// ```
    pub fn uniform_int(min: i64, max: i64) -> Self {
        Self::new(Kind::UniformInt { min, max }, DataType::Int64)
    }

    /// `start, start + 1, …`: row `r` holds `start + r`, as `Int64` (or `Int32`).
    ///
    /// # Example
    ///
    /// ```
    /// use dlflow_table::datagen::Generator;
    /// let id = Generator::sequence(1);
    /// assert_eq!(id.data_type(), &arrow::datatypes::DataType::Int64);
    /// ```
    pub fn sequence(start: i64) -> Self {
        Self::new(Kind::Sequence { start }, DataType::Int64)
    }

    /// Random strings of exactly `length` ASCII letters and digits, as `Utf8` (or
    /// `LargeUtf8` / `Utf8View`). `length` may be at most [`MAX_STRING_LENGTH`].
    ///
    /// # Example
    ///
    /// ```
    /// use dlflow_table::datagen::Generator;
    /// let name = Generator::random_string(8);
    /// assert_eq!(name.data_type(), &arrow::datatypes::DataType::Utf8);
    /// ```
    pub fn random_string(length: usize) -> Self {
        Self::new(Kind::RandomString { length }, DataType::Utf8)
    }

    /// Random vectors of `dimension` floats uniform in `[min, max]`, as
    /// `FixedSizeList<Float32, dimension>` (the usual type of embeddings and flattened
    /// tensors; `Float64` items through [`with_data_type`](Self::with_data_type)).
    ///
    /// # Example
    ///
    /// ```
    /// use arrow::datatypes::DataType;
    /// use dlflow_table::datagen::Generator;
    ///
    /// let v = Generator::uniform_vector(16, -1.0, 1.0);
    /// assert!(matches!(v.data_type(), DataType::FixedSizeList(item, 16)
    ///     if item.data_type() == &DataType::Float32));
    /// ```
    pub fn uniform_vector(dimension: usize, min: f64, max: f64) -> Self {
        let size = i32::try_from(dimension).unwrap_or(i32::MAX);
        Self::new(
            Kind::UniformVector {
                dimension,
                min,
                max,
            },
            DataType::FixedSizeList(
                Arc::new(Field::new_list_field(DataType::Float32, false)),
                size,
            ),
        )
    }

    /// The same values written as another Arrow type. Which types each generator supports is
    /// listed in the error that [`DataGen::build`](super::DataGen::build) returns otherwise.
    ///
    /// # Example
    ///
    /// ```
    /// use arrow::datatypes::DataType;
    /// use dlflow_table::datagen::Generator;
    /// let id = Generator::sequence(0).with_data_type(DataType::Int32);
    /// assert_eq!(id.data_type(), &DataType::Int32);
    /// ```
    pub fn with_data_type(mut self, data_type: DataType) -> Self {
        self.data_type = data_type;
        self
    }

    /// The Arrow type of the generated column.
    ///
    /// # Example
    ///
    /// ```
    /// use dlflow_table::datagen::Generator;
    /// assert_eq!(Generator::random_string(4).data_type(), &arrow::datatypes::DataType::Utf8);
    /// ```
    pub fn data_type(&self) -> &DataType {
        &self.data_type
    }

    fn new(kind: Kind, data_type: DataType) -> Self {
        Self { kind, data_type }
    }

    /// Checks the settings for a column named `column` of a table with `rows` rows. Errors
    /// name the SQL option (`fields.<column>.<option>`) so builder and DDL users read the same
    /// message.
    pub(crate) fn validate(&self, column: &str, rows: u64) -> Result<()> {
        let option = |name: &str| format!("fields.{column}.{name}");
        match self.kind {
            Kind::UniformFloat { min, max } | Kind::UniformVector { min, max, .. } => {
                check_float_range(&option, min, max, &self.float_type())?;
            }
            Kind::UniformInt { min, max } => {
                if min > max {
                    return Err(min_above_max(&option, min, max));
                }
                for (name, value) in [("min", min), ("max", max)] {
                    check_fits(&option(name), value, &self.data_type)?;
                }
            }
            Kind::Sequence { start } => {
                check_fits(&option("start"), start, &self.data_type)?;
                let last = i128::from(start) + i128::from(rows.saturating_sub(1));
                let last = i64::try_from(last).unwrap_or(i64::MAX);
                check_fits(&option("start"), last, &self.data_type).map_err(|_| {
                    TableError::invalid_option(
                        option("start"),
                        format!(
                            "a sequence from {start} over {rows} rows ends at {last}, \
                             which does not fit in {}",
                            self.data_type
                        ),
                    )
                })?;
            }
            Kind::RandomString { length } => {
                if length > MAX_STRING_LENGTH {
                    return Err(TableError::invalid_option(
                        option("length"),
                        format!(
                            "length {length} is too long; expected at most {MAX_STRING_LENGTH}"
                        ),
                    ));
                }
            }
        }
        if let Kind::UniformVector { dimension, .. } = self.kind
            && (dimension == 0 || i32::try_from(dimension).is_err()) {
                return Err(TableError::invalid_option(
                    option("length"),
                    format!(
                        "vector dimension {dimension} must be between 1 and {}",
                        i32::MAX
                    ),
                ));
            }
        // Generating zero rows exercises exactly the type dispatch used at scan time, so the
        // "unsupported type" error cannot drift from what `generate` accepts.
        self.generate(column, ColumnRandom::new(0, column), 0..0)
            .map(|_| ())
    }

    /// The float type bounds must fit: the item type for vectors, the column type otherwise.
    fn float_type(&self) -> DataType {
        match &self.data_type {
            DataType::FixedSizeList(item, _) => item.data_type().clone(),
            other => other.clone(),
        }
    }

    /// The values of rows `rows` (absolute row indices of the table) as one Arrow array.
    pub(crate) fn generate(
        &self,
        column: &str,
        random: ColumnRandom,
        rows: Range<u64>,
    ) -> Result<ArrayRef> {
        let array: ArrayRef = match (&self.kind, &self.data_type) {
            (Kind::UniformFloat { min, max }, DataType::Float64) => {
                primitive::<Float64Type>(rows, |r| random.float_in(r, *min, *max))
            }
            (Kind::UniformFloat { min, max }, DataType::Float32) => {
                primitive::<Float32Type>(rows, |r| random.float_in(r, *min, *max) as f32)
            }
            (Kind::UniformInt { min, max }, DataType::Int64) => {
                primitive::<Int64Type>(rows, |r| random.int_in(r, *min, *max))
            }
            (Kind::UniformInt { min, max }, DataType::Int32) => {
                primitive::<Int32Type>(rows, |r| random.int_in(r, *min, *max) as i32)
            }
            // `validate` proved the last value fits, so the wrapping arithmetic never wraps; it
            // is only there to keep this path free of overflow panics in debug builds.
            (Kind::Sequence { start }, DataType::Int64) => {
                primitive::<Int64Type>(rows, |r| start.wrapping_add(r as i64))
            }
            (Kind::Sequence { start }, DataType::Int32) => {
                primitive::<Int32Type>(rows, |r| start.wrapping_add(r as i64) as i32)
            }
            (Kind::RandomString { length }, DataType::Utf8) => Arc::new(
                StringArray::from_iter_values(strings(random, rows, *length)),
            ),
            (Kind::RandomString { length }, DataType::LargeUtf8) => Arc::new(
                LargeStringArray::from_iter_values(strings(random, rows, *length)),
            ),
            (Kind::RandomString { length }, DataType::Utf8View) => Arc::new(
                StringViewArray::from_iter_values(strings(random, rows, *length)),
            ),
            (
                Kind::UniformVector {
                    dimension,
                    min,
                    max,
                },
                DataType::FixedSizeList(item, size),
            ) if usize::try_from(*size) == Ok(*dimension) => {
                // Element j of row r is draw r * dimension + j of the column's stream, so a
                // row's vector does not depend on which batch it lands in either.
                let d = *dimension as u64;
                let draws = rows.start.wrapping_mul(d)..rows.end.wrapping_mul(d);
                let values: ArrayRef = match item.data_type() {
                    DataType::Float32 => {
                        primitive::<Float32Type>(draws, |i| random.float_in(i, *min, *max) as f32)
                    }
                    DataType::Float64 => {
                        primitive::<Float64Type>(draws, |i| random.float_in(i, *min, *max))
                    }
                    _ => return Err(self.unsupported_type(column)),
                };
                let item = Arc::new(Field::new_list_field(item.data_type().clone(), false));
                Arc::new(FixedSizeListArray::try_new(item, *size, values, None)?)
            }
            _ => return Err(self.unsupported_type(column)),
        };
        Ok(array)
    }

    fn unsupported_type(&self, column: &str) -> TableError {
        TableError::invalid_option(
            format!("fields.{column}.kind"),
            format!(
                "kind '{}' cannot produce column '{column}' of type {}; expected {}",
                self.kind.sql_kind(),
                self.data_type,
                self.kind.supported_types()
            ),
        )
    }
}

/// A primitive array with one value per index in `indices`.
fn primitive<T: ArrowPrimitiveType>(
    indices: Range<u64>,
    value: impl Fn(u64) -> T::Native,
) -> ArrayRef {
    Arc::new(PrimitiveArray::<T>::from_iter_values(indices.map(value)))
}

/// Random strings for `rows`; character j of row r is draw r * length + j.
fn strings(random: ColumnRandom, rows: Range<u64>, length: usize) -> impl Iterator<Item = String> {
    let length = length as u64;
    rows.map(move |row| {
        (0..length)
            .map(|j| {
                let pick = random.below(
                    row.wrapping_mul(length).wrapping_add(j),
                    ALPHABET.len() as u32,
                );
                char::from(ALPHABET[pick as usize])
            })
            .collect()
    })
}

fn check_float_range(
    option: &impl Fn(&str) -> String,
    min: f64,
    max: f64,
    float_type: &DataType,
) -> Result<()> {
    for (name, value) in [("min", min), ("max", max)] {
        let fits = match float_type {
            DataType::Float32 => value.is_finite() && value.abs() <= f64::from(f32::MAX),
            _ => value.is_finite(),
        };
        if !fits {
            return Err(TableError::invalid_option(
                option(name),
                format!("{value} is not a finite {float_type} number"),
            ));
        }
    }
    if min > max {
        return Err(min_above_max(option, min, max));
    }
    if !(max - min).is_finite() {
        return Err(TableError::invalid_option(
            option("max"),
            format!("the range [{min}, {max}] is wider than a Float64 can hold"),
        ));
    }
    Ok(())
}

fn min_above_max<T: std::fmt::Display>(
    option: &impl Fn(&str) -> String,
    min: T,
    max: T,
) -> TableError {
    TableError::invalid_option(
        option("min"),
        format!("min ({min}) is greater than max ({max}); expected min <= max"),
    )
}

/// Checks an integer setting fits the column type (only `Int32` can be too small here).
fn check_fits(option: &str, value: i64, data_type: &DataType) -> Result<()> {
    if *data_type == DataType::Int32 && i32::try_from(value).is_err() {
        return Err(TableError::invalid_option(
            option,
            format!(
                "{value} does not fit in an Int32 (INT) column; expected a value between {} and {}",
                i32::MIN,
                i32::MAX
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};

    fn generate(g: &Generator, rows: Range<u64>) -> ArrayRef {
        g.validate("c", rows.end).expect("valid generator");
        g.generate("c", ColumnRandom::new(3, "c"), rows)
            .expect("generates")
    }

    #[test]
    fn sequence_counts_from_start() {
        let a = generate(
            &Generator::sequence(10).with_data_type(DataType::Int32),
            5..8,
        );
        assert_eq!(a.as_primitive::<Int32Type>().values(), &[15, 16, 17]);
    }

    #[test]
    fn vectors_have_dimension_and_range() {
        let a = generate(&Generator::uniform_vector(3, -2.0, -1.0), 0..4);
        let list = a.as_fixed_size_list();
        assert_eq!(list.len(), 4);
        let values = list.values().as_primitive::<Float32Type>();
        assert_eq!(values.len(), 12);
        assert!(values.values().iter().all(|v| (-2.0..=-1.0).contains(v)));
    }

    #[test]
    fn strings_have_length_and_alphabet() {
        let a = generate(
            &Generator::random_string(6).with_data_type(DataType::Utf8View),
            0..50,
        );
        let strings = a.as_string_view();
        for s in strings.iter().flatten() {
            assert_eq!(s.len(), 6);
            assert!(s.bytes().all(|b| b.is_ascii_alphanumeric()), "{s}");
        }
    }

    #[test]
    fn int32_sequence_overflow_is_rejected() {
        let g = Generator::sequence(i64::from(i32::MAX) - 1).with_data_type(DataType::Int32);
        let err = g.validate("id", 3).expect_err("overflow").to_string();
        assert!(
            err.contains("fields.id.start") && err.contains("Int32"),
            "{err}"
        );
        assert!(g.validate("id", 2).is_ok());
    }

    #[test]
    fn wrong_type_is_rejected_with_expectation() {
        let g = Generator::uniform(0.0, 1.0).with_data_type(DataType::Utf8);
        let err = g.validate("x", 1).expect_err("wrong type").to_string();
        assert!(
            err.contains("fields.x.kind") && err.contains("Float32"),
            "{err}"
        );
    }
}
