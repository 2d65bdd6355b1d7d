//! [`WindowState`]: rows assigned to windows per key, aggregated (or kept) until their window fires.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, UInt32Array};
use arrow::compute::{cast, filter_record_batch, take};
use arrow::datatypes::{DataType, Int64Type, SchemaRef, TimeUnit};
use arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_plan::PhysicalExpr;

use super::spec::WindowSpec;

/// What one output column of a window aggregate is.
#[derive(Debug, Clone)]
pub enum WindowOutput {
    /// A grouping value: the window (its start) or a key expression (by index into the keys).
    Window,
    /// The `i`-th key expression.
    Key(usize),
    /// The window's start (`*_START`) or end (`*_END`).
    Bound {
        /// End rather than start.
        end: bool,
    },
    /// An aggregate function, fed its argument expressions, rows passing its filter.
    Aggregate {
        /// The aggregate.
        function: Arc<AggregateFunctionExpr>,
        /// `FILTER (WHERE ...)`, if any.
        filter: Option<Arc<dyn PhysicalExpr>>,
    },
}

/// The rows of one window and key: aggregated as they come, or kept whole.
enum Group {
    Aggregates(Vec<Option<Box<dyn Accumulator>>>),
    Rows(Vec<RecordBatch>),
}

/// A fired window: its bounds, its key row, what it holds.
pub struct Fired {
    /// Window start, nanoseconds.
    pub start: i64,
    /// Window end (exclusive), nanoseconds.
    pub end: i64,
    key: OwnedRow,
    group: Group,
}

impl Fired {
    /// The window's rows, when the state keeps rows.
    pub fn rows(&self) -> &[RecordBatch] {
        match &self.group {
            Group::Rows(rows) => rows,
            Group::Aggregates(_) => &[],
        }
    }
}

/// A session: `[start, last + gap)` and its group.
struct Session {
    start: i64,
    last: i64,
    group: Group,
}

/// Windows of event time, per key, until they fire. See [`super::WindowAggregateExec`].
pub struct WindowState {
    spec: WindowSpec,
    time: Arc<dyn PhysicalExpr>,
    keys: Vec<Arc<dyn PhysicalExpr>>,
    outputs: Vec<WindowOutput>,
    keep_rows: bool,
    converter: RowConverter,
    /// Tumbling and sliding windows: by (end, start), so they fire in order of end.
    windows: BTreeMap<(i64, i64), HashMap<OwnedRow, Group>>,
    /// Session windows, per key, sorted by start.
    sessions: HashMap<OwnedRow, Vec<Session>>,
    /// Windows ending at or before this have fired: rows that belong only to them are late.
    fired_up_to: i64,
    late: u64,
}

impl WindowState {
    /// State for windows `spec` over the event time `time`, grouped by `keys` too, computing
    /// `outputs` (or, with `keep_rows`, keeping each window's rows whole).
    pub fn new(spec: WindowSpec, time: Arc<dyn PhysicalExpr>, keys: Vec<Arc<dyn PhysicalExpr>>, key_types: Vec<DataType>, outputs: Vec<WindowOutput>, keep_rows: bool) -> Result<WindowState> {
        let converter = RowConverter::new(key_types.into_iter().map(SortField::new).collect())?;
        Ok(WindowState {
            spec,
            time,
            keys,
            outputs,
            keep_rows,
            converter,
            windows: BTreeMap::new(),
            sessions: HashMap::new(),
            fired_up_to: i64::MIN,
            late: 0,
        })
    }

