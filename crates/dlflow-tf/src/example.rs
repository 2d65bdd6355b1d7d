//! `tf.train.Example` protos built from a table's columns, for signatures that take
//! serialized examples (TFX, Estimator and TF Serving classify/regress exports).
//!
//! Each row becomes one Example with a feature per column, named after the column: float
//! columns become `float_list`s, integer and boolean columns `int64_list`s, string and binary
//! columns `bytes_list`s; a list column gives its values, a null leaves the feature out.
//! When the model reveals its [`ExampleSpec`] (its parse op), only the spec's features are
//! encoded, in the spec's list types, and the table is checked against the spec before any
//! row is read.
//!
//! The protobuf encoding is prost's, with the messages of tensorflow/core/example/
//! {example,feature}.proto declared below.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::buffer::NullBuffer;
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{DataType, Float32Type, Int64Type, Schema};
use prost::Message;

use crate::dtype::DType;
use crate::error::{Result, TfError};
use crate::example_spec::{ExampleSpec, FeatureSpec};

/// `tensorflow.Example`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Example {
    /// The features, by name.
    #[prost(message, required, tag = "1")]
    pub features: Features,
}

/// `tensorflow.Features`: a `map<string, Feature>`, declared as its repeated entries
/// (the same bytes on the wire) so that entries can be reused from row to row.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Features {
    /// One entry per feature present in the example.
    #[prost(message, repeated, tag = "1")]
    pub feature: Vec<FeatureEntry>,
}

/// One `map<string, Feature>` entry of [`Features`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureEntry {
    /// The feature name.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Its values.
    #[prost(message, optional, tag = "2")]
    pub value: Option<Feature>,
}

/// `tensorflow.Feature`: one of three list types.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Feature {
    /// The list.
    #[prost(oneof = "FeatureList", tags = "1, 2, 3")]
    pub kind: Option<FeatureList>,
}

/// The lists a [`Feature`] can hold.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum FeatureList {
    /// `bytes_list`: strings and binary values.
    #[prost(message, tag = "1")]
    BytesList(BytesList),
    /// `float_list`: float32 values.
    #[prost(message, tag = "2")]
    FloatList(FloatList),
    /// `int64_list`: int64 values.
    #[prost(message, tag = "3")]
    Int64List(Int64List),
}

/// `tensorflow.BytesList`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BytesList {
    /// The values.
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub value: Vec<Vec<u8>>,
}

/// `tensorflow.FloatList` (packed).
#[derive(Clone, PartialEq, prost::Message)]
pub struct FloatList {
    /// The values.
    #[prost(float, repeated, tag = "1")]
    pub value: Vec<f32>,
}

/// `tensorflow.Int64List` (packed).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Int64List {
    /// The values.
    #[prost(int64, repeated, tag = "1")]
    pub value: Vec<i64>,
}

impl Example {
    /// The features as a map, for reading a decoded example.
    ///
    /// ```
    /// use prost::Message;
    /// use dlflow_tf::example::{Example, Feature, FeatureEntry, FeatureList, Features, FloatList};
    /// let entry = FeatureEntry { key: "x".into(), value: Some(Feature { kind: Some(FeatureList::FloatList(FloatList { value: vec![0.5] })) }) };
    /// let bytes = Example { features: Features { feature: vec![entry] } }.encode_to_vec();
    /// let decoded = Example::decode(bytes.as_slice())?;
    /// assert!(decoded.feature_map().contains_key("x"));
    /// # Ok::<(), prost::DecodeError>(())
    /// ```
    pub fn feature_map(&self) -> HashMap<&str, &Feature> {
        self.features.feature.iter().filter_map(|e| Some((e.key.as_str(), e.value.as_ref()?))).collect()
    }
}

/// The list type a feature is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListType {
    Float,
    Int64,
    Bytes,
}

impl ListType {
    /// What a column's element type is written as when the model gives no spec.
    fn for_column(element: &DataType) -> Option<ListType> {
        if element.is_floating() {
            Some(ListType::Float)
        } else if element.is_integer() || element == &DataType::Boolean {
            Some(ListType::Int64)
        } else if is_bytes(element) {
            Some(ListType::Bytes)
        } else {
            None
        }
    }

