//! The DataFusion session dlflow runs tables in: DataFusion's defaults plus dlflow's sources
//! (the `DATAGEN` table factory), its settings (`SET dlflow.…`, [`ModelSettings`]) and the rule
//! that runs `predict(...)` calls as `PredictExec` operators (with the `inference` feature).

use std::sync::Arc;

use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::datagen::{DataGenFactory, DATAGEN_FILE_TYPE};
#[cfg(feature = "inference")]
use crate::inference::PlanPredictions;
use crate::options::ModelSettings;
use crate::stream::{StreamTableFactory, StreamingPlan};
use crate::window::{window_functions, PlanWindows};
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::physical_optimizer::PhysicalOptimizerRule;

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
    let config = if config.options().extensions.get::<ModelSettings>().is_some() {
        config
    } else {
        config.with_option_extension(ModelSettings::default())
    };
    let state = with_dlflow_sources(
        SessionStateBuilder::new()
            .with_config(config)
            .with_default_features(),
    )
    .with_physical_optimizer_rules(physical_rules())
    .build();
    let ctx = SessionContext::new_with_state(state);
    let (windows, bounds) = window_functions();
    for function in windows {
        ctx.register_udf(function);
    }
    for bound in bounds {
        ctx.register_udaf(bound);
    }
    ctx
}

/// DataFusion's physical rules with dlflow's: group windows planned before the sanity check
/// (which refuses an aggregate over a stream), streams kept record-at-a-time, and model calls
/// lifted into `PredictExec`s.
///
/// Model calls are lifted before DataFusion's first projection pushdown, once the plan's
/// partitioning is settled: that pushdown moves a projection into a file scan, and a `predict`
/// inside the scan's projection would run inline in the file decoder, on the async threads
/// and out of `EXPLAIN`. The rule runs again last, for calls later rules bring up.
fn physical_rules() -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
    let mut rules = PhysicalOptimizer::new().rules;
    #[cfg(feature = "inference")]
    {
        let pushdown = rules.iter().position(|r| r.name() == "ProjectionPushdown").unwrap_or(rules.len());
        rules.insert(pushdown, Arc::new(PlanPredictions));
    }
    let sanity_check = rules.iter().position(|r| r.name() == "SanityCheckPlan").unwrap_or(rules.len());
    rules.insert(sanity_check, Arc::new(StreamingPlan));
    rules.insert(sanity_check, Arc::new(PlanWindows));
    #[cfg(feature = "inference")]
    rules.push(Arc::new(PlanPredictions));
    rules
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
    let streams = Arc::new(StreamTableFactory::default());
    let mut builder = builder.with_table_factory(DATAGEN_FILE_TYPE.to_string(), Arc::new(DataGenFactory));
    for file_type in ["JSON", "NDJSON", "CSV", "PARQUET", "ARROW"] {
        builder = builder.with_table_factory(file_type.to_string(), streams.clone());
    }
    builder
}
