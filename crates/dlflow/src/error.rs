//! The facade's error: one type for everything a dlflow call can report.

use std::fmt;

use datafusion::error::DataFusionError;
use dlflow_table::TableError;
use dlflow_tf::TfError;

/// Result alias of the dlflow API.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from any layer of dlflow.
///
/// `Debug` prints the message (what `Display` prints), so that `fn main() -> dlflow::Result<()>`
/// ends with `Error: model directory models/x does not exist` rather than a struct dump;
/// `{:#?}` shows the structure.
///
/// ```
/// let error = dlflow::Error::Invalid("epochs must be at least 1".into());
/// assert_eq!(format!("{error:?}"), "epochs must be at least 1");
/// assert!(format!("{error:#?}").starts_with("Invalid("));
/// ```
pub enum Error {
    /// TensorFlow: library, model, signature, conversion.
    Tf(TfError),
    /// Tables: sources, sinks, datagen options.
    Table(TableError),
    /// Query planning and execution.
    DataFusion(DataFusionError),
    /// The cluster of Python nodes: a node failed, died, hung, or could not start.
    Cluster(dlflow_cluster::ClusterError),
    /// The engine feeding the nodes.
    Engine(dlflow_engine::EngineError),
    /// A bad argument to a dlflow call.
    Invalid(String),
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !f.alternate() {
            return fmt::Display::fmt(self, f);
        }
        match self {
            Error::Tf(e) => f.debug_tuple("Tf").field(e).finish(),
            Error::Table(e) => f.debug_tuple("Table").field(e).finish(),
            Error::DataFusion(e) => f.debug_tuple("DataFusion").field(e).finish(),
            Error::Cluster(e) => f.debug_tuple("Cluster").field(e).finish(),
            Error::Engine(e) => f.debug_tuple("Engine").field(e).finish(),
            Error::Invalid(message) => f.debug_tuple("Invalid").field(message).finish(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Tf(e) => e.fmt(f),
            Error::Table(e) => e.fmt(f),
            Error::DataFusion(e) => write!(f, "{}", describe_datafusion(e)),
            Error::Cluster(e) => e.fmt(f),
            Error::Engine(e) => e.fmt(f),
            Error::Invalid(message) => f.write_str(message),
        }
    }
}

/// DataFusion wraps errors raised inside a query (a model's, a source's) in layers of
/// context; the innermost one is what the user needs to read.
impl Error {
    /// Whether a restart of the cluster from its checkpoints may get past this error (a node
    /// raised, died, hung or froze, or a process of the job went away).
    pub fn is_node_failure(&self) -> bool {
        match self {
            Error::Cluster(e) => e.is_node_failure(),
            Error::Engine(dlflow_engine::EngineError::Network(_)) => true,
            _ => false,
        }
    }
}

fn describe_datafusion(error: &DataFusionError) -> String {
    let message = match error.find_root() {
        DataFusionError::External(inner) => inner.to_string(),
        DataFusionError::ArrowError(inner, _) => inner.to_string(),
        root => root.strip_backtrace().to_string(),
    };
    match next_step(&message) {
        Some(hint) => format!("{message}; {hint}"),
        None => message,
    }
}

/// The way out of DataFusion errors a new user meets first, which name the problem only.
fn next_step(message: &str) -> Option<&'static str> {
    if message.contains("Unable to find factory for") {
        Some("STORED AS takes CSV, PARQUET, JSON, NDJSON, ARROW or DATAGEN")
    } else if message.contains("table '") && message.ends_with("' not found") {
        Some("tables come from --table NAME=FILE (the CLI), Environment::register_file or CREATE EXTERNAL TABLE")
    } else {
        None
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Tf(e) => Some(e),
            Error::Table(e) => Some(e),
            Error::DataFusion(e) => Some(e),
            Error::Cluster(e) => Some(e),
            Error::Engine(e) => Some(e),
            Error::Invalid(_) => None,
        }
    }
}

impl From<TfError> for Error {
    fn from(e: TfError) -> Self {
        Error::Tf(e)
    }
}

impl From<TableError> for Error {
    fn from(e: TableError) -> Self {
        match e {
            TableError::DataFusion(inner) => Error::DataFusion(inner),
            TableError::Tf(inner) => Error::Tf(inner),
            other => Error::Table(other),
        }
    }
}

impl From<DataFusionError> for Error {
    fn from(e: DataFusionError) -> Self {
        Error::DataFusion(e)
    }
}

impl From<datafusion::arrow::error::ArrowError> for Error {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        Error::DataFusion(e.into())
    }
}

impl From<dlflow_cluster::ClusterError> for Error {
    fn from(e: dlflow_cluster::ClusterError) -> Self {
        Error::Cluster(e)
    }
}

impl From<dlflow_engine::EngineError> for Error {
    fn from(e: dlflow_engine::EngineError) -> Self {
        Error::Engine(e)
    }
}
