//! [`ModelHandle`]: the model a predict call runs, fixed or hot-reloaded.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use dlflow_tf::{LoadOptions, SavedModel};

use super::versions::VersionedModel;

/// The model a predict call runs: one loaded SavedModel, or the newest version of a versioned
/// base directory ([`VersionedModel`], hot reload). Cheap to clone; clones share the model.
///
/// ```no_run
/// use dlflow_table::inference::ModelHandle;
/// // A SavedModel directory, or a base directory of numbered versions: either works.
/// let handle = ModelHandle::open("models/linear", &Default::default())?;
/// let (model, version) = handle.current();
/// assert_eq!(version.is_some(), handle.is_versioned());
/// # Ok::<(), dlflow_table::TableError>(())
/// ```
#[derive(Clone)]
pub enum ModelHandle {
    /// One SavedModel, loaded once.
    Fixed(Arc<SavedModel>),
    /// The newest complete version of `BASE/<number>`.
    Versioned(Arc<VersionedModel>),
}

impl ModelHandle {
    /// Open `dir`: a versioned base directory (numbered folders, no `saved_model.pb` of its
    /// own) is served with hot reload, anything else is loaded as one SavedModel.
    pub fn open(dir: impl AsRef<Path>, options: &LoadOptions) -> crate::Result<ModelHandle> {
        Self::open_polling(dir, options, super::versions::DEFAULT_POLL)
    }

    /// Like [`ModelHandle::open`], watching a versioned directory every `poll`.
    pub fn open_polling(dir: impl AsRef<Path>, options: &LoadOptions, poll: Duration) -> crate::Result<ModelHandle> {
        let dir = dir.as_ref();
        Ok(if VersionedModel::is_versioned_dir(dir) {
            ModelHandle::Versioned(VersionedModel::open(dir, options, poll)?)
        } else {
            ModelHandle::Fixed(Arc::new(SavedModel::load_with(dir, options)?))
        })
    }

    /// The model to use now, and its version number when the handle is versioned.
    pub fn current(&self) -> (Arc<SavedModel>, Option<u64>) {
        match self {
            ModelHandle::Fixed(model) => (model.clone(), None),
            ModelHandle::Versioned(versions) => {
                let (version, model) = versions.current();
                (model, Some(version))
            }
        }
    }

    /// Whether outputs carry a `model_version` column.
    pub fn is_versioned(&self) -> bool {
        matches!(self, ModelHandle::Versioned(_))
    }

    /// Whether two handles are the same model (same loaded object).
    pub fn same(&self, other: &ModelHandle) -> bool {
        match (self, other) {
            (ModelHandle::Fixed(a), ModelHandle::Fixed(b)) => Arc::ptr_eq(a, b),
            (ModelHandle::Versioned(a), ModelHandle::Versioned(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl From<Arc<SavedModel>> for ModelHandle {
    fn from(model: Arc<SavedModel>) -> Self {
        ModelHandle::Fixed(model)
    }
}

impl fmt::Debug for ModelHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The directory, and `(versioned)` for a base directory: how plans show the model.
impl fmt::Display for ModelHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelHandle::Fixed(model) => write!(f, "{}", model.dir().display()),
            ModelHandle::Versioned(versions) => write!(f, "{} (versioned)", versions.base().display()),
        }
    }
}