    fn for_spec(dtype: DType) -> Option<ListType> {
        match dtype {
            DType::Float => Some(ListType::Float),
            DType::Int64 => Some(ListType::Int64),
            DType::String => Some(ListType::Bytes),
            _ => None,
        }
    }

    /// Whether a column of `element` values can be written as this list type.
    fn accepts(self, element: &DataType, allow_cast: bool) -> bool {
        match self {
            ListType::Float => element == &DataType::Float32 || (allow_cast && (element.is_floating() || element.is_integer())),
            ListType::Int64 => element == &DataType::Int64 || (allow_cast && (element.is_integer() || element == &DataType::Boolean)),
            ListType::Bytes => is_bytes(element),
        }
    }

    fn arrow_type(self) -> Option<DataType> {
        match self {
            ListType::Float => Some(DataType::Float32),
            ListType::Int64 => Some(DataType::Int64),
            ListType::Bytes => None,
        }
    }

    fn empty_feature(self) -> Feature {
        Feature {
            kind: Some(match self {
                ListType::Float => FeatureList::FloatList(FloatList::default()),
                ListType::Int64 => FeatureList::Int64List(Int64List::default()),
                ListType::Bytes => FeatureList::BytesList(BytesList::default()),
            }),
        }
    }

    fn name(self) -> &'static str {
        match self {
            ListType::Float => "float",
            ListType::Int64 => "int64",
            ListType::Bytes => "bytes (string)",
        }
    }
}

fn is_bytes(element: &DataType) -> bool {
    matches!(element, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Binary | DataType::LargeBinary | DataType::BinaryView)
}

/// The element type of a scalar or list column (a dictionary column's value type), and
/// whether it is a list.
fn element_of(data_type: &DataType) -> (&DataType, bool) {
    match data_type {
        DataType::FixedSizeList(child, _) | DataType::List(child) | DataType::LargeList(child) => (child.data_type(), true),
        DataType::Dictionary(_, values) => (values.as_ref(), false),
        other => (other, false),
    }
}

/// One column written as one feature.
#[derive(Debug, Clone)]
struct FeatureColumn {
    feature: String,
    column: usize,
    column_name: String,
    /// The column's type in the schema the encoder was made for.
    column_type: DataType,
    list: ListType,
    /// Values a fixed-length feature needs in every example.
    values_per_example: Option<usize>,
    required: bool,
}

impl FeatureColumn {
    /// Its column in `batch`, which must be of the schema the encoder was made for.
    fn array<'a>(&self, batch: &'a RecordBatch) -> Result<&'a ArrayRef> {
        match batch.columns().get(self.column) {
            Some(array) if array.data_type() == &self.column_type => Ok(array),
            found => Err(TfError::SchemaChanged {
                index: self.column,
                column: self.column_name.clone(),
                expected: self.column_type.to_string(),
                found: found.map_or_else(|| format!("no column (the batch has {})", batch.num_columns()), |a| a.data_type().to_string()),
            }),
        }
    }
}

/// Builds serialized `tf.train.Example` protos from a table's rows: one feature per column.
///
/// ```
/// use std::sync::Arc;
/// use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
/// use dlflow_tf::example::{Example, ExampleEncoder};
/// use prost::Message;
///
/// let batch = RecordBatch::try_from_iter([
///     ("fare", Arc::new(Float64Array::from(vec![Some(9.5), None])) as ArrayRef),
///     ("company", Arc::new(StringArray::from(vec!["Flash Cab", "Blue Ribbon"])) as ArrayRef),
///     ("trip_seconds", Arc::new(Int64Array::from(vec![600, 420])) as ArrayRef),
/// ])?;
/// let encoder = ExampleEncoder::new(&batch.schema(), None, &[], true)?;
/// let examples = encoder.encode(&batch)?;
/// let second = Example::decode(examples.get(1).expect("two rows"))?;
/// assert_eq!(second.features.feature.len(), 2, "the null fare is left out");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ExampleEncoder {
    features: Vec<FeatureColumn>,
}

