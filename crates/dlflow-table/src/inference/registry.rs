//! Named models of a session.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::RwLock;

use datafusion::error::{DataFusionError, Result};
use super::ModelHandle;

/// The models a session's `predict` function can call, by name. Loaded once, shared by every
/// query and thread.
///
/// ```no_run
/// use std::sync::Arc;
/// use dlflow_table::inference::ModelRegistry;
/// let registry = ModelRegistry::default();
/// registry.register("linear", Arc::new(dlflow_tf::SavedModel::load("models/linear")?));
/// // or, served with hot reload: ModelHandle::open("models/versioned", &Default::default())
/// assert_eq!(registry.names(), vec!["linear".to_string()]);
/// # Ok::<(), dlflow_tf::TfError>(())
/// ```
#[derive(Default)]
pub struct ModelRegistry {
    models: RwLock<BTreeMap<String, ModelHandle>>,
}

impl ModelRegistry {
    /// Make `model` callable as `name`, replacing any model of that name.
    pub fn register(&self, name: impl Into<String>, model: impl Into<ModelHandle>) {
        self.models.write().unwrap_or_else(|e| e.into_inner()).insert(name.into(), model.into());
    }

    /// The model called `name`.
    pub fn get(&self, name: &str) -> Result<ModelHandle> {
        let models = self.models.read().unwrap_or_else(|e| e.into_inner());
        models.get(name).cloned().ok_or_else(|| {
            let known: Vec<&str> = models.keys().map(String::as_str).collect();
            DataFusionError::Plan(format!(
                "no model named `{name}`; registered models: {}",
                if known.is_empty() { "(none: register one with Environment::register_model or --model NAME=DIR)".to_string() } else { known.join(", ") }
            ))
        })
    }

    /// Registered names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.models.read().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect()
    }
}

impl fmt::Debug for ModelRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelRegistry").field("models", &self.names()).finish()
    }
}
