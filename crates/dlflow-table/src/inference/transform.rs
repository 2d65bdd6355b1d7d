//! `transform`: a table with a model's outputs appended to every row.
//!
//! Built as a DataFusion streaming table over the input query, so the result is an ordinary
//! table that SQL, sinks and further transforms can take. Rows keep their input order: the
//! input runs as one ordered stream, and batches go through the model on a pool of blocking
//! threads, several at once, and come out in the order they went in. Memory stays bounded
//! by `concurrency` batches in flight.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::dataframe::DataFrame;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::SessionContext;
use dlflow_tf::Predictor;
use futures::{StreamExt, TryStreamExt};

use super::tf_error;

/// Append `predictor`'s outputs to every row of `input`, keeping row order.
///
/// `concurrency` batches are predicted at once (at least 1); the number of cores is a good
/// value. An output whose name is already a column of `input` is an error, not a silent
/// replacement.
pub fn transform(input: DataFrame, predictor: Arc<Predictor>, concurrency: usize) -> Result<DataFrame> {
    let input_schema: SchemaRef = Arc::new(input.schema().as_arrow().clone());
    let mut fields: Vec<_> = input_schema.fields().iter().cloned().collect();
    for output in predictor.output_fields() {
        if input_schema.field_with_name(output.name()).is_ok() {
            return Err(DataFusionError::Plan(format!(
                "model output `{}` has the same name as an input column; rename the column first \
                 (SELECT {} AS {}_in, ...) or append only other outputs (`--output-column NAME` on the \
                 command line, `Model::with_outputs` in Rust)",
                output.name(),
                output.name(),
                output.name()
            )));
        }
        fields.push(output);
    }
    let schema = Arc::new(Schema::new(fields));
    let (state, plan) = input.into_parts();
    // No repartitioning (which would shuffle rows): partitions are read in order below.
    let ordered = state.config().clone().with_target_partitions(1);
    let ordered_state = datafusion::execution::SessionStateBuilder::new_from_existing(state.clone()).with_config(ordered).build();
    let stream = PredictPartition { input: DataFrame::new(ordered_state, plan), predictor, schema: schema.clone(), concurrency: concurrency.max(1) };
    let table = StreamingTable::try_new(schema, vec![Arc::new(stream)])?;
    SessionContext::new_with_state(state).read_table(Arc::new(table))
}

struct PredictPartition {
    input: DataFrame,
    predictor: Arc<Predictor>,
    schema: SchemaRef,
    concurrency: usize,
}

impl fmt::Debug for PredictPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PredictPartition")
            .field("model", &self.predictor.model().dir())
            .field("signature", &self.predictor.signature().name())
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

impl PartitionStream for PredictPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let input = self.input.clone();
        let predictor = self.predictor.clone();
        let schema = self.schema.clone();
        let concurrency = self.concurrency;
        // Partitions one after another, in partition order: a source that splits itself
        // (files by byte range, datagen by row range) keeps its row order that way, where
        // DataFusion's merge of partitions would interleave them.
        let batches = futures::stream::once(async move { input.execute_stream_partitioned().await })
            .map_ok(|partitions| futures::stream::iter(partitions).flatten())
            .try_flatten()
            .map_ok(move |batch| {
                let predictor = predictor.clone();
                let schema = schema.clone();
                async move {
                    tokio::task::spawn_blocking(move || append_predictions(&predictor, schema, batch))
                        .await
                        .map_err(|e| DataFusionError::Execution(format!("model worker thread failed: {e}")))?
                }
            })
            .try_buffered(concurrency);
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), batches))
    }
}

fn append_predictions(predictor: &Predictor, schema: SchemaRef, batch: RecordBatch) -> Result<RecordBatch> {
    let outputs = predictor.predict(&batch).map_err(tf_error)?;
    let mut columns = batch.columns().to_vec();
    columns.extend(outputs);
    Ok(RecordBatch::try_new(schema, columns)?)
}