impl ExampleEncoder {
    /// Plan the features for tables of `schema`. With a `spec`, the spec's features are
    /// read from the columns of their names (or the column `mappings` gives as
    /// `(feature, column)`), checked for type and width, and a required feature without a
    /// column is an error; other columns are ignored. Without a spec, every column becomes a
    /// feature named after it (or after its mapping). `allow_cast` lets integer columns feed
    /// float features and smaller integers int64 ones.
    pub fn new(schema: &Schema, spec: Option<&ExampleSpec>, mappings: &[(String, String)], allow_cast: bool) -> Result<ExampleEncoder> {
        let column_for = |feature: &str| mappings.iter().find(|(f, _)| f == feature).map(|(_, c)| c.as_str()).unwrap_or(feature).to_string();
        let mut features = Vec::new();
        match spec {
            Some(spec) => {
                for feature in &spec.features {
                    let column_name = column_for(&feature.name);
                    let Ok(column) = schema.index_of(&column_name) else {
                        if feature.is_required() {
                            return Err(TfError::MissingFeature {
                                feature: feature.to_string(),
                                column: column_name,
                                available: column_names(schema),
                            });
                        }
                        continue;
                    };
                    features.push(Self::plan_spec_feature(schema, column, feature, allow_cast)?);
                }
            }
            None => {
                for (column, field) in schema.fields().iter().enumerate() {
                    let (element, _) = element_of(field.data_type());
                    let list = ListType::for_column(element).ok_or_else(|| TfError::FeatureMismatch {
                        column: field.name().clone(),
                        feature: field.name().clone(),
                        message: format!(
                            "its type {} cannot be a tf.Example feature (float, integer, boolean, string or binary values, \
                             or lists of them); the model does not say which features it reads, so every column is \
                             written: select the feature columns first",
                            field.data_type()
                        ),
                    })?;
                    let feature = mappings.iter().find(|(_, c)| c == field.name()).map(|(f, _)| f.clone()).unwrap_or_else(|| field.name().clone());
                    features.push(FeatureColumn {
                        feature,
                        column,
                        column_name: field.name().clone(),
                        column_type: field.data_type().clone(),
                        list,
                        values_per_example: None,
                        required: false,
                    });
                }
            }
        }
        Ok(ExampleEncoder { features })
    }

    fn plan_spec_feature(schema: &Schema, column: usize, feature: &FeatureSpec, allow_cast: bool) -> Result<FeatureColumn> {
        let field = schema.field(column);
        let mismatch = |message: String| TfError::FeatureMismatch { column: field.name().clone(), feature: feature.name.clone(), message };
        let list = ListType::for_spec(feature.dtype)
            .ok_or_else(|| mismatch(format!("the model declares it as {}, which tf.Example cannot hold", feature.dtype)))?;
        let (element, is_list) = element_of(field.data_type());
        if !list.accepts(element, allow_cast) {
            return Err(mismatch(format!("the column has type {} but the model parses the feature as a {} list", field.data_type(), list.name())));
        }
        let values_per_example = feature.values_per_example();
        let column_width = match field.data_type() {
            DataType::FixedSizeList(_, k) => Some(*k as usize),
            _ if !is_list => Some(1),
            _ => None,
        };
        if let (Some(expected), Some(width)) = (values_per_example, column_width)
            && expected != width {
                return Err(mismatch(format!("the column has {width} value(s) per row but the model reads exactly {expected} per example ({feature})")));
            }
        Ok(FeatureColumn {
            feature: feature.name.clone(),
            column,
            column_name: field.name().clone(),
            column_type: field.data_type().clone(),
            list,
            values_per_example,
            required: feature.is_required(),
        })
    }

