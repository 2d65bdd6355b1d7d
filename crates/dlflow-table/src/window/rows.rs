//! The rows of each window as one batch, as windows fire: for models over windows
//! (flink-tensorflow's model inside a window function).

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use datafusion::dataframe::DataFrame;
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::metrics::Count;
use datafusion::physical_plan::{ExecutionPlanProperties, PhysicalExpr};
use futures::Stream;

use super::exec::{check_time_type, WindowRun};
use super::plan::watermark_of;
use super::spec::WindowSpec;
use super::state::{Fired, WindowState};

/// One fired window: its bounds (nanoseconds since the epoch) and its rows, in arrival order.
#[derive(Debug, Clone)]
pub struct WindowRows {
    /// Window start.
    pub start: i64,
    /// Window end (exclusive).
    pub end: i64,
    /// The window's rows (for a keyed window, the rows of one key).
    pub rows: RecordBatch,
}

/// The windows of `table` by event-time column `time` (and `keys`), each fired as one batch of its
/// rows when the watermark declared on `time` passes its end (a bounded table: all at its end).
///
/// ```no_run
/// use std::time::Duration;
/// use futures::StreamExt;
/// use dlflow_table::window::{window_rows, WindowSpec};
/// # async fn demo(table: datafusion::dataframe::DataFrame) -> datafusion::error::Result<()> {
/// let mut windows = Box::pin(window_rows(table, WindowSpec::tumble(Duration::from_secs(1)), "ts", &["door"]).await?);
/// while let Some(window) = windows.next().await {
///     let window = window?;
///     println!("[{}, {}): {} rows", window.start, window.end, window.rows.num_rows());
/// }
/// # Ok(()) }
/// ```
pub async fn window_rows(table: DataFrame, spec: WindowSpec, time: &str, keys: &[&str]) -> Result<impl Stream<Item = Result<WindowRows>> + Send + use<>> {
    spec.validate()?;
    let context = Arc::new(table.task_ctx());
    let plan = table.create_physical_plan().await?;
    let schema = plan.schema();
    let column = |name: &str| -> Result<Arc<dyn PhysicalExpr>> {
        let index = schema.index_of(name).map_err(|_| DataFusionError::Plan(format!("window: no column `{name}`")))?;
        Ok(Arc::new(Column::new(name, index)))
    };
    let time_expr = column(time)?;
    check_time_type(&time_expr.data_type(&schema)?)?;
    let key_exprs = keys.iter().map(|k| column(k)).collect::<Result<Vec<_>>>()?;
    let key_types = key_exprs.iter().map(|k| k.data_type(&schema)).collect::<Result<Vec<_>>>()?;
    let watermark = watermark_of(&time_expr, &schema)?;
    if watermark.is_none() && plan.boundedness().is_unbounded() {
        return Err(DataFusionError::Plan(format!("windows over a stream need a watermark on `{time}`: declare OPTIONS ('watermark.column' '{time}', 'watermark.delay' '2s')")));
    }
    let state = WindowState::new(spec, time_expr, key_exprs, key_types, Vec::new(), true)?;
    let run = WindowRun::start(&plan, context, watermark)?;
    let late = Count::new();
    Ok(futures::stream::unfold(Some((run, state, std::collections::VecDeque::<Fired>::new(), late)), move |machine| {
        let schema = schema.clone();
        async move {
            let (mut run, mut state, mut ready, late) = machine?;
            loop {
                if let Some(fired) = ready.pop_front() {
                    let rows = concat_batches(&schema, fired.rows()).map_err(DataFusionError::from);
                    let item = rows.map(|rows| WindowRows { start: fired.start, end: fired.end, rows });
                    return Some((item, Some((run, state, ready, late))));
                }
                match run.step(&mut state, &late).await {
                    Ok(Some(fired)) => ready.extend(fired),
                    Ok(None) => return None,
                    Err(error) => return Some((Err(error), None)),
                }
            }
        }
    }))
}
