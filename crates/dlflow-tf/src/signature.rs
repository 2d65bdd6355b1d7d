//! Signatures ("methods" in seed 003): the named functions a SavedModel exports, each with
//! typed, shaped inputs and outputs.

use std::fmt;

use crate::dtype::DType;
use crate::example_spec::ExampleSpec;

/// Standard signature names, in the order dlflow picks a default from them.
pub const STANDARD_SIGNATURES: [&str; 4] = ["serving_default", "predict", "regress", "classify"];

/// A tensor shape as a signature declares it: `None` for unknown rank, `-1` for an unknown
/// dimension (usually the batch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape(pub Option<Vec<i64>>);

impl Shape {
    /// The dimensions, if the rank is known.
    pub fn dims(&self) -> Option<&[i64]> {
        self.0.as_deref()
    }

    /// The rank, if known.
    pub fn rank(&self) -> Option<usize> {
        self.0.as_ref().map(Vec::len)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            None => f.write_str("<unknown rank>"),
            Some(dims) => {
                let dims: Vec<String> = dims.iter().map(|d| if *d < 0 { "-1".into() } else { d.to_string() }).collect();
                write!(f, "[{}]", dims.join(", "))
            }
        }
    }
}

/// One input or output of a signature.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    /// The signature's name for it (`x`, `logits`): what columns are matched against.
    pub key: String,
    /// The graph tensor behind it (`serving_default_x:0`).
    pub tensor_name: String,
    /// Element type.
    pub dtype: DType,
    /// The shape the signature declares (unknown rank when it records none, as TensorFlow
    /// 1.0 exports do).
    pub shape: Shape,
    /// The shape TensorFlow infers for the graph tensor itself; it can know more than the
    /// signature (a TF 1.0 placeholder `(None, 1)` behind a signature without shapes).
    pub graph_shape: Shape,
}

impl TensorSpec {
    /// The shape dlflow goes by: the declared one when its rank is known, else the graph's.
    ///
    /// ```
    /// use dlflow_tf::{DType, Shape, TensorSpec};
    /// let spec = TensorSpec { key: "x".into(), tensor_name: "x:0".into(), dtype: DType::Float, shape: Shape(None), graph_shape: Shape(Some(vec![-1, 1])) };
    /// assert_eq!(spec.effective_shape(), &Shape(Some(vec![-1, 1])));
    /// ```
    pub fn effective_shape(&self) -> &Shape {
        if self.shape.0.is_some() {
            &self.shape
        } else {
            &self.graph_shape
        }
    }
}

/// A named function of a SavedModel, with its inputs and outputs sorted by key.
///
/// ```no_run
/// let model = dlflow_tf::SavedModel::load("models/linear")?;
/// let signature = model.signature("serving_default")?;
/// for input in signature.inputs() {
///     println!("{}: {} {}", input.key, input.dtype, input.shape);
/// }
/// # Ok::<(), dlflow_tf::TfError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    pub(crate) name: String,
    pub(crate) method_name: String,
    pub(crate) inputs: Vec<TensorSpec>,
    pub(crate) outputs: Vec<TensorSpec>,
    /// Why the signature cannot run, when it cannot (found when the model is loaded).
    pub(crate) problem: Option<String>,
    /// The tf.Example features of inputs that take serialized examples, by input key.
    pub(crate) example_specs: Vec<(String, ExampleSpec)>,
}

impl Signature {
    /// The signature's name (`serving_default`, `classify`, ...).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The method name recorded with it (`tensorflow/serving/predict`, ...).
    pub fn method_name(&self) -> &str {
        &self.method_name
    }

    /// Inputs, sorted by key.
    pub fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }

    /// Outputs, sorted by key.
    pub fn outputs(&self) -> &[TensorSpec] {
        &self.outputs
    }

    /// The input called `key`.
    pub fn input(&self, key: &str) -> Option<&TensorSpec> {
        self.inputs.iter().find(|spec| spec.key == key)
    }

    /// The output called `key`.
    pub fn output(&self, key: &str) -> Option<&TensorSpec> {
        self.outputs.iter().find(|spec| spec.key == key)
    }

    /// The method name without TF Serving's prefix: `predict`, `classify`, `regress`
    /// (other method names as they are).
    pub fn method(&self) -> &str {
        self.method_name.strip_prefix("tensorflow/serving/").unwrap_or(&self.method_name)
    }

    /// Why this signature cannot run, if it cannot: a declared type that contradicts the
    /// graph, a sparse or composite input, a tensor missing from the graph.
    pub fn problem(&self) -> Option<&str> {
        self.problem.as_deref()
    }

    /// The tf.Example features input `key` parses, when it takes serialized
    /// `tf.train.Example` protos and the model's parse op was found.
    pub fn example_spec(&self, key: &str) -> Option<&ExampleSpec> {
        self.example_specs.iter().find(|(input, _)| input == key).map(|(_, spec)| spec)
    }

    /// Whether input `key` takes serialized `tf.train.Example` protos: its parse op was
    /// found, or it is the `inputs` string of a TF Serving classify or regress signature
    /// (which take examples by definition).
    pub fn takes_examples(&self, key: &str) -> bool {
        let Some(input) = self.input(key) else { return false };
        input.dtype == DType::String
            && (self.example_spec(key).is_some() || (key == "inputs" && self.inputs.len() == 1 && matches!(self.method(), "classify" | "regress")))
    }
}

/// Comma-separated keys, for error messages.
pub(crate) fn keys(specs: &[TensorSpec]) -> String {
    specs.iter().map(|s| s.key.as_str()).collect::<Vec<_>>().join(", ")
}
