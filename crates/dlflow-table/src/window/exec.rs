//! [`WindowAggregateExec`]: group windows on event time, fired by the watermark.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::runtime::SpawnedTask;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning, PhysicalExpr, PlanProperties,
    ReplaceChildrenOptions,
};
use futures::StreamExt;
use tokio::sync::mpsc;

use super::spec::WindowSpec;
use super::state::{WindowOutput, WindowState};
use super::watermark::Watermarks;

/// How the watermark of a window aggregate is made, from the event-time column's declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct WatermarkSpec {
    /// Out-of-orderness: the watermark is this far behind the largest event time, nanoseconds.
    pub delay: i64,
    /// A partition that sends nothing for this long stops holding the watermark back.
    pub idle_timeout: Duration,
    /// Where late rows go (NDJSON), besides being counted; dropped when `None`.
    pub late_output: Option<PathBuf>,
}

/// A group-window aggregate over event time: Flink's `GROUP BY TUMBLE(ts, ...)` (and `HOP`,
/// `SESSION`), keyed or global.
///
/// It reads every input partition itself and keeps a watermark per partition (the largest event
/// time it has received minus the declared delay; idle partitions stop counting after a
/// timeout), so the watermark comes from rows actually delivered, never ahead of them. A window
/// fires (one output row per window and key) as soon as the watermark passes its end; rows whose
/// windows have all fired are late: dropped and counted (metric `late_rows`), or written to a
/// side output. When every input partition has ended (a bounded input, or the end of a stream)
/// every open window fires.
#[derive(Debug)]
pub struct WindowAggregateExec {
    input: Arc<dyn ExecutionPlan>,
    spec: WindowSpec,
    time: Arc<dyn PhysicalExpr>,
    keys: Vec<Arc<dyn PhysicalExpr>>,
    outputs: Vec<WindowOutput>,
    watermark: Option<WatermarkSpec>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl WindowAggregateExec {
    /// Windows `spec` over `input` by event time `time` and `keys`, giving `schema` (a column per
    /// `outputs`). Without a `watermark` windows fire only at the end of the input, which an
    /// unbounded input never reaches: that is an error.
    #[allow(clippy::too_many_arguments)]
    pub fn try_new(
        input: Arc<dyn ExecutionPlan>,
        spec: WindowSpec,
        time: Arc<dyn PhysicalExpr>,
        keys: Vec<Arc<dyn PhysicalExpr>>,
        outputs: Vec<WindowOutput>,
        watermark: Option<WatermarkSpec>,
        schema: SchemaRef,
    ) -> Result<WindowAggregateExec> {
        if watermark.is_none() && input.boundedness().is_unbounded() {
            return Err(DataFusionError::Plan(format!(
                "{spec} over a stream needs a watermark to fire: declare OPTIONS ('watermark.column' '{time}', 'watermark.delay' '2s') on the stream table"
            )));
        }
        let boundedness = if input.boundedness().is_unbounded() { Boundedness::Unbounded { requires_infinite_memory: false } } else { Boundedness::Bounded };
        let properties = PlanProperties::new(EquivalenceProperties::new(schema.clone()), Partitioning::UnknownPartitioning(1), EmissionType::Incremental, boundedness);
        Ok(WindowAggregateExec { input, spec, time, keys, outputs, watermark, schema, properties: Arc::new(properties), metrics: ExecutionPlanMetricsSet::new() })
    }
}

impl DisplayAs for WindowAggregateExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WindowAggregateExec: {} on {}", self.spec, self.time)?;
        if !self.keys.is_empty() {
            write!(f, ", keys=[{}]", self.keys.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(", "))?;
        }
        match &self.watermark {
            Some(w) => write!(f, ", watermark delay={:?}", Duration::from_nanos(w.delay.max(0) as u64)),
            None => write!(f, ", fires at the end of the input"),
        }
    }
}

impl ExecutionPlan for WindowAggregateExec {
    fn name(&self) -> &str {
        "WindowAggregateExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn apply_expressions(&self, f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>) -> Result<TreeNodeRecursion> {
        for expr in std::iter::once(&self.time).chain(&self.keys) {
            if f(expr)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>, _options: ReplaceChildrenOptions) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return datafusion::common::internal_err!("WindowAggregateExec takes one child, got {}", children.len());
        }
        Ok(Arc::new(WindowAggregateExec::try_new(
            children.swap_remove(0),
            self.spec,
            self.time.clone(),
            self.keys.clone(),
            self.outputs.clone(),
            self.watermark.clone(),
            self.schema.clone(),
        )?))
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        // Still required by DataFusion 55's trait; it forwards to `replace_children`.
        self.replace_children(children, ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return datafusion::common::internal_err!("WindowAggregateExec has one partition, {partition} was asked");
        }
        let key_types = self.keys.iter().map(|k| k.data_type(&self.input.schema())).collect::<Result<Vec<_>>>()?;
        let time_type = self.time.data_type(&self.input.schema())?;
        let state = WindowState::new(self.spec, self.time.clone(), self.keys.clone(), key_types, self.outputs.clone(), false)?;
        let late = MetricBuilder::new(&self.metrics).counter("late_rows", 0);
        let run = WindowRun::start(&self.input, context, self.watermark.clone())?;
        let schema = self.schema.clone();
        let output = run.into_stream(state, move |state, fired| state.output(&schema, &time_type, fired), late);
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), output)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// What one input partition's reader says.
enum Delivery {
    Batch(usize, RecordBatch),
    End(usize),
    Failed(DataFusionError),
}

