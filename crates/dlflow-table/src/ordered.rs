//! Reading a plan's partitions in partition order, each read ahead on its own task.
//!
//! Sources that split themselves (files by byte range or row group, `datagen` by row range)
//! number their partitions in row order, so reading partition 0, then 1, … gives the rows in
//! the order of the source. DataFusion's merge of partitions interleaves them instead. Reading
//! them strictly one after another would also serialise everything the partitions compute
//! (decoding, model calls) with what consumes them (encoding, writing): here every partition runs
//! on its own task and reads up to `lookahead` batches ahead, so the work overlaps while memory
//! stays bounded by `partitions × lookahead` batches.

use std::sync::Arc;

use datafusion::common::runtime::SpawnedTask;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};
use futures::StreamExt;
use tokio::sync::mpsc;

/// Batches read ahead per partition unless told otherwise.
pub const DEFAULT_LOOKAHEAD: usize = 4;

/// Every batch of `plan`, partition 0 first, each partition's batches in order; see the
/// [module docs](self).
///
/// ```
/// use std::sync::Arc;
/// use futures::TryStreamExt;
/// use dlflow_table::datagen::{DataGen, Generator};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> datafusion::error::Result<()> {
/// let ctx = dlflow_table::new_session();
/// let table = DataGen::new(10_000).partitions(4).batch_size(1000).column("id", Generator::sequence(0)).build()?;
/// let plan = ctx.read_table(Arc::new(table))?.create_physical_plan().await?;
/// let stream = dlflow_table::ordered::execute_in_order(plan, ctx.task_ctx(), 2)?;
/// let batches: Vec<_> = stream.try_collect().await?;
/// let ids: Vec<i64> = batches.iter().flat_map(|b| b.column(0).as_any().downcast_ref::<arrow::array::Int64Array>().unwrap().values().to_vec()).collect();
/// assert_eq!(ids, (0..10_000).collect::<Vec<i64>>());
/// # Ok(())
/// # }
/// ```
pub fn execute_in_order(plan: Arc<dyn ExecutionPlan>, context: Arc<TaskContext>, lookahead: usize) -> Result<SendableRecordBatchStream> {
    let schema = plan.schema();
    let partitions = plan.output_partitioning().partition_count();
    let mut receivers = Vec::with_capacity(partitions);
    let mut tasks = Vec::with_capacity(partitions);
    for partition in 0..partitions {
        let mut input = plan.execute(partition, context.clone())?;
        let (sender, receiver) = mpsc::channel(lookahead.max(1));
        tasks.push(SpawnedTask::spawn(async move {
            while let Some(batch) = input.next().await {
                let failed = batch.is_err();
                if sender.send(batch).await.is_err() || failed {
                    break; // the reader is gone, or this partition has failed
                }
            }
        }));
        receivers.push(receiver);
    }
    // The tasks are aborted when the stream (which owns them) is dropped.
    let batches = futures::stream::iter(receivers).flat_map(|mut receiver| futures::stream::poll_fn(move |cx| receiver.poll_recv(cx)));
    let owned = futures::stream::unfold((batches, tasks), |(mut batches, tasks)| async move {
        let next = batches.next().await?;
        Some((next, (batches, tasks)))
    });
    Ok(Box::pin(RecordBatchStreamAdapter::new(schema, owned)))
}
