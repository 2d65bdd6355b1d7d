//! Flink's group-window functions in SQL: `GROUP BY TUMBLE(ts, INTERVAL '1' SECOND)` with
//! `TUMBLE_START(...)` / `TUMBLE_END(...)` in the select list, and likewise `HOP(ts, slide, size)`
//! and `SESSION(ts, gap)`.
//!
//! The functions only name the window; [`PlanWindows`](super::PlanWindows) turns an aggregate
//! grouped by one of them into a [`WindowAggregateExec`](super::WindowAggregateExec), which
//! computes windows, starts and ends, and fires each window when the watermark passes its end.

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use datafusion::physical_expr::expressions::Literal;
use datafusion::physical_plan::PhysicalExpr;

use super::spec::{interval_nanos, WindowSpec};

/// Which group window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WindowKind {
    /// `TUMBLE(ts, size)`
    Tumble,
    /// `HOP(ts, slide, size)`
    Hop,
    /// `SESSION(ts, gap)`
    Session,
}

impl WindowKind {
    const ALL: [WindowKind; 3] = [WindowKind::Tumble, WindowKind::Hop, WindowKind::Session];

    fn name(self) -> &'static str {
        match self {
            WindowKind::Tumble => "tumble",
            WindowKind::Hop => "hop",
            WindowKind::Session => "session",
        }
    }

    fn intervals(self) -> usize {
        match self {
            WindowKind::Hop => 2,
            _ => 1,
        }
    }

    fn usage(self) -> &'static str {
        match self {
            WindowKind::Tumble => "TUMBLE(ts, INTERVAL '1' SECOND)",
            WindowKind::Hop => "HOP(ts, INTERVAL '1' SECOND, INTERVAL '5' SECOND) (slide, then size)",
            WindowKind::Session => "SESSION(ts, INTERVAL '30' SECOND)",
        }
    }

    /// The window spec from the interval arguments.
    pub fn spec(self, intervals: &[ScalarValue]) -> Result<WindowSpec> {
        if intervals.len() != self.intervals() {
            return Err(DataFusionError::Plan(format!("expected {}", self.usage())));
        }
        let what = self.name().to_uppercase();
        let spec = match self {
            WindowKind::Tumble => WindowSpec::Tumble { size: interval_nanos(&intervals[0], &what)? },
            WindowKind::Hop => WindowSpec::Hop { slide: interval_nanos(&intervals[0], &what)?, size: interval_nanos(&intervals[1], &what)? },
            WindowKind::Session => WindowSpec::Session { gap: interval_nanos(&intervals[0], &what)? },
        };
        spec.validate()?;
        Ok(spec)
    }

    /// The time argument and the window of a physical call of this function (its interval
    /// arguments must be literals).
    pub fn from_physical_args(self, args: &[Arc<dyn PhysicalExpr>]) -> Result<(Arc<dyn PhysicalExpr>, WindowSpec)> {
        let Some((time, intervals)) = args.split_first() else {
            return Err(DataFusionError::Plan(format!("expected {}", self.usage())));
        };
        let intervals = intervals
            .iter()
            .map(|a| a.downcast_ref::<Literal>().map(|l| l.value().clone()).ok_or_else(|| DataFusionError::Plan(format!("{}: the interval must be a literal", self.usage()))))
            .collect::<Result<Vec<_>>>()?;
        Ok((time.clone(), self.spec(&intervals)?))
    }
}

/// `TUMBLE(ts, size)`, `HOP(ts, slide, size)`, `SESSION(ts, gap)`: the window a row is grouped by.
/// Its value is the window's start (a timestamp of `ts`'s type).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct WindowFunction {
    kind: WindowKind,
    signature: Signature,
}

impl WindowFunction {
    /// The function of `kind`.
    pub fn new(kind: WindowKind) -> WindowFunction {
        WindowFunction { kind, signature: Signature::variadic_any(Volatility::Immutable) }
    }

    /// Which window.
    pub fn kind(&self) -> WindowKind {
        self.kind
    }
}

fn check_time(kind_name: &str, usage: &str, arg_types: &[DataType], expected: usize) -> Result<DataType> {
    match arg_types.first() {
        Some(t @ DataType::Timestamp(_, _)) if arg_types.len() == expected => Ok(t.clone()),
        Some(other) if arg_types.len() == expected => Err(DataFusionError::Plan(format!("{kind_name}: the first argument is {other}; expected a TIMESTAMP column: {usage}"))),
        _ => Err(DataFusionError::Plan(format!("{kind_name}: expected {usage}"))),
    }
}

impl ScalarUDFImpl for WindowFunction {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        check_time(&self.kind.name().to_uppercase(), self.kind.usage(), arg_types, 1 + self.kind.intervals())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Err(DataFusionError::Plan(format!(
            "{} groups rows into windows: use it in GROUP BY, with {}_START(...) or {}_END(...) in the select list",
            self.kind.usage(),
            self.kind.name().to_uppercase(),
            self.kind.name().to_uppercase()
        )))
    }
}

/// `TUMBLE_START(ts, size)`, `TUMBLE_END(ts, size)` and the `HOP_`/`SESSION_` ones: the bounds of
/// the window a group is. Aggregates, so they are valid in the select list of a grouped query;
/// [`WindowAggregateExec`](super::WindowAggregateExec) fills them in.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct WindowBound {
    kind: WindowKind,
    end: bool,
    name: String,
    signature: Signature,
}

impl WindowBound {
    fn new(kind: WindowKind, end: bool) -> WindowBound {
        let name = format!("{}_{}", kind.name(), if end { "end" } else { "start" });
        WindowBound { kind, end, name, signature: Signature::variadic_any(Volatility::Immutable) }
    }

    /// Which window.
    pub fn kind(&self) -> WindowKind {
        self.kind
    }

    /// Whether this is the end (else the start).
    pub fn is_end(&self) -> bool {
        self.end
    }
}

impl AggregateUDFImpl for WindowBound {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        check_time(&self.name.to_uppercase(), self.kind.usage(), arg_types, 1 + self.kind.intervals())
    }

    fn accumulator(&self, _args: AccumulatorArgs<'_>) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(Unplanned(self.name.to_uppercase(), self.kind.usage())))
    }
}

/// What a window bound computes outside a window aggregate: an error that says so.
#[derive(Debug)]
struct Unplanned(String, &'static str);

impl Accumulator for Unplanned {
    fn update_batch(&mut self, _values: &[ArrayRef]) -> Result<()> {
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Err(DataFusionError::Plan(format!("{} needs the query grouped by its window: GROUP BY {}", self.0, self.1)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Null])
    }

    fn merge_batch(&mut self, _states: &[ArrayRef]) -> Result<()> {
        Ok(())
    }
}

/// The window functions and bounds, for registering in a session.
pub fn window_functions() -> (Vec<ScalarUDF>, Vec<AggregateUDF>) {
    let scalars = WindowKind::ALL.iter().map(|k| ScalarUDF::new_from_impl(WindowFunction::new(*k))).collect();
    let aggregates = WindowKind::ALL.iter().flat_map(|k| [false, true].map(|end| AggregateUDF::new_from_impl(WindowBound::new(*k, end)))).collect();
    (scalars, aggregates)
}
