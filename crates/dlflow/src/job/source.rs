//! [`TablePartitions`]: a planned table as the engine's [`PartitionSource`].

use std::sync::{Arc, Mutex};

use datafusion::execution::TaskContext;
use datafusion::physical_plan::execution_plan::reset_plan_states;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};
use dlflow_engine::{BatchIter, PartitionSource};
use futures::StreamExt;
use tokio::runtime::Handle;

use crate::Table;
use crate::error::Result;

/// A table's physical plan, executed partition by partition on the engine's threads.
///
/// DataFusion streams are async; engine workers are plain threads, so each pull is a
/// `block_on` on the runtime that planned the table (its tasks and I/O live there).
///
/// Every epoch runs a fresh copy of the plan (`reset_plan_states`): operators such as
/// `RepartitionExec` share state between their output partitions and run once per instance.
pub(crate) struct TablePartitions {
    plan: Arc<dyn ExecutionPlan>,
    context: Arc<TaskContext>,
    runtime: Handle,
    /// The plan instance of the epoch being read (all partitions of an epoch share it);
    /// `None`: the next open makes a fresh one.
    current: Mutex<Option<(u64, Arc<dyn ExecutionPlan>)>>,
}

impl TablePartitions {
    pub async fn plan(table: &Table) -> Result<TablePartitions> {
        let df = table.dataframe().clone();
        let context = Arc::new(df.task_ctx());
        let plan = df.create_physical_plan().await?;
        Ok(TablePartitions { current: Mutex::new(Some((0, plan.clone()))), plan, context, runtime: Handle::current() })
    }

    /// The next run (a restarted attempt) reads from fresh plan instances: the last one's
    /// operators may have run their partitions already.
    pub fn start_over(&self) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Whether the table ends (files, datagen) or streams forever (one pass until it ends).
    pub fn is_bounded(&self) -> bool {
        !self.plan.boundedness().is_unbounded()
    }
}

impl PartitionSource for TablePartitions {
    fn partitions(&self) -> usize {
        self.plan.output_partitioning().partition_count()
    }

    fn open(&self, partition: usize, epoch: u64) -> Result<BatchIter, String> {
        let plan = {
            let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
            match &*current {
                Some((at, plan)) if *at == epoch => plan.clone(),
                _ => {
                    let plan = reset_plan_states(self.plan.clone()).map_err(|e| e.to_string())?;
                    *current = Some((epoch, plan.clone()));
                    plan
                }
            }
        };
        let _runtime = self.runtime.enter();
        let mut stream = plan.execute(partition, self.context.clone()).map_err(|e| e.to_string())?;
        let runtime = self.runtime.clone();
        Ok(Box::new(std::iter::from_fn(move || {
            runtime.block_on(stream.next()).map(|batch| batch.map_err(|e| crate::Error::from(e).to_string()))
        })))
    }
}
