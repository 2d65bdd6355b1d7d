//! [`PlanWindows`]: aggregates grouped by `TUMBLE`/`HOP`/`SESSION` become
//! [`WindowAggregateExec`]s.

use std::sync::Arc;

use arrow::datatypes::Schema;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_expr::expressions::Column;
use datafusion::logical_expr::ScalarUDFImpl;
use datafusion::physical_expr::ScalarFunctionExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::{ExecutionPlan, PhysicalExpr};

use super::exec::{check_time_type, WatermarkSpec, WindowAggregateExec};
use super::functions::{WindowBound, WindowFunction};
use super::state::WindowOutput;

/// Field metadata of an event-time column: the watermark delay, nanoseconds.
pub const WATERMARK_DELAY_KEY: &str = "dlflow.watermark.delay_ns";
/// Field metadata of an event-time column: the idle timeout, nanoseconds.
pub const WATERMARK_IDLE_KEY: &str = "dlflow.watermark.idle_ns";
/// Field metadata of an event-time column: where late rows go.
pub const LATE_OUTPUT_KEY: &str = "dlflow.watermark.late_output";

/// Turns every aggregate grouped by a group-window function into a [`WindowAggregateExec`] over
/// the aggregate's input (DataFusion's partial and final aggregation, and the repartitioning
/// between them, are replaced by the one operator). Runs before DataFusion's sanity check, which
/// would refuse an aggregate over a stream.
#[derive(Debug, Default)]
pub struct PlanWindows;

impl PhysicalOptimizerRule for PlanWindows {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_down(|node| {
            if let Some(aggregate) = node.downcast_ref::<AggregateExec>()
                && let Some(window) = lift(aggregate)? {
                    return Ok(Transformed::yes(window));
                }
            Ok(Transformed::no(node))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "plan_windows"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

fn window_function(expr: &Arc<dyn PhysicalExpr>) -> Option<(&ScalarFunctionExpr, &WindowFunction)> {
    let function = expr.downcast_ref::<ScalarFunctionExpr>()?;
    Some((function, function.fun().inner().downcast_ref::<WindowFunction>()?))
}

fn lift(top: &AggregateExec) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    if matches!(top.mode(), AggregateMode::Partial) {
        return Ok(None);
    }
    // The aggregate that sees the rows: the partial one below a final one, or this one.
    let mut below = top.input().clone();
    let rows_side: &AggregateExec = if matches!(top.mode(), AggregateMode::Final | AggregateMode::FinalPartitioned) {
        while below.downcast_ref::<RepartitionExec>().is_some() || below.downcast_ref::<CoalescePartitionsExec>().is_some() {
            below = below.children()[0].clone();
        }
        match below.downcast_ref::<AggregateExec>() {
            Some(partial) if matches!(partial.mode(), AggregateMode::Partial) => partial,
            _ => return Ok(None),
        }
    } else {
        top
    };
    let group = rows_side.group_expr();
    let windows: Vec<usize> = group.expr().iter().enumerate().filter(|(_, (e, _))| window_function(e).is_some()).map(|(i, _)| i).collect();
    let [window_index] = windows.as_slice() else {
        if windows.len() > 1 {
            return Err(DataFusionError::Plan("a query can group by one window (TUMBLE, HOP or SESSION), not several".into()));
        }
        return Ok(None);
    };
    if group.has_grouping_set() || group.groups().len() > 1 {
        return Err(DataFusionError::Plan("GROUPING SETS, CUBE and ROLLUP cannot be combined with a group window".into()));
    }
    let Some((function, window)) = window_function(&group.expr()[*window_index].0) else { return Ok(None) };
    let (time, spec) = window.kind().from_physical_args(function.args())?;
    let input = rows_side.input().clone();
    let input_schema = input.schema();
    check_time_type(&time.data_type(&input_schema)?)?;
    let mut keys = Vec::new();
    let mut outputs = Vec::new();
    for (i, (expr, _)) in group.expr().iter().enumerate() {
        if i == *window_index {
            outputs.push(WindowOutput::Window);
        } else {
            outputs.push(WindowOutput::Key(keys.len()));
            keys.push(expr.clone());
        }
    }
    for (function, filter) in rows_side.aggr_expr().iter().zip(rows_side.filter_expr()) {
        match function.fun().inner().downcast_ref::<WindowBound>() {
            Some(bound) if bound.kind() == window.kind() => outputs.push(WindowOutput::Bound { end: bound.is_end() }),
            Some(_) => {
                return Err(DataFusionError::Plan(format!(
                    "{} in a query grouped by {}: the window bound must name the query's window",
                    function.name(),
                    window.name().to_uppercase()
                )));
            }
            None => outputs.push(WindowOutput::Aggregate { function: function.clone(), filter: filter.clone() }),
        }
    }
    let watermark = watermark_of(&time, &input_schema)?;
    let exec = WindowAggregateExec::try_new(input, spec, time, keys, outputs, watermark, top.schema())?;
    Ok(Some(Arc::new(exec)))
}

/// The watermark declared on the event-time column (field metadata set by the stream table).
pub(crate) fn watermark_of(time: &Arc<dyn PhysicalExpr>, schema: &Schema) -> Result<Option<WatermarkSpec>> {
    let Some(column) = time.downcast_ref::<Column>() else { return Ok(None) };
    let metadata = schema.field(column.index()).metadata();
    let number = |key: &str| metadata.get(key).and_then(|v| v.parse::<i64>().ok());
    let Some(delay) = number(WATERMARK_DELAY_KEY) else { return Ok(None) };
    Ok(Some(WatermarkSpec {
        delay,
        idle_timeout: std::time::Duration::from_nanos(number(WATERMARK_IDLE_KEY).unwrap_or(5_000_000_000).max(0) as u64),
        late_output: metadata.get(LATE_OUTPUT_KEY).map(std::path::PathBuf::from),
    }))
}
