//! [`PredictExec`]: model inference as a physical operator.

use std::fmt;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PhysicalExpr, PlanProperties,
    ReplaceChildrenOptions,
};
use dlflow_tf::Predictor;
use futures::TryStreamExt;
use tokio::sync::Semaphore;

use super::call::{run_columns, ModelCall};
use crate::micro_batch::{Arrivals, MicroBatcher};
use crate::options::MicroBatching;

/// One model call lifted into a [`PredictExec`]: its arguments (expressions over the input)
/// and the column it appends.
#[derive(Debug, Clone)]
pub struct PredictColumn {
    /// The appended column's name.
    pub name: String,
    /// The call.
    pub call: Arc<ModelCall>,
    /// Its arguments, evaluated on each input batch, feeding the signature's inputs in order.
    pub args: Vec<Arc<dyn PhysicalExpr>>,
}

/// Runs models over its input: every input row comes out with one more column per
/// [`PredictColumn`] (the call's output, or a struct of its outputs).
///
/// - **Partitions and order**: one output partition per input partition, rows in input order.
/// - **One model per process**: calls hold shared, already loaded models ([`ModelCall`]); nothing is
///   loaded per batch or per partition.
/// - **Off the async threads**: TensorFlow runs on tokio's blocking pool, at most
///   `concurrency` batches at once across all partitions, while the next input batches are read.
/// - **Streams**: on an unbounded input, records are first cut into micro-batches bounded by rows
///   and delay ([`MicroBatching`]); the model is taken once per micro-batch, so a hot-reloaded
///   model switches between two batches.
///
/// `EXPLAIN` shows it with each call's model, signature and batch size:
///
/// ```text
/// PredictExec: y := model=models/linear, signature=serving_default, batch_size=1024, concurrency=2
/// ```
#[derive(Debug)]
pub struct PredictExec {
    input: Arc<dyn ExecutionPlan>,
    columns: Arc<[PredictColumn]>,
    batching: MicroBatching,
    concurrency: usize,
    /// Shared by all partitions: bounds batches in TensorFlow at once.
    permits: Arc<Semaphore>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl PredictExec {
    /// `input` with `columns` appended, at most `concurrency` batches in TensorFlow at once,
    /// streams cut by `batching`.
    pub fn try_new(input: Arc<dyn ExecutionPlan>, columns: Vec<PredictColumn>, batching: MicroBatching, concurrency: usize) -> Result<PredictExec> {
        let input_schema = input.schema();
        let mut fields: Vec<_> = input_schema.fields().iter().cloned().collect();
        for column in &columns {
            if input_schema.field_with_name(&column.name).is_ok() {
                return Err(DataFusionError::Plan(format!("predict: the output column `{}` is already a column of the input", column.name)));
            }
            fields.push(Arc::new(Field::new(&column.name, column.call.output_type(), false)));
        }
        let schema = Arc::new(Schema::new_with_metadata(fields, input_schema.metadata().clone()));
        // Rows keep their place: input orderings (over input columns, whose indices do not
        // change) still hold, and so does the partitioning.
        let orderings = input.equivalence_properties().oeq_class().iter().cloned().collect::<Vec<_>>();
        let equivalence = EquivalenceProperties::new_with_orderings(schema.clone(), orderings);
        let properties = PlanProperties::new(equivalence, input.output_partitioning().clone(), input.pipeline_behavior(), input.boundedness());
        let concurrency = concurrency.max(1);
        Ok(PredictExec {
            input,
            columns: columns.into(),
            batching,
            concurrency,
            permits: Arc::new(Semaphore::new(concurrency)),
            schema,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    /// The model calls, in the order their columns are appended.
    pub fn columns(&self) -> &[PredictColumn] {
        &self.columns
    }

    /// The input plan.
    pub fn input(&self) -> &Arc<dyn ExecutionPlan> {
        &self.input
    }

    fn is_stream(&self) -> bool {
        self.input.boundedness().is_unbounded()
    }
}

impl DisplayAs for PredictExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let calls = self.columns.iter().map(|c| format!("{} := {}", c.name, c.call)).collect::<Vec<_>>().join("; ");
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => write!(f, "PredictExec: {calls}, concurrency={}", self.concurrency)?,
            DisplayFormatType::TreeRender => write!(f, "{calls}")?,
        }
        if self.is_stream() {
            write!(f, ", micro_batch=(rows={}, delay={:?})", self.batching.max_rows, self.batching.max_delay)?;
        }
        Ok(())
    }
}

impl ExecutionPlan for PredictExec {
    fn name(&self) -> &str {
        "PredictExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn apply_expressions(&self, f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>) -> Result<TreeNodeRecursion> {
        for column in self.columns.iter() {
            for arg in &column.args {
                if f(arg)? == TreeNodeRecursion::Stop {
                    return Ok(TreeNodeRecursion::Stop);
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>, _options: ReplaceChildrenOptions) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return datafusion::common::internal_err!("PredictExec takes one child, got {}", children.len());
        }
        Ok(Arc::new(PredictExec::try_new(children.swap_remove(0), self.columns.to_vec(), self.batching, self.concurrency)?))
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        // Still required by DataFusion 55's trait; it forwards to `replace_children`.
        self.replace_children(children, ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        // On a stream: micro-batches, and the arrival of each one's oldest record for latency.
        let (input, arrivals): (SendableRecordBatchStream, Option<Arrivals>) = if self.is_stream() {
            let batcher = MicroBatcher::new(input, self.batching);
            let arrivals = batcher.arrivals();
            (Box::pin(batcher), Some(arrivals))
        } else {
            (input, None)
        };
        let columns = self.columns.clone();
        let schema = self.schema.clone();
        let permits = self.permits.clone();
        let metrics = BaselineMetrics::new(&self.metrics, partition);
        let batches = input
            .map_ok(move |batch| {
                // Taken here, in input order (not on the blocking thread, where batches may
                // overtake each other): a new model version applies from one batch on.
                let predictors: Vec<(Arc<Predictor>, Option<u64>)> = columns.iter().map(|c| c.call.predictor()).collect();
                let arrived = arrivals.as_ref().and_then(Arrivals::pop);
                let (columns, schema, permits) = (columns.clone(), schema.clone(), permits.clone());
                async move {
                    let _permit = permits.acquire_owned().await.map_err(|e| DataFusionError::Execution(format!("predict: {e}")))?;
                    let predicted = tokio::task::spawn_blocking(move || append_predictions(&columns, &predictors, &schema, batch))
                        .await
                        .map_err(|e| DataFusionError::Execution(format!("predict: the model thread failed: {e}")))??;
                    if let Some(arrived) = arrived {
                        crate::stream::stats::record(arrived.elapsed(), predicted.num_rows());
                    }
                    Ok(predicted)
                }
            })
            .try_buffered(self.concurrency)
            .inspect_ok(move |batch| metrics.record_output(batch.num_rows()));
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), batches)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// `batch` with one more column per model call.
fn append_predictions(columns: &[PredictColumn], predictors: &[(Arc<Predictor>, Option<u64>)], schema: &SchemaRef, batch: RecordBatch) -> Result<RecordBatch> {
    let mut out: Vec<ArrayRef> = batch.columns().to_vec();
    for (column, (predictor, version)) in columns.iter().zip(predictors) {
        let args = column.args.iter().map(|arg| arg.evaluate(&batch)?.into_array(batch.num_rows())).collect::<Result<Vec<_>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        let args = RecordBatch::try_new_with_options(column.call.arg_schema().clone(), args, &options)?;
        let outputs = run_columns(predictor, *version, &args)?;
        out.push(column.call.assemble(outputs)?);
    }
    Ok(RecordBatch::try_new_with_options(schema.clone(), out, &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())))?)
}
