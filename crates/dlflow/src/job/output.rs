//! [`inference`]: Python nodes over a table, their rows back as a table.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::SessionContext;
use dlflow_cluster::TfClusterConfig;
use futures::{StreamExt, TryStreamExt};

use super::{CancelOnDrop, Job, RunningJob};
use crate::Table;
use crate::error::{Error, Result};

/// Runs the cluster's entry over `table` and returns the rows the nodes write back (with
/// `TFContext.get_row_writer()`) as a table of `output_schema`. DL on Flink's `TFUtils.inference`.
///
/// Lazy like every table: the nodes start when the table is read, and every row of the input
/// reaches a worker (no equal-share trim). The `input_types` and `output_types` properties,
/// when set, are checked here, before anything starts; so is every input column's type.
///
/// ```no_run
/// # async fn demo(points: dlflow::Table) -> dlflow::Result<()> {
/// use std::sync::Arc;
/// use arrow::datatypes::{DataType, Field, Schema};
/// use dlflow::TfClusterConfig;
///
/// let config = TfClusterConfig::builder()
///     .worker_count(2)
///     .node_entry("examples/cluster_inference/infer.py", "inference_entry")
///     .property("output_types", "FLOAT_32,FLOAT_32")
///     .build()?;
/// let schema = Arc::new(Schema::new(vec![
///     Field::new("x", DataType::Float32, false),
///     Field::new("y", DataType::Float32, false),
/// ]));
/// let predicted = dlflow::inference(&points, &config, schema)?;
/// println!("{}", predicted.show(10).await?);
/// # Ok(()) }
/// ```
pub fn inference(table: &Table, config: &TfClusterConfig, output_schema: SchemaRef) -> Result<Table> {
    let job = Job { output_schema: Some(output_schema.clone()), ..Job::train(table, config, 1) };
    job.check()?;
    let (state, _) = table.dataframe().clone().into_parts();
    let partition = InferencePartition { job: Arc::new(job), schema: output_schema.clone() };
    let streaming = StreamingTable::try_new(output_schema, vec![Arc::new(partition)])?;
    Ok(Table::new(SessionContext::new_with_state(state).read_table(Arc::new(streaming))?))
}

struct InferencePartition {
    job: Arc<Job>,
    schema: SchemaRef,
}

impl fmt::Debug for InferencePartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InferencePartition").field("entry", self.job.config.entry()).finish()
    }
}

/// Rows the nodes wrote that the reader has not taken yet; more and the nodes wait.
const OUTPUT_BUFFER: usize = 8;

impl PartitionStream for InferencePartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let job = self.job.clone();
        let batches = futures::stream::once(async move {
            let prepared = job.fresh().prepare().await.map_err(to_datafusion)?;
            let cancel = CancelOnDrop(prepared.stop.clone());
            let (rows, received) = tokio::sync::mpsc::channel::<Result<RecordBatch>>(OUTPUT_BUFFER);
            let running = RunningJob::start();
            std::thread::Builder::new()
                .name("dlflow-inference".into())
                .spawn(move || {
                    let _running = running;
                    let sender = rows.clone();
                    let outcome = prepared.run(|batch| {
                        sender.blocking_send(Ok(batch)).map_err(|_| "the output table's reader went away".to_string())
                    });
                    if let Err(error) = outcome {
                        let _ = rows.blocking_send(Err(error));
                    }
                })
                .map_err(|e| DataFusionError::Execution(format!("could not start the inference job: {e}")))?;
            // The guard lives as long as the stream: dropping the stream cancels the job.
            Ok::<_, DataFusionError>(futures::stream::unfold((received, cancel), |(mut received, cancel)| async move {
                let next = received.recv().await?;
                Some((next.map_err(to_datafusion), (received, cancel)))
            }))
        })
        .try_flatten();
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), batches.boxed()))
    }
}

fn to_datafusion(error: Error) -> DataFusionError {
    DataFusionError::External(Box::new(error))
}