    /// Rows dropped so far because their windows had fired.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// Adds `batch`'s rows to their windows; returns the late rows (whose windows all fired), and
    /// the largest event time of the batch.
    pub fn insert(&mut self, batch: &RecordBatch) -> Result<(Option<RecordBatch>, Option<i64>)> {
        if batch.num_rows() == 0 {
            return Ok((None, None));
        }
        let times = event_times(&self.time.evaluate(batch)?.into_array(batch.num_rows())?)?;
        let key_columns = self.keys.iter().map(|k| k.evaluate(batch)?.into_array(batch.num_rows())).collect::<Result<Vec<_>>>()?;
        let rows = self.converter.convert_columns(&key_columns)?;
        // Global windows have no key columns, so `rows` has no rows: every record gets the one
        // empty key.
        let parser = self.converter.parser();
        let no_key = parser.parse(&[]).owned();
        let max_time = times.iter().flatten().max().copied();
        let mut late = vec![false; batch.num_rows()];
        // (window, key) -> row indices, in row order.
        let mut assigned: HashMap<((i64, i64), OwnedRow), Vec<u32>> = HashMap::new();
        let mut session_rows: Vec<(OwnedRow, i64, u32)> = Vec::new();
        for (i, time) in times.iter().enumerate() {
            let Some(time) = *time else {
                late[i] = true; // no event time: it can be in no window
                continue;
            };
            if self.spec.last_end(time) <= self.fired_up_to {
                late[i] = true;
                continue;
            }
            let key = if self.keys.is_empty() { no_key.clone() } else { rows.row(i).owned() };
            match self.spec {
                WindowSpec::Session { .. } => session_rows.push((key, time, i as u32)),
                _ => {
                    for window in self.spec.windows_of(time) {
                        if window.1 > self.fired_up_to {
                            assigned.entry((window, key.clone())).or_default().push(i as u32);
                        }
                    }
                }
            }
        }
        for ((window, key), indices) in assigned {
            let slice = take_rows(batch, &indices)?;
            let fresh = self.new_group()?;
            let group = self.windows.entry((window.1, window.0)).or_default().entry(key).or_insert(fresh);
            accumulate(group, &self.outputs, &slice)?;
        }
        for (key, time, index) in session_rows {
            self.insert_session(key, time, &take_rows(batch, &[index])?)?;
        }
        let late_count = late.iter().filter(|l| **l).count();
        self.late += late_count as u64;
        let late_rows = if late_count > 0 { Some(filter_record_batch(batch, &BooleanArray::from(late))?) } else { None };
        Ok((late_rows, max_time))
    }

    fn new_group(&self) -> Result<Group> {
        if self.keep_rows {
            return Ok(Group::Rows(Vec::new()));
        }
        let accumulators = self
            .outputs
            .iter()
            .map(|o| match o {
                WindowOutput::Aggregate { function, .. } => function.create_accumulator().map(Some),
                _ => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Group::Aggregates(accumulators))
    }

    /// A row at `time` opens `[time, time + gap)`, which swallows every session of its key it
    /// overlaps.
    fn insert_session(&mut self, key: OwnedRow, time: i64, row: &RecordBatch) -> Result<()> {
        let WindowSpec::Session { gap } = self.spec else { return Ok(()) };
        let mut group = self.new_group()?;
        accumulate(&mut group, &self.outputs, row)?;
        let mut merged = Session { start: time, last: time, group };
        let sessions = self.sessions.entry(key).or_default();
        let mut kept = Vec::with_capacity(sessions.len());
        for session in sessions.drain(..) {
            let overlaps = session.start < merged.last + gap && merged.start < session.last + gap;
            if overlaps {
                merged.start = merged.start.min(session.start);
                merged.last = merged.last.max(session.last);
                merge(&mut merged.group, session.group)?;
            } else {
                kept.push(session);
            }
        }
        kept.push(merged);
        kept.sort_by_key(|s| s.start);
        *sessions = kept;
        Ok(())
    }

    /// Takes the windows that end at or before `watermark`, in order of end.
    pub fn fire(&mut self, watermark: i64) -> Vec<Fired> {
        if watermark <= self.fired_up_to {
            return Vec::new();
        }
        self.fired_up_to = watermark;
        let mut fired = Vec::new();
        while let Some(entry) = self.windows.first_entry() {
            let (end, start) = *entry.key();
            if end > watermark {
                break;
            }
            for (key, group) in entry.remove() {
                fired.push(Fired { start, end, key, group });
            }
        }
        if let WindowSpec::Session { gap } = self.spec {
            for (key, sessions) in self.sessions.iter_mut() {
                let (due, open): (Vec<Session>, Vec<Session>) = sessions.drain(..).partition(|s| s.last + gap <= watermark);
                *sessions = open;
                fired.extend(due.into_iter().map(|s| Fired { start: s.start, end: s.last + gap, key: key.clone(), group: s.group }));
            }
            self.sessions.retain(|_, s| !s.is_empty());
            fired.sort_by_key(|f| (f.end, f.start));
        }
        fired
    }

    /// Fired windows as rows of `schema`: one row per window and key.
    pub fn output(&self, schema: &SchemaRef, time_type: &DataType, fired: Vec<Fired>) -> Result<RecordBatch> {
        let keys: Vec<ArrayRef> = if self.keys.is_empty() { Vec::new() } else { self.converter.convert_rows(fired.iter().map(|f| f.key.row()))? };
        let starts = timestamps(fired.iter().map(|f| f.start), time_type)?;
        let ends = timestamps(fired.iter().map(|f| f.end), time_type)?;
        let mut groups: Vec<Group> = fired.into_iter().map(|f| f.group).collect();
        let mut columns = Vec::with_capacity(self.outputs.len());
        for (index, output) in self.outputs.iter().enumerate() {
            let column = match output {
                WindowOutput::Window | WindowOutput::Bound { end: false } => starts.clone(),
                WindowOutput::Bound { end: true } => ends.clone(),
                WindowOutput::Key(k) => keys[*k].clone(),
                WindowOutput::Aggregate { .. } => {
                    let values = groups
                        .iter_mut()
                        .map(|g| match g {
                            Group::Aggregates(accumulators) => accumulators[index].as_mut().map_or(Ok(ScalarValue::Null), |a| a.evaluate()),
                            Group::Rows(_) => Ok(ScalarValue::Null),
                        })
                        .collect::<Result<Vec<_>>>()?;
                    let expected = schema.field(index).data_type();
                    let array = if values.is_empty() { arrow::array::new_empty_array(expected) } else { ScalarValue::iter_to_array(values)? };
                    if array.data_type() == expected { array } else { cast(&array, expected)? }
                }
            };
            let expected = schema.field(index).data_type();
            columns.push(if column.data_type() == expected { column } else { cast(&column, expected)? });
        }
        Ok(RecordBatch::try_new_with_options(schema.clone(), columns, &arrow::array::RecordBatchOptions::new().with_row_count(Some(groups.len())))?)
    }
}

fn take_rows(batch: &RecordBatch, indices: &[u32]) -> Result<RecordBatch> {
    let indices = UInt32Array::from(indices.to_vec());
    let columns = batch.columns().iter().map(|c| take(c, &indices, None)).collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new_with_options(batch.schema(), columns, &arrow::array::RecordBatchOptions::new().with_row_count(Some(indices.len())))?)
}

