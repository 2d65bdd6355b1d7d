//! The crate's error: every message names the file it is about.

use std::path::PathBuf;

use crate::record::RecordError;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Reading event files or drawing a curve failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// An event file whose record framing is broken (truncated, or a checksum mismatch).
    #[error("{path} is not a readable TensorBoard event file: {source}")]
    Corrupt {
        /// The event file.
        path: PathBuf,
        /// What is wrong with the record.
        source: RecordError,
    },
    /// A record that is not an `Event` protobuf.
    #[error("{path}: the record at byte {offset} is not a TensorBoard event: {source}")]
    NotAnEvent {
        /// The event file.
        path: PathBuf,
        /// Where the record starts.
        offset: u64,
        /// What the protobuf decoder said.
        source: prost::DecodeError,
    },
    /// Drawing the SVG failed.
    #[error("drawing the loss curve: {0}")]
    Draw(String),
}
