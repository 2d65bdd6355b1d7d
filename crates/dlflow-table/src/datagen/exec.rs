//! [`DataGenExec`]: the physical scan of a datagen table, and the per-partition batch iterator.

use std::fmt;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::coop::cooperative;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType, SchedulingType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning,
    PhysicalExpr, PlanProperties, ReplaceChildrenOptions, SendableRecordBatchStream,
};

use super::table::GeneratedColumn;
use crate::error::Result;

/// Scans a datagen table: partition `p` of `n` generates the contiguous row range
/// `[rows * p / n, rows * (p + 1) / n)`, one batch at a time, only for projected columns.
///
/// Contiguous ranges (rather than round-robin batches) keep each partition's rows in order
/// and make a partition's work a single arithmetic expression, with no coordination.
#[derive(Debug)]
pub(crate) struct DataGenExec {
    columns: Arc<Vec<GeneratedColumn>>,
    /// Indices into `columns` of the projected columns, in output order.
    projection: Vec<usize>,
    rows: u64,
    batch_size: usize,
    pacing: Pacing,
    properties: Arc<PlanProperties>,
}

/// How fast a datagen table produces rows, and whether it ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Pacing {
    /// No end (a stream).
    pub(crate) unbounded: bool,
    /// Rows per second at most.
    pub(crate) rows_per_second: Option<f64>,
}

impl Pacing {
    pub(crate) fn is_paced(&self) -> bool {
        self.unbounded || self.rows_per_second.is_some()
    }
}

impl DataGenExec {
    /// `schema` is the projected schema; `max_partitions` is capped to the number of batches
    /// so that small tables do not spawn idle partitions.
    pub(crate) fn new(
        schema: SchemaRef,
        columns: Arc<Vec<GeneratedColumn>>,
        projection: Vec<usize>,
        rows: u64,
        batch_size: usize,
        max_partitions: usize,
        pacing: Pacing,
    ) -> Self {
        // At a set rate, batches are small (about 100 a second) so rows come out evenly.
        let batch_size = match pacing.rows_per_second {
            Some(rate) => ((rate / 100.0) as usize).clamp(1, batch_size.max(1)),
            None => batch_size,
        };
        let batches = rows.div_ceil(batch_size.max(1) as u64);
        let partitions = (max_partitions as u64).min(batches).max(1) as usize;
        let boundedness = if pacing.unbounded { Boundedness::Unbounded { requires_infinite_memory: false } } else { Boundedness::Bounded };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Incremental,
            boundedness,
        )
        .with_scheduling_type(SchedulingType::Cooperative);
        Self {
            columns,
            projection,
            rows,
            batch_size,
            pacing,
            properties: Arc::new(properties),
        }
    }

    fn partition_count(&self) -> usize {
        self.properties.partitioning.partition_count()
    }

    /// First row of partition `p` (and one past the last row of partition `p - 1`).
    fn partition_start(&self, p: usize) -> u64 {
        // u128 so that `rows * p` cannot overflow for any u64 row count.
        (u128::from(self.rows) * p as u128 / self.partition_count() as u128) as u64
    }
}

impl DisplayAs for DataGenExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self
            .projection
            .iter()
            .map(|i| self.columns[*i].name.as_str())
            .collect();
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                let rows = if self.pacing.unbounded { "unbounded".to_string() } else { self.rows.to_string() };
                write!(f, "DataGenExec: rows={rows}, batch_size={}, partitions={}, columns=[{}]", self.batch_size, self.partition_count(), names.join(", "))?;
                match self.pacing.rows_per_second {
                    Some(rate) => write!(f, ", rows_per_second={rate}"),
                    None => Ok(()),
                }
            }
            DisplayFormatType::TreeRender => write!(f, "rows={}", self.rows),
        }
    }
}

impl ExecutionPlan for DataGenExec {
    fn name(&self) -> &str {
        "DataGenExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> datafusion::error::Result<TreeNodeRecursion>,
    ) -> datafusion::error::Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        // A leaf: there is nothing to replace.
        Ok(self)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        // Still required by DataFusion 55's trait; it forwards to `replace_children`.
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> datafusion::error::Result<SendableRecordBatchStream> {
        if partition >= self.partition_count() {
            return datafusion::common::internal_err!(
                "DataGenExec has {} partitions, partition {partition} was requested",
                self.partition_count()
            );
        }
        let batches = PartitionBatches {
            schema: self.schema(),
            columns: Arc::clone(&self.columns),
            projection: self.projection.clone(),
            next: self.partition_start(partition),
            end: self.partition_start(partition + 1),
            batch_size: self.batch_size as u64,
        };
        let batches = batches.map(|b| b.map_err(DataFusionError::from));
        let Some(rate) = self.pacing.rows_per_second else {
            let stream = futures::stream::iter(batches);
            return Ok(Box::pin(cooperative(RecordBatchStreamAdapter::new(self.schema(), stream))));
        };
        // Batch k leaves when its first row is due: start + rows before it / rate.
        let started = tokio::time::Instant::now();
        let paced = futures::stream::unfold((batches, 0u64), move |(mut batches, sent)| async move {
            let batch = batches.next()?;
            tokio::time::sleep_until(started + std::time::Duration::from_secs_f64(sent as f64 / rate)).await;
            let rows = batch.as_ref().map_or(0, |b| b.num_rows() as u64);
            Some((batch, (batches, sent + rows)))
        });
        // A paced table is a stream source: Ctrl-C in the CLI ends it gracefully.
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema(), crate::stream::stop::until_stopped(Box::pin(paced)))))
    }
}

/// The batches of one partition, generated on demand as the stream is polled.
struct PartitionBatches {
    schema: SchemaRef,
    columns: Arc<Vec<GeneratedColumn>>,
    projection: Vec<usize>,
    next: u64,
    end: u64,
    batch_size: u64,
}

impl PartitionBatches {
    fn batch(&self, rows: std::ops::Range<u64>) -> Result<RecordBatch> {
        let arrays = self
            .projection
            .iter()
            .map(|i| {
                let column = &self.columns[*i];
                column
                    .generator
                    .generate(&column.name, column.random, rows.clone())
            })
            .collect::<Result<Vec<ArrayRef>>>()?;
        // The row count is explicit because `SELECT count(*)` projects no column at all and
        // a batch without columns would otherwise have zero rows.
        let options =
            RecordBatchOptions::new().with_row_count(Some((rows.end - rows.start) as usize));
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            arrays,
            &options,
        )?)
    }
}

impl Iterator for PartitionBatches {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.end {
            return None;
        }
        let start = self.next;
        self.next = start.saturating_add(self.batch_size).min(self.end);
        Some(self.batch(start..self.next))
    }
}