    /// The positions of the columns it reads.
    pub(crate) fn columns(&self) -> impl Iterator<Item = usize> + '_ {
        self.features.iter().map(|f| f.column)
    }

    /// `(feature, column)` pairs, in the order they are written.
    pub fn features(&self) -> impl Iterator<Item = (&str, &str)> {
        self.features.iter().map(|f| (f.feature.as_str(), f.column_name.as_str()))
    }

    /// One serialized Example per row of `batch` (of the schema given to [`ExampleEncoder::new`]).
    pub fn encode(&self, batch: &RecordBatch) -> Result<SerializedExamples> {
        let prepared = self.features.iter().map(|f| Prepared::new(f, f.array(batch)?)).collect::<Result<Vec<_>>>()?;
        let rows = batch.num_rows();
        let mut slots: Vec<FeatureEntry> =
            self.features.iter().map(|f| FeatureEntry { key: f.feature.clone(), value: Some(f.list.empty_feature()) }).collect();
        let mut example = Example { features: Features { feature: Vec::with_capacity(slots.len()) } };
        let mut present: Vec<usize> = Vec::with_capacity(slots.len());
        let mut out = SerializedExamples { bytes: Vec::with_capacity(rows * 16 * slots.len().max(1)), ends: Vec::with_capacity(rows) };
        for row in 0..rows {
            present.clear();
            for (index, (column, data)) in self.features.iter().zip(&prepared).enumerate() {
                if data.validity.as_ref().is_some_and(|nulls| nulls.is_null(row)) {
                    continue;
                }
                let (start, end) = data.range(row);
                if let Some(expected) = column.values_per_example.filter(|k| *k != end - start) {
                    return Err(TfError::FeatureMismatch {
                        column: column.column_name.clone(),
                        feature: column.feature.clone(),
                        message: format!("row {row} has {} value(s) but the model reads exactly {expected} per example", end - start),
                    });
                }
                let mut entry = std::mem::take(&mut slots[index]);
                data.fill(&mut entry, start, end);
                example.features.feature.push(entry);
                present.push(index);
            }
            example.encode(&mut out.bytes).map_err(|e| TfError::FeatureMismatch {
                column: String::new(),
                feature: String::new(),
                message: format!("could not encode row {row}: {e}"),
            })?;
            out.ends.push(out.bytes.len());
            for (entry, index) in example.features.feature.drain(..).zip(&present) {
                slots[*index] = entry;
            }
        }
        Ok(out)
    }

    /// Required features whose columns hold nulls: TensorFlow would refuse those examples.
    pub(crate) fn check_required(&self, batch: &RecordBatch) -> Result<()> {
        for feature in self.features.iter().filter(|f| f.required) {
            let nulls = feature.array(batch)?.null_count();
            if nulls > 0 {
                return Err(TfError::FeatureMismatch {
                    column: feature.column_name.clone(),
                    feature: feature.feature.clone(),
                    message: format!("{nulls} row(s) have no value, but the model requires the feature (it has no default)"),
                });
            }
        }
        Ok(())
    }
}

/// Serialized protos, one after another.
#[derive(Debug, Clone, Default)]
pub struct SerializedExamples {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl SerializedExamples {
    /// How many.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The `i`th serialized Example, if there are that many.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let start = if i == 0 { 0 } else { *self.ends.get(i - 1)? };
        self.bytes.get(start..*self.ends.get(i)?)
    }

    /// All of them, in row order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.ends.iter().scan(0, |start, &end| {
            let example = &self.bytes[*start..end];
            *start = end;
            Some(example)
        })
    }
}

/// A column's values, converted to the feature's list type, with each row's range.
struct Prepared {
    validity: Option<NullBuffer>,
    layout: RowRanges,
    values: Values,
}

enum RowRanges {
    One,
    Fixed(usize),
    /// Absolute offsets into the values, `rows + 1` of them.
    Offsets(Vec<usize>),
}

enum Values {
    Float(ArrayRef),
    Int(ArrayRef),
    Bytes(ArrayRef),
}