/// The running part shared by SQL window aggregates and Rust window streams: every input
/// partition read on its own task, a watermark over them, and a clock that re-checks idle
/// partitions.
pub(crate) struct WindowRun {
    deliveries: mpsc::Receiver<Delivery>,
    watermarks: Watermarks,
    watermark: Option<WatermarkSpec>,
    _readers: Vec<SpawnedTask<()>>,
}

impl WindowRun {
    pub(crate) fn start(input: &Arc<dyn ExecutionPlan>, context: Arc<TaskContext>, watermark: Option<WatermarkSpec>) -> Result<WindowRun> {
        let partitions = input.output_partitioning().partition_count();
        let (sender, deliveries) = mpsc::channel(2 * partitions.max(1));
        let mut readers = Vec::with_capacity(partitions);
        for partition in 0..partitions {
            let mut stream = input.execute(partition, context.clone())?;
            let sender = sender.clone();
            readers.push(SpawnedTask::spawn(async move {
                while let Some(batch) = stream.next().await {
                    let delivery = match batch {
                        Ok(batch) => Delivery::Batch(partition, batch),
                        Err(error) => Delivery::Failed(error),
                    };
                    let failed = matches!(delivery, Delivery::Failed(_));
                    if sender.send(delivery).await.is_err() || failed {
                        return;
                    }
                }
                let _ = sender.send(Delivery::End(partition)).await;
            }));
        }
        let (delay, idle) = watermark.as_ref().map_or((0, Duration::from_secs(3600)), |w| (w.delay, w.idle_timeout));
        Ok(WindowRun { deliveries, watermarks: Watermarks::new(partitions, delay, idle), watermark, _readers: readers })
    }

    /// The stream of fired windows, each turned into a batch by `emit`.
    pub(crate) fn into_stream<F>(self, state: WindowState, emit: F, late_metric: Count) -> impl futures::Stream<Item = Result<RecordBatch>> + Send
    where
        F: Fn(&WindowState, Vec<super::state::Fired>) -> Result<RecordBatch> + Send + 'static,
    {
        futures::stream::unfold(Some((self, state, emit, late_metric)), |machine| async move {
            let (mut run, mut state, emit, late_metric) = machine?;
            loop {
                match run.step(&mut state, &late_metric).await {
                    Ok(Some(fired)) if fired.is_empty() => continue,
                    Ok(Some(fired)) => {
                        let batch = emit(&state, fired);
                        return Some((batch, Some((run, state, emit, late_metric))));
                    }
                    Ok(None) => return None,
                    Err(error) => return Some((Err(error), None)),
                }
            }
        })
    }

    /// Waits for the next delivery (or a clock tick), updates the state and the watermark, and
    /// returns what fired; `None` once everything has ended and fired.
    pub(crate) async fn step(&mut self, state: &mut WindowState, late_metric: &Count) -> Result<Option<Vec<super::state::Fired>>> {
        if self.watermarks.all_ended() {
            return Ok(None);
        }
        let tick = tokio::time::sleep(Duration::from_millis(50));
        tokio::select! {
            delivery = self.deliveries.recv() => match delivery {
                Some(Delivery::Batch(partition, batch)) => {
                    let (late, max_time) = state.insert(&batch)?;
                    match max_time {
                        Some(time) => self.watermarks.observe(partition, time),
                        None => self.watermarks.touch(partition),
                    }
                    if let Some(late) = late {
                        late_metric.add(late.num_rows());
                        LATE_ROWS.fetch_add(late.num_rows() as u64, std::sync::atomic::Ordering::Relaxed);
                        self.write_late(&late)?;
                    }
                }
                Some(Delivery::End(partition)) => self.watermarks.end(partition),
                Some(Delivery::Failed(error)) => return Err(error),
                None => {
                    for partition in 0..self.watermarks_partitions() {
                        self.watermarks.end(partition);
                    }
                }
            },
            () = tick => {}
        }
        let watermark = match (&self.watermark, self.watermarks.all_ended()) {
            (_, true) => Some(i64::MAX),
            (Some(_), false) => self.watermarks.current(),
            (None, false) => None,
        };
        Ok(Some(watermark.map(|w| state.fire(w)).unwrap_or_default()))
    }

    fn watermarks_partitions(&self) -> usize {
        self._readers.len()
    }

    fn write_late(&self, late: &RecordBatch) -> Result<()> {
        let Some(path) = self.watermark.as_ref().and_then(|w| w.late_output.as_ref()) else { return Ok(()) };
        let lines = crate::stream::ndjson(late).map_err(DataFusionError::from)?;
        use std::io::Write;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(&lines))
            .map_err(|e| DataFusionError::Execution(format!("cannot write late rows to {}: {e}", path.display())))
    }
}

static LATE_ROWS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Rows window aggregates of this process dropped (or sent to a side output) as late so far.
pub fn late_rows() -> u64 {
    LATE_ROWS.load(std::sync::atomic::Ordering::Relaxed)
}

/// The event-time column's type, for window bounds: a TIMESTAMP.
pub(crate) fn check_time_type(time_type: &DataType) -> Result<()> {
    match time_type {
        DataType::Timestamp(_, _) => Ok(()),
        other => Err(DataFusionError::Plan(format!("window: the event-time column is {other}; expected a TIMESTAMP"))),
    }
}
