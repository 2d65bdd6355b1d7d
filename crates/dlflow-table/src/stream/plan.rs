//! [`StreamingPlan`]: keeping plans over streams record-at-a-time.
//!
//! DataFusion's plans are tuned for files: filters gather small batches into big ones (up to
//! `batch_size` rows, 8192 by default), batches are coalesced, and a round-robin repartition
//! spreads one input partition over all cores. On a stream each of these holds records back
//! (a lone record would wait for 8191 more) or reorders a partition's records. This rule runs
//! after DataFusion's own and, only where the input is unbounded, lets filters pass batches as
//! they come and removes round-robin repartitioning. Bounded plans are untouched.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties, Partitioning};

/// See the [module docs](self). Registered in every dlflow session.
#[derive(Debug, Default)]
pub struct StreamingPlan;

impl PhysicalOptimizerRule for StreamingPlan {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if !node.boundedness().is_unbounded() {
                return Ok(Transformed::no(node));
            }
            if let Some(filter) = node.downcast_ref::<FilterExec>()
                && filter.batch_size() != 1 {
                    // A target of one row: every non-empty batch is complete as it is.
                    return Ok(Transformed::yes(Arc::new(filter.with_batch_size(1)?) as Arc<dyn ExecutionPlan>));
                }
            if let Some(repartition) = node.downcast_ref::<RepartitionExec>()
                && matches!(repartition.partitioning(), Partitioning::RoundRobinBatch(_)) {
                    return Ok(Transformed::yes(repartition.input().clone()));
                }
            Ok(Transformed::no(node))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "streaming_plan"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
