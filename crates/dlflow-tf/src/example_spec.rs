//! The tf.Example features a signature parses: read from the model's own parse op
//! (`ParseExample`, `ParseExampleV2`, `ParseSingleExample`), the op TFX, Estimator and Keras
//! exports put behind a "serialized tf.Example" input.
//!
//! The keys are constants feeding the op, the types and shapes its attributes, and a dense
//! feature with an empty default is required: exactly what TensorFlow checks when it parses.

use std::fmt;

use crate::dtype::DType;
use crate::graph::{attr_int, attr_shapes, attr_strings, attr_types, tensor_strings, GraphIndex, Located};
use crate::proto::TensorProto;

/// The ops whose input 0 is a batch (or one) of serialized tf.Example protos.
pub(crate) const PARSE_OPS: &[&str] = &["ParseExample", "ParseExampleV2", "ParseSingleExample"];

/// The features a signature input of serialized tf.Example protos expects, sorted by name.
///
/// ```no_run
/// let model = dlflow_tf::SavedModel::load("models/penguin")?;
/// let signature = model.signature("serving_default")?;
/// if let Some(spec) = signature.example_spec("examples") {
///     for feature in &spec.features {
///         println!("{feature}"); // e.g. `body_mass_g: float32 [1], required`
///     }
/// }
/// # Ok::<(), dlflow_tf::TfError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExampleSpec {
    /// One entry per feature key.
    pub features: Vec<FeatureSpec>,
}

/// One feature of a tf.Example spec.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSpec {
    /// The feature key (what a column must be called to feed it).
    pub name: String,
    /// float32, int64 or string: the list type the feature is stored as.
    pub dtype: DType,
    /// Fixed-length, variable-length or ragged.
    pub kind: FeatureKind,
}

/// How a feature is parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureKind {
    /// `FixedLenFeature`: exactly `shape.product()` values per example.
    Dense {
        /// Values per example, as a shape (`[]` or `[1]` for one value).
        shape: Vec<i64>,
        /// The default the model fills in when the feature is absent; `None` when the
        /// feature is required (an empty default). `Some("?")` when the default is computed.
        default: Option<String>,
    },
    /// `VarLenFeature` (a sparse tensor): any number of values, may be absent.
    VarLen,
    /// `RaggedFeature`: any number of values, may be absent.
    Ragged,
}

impl FeatureSpec {
    /// Whether an example without this feature fails to parse.
    pub fn is_required(&self) -> bool {
        matches!(self.kind, FeatureKind::Dense { default: None, .. })
    }

    /// Values per example for a fixed-length feature.
    pub fn values_per_example(&self) -> Option<usize> {
        match &self.kind {
            FeatureKind::Dense { shape, .. } if shape.iter().all(|d| *d >= 0) => Some(shape.iter().product::<i64>() as usize),
            _ => None,
        }
    }
}

impl fmt::Display for FeatureSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ", self.name, self.dtype)?;
        match &self.kind {
            FeatureKind::Dense { shape, default: None } => write!(f, "{shape:?}, required"),
            FeatureKind::Dense { shape, default: Some(default) } => write!(f, "{shape:?}, default {default}"),
            FeatureKind::VarLen => f.write_str("variable length (sparse), optional"),
            FeatureKind::Ragged => f.write_str("variable length (ragged), optional"),
        }
    }
}

impl ExampleSpec {
    /// The feature called `name`.
    pub fn feature(&self, name: &str) -> Option<&FeatureSpec> {
        self.features.iter().find(|f| f.name == name)
    }

    /// The spec of the parse ops `tensor_name` flows into, if any (several parse ops, such
    /// as one per feature group, are merged).
    pub(crate) fn of_input(graph: &GraphIndex<'_>, tensor_name: &str) -> Option<ExampleSpec> {
        let ops = graph.consumers_of(tensor_name, PARSE_OPS);
        if ops.is_empty() {
            return None;
        }
        let mut spec = ExampleSpec::default();
        for op in ops {
            for feature in features_of(graph, op) {
                if spec.feature(&feature.name).is_none() {
                    spec.features.push(feature);
                }
            }
        }
        spec.features.sort_by(|a, b| a.name.cmp(&b.name));
        Some(spec)
    }
}

