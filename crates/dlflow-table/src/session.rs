//! The DataFusion session dlflow runs tables in: DataFusion's defaults plus dlflow's sources
//! (today the `DATAGEN` table factory).

use std::sync::Arc;

use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::datagen::{DataGenFactory, DATAGEN_FILE_TYPE};

/// A session with DataFusion's default configuration and dlflow's sources registered.
///
/// # Example
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dlflow_table::Result<()> {
/// let ctx = dlflow_table::new_session();
/// ctx.sql("CREATE EXTERNAL TABLE t (x DOUBLE) STORED AS DATAGEN LOCATION 'datagen://'")
///     .await?;
/// assert_eq!(ctx.table("t").await?.count().await?, 1000);
/// # Ok(())
/// # }
/// ```
pub fn new_session() -> SessionContext {
    new_session_with_config(SessionConfig::new())
}

/// Like [`new_session`], with a given configuration (target partitions, batch size, …).
///
/// # Example
///
/// ```
/// use datafusion::prelude::SessionConfig;
///
/// let ctx = dlflow_table::new_session_with_config(SessionConfig::new().with_target_partitions(2));
/// assert_eq!(ctx.copied_config().target_partitions(), 2);
/// ```
pub fn new_session_with_config(config: SessionConfig) -> SessionContext {
    let state = with_dlflow_sources(
        SessionStateBuilder::new()
            .with_config(config)
            .with_default_features(),
    )
    .build();
    SessionContext::new_with_state(state)
}

/// Adds dlflow's sources to a session being built, for callers that need their own runtime
/// (memory limits, object stores) or functions. The order relative to
/// `with_default_features` does not matter: that call adds DataFusion's factories and keeps
/// existing ones.
///
/// # Example
///
/// ```
/// use datafusion::execution::session_state::SessionStateBuilder;
/// use datafusion::prelude::SessionContext;
///
/// let builder = SessionStateBuilder::new().with_default_features();
/// let ctx = SessionContext::new_with_state(dlflow_table::with_dlflow_sources(builder).build());
/// assert!(ctx.state().table_factories().contains_key("DATAGEN"));
/// ```
pub fn with_dlflow_sources(builder: SessionStateBuilder) -> SessionStateBuilder {
    builder.with_table_factory(DATAGEN_FILE_TYPE.to_string(), Arc::new(DataGenFactory))
}
