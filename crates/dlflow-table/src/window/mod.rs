//! Event time on streams: watermarks and group windows.
//!
//! A stream's event time is a TIMESTAMP column; its watermark (how far event time has surely
//! come) is the largest event time seen minus a declared delay, per source partition, the minimum
//! over partitions, idle partitions not holding it back after a timeout. Declared on the stream
//! table:
//!
//! ```sql
//! CREATE UNBOUNDED EXTERNAL TABLE events (ts TIMESTAMP, v DOUBLE) STORED AS JSON LOCATION '-'
//!   OPTIONS ('watermark.column' 'ts', 'watermark.delay' '2s');
//! SELECT TUMBLE_START(ts, INTERVAL '1' SECOND) AS w, COUNT(*) AS n, SUM(v) AS s
//! FROM events GROUP BY TUMBLE(ts, INTERVAL '1' SECOND)
//! ```
//!
//! (or with Flink's `WATERMARK FOR ts AS ts - INTERVAL '2' SECOND` among the columns). Windows fire
//! when the watermark passes their end; late rows are dropped and counted, or written to a side
//! output. The decision and its reasons: docs/decisions/0011-event-time.md.
//!
//! | item | what |
//! |---|---|
//! | [`WindowSpec`] | tumbling, sliding (hop) and session windows |
//! | [`Watermarks`] | the watermark over several partitions, idle ones timed out |
//! | [`WindowState`] | rows assigned to windows per key, aggregated until they fire |
//! | [`WindowAggregateExec`] | the operator; [`PlanWindows`] plans `GROUP BY TUMBLE(...)` into it |
//! | [`window_functions`] | `TUMBLE`, `HOP`, `SESSION` and their `_START` / `_END` bounds |
//! | [`window_rows`] | each window's rows as one batch, as windows fire (models over windows) |

mod ddl;
mod exec;
mod functions;
mod plan;
mod rows;
mod spec;
mod state;
mod watermark;

pub use ddl::rewrite_watermark_clause;
pub use exec::{late_rows, WatermarkSpec, WindowAggregateExec};
pub use functions::{window_functions, WindowBound, WindowFunction, WindowKind};
pub use plan::{PlanWindows, LATE_OUTPUT_KEY, WATERMARK_DELAY_KEY, WATERMARK_IDLE_KEY};
pub use rows::{window_rows, WindowRows};
pub use spec::{interval_nanos, parse_duration, WindowSpec};
pub use state::{Fired, WindowOutput, WindowState};
pub use watermark::Watermarks;