impl Prepared {
    fn new(column: &FeatureColumn, array: &ArrayRef) -> Result<Prepared> {
        let error = |message: String| TfError::FeatureMismatch { column: column.column_name.clone(), feature: column.feature.clone(), message };
        let validity = array.logical_nulls();
        // Dictionary columns (categorical strings from Parquet) as their plain values.
        let decoded;
        let array = match array.data_type() {
            DataType::Dictionary(_, values) => {
                decoded = arrow::compute::cast(array, values).map_err(|e| error(format!("cannot decode its dictionary: {e}")))?;
                &decoded
            }
            _ => array,
        };
        let (layout, values): (RowRanges, ArrayRef) = match array.data_type() {
            DataType::FixedSizeList(_, k) => {
                let list = array.as_fixed_size_list();
                let k = *k as usize;
                (RowRanges::Fixed(k), list.values().slice(list.offset() * k, list.len() * k))
            }
            DataType::List(_) => {
                let list = array.as_list::<i32>();
                (RowRanges::Offsets(list.value_offsets().iter().map(|o| *o as usize).collect()), list.values().clone())
            }
            DataType::LargeList(_) => {
                let list = array.as_list::<i64>();
                (RowRanges::Offsets(list.value_offsets().iter().map(|o| *o as usize).collect()), list.values().clone())
            }
            _ => (RowRanges::One, array.clone()),
        };
        if !matches!(layout, RowRanges::One) {
            let used = match &layout {
                RowRanges::Offsets(offsets) => {
                    let (first, last) = (offsets.first().copied().unwrap_or(0), offsets.last().copied().unwrap_or(0));
                    values.slice(first, last - first)
                }
                _ => values.clone(),
            };
            if used.null_count() > 0 {
                return Err(error(format!("{} null value(s) inside its lists; a tf.Example list cannot hold nulls", used.null_count())));
            }
        }
        let values = match column.list.arrow_type() {
            Some(target) if values.data_type() != &target => cast_with_options(&values, &target, &CastOptions { safe: false, ..Default::default() })
                .map_err(|e| error(format!("cannot convert its values to {}: {e}", column.list.name())))?,
            _ => values,
        };
        let values = match column.list {
            ListType::Float => Values::Float(values),
            ListType::Int64 => Values::Int(values),
            ListType::Bytes => Values::Bytes(values),
        };
        Ok(Prepared { validity, layout, values })
    }

    fn range(&self, row: usize) -> (usize, usize) {
        match &self.layout {
            RowRanges::One => (row, row + 1),
            RowRanges::Fixed(k) => (row * k, row * k + k),
            RowRanges::Offsets(offsets) => (offsets[row], offsets[row + 1]),
        }
    }

    /// Put values `start..end` into `entry`'s list, reusing its buffers.
    fn fill(&self, entry: &mut FeatureEntry, start: usize, end: usize) {
        let Some(Feature { kind: Some(list) }) = entry.value.as_mut() else { return };
        match (list, &self.values) {
            (FeatureList::FloatList(list), Values::Float(values)) => {
                list.value.clear();
                list.value.extend_from_slice(&values.as_primitive::<Float32Type>().values()[start..end]);
            }
            (FeatureList::Int64List(list), Values::Int(values)) => {
                list.value.clear();
                list.value.extend_from_slice(&values.as_primitive::<Int64Type>().values()[start..end]);
            }
            (FeatureList::BytesList(list), Values::Bytes(values)) => {
                let count = end - start;
                list.value.resize_with(count, Vec::new);
                for (slot, i) in list.value.iter_mut().zip(start..end) {
                    slot.clear();
                    slot.extend_from_slice(bytes_at(values, i));
                }
            }
            _ => {}
        }
    }
}

/// The bytes of element `i` of a string or binary array.
fn bytes_at(values: &ArrayRef, i: usize) -> &[u8] {
    match values.data_type() {
        DataType::Utf8 => values.as_string::<i32>().value(i).as_bytes(),
        DataType::LargeUtf8 => values.as_string::<i64>().value(i).as_bytes(),
        DataType::Utf8View => values.as_string_view().value(i).as_bytes(),
        DataType::Binary => values.as_binary::<i32>().value(i),
        DataType::LargeBinary => values.as_binary::<i64>().value(i),
        DataType::BinaryView => values.as_binary_view().value(i),
        _ => &[],
    }
}

