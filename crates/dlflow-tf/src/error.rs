//! Errors of the TensorFlow runtime. Each message names the thing that is wrong and says
//! what was expected, because the person reading it usually did not write the model.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = TfError> = std::result::Result<T, E>;

/// Everything that can go wrong between a table and a TensorFlow model.
#[derive(Debug, thiserror::Error)]
pub enum TfError {
    /// No libtensorflow was found in any of the places dlflow looks.
    #[error(
        "could not find libtensorflow; looked in:\n{searched}\nfix: run `scripts/setup.sh` (makes the \
         project virtualenv with tensorflow-cpu==2.21.0), or `pip install tensorflow-cpu==2.21.0` into a \
         virtualenv and set DLFLOW_TF_LIB=<venv>/lib/python3.X/site-packages/tensorflow"
    )]
    LibraryNotFound {
        /// One line per place looked, with why it did not fit.
        searched: String,
    },
    /// The library file exists but the dynamic loader refused it.
    #[error("could not load TensorFlow library {path}: {message}")]
    LibraryLoad {
        /// The file dlflow tried to load.
        path: PathBuf,
        /// What the dynamic loader said.
        message: String,
    },
    /// The library loaded but is not a TensorFlow C API library.
    #[error("{path} is not a TensorFlow C API library: symbol `{symbol}` is missing")]
    NotTensorFlow {
        /// The file dlflow loaded.
        path: PathBuf,
        /// The first symbol that was not found.
        symbol: &'static str,
    },
    /// A TensorFlow that dlflow does not support.
    #[error(
        "TensorFlow {found} at {path} is not supported: dlflow needs TensorFlow 2.16 or newer \
         (tested with 2.21.0); fix: `pip install tensorflow-cpu==2.21.0` or run `scripts/setup.sh`"
    )]
    UnsupportedVersion {
        /// The file dlflow loaded.
        path: PathBuf,
        /// The version it reported.
        found: String,
    },
    /// The model directory does not exist.
    #[error("model directory {path} does not exist")]
    ModelNotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The directory exists but holds no SavedModel.
    #[error(
        "{path} is not a TensorFlow SavedModel: expected a directory with saved_model.pb (or \
         saved_model.pbtxt) and variables/, as written by tf.saved_model.save or model.export"
    )]
    NotASavedModel {
        /// The path given.
        path: PathBuf,
    },
    /// TensorFlow failed to load the SavedModel.
    #[error("TensorFlow could not load the SavedModel at {path} with tags {tags:?}: {message}")]
    ModelLoad {
        /// The model directory.
        path: PathBuf,
        /// The tags asked for.
        tags: Vec<String>,
        /// TensorFlow's message.
        message: String,
    },
    /// The SavedModel's metadata could not be read.
    #[error("could not read the signatures of the SavedModel at {path}: {message}")]
    BadMetaGraph {
        /// The model directory.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// A signature name that the model does not have.
    #[error("the model has no signature `{name}`; it has: {available}")]
    UnknownSignature {
        /// The name asked for.
        name: String,
        /// The names the model has, comma separated.
        available: String,
    },
    /// A signature input with no column to feed it.
    #[error("signature `{signature}` needs input `{input}` but the table has no column `{column}`; columns: {available}")]
    MissingColumn {
        /// The signature.
        signature: String,
        /// The signature input.
        input: String,
        /// The column it maps to.
        column: String,
        /// The table's columns, comma separated.
        available: String,
    },
    /// An input mapping that names something the signature does not have.
    #[error("signature `{signature}` has no input `{input}`; its inputs are: {available}")]
    UnknownInput {
        /// The signature.
        signature: String,
        /// The input named in the mapping.
        input: String,
        /// The inputs it has, comma separated.
        available: String,
    },
    /// Positional inputs (SQL `predict(model, a, b)`) of the wrong count.
    #[error("signature `{signature}` takes {expected} input(s) ({inputs}, in this order), but {given} value(s) were given")]
    InputCount {
        /// The signature.
        signature: String,
        /// How many inputs it has.
        expected: usize,
        /// Their keys, in order.
        inputs: String,
        /// How many were given.
        given: usize,
    },
    /// A column whose Arrow type cannot feed the signature input.
    #[error("column `{column}` has type {found} but signature input `{input}` expects {expected}")]
    TypeMismatch {
        /// The column.
        column: String,
        /// The signature input.
        input: String,
        /// The column's Arrow type.
        found: String,
        /// What the input accepts.
        expected: String,
    },
    /// A column whose values have the wrong shape for the signature input.
    #[error("column `{column}` does not fit signature input `{input}` of shape {shape}: {message}")]
    ShapeMismatch {
        /// The column.
        column: String,
        /// The signature input.
        input: String,
        /// The input's shape, as TensorFlow prints it.
        shape: String,
        /// What does not fit.
        message: String,
    },
    /// Null values in an input column.
    #[error(
        "column `{column}` has {count} null value(s); TensorFlow tensors cannot hold nulls: filter them \
         (WHERE {column} IS NOT NULL) or fill them (COALESCE({column}, 0)) first"
    )]
    NullValues {
        /// The column.
        column: String,
        /// How many nulls.
        count: usize,
    },
    /// An `input_types` / `output_types` declaration that does not parse or does not match.
    #[error("{0}")]
    DeclaredTypes(String),
    /// A signature output dlflow cannot turn into a column.
    #[error("signature output `{output}`: {message}")]
    Output {
        /// The output.
        output: String,
        /// What is wrong with it.
        message: String,
    },
    /// TensorFlow failed while running the model.
    #[error("TensorFlow failed running signature `{signature}`: {message}")]
    Run {
        /// The signature.
        signature: String,
        /// TensorFlow's message.
        message: String,
    },
    /// An Arrow error while building output columns.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
}