/// The features one parse op reads.
fn features_of(graph: &GraphIndex<'_>, op: Located<'_>) -> Vec<FeatureSpec> {
    let node = op.node;
    let sparse_types = attr_types(node, "sparse_types");
    let dense_types = attr_types(node, "Tdense");
    let dense_shapes = attr_shapes(node, "dense_shapes");
    // Where the keys and the dense defaults are, per op version:
    //   ParseExample(serialized, names, sparse_keys..., dense_keys..., dense_defaults...)
    //   ParseExampleV2(serialized, names, sparse_keys, dense_keys, ragged_keys, dense_defaults...)
    //   ParseSingleExample(serialized, dense_defaults...), keys in attributes
    let (sparse_keys, dense_keys, ragged_keys, first_default) = match node.op.as_str() {
        "ParseExample" => {
            let sparse = attr_int(node, "Nsparse").unwrap_or(0) as usize;
            let dense = attr_int(node, "Ndense").unwrap_or(0) as usize;
            let key = |i: usize| graph.constant(op, i).map(tensor_strings).and_then(|k| k.into_iter().next()).unwrap_or_default();
            ((2..2 + sparse).map(key).collect(), (2 + sparse..2 + sparse + dense).map(key).collect(), Vec::new(), 2 + sparse + dense)
        }
        "ParseExampleV2" => {
            let keys = |i: usize| graph.constant(op, i).map(tensor_strings).unwrap_or_default();
            (keys(2), keys(3), keys(4), 5)
        }
        _ => (attr_strings(node, "sparse_keys"), attr_strings(node, "dense_keys"), Vec::new(), 1),
    };
    let ragged_types = attr_types(node, "ragged_value_types");
    let mut features = Vec::new();
    for (name, dtype) in sparse_keys.into_iter().zip(sparse_types) {
        features.push(FeatureSpec { name, dtype: DType::from_code(dtype), kind: FeatureKind::VarLen });
    }
    for (name, dtype) in ragged_keys.into_iter().zip(ragged_types) {
        features.push(FeatureSpec { name, dtype: DType::from_code(dtype), kind: FeatureKind::Ragged });
    }
    for (i, (name, dtype)) in dense_keys.into_iter().zip(dense_types).enumerate() {
        let shape = dense_shapes.get(i).cloned().flatten().unwrap_or_default();
        let default = match graph.constant(op, first_default + i) {
            Some(tensor) if tensor.element_count() == 0 => None,
            Some(tensor) => Some(describe_default(tensor)),
            None => Some("?".to_string()),
        };
        features.push(FeatureSpec { name, dtype: DType::from_code(dtype), kind: FeatureKind::Dense { shape, default } });
    }
    features
}

/// A default value as text: `0.5`, `[1, 2]`, `"unknown"`.
fn describe_default(tensor: &TensorProto) -> String {
    let count = tensor.element_count().max(0) as usize;
    let content = &tensor.tensor_content;
    let values: Vec<String> = match DType::from_code(tensor.dtype) {
        DType::Float => numbers(&tensor.float_val, content, count, |b: [u8; 4]| f32::from_le_bytes(b)),
        DType::Double => numbers(&tensor.double_val, content, count, |b: [u8; 8]| f64::from_le_bytes(b)),
        DType::Int64 => numbers(&tensor.int64_val, content, count, |b: [u8; 8]| i64::from_le_bytes(b)),
        DType::Int32 => numbers(&tensor.int_val, content, count, |b: [u8; 4]| i32::from_le_bytes(b)),
        DType::String => tensor.string_val.iter().map(|s| format!("{:?}", String::from_utf8_lossy(s))).collect(),
        _ => return "?".to_string(),
    };
    match values.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// Values from a typed field, or from `tensor_content` (little-endian, `N` bytes each); a
/// single typed value stands for all `count` elements (TensorFlow's splat encoding).
fn numbers<T: ToString, const N: usize>(typed: &[T], content: &[u8], count: usize, from_bytes: impl Fn([u8; N]) -> T) -> Vec<String> {
    if !content.is_empty() {
        return content.chunks_exact(N).map(|b| from_bytes(std::array::from_fn(|i| b[i])).to_string()).collect();
    }
    match typed {
        [single] if count > 1 => vec![single.to_string(); count],
        many => many.iter().map(ToString::to_string).collect(),
    }
}
