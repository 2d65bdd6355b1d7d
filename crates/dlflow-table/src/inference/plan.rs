//! [`PlanPredictions`]: the physical optimizer rule that turns `predict(...)` calls into
//! [`PredictExec`] operators.
//!
//! A projection `SELECT x, predict('m', x) + 1 AS y FROM t` becomes
//!
//! ```text
//! ProjectionExec: expr=[x, __predict_0 + 1 AS y]
//!   PredictExec: __predict_0 := model=..., signature=serving_default, batch_size=1024
//!     <scan of t>
//! ```
//!
//! and a filter `WHERE predict('m', x) > 0` likewise (the filter then drops the added column).
//! Identical calls in one node run once. Calls the rule cannot lift (inside aggregates, join
//! conditions, or with another `predict` in their arguments) still run, inline.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_expr::expressions::{Column, Literal};
use datafusion::physical_expr::projection::ProjectionExpr;
use datafusion::physical_expr::ScalarFunctionExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::{ExecutionPlan, PhysicalExpr};

use super::exec::{PredictColumn, PredictExec};
use super::PredictFunction;
use crate::options::ModelSettings;

/// Lifts `predict(...)` calls out of projections and filters into [`PredictExec`]s; see the
/// [module docs](self). Registered in every dlflow session ([`crate::new_session`]).
#[derive(Debug, Default)]
pub struct PlanPredictions;

impl PhysicalOptimizerRule for PlanPredictions {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        let settings = ModelSettings::of(config);
        plan.transform_up(|node| {
            if let Some(projection) = node.downcast_ref::<ProjectionExec>() {
                return lift_from_projection(projection, &settings);
            }
            if let Some(filter) = node.downcast_ref::<FilterExec>() {
                return lift_from_filter(filter, &settings);
            }
            Ok(Transformed::no(node))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "plan_predictions"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

fn lift_from_projection(projection: &ProjectionExec, settings: &ModelSettings) -> Result<Transformed<Arc<dyn ExecutionPlan>>> {
    let input = projection.input();
    let exprs: Vec<Arc<dyn PhysicalExpr>> = projection.expr().iter().map(|e| e.expr.clone()).collect();
    let Some(lifted) = Lifted::collect(&exprs, input, settings)? else {
        return Ok(Transformed::no(Arc::new(projection.clone())));
    };
    let rewritten = projection
        .expr()
        .iter()
        .map(|e| Ok(ProjectionExpr::new(lifted.rewrite(&e.expr)?, e.alias.clone())))
        .collect::<Result<Vec<_>>>()?;
    Ok(Transformed::yes(Arc::new(ProjectionExec::try_new(rewritten, lifted.exec)?)))
}

fn lift_from_filter(filter: &FilterExec, settings: &ModelSettings) -> Result<Transformed<Arc<dyn ExecutionPlan>>> {
    let input = filter.input();
    let Some(lifted) = Lifted::collect(std::slice::from_ref(filter.predicate()), input, settings)? else {
        return Ok(Transformed::no(Arc::new(filter.clone())));
    };
    let predicate = lifted.rewrite(filter.predicate())?;
    let mut builder = FilterExecBuilder::from(filter).with_input(lifted.exec).with_predicate(predicate);
    if filter.projection().is_none() {
        // Keep the filter's output as it was: the input's columns, not the added ones.
        builder = builder.apply_projection(Some((0..input.schema().fields().len()).collect()))?;
    }
    Ok(Transformed::yes(Arc::new(builder.build()?)))
}

/// The distinct liftable calls of some expressions, as a `PredictExec` over their input.
struct Lifted {
    calls: Vec<Arc<dyn PhysicalExpr>>,
    /// Index of the first added column in the `PredictExec`'s output.
    first: usize,
    exec: Arc<dyn ExecutionPlan>,
}

impl Lifted {
    fn collect(exprs: &[Arc<dyn PhysicalExpr>], input: &Arc<dyn ExecutionPlan>, settings: &ModelSettings) -> Result<Option<Lifted>> {
        let mut calls: Vec<Arc<dyn PhysicalExpr>> = Vec::new();
        for expr in exprs {
            expr.apply(|e| {
                if liftable(e) {
                    if !calls.iter().any(|c| c == e) {
                        calls.push(e.clone());
                    }
                    return Ok(TreeNodeRecursion::Jump);
                }
                Ok(TreeNodeRecursion::Continue)
            })?;
        }
        if calls.is_empty() {
            return Ok(None);
        }
        let schema = input.schema();
        let first = schema.fields().len();
        let columns = calls
            .iter()
            .enumerate()
            .map(|(i, call)| {
                let (function, predict) = as_predict(call).ok_or_else(|| DataFusionError::Internal("plan_predictions: a lifted call is not predict".into()))?;
                let skip = predict.first_input();
                let model_arg = match function.args().first().and_then(|a| a.downcast_ref::<Literal>()) {
                    Some(literal) if skip == 1 => Some(literal.value().clone()),
                    _ => None::<ScalarValue>,
                };
                let args = function.args()[skip..].to_vec();
                let fields = args.iter().map(|a| a.return_field(&schema)).collect::<Result<Vec<_>>>()?;
                let call = predict.call(model_arg.as_ref(), &fields)?;
                Ok(PredictColumn { name: format!("__predict_{}", first + i), call: Arc::new(call), args })
            })
            .collect::<Result<Vec<_>>>()?;
        let exec = PredictExec::try_new(input.clone(), columns, settings.batching(), settings.concurrency())?;
        Ok(Some(Lifted { calls, first, exec: Arc::new(exec) }))
    }

    /// `expr` with each lifted call replaced by its column.
    fn rewrite(&self, expr: &Arc<dyn PhysicalExpr>) -> Result<Arc<dyn PhysicalExpr>> {
        expr.clone()
            .transform_down(|e| match self.calls.iter().position(|c| c == &e) {
                Some(i) => {
                    let index = self.first + i;
                    let column: Arc<dyn PhysicalExpr> = Arc::new(Column::new(&format!("__predict_{index}"), index));
                    Ok(Transformed::new(column, true, TreeNodeRecursion::Jump))
                }
                None => Ok(Transformed::no(e)),
            })
            .map(|t| t.data)
    }
}

/// A `predict` call whose arguments hold no other `predict` call, whose model argument (for the
/// SQL form) is a literal.
fn liftable(expr: &Arc<dyn PhysicalExpr>) -> bool {
    let Some((function, predict)) = as_predict(expr) else { return false };
    let skip = predict.first_input();
    if skip == 1 && function.args().first().is_none_or(|a| a.downcast_ref::<Literal>().is_none()) {
        return false;
    }
    !function.args()[skip..].iter().any(|arg| {
        let mut nested = false;
        let _ = arg.apply(|e| {
            nested |= is_predict(e);
            Ok(if nested { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
        });
        nested
    })
}

fn is_predict(expr: &Arc<dyn PhysicalExpr>) -> bool {
    as_predict(expr).is_some()
}

fn as_predict(expr: &Arc<dyn PhysicalExpr>) -> Option<(&ScalarFunctionExpr, &PredictFunction)> {
    let function = expr.downcast_ref::<ScalarFunctionExpr>()?;
    Some((function, function.fun().inner().downcast_ref::<PredictFunction>()?))
}