fn column_names(schema: &Schema) -> String {
    schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{BooleanArray, FixedSizeListArray, Float32Array, Int32Array, ListArray, StringArray};
    use arrow::datatypes::{Field, Int32Type};

    use super::*;
    use crate::example_spec::FeatureKind;

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter(columns).expect("batch")
    }

    fn decode(examples: &SerializedExamples, row: usize) -> Example {
        Example::decode(examples.get(row).expect("row")).expect("a valid Example")
    }

    fn list_of<'a>(example: &'a Example, key: &str) -> &'a FeatureList {
        example.feature_map().get(key).and_then(|f| f.kind.as_ref()).unwrap_or_else(|| panic!("no feature {key}"))
    }

    fn spec(features: Vec<(&str, DType, FeatureKind)>) -> ExampleSpec {
        ExampleSpec { features: features.into_iter().map(|(name, dtype, kind)| FeatureSpec { name: name.into(), dtype, kind }).collect() }
    }

    fn required(shape: Vec<i64>) -> FeatureKind {
        FeatureKind::Dense { shape, default: None }
    }

    #[test]
    fn every_column_type_becomes_its_list_type_and_nulls_are_left_out() {
        let tags = ListArray::from_iter_primitive::<Int32Type, _, _>([Some(vec![Some(1), Some(2)]), Some(vec![]), None]);
        let b = batch(vec![
            ("f", Arc::new(Float32Array::from(vec![Some(0.5), None, Some(-1.0)])) as ArrayRef),
            ("i", Arc::new(Int32Array::from(vec![7, 8, 9])) as ArrayRef),
            ("flag", Arc::new(BooleanArray::from(vec![true, false, true])) as ArrayRef),
            ("s", Arc::new(StringArray::from(vec![Some("a"), Some(""), None])) as ArrayRef),
            ("tags", Arc::new(tags) as ArrayRef),
        ]);
        let examples = ExampleEncoder::new(&b.schema(), None, &[], true).expect("plan").encode(&b).expect("encode");
        assert_eq!(examples.len(), 3);
        let first = decode(&examples, 0);
        assert_eq!(list_of(&first, "f"), &FeatureList::FloatList(FloatList { value: vec![0.5] }));
        assert_eq!(list_of(&first, "i"), &FeatureList::Int64List(Int64List { value: vec![7] }));
        assert_eq!(list_of(&first, "flag"), &FeatureList::Int64List(Int64List { value: vec![1] }));
        assert_eq!(list_of(&first, "s"), &FeatureList::BytesList(BytesList { value: vec![b"a".to_vec()] }));
        assert_eq!(list_of(&first, "tags"), &FeatureList::Int64List(Int64List { value: vec![1, 2] }));
        let second = decode(&examples, 1);
        assert!(!second.feature_map().contains_key("f"), "null omitted");
        assert_eq!(list_of(&second, "tags"), &FeatureList::Int64List(Int64List { value: vec![] }), "an empty list is an empty feature");
        let third = decode(&examples, 2);
        let keys: Vec<&str> = third.feature_map().keys().copied().collect();
        assert!(!keys.contains(&"s") && !keys.contains(&"tags"), "{keys:?}");
    }

    #[test]
    fn a_spec_picks_its_features_converts_them_and_ignores_other_columns() {
        let b = batch(vec![
            ("x", Arc::new(Int32Array::from(vec![3])) as ArrayRef),
            ("id", Arc::new(StringArray::from(vec!["row-1"])) as ArrayRef),
        ]);
        let spec = spec(vec![("x", DType::Float, required(vec![1])), ("x2", DType::Float, FeatureKind::Dense { shape: vec![1], default: Some("0".into()) })]);
        let encoder = ExampleEncoder::new(&b.schema(), Some(&spec), &[], true).expect("plan");
        assert_eq!(encoder.features().collect::<Vec<_>>(), vec![("x", "x")]);
        let example = decode(&encoder.encode(&b).expect("encode"), 0);
        assert_eq!(example.features.feature.len(), 1);
        assert_eq!(list_of(&example, "x"), &FeatureList::FloatList(FloatList { value: vec![3.0] }));
        let exact = ExampleEncoder::new(&b.schema(), Some(&spec), &[], false).expect_err("int32 is not float32 without casts");
        assert!(exact.to_string().contains("column `x`"), "{exact}");
    }

    #[test]
    fn a_missing_required_feature_is_named_before_anything_runs() {
        let b = batch(vec![("culmen_length_mm", Arc::new(Float32Array::from(vec![40.0])) as ArrayRef)]);
        let spec = spec(vec![("body_mass_g", DType::Float, required(vec![1])), ("culmen_length_mm", DType::Float, required(vec![1]))]);
        let err = ExampleEncoder::new(&b.schema(), Some(&spec), &[], true).expect_err("missing");
        let message = err.to_string();
        assert!(message.contains("body_mass_g") && message.contains("required") && message.contains("culmen_length_mm"), "{message}");
        let renamed = ExampleEncoder::new(&b.schema(), Some(&spec), &[("body_mass_g".into(), "culmen_length_mm".into())], true);
        assert!(renamed.is_ok(), "a mapping feeds a feature from another column");
    }

    #[test]
    fn wrong_types_and_widths_are_refused() {
        let strings = batch(vec![("x", Arc::new(StringArray::from(vec!["1.5"])) as ArrayRef)]);
        let float_spec = spec(vec![("x", DType::Float, required(vec![1]))]);
        let err = ExampleEncoder::new(&strings.schema(), Some(&float_spec), &[], true).expect_err("string into float");
        assert!(err.to_string().contains("float list"), "{err}");

        let values = Float32Array::from(vec![1.0, 2.0]);
        let pairs = FixedSizeListArray::new(Arc::new(Field::new("item", DataType::Float32, true)), 2, Arc::new(values), None);
        let wide = batch(vec![("x", Arc::new(pairs) as ArrayRef)]);
        let err = ExampleEncoder::new(&wide.schema(), Some(&float_spec), &[], true).expect_err("2 values for 1");
        assert!(err.to_string().contains("2 value(s) per row"), "{err}");

        let ragged = ListArray::from_iter_primitive::<Int32Type, _, _>([Some(vec![Some(1)]), Some(vec![Some(1), Some(2)])]);
        let b = batch(vec![("n", Arc::new(ragged) as ArrayRef)]);
        let encoder = ExampleEncoder::new(&b.schema(), Some(&spec(vec![("n", DType::Int64, required(vec![1]))])), &[], true).expect("plan");
        let err = encoder.encode(&b).expect_err("row 1 has 2 values");
        assert!(err.to_string().contains("row 1 has 2 value(s)"), "{err}");

        let nulls_inside = ListArray::from_iter_primitive::<Int32Type, _, _>([Some(vec![Some(1), None])]);
        let b = batch(vec![("n", Arc::new(nulls_inside) as ArrayRef)]);
        let err = ExampleEncoder::new(&b.schema(), None, &[], true).expect("plan").encode(&b).expect_err("null inside a list");
        assert!(err.to_string().contains("inside its lists"), "{err}");
    }

    #[test]
    fn nulls_in_a_required_feature_are_counted() {
        let b = batch(vec![("x", Arc::new(Float32Array::from(vec![Some(1.0), None])) as ArrayRef)]);
        let encoder = ExampleEncoder::new(&b.schema(), Some(&spec(vec![("x", DType::Float, required(vec![]))])), &[], true).expect("plan");
        let err = encoder.check_required(&b).expect_err("null in a required feature");
        assert!(err.to_string().contains("1 row(s) have no value"), "{err}");
    }

    #[test]
    fn a_dictionary_column_is_written_as_its_values() {
        let companies: arrow::array::DictionaryArray<arrow::datatypes::Int32Type> = vec![Some("Flash Cab"), None, Some("Flash Cab")].into_iter().collect();
        let b = batch(vec![("company", Arc::new(companies) as ArrayRef)]);
        let spec = spec(vec![("company", DType::String, FeatureKind::VarLen)]);
        let examples = ExampleEncoder::new(&b.schema(), Some(&spec), &[], true).expect("plan").encode(&b).expect("encode");
        assert_eq!(list_of(&decode(&examples, 2), "company"), &FeatureList::BytesList(BytesList { value: vec![b"Flash Cab".to_vec()] }));
        assert!(decode(&examples, 1).features.feature.is_empty(), "a null is left out");
    }

    #[test]
    fn sliced_batches_encode_their_own_rows() {
        let b = batch(vec![("x", Arc::new(Float32Array::from(vec![1.0, 2.0, 3.0])) as ArrayRef)]);
        let encoder = ExampleEncoder::new(&b.schema(), None, &[], true).expect("plan");
        let examples = encoder.encode(&b.slice(1, 2)).expect("encode");
        assert_eq!(list_of(&decode(&examples, 0), "x"), &FeatureList::FloatList(FloatList { value: vec![2.0] }));
        assert_eq!(examples.iter().count(), 2);
    }
}
