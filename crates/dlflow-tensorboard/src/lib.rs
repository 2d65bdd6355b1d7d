//! # dlflow-tensorboard: TensorBoard event files, read and drawn
//!
//! Training jobs write TensorBoard event files (the chief, through `dlflow.tensorboard_callback`
//! or the Estimator). This crate reads them without TensorFlow and draws the loss:
//!
//! | piece | what |
//! |---|---|
//! | [`record`] | TFRecord framing: length, masked crc32c, data, masked crc32c |
//! | [`proto`] | the `Event` / `Summary` / `TensorProto` messages, declared by hand with prost |
//! | [`read_scalars`] | every scalar series under a log directory, by run and tag (TF2 tensors and TF1 `simple_value`) |
//! | [`LossCurve`] | the loss per epoch and per step; [`LossCurve::to_text`] for a terminal, [`LossCurve::write_svg`] for an image |
//!
//! The rule for where a job's events go is here too, so that the node side and the command
//! line agree: [`tensorboard_dir_for`] and [`loss_svg_for`].
//!
//! ```no_run
//! use dlflow_tensorboard::{LossCurve, loss_svg_for, tensorboard_dir_for};
//!
//! let model_dir = std::path::Path::new("/tmp/linear");
//! let curve = LossCurve::read(&tensorboard_dir_for(model_dir))?; // /tmp/linear.tensorboard
//! eprint!("{}", curve.to_text(60));
//! curve.write_svg(&loss_svg_for(model_dir))?;                     // /tmp/linear.loss.svg
//! # Ok::<(), dlflow_tensorboard::Error>(())
//! ```

mod curve;
mod error;
pub mod proto;
pub mod record;
mod scalars;
mod svg;
mod text;

use std::path::{Path, PathBuf};

pub use curve::LossCurve;
pub use error::{Error, Result};
pub use scalars::{ScalarPoint, ScalarSeries, read_events, read_scalars};
pub use svg::DATA_ELEMENT_ID;

/// Where a job that saves its model to `model_dir` writes TensorBoard events unless told
/// otherwise (the `tensorboard_dir` property): beside the model, `<model_dir>.tensorboard`.
/// `python/dlflow/_tensorboard.py` applies the same rule on the nodes.
///
/// ```
/// use std::path::Path;
/// assert_eq!(dlflow_tensorboard::tensorboard_dir_for(Path::new("/tmp/linear/")), Path::new("/tmp/linear.tensorboard"));
/// ```
pub fn tensorboard_dir_for(model_dir: &Path) -> PathBuf {
    beside(model_dir, ".tensorboard")
}

/// Where the loss curve of a model saved to `model_dir` is drawn: `<model_dir>.loss.svg`.
///
/// ```
/// use std::path::Path;
/// assert_eq!(dlflow_tensorboard::loss_svg_for(Path::new("out/linear")), Path::new("out/linear.loss.svg"));
/// ```
pub fn loss_svg_for(model_dir: &Path) -> PathBuf {
    beside(model_dir, ".loss.svg")
}

fn beside(path: &Path, suffix: &str) -> PathBuf {
    // Components drop a trailing slash, so `/tmp/linear/` and `/tmp/linear` agree.
    let clean: PathBuf = path.components().collect();
    let mut name = clean.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}