/// Adds `rows` to `group`: each aggregate gets its arguments (rows passing its filter).
fn accumulate(group: &mut Group, outputs: &[WindowOutput], rows: &RecordBatch) -> Result<()> {
    match group {
        Group::Rows(kept) => kept.push(rows.clone()),
        Group::Aggregates(accumulators) => {
            for (output, accumulator) in outputs.iter().zip(accumulators.iter_mut()) {
                let (WindowOutput::Aggregate { function, filter }, Some(accumulator)) = (output, accumulator) else { continue };
                let rows = match filter {
                    Some(filter) => {
                        let mask = filter.evaluate(rows)?.into_array(rows.num_rows())?;
                        let mask = mask.as_boolean_opt().ok_or_else(|| DataFusionError::Internal("a FILTER clause is not boolean".into()))?;
                        filter_record_batch(rows, mask)?
                    }
                    None => rows.clone(),
                };
                let args = function.expressions().iter().map(|e| e.evaluate(&rows)?.into_array(rows.num_rows())).collect::<Result<Vec<_>>>()?;
                accumulator.update_batch(&args)?;
            }
        }
    }
    Ok(())
}

/// Folds `other` into `into` (two sessions that met).
fn merge(into: &mut Group, other: Group) -> Result<()> {
    match (into, other) {
        (Group::Rows(a), Group::Rows(b)) => a.extend(b),
        (Group::Aggregates(a), Group::Aggregates(b)) => {
            for (a, b) in a.iter_mut().zip(b) {
                if let (Some(a), Some(mut b)) = (a.as_mut(), b) {
                    let state = b.state()?.into_iter().map(|s| s.to_array()).collect::<Result<Vec<_>>>()?;
                    a.merge_batch(&state)?;
                }
            }
        }
        _ => return Err(DataFusionError::Internal("sessions of different kinds".into())),
    }
    Ok(())
}

/// Event times as nanoseconds since the epoch.
fn event_times(column: &ArrayRef) -> Result<Vec<Option<i64>>> {
    if !matches!(column.data_type(), DataType::Timestamp(_, _)) {
        return Err(DataFusionError::Plan(format!("window: the event time is {}; expected a TIMESTAMP", column.data_type())));
    }
    let nanos = cast(column, &DataType::Timestamp(TimeUnit::Nanosecond, None))?;
    let nanos = cast(&nanos, &DataType::Int64)?;
    Ok(nanos.as_primitive::<Int64Type>().iter().collect())
}

/// Nanosecond times as an array of `time_type`.
fn timestamps(values: impl Iterator<Item = i64>, time_type: &DataType) -> Result<ArrayRef> {
    let nanos: ArrayRef = Arc::new(arrow::array::TimestampNanosecondArray::from_iter_values(values));
    Ok(cast(&nanos, time_type)?)
}
