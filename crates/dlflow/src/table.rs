//! [`Table`]: a lazily evaluated table (a DataFusion `DataFrame`) with dlflow's conveniences.

use std::path::Path;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::dataframe::DataFrame;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::ExecutionPlanProperties;
use futures::TryStreamExt;
use std::sync::Arc;

use crate::error::Result;

/// A table: a query over sources, not yet run. Running it (`collect`, `write`, `stream`)
/// streams batches through every step, with bounded memory for streaming steps.
///
/// ```no_run
/// # async fn demo(table: dlflow::Table) -> dlflow::Result<()> {
/// table.check_input_types("FLOAT_32,FLOAT_64")?; // the seed's `input_types`
/// let rows = table.write("out.parquet", |_batch| {}).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Table {
    df: DataFrame,
    /// Read partitions in order (a bounded source's row order) rather than merged as they come.
    in_order: bool,
}

impl Table {
    /// Wrap a DataFusion `DataFrame`.
    pub fn new(df: DataFrame) -> Table {
        Table { df, in_order: false }
    }

    /// Wrap a DataFusion `DataFrame` whose rows should come out in the order of its bounded
    /// source (partition 0 first, then 1, …; each read ahead on its own task, see
    /// [`dlflow_table::ordered`]). On an unbounded source partitions are merged as records come,
    /// each partition in order.
    pub fn in_order(df: DataFrame) -> Table {
        Table { df, in_order: true }
    }

    /// The Arrow schema.
    pub fn schema(&self) -> SchemaRef {
        std::sync::Arc::new(self.df.schema().as_arrow().clone())
    }

    /// The DataFusion `DataFrame`, for anything dlflow does not wrap.
    pub fn dataframe(&self) -> &DataFrame {
        &self.df
    }

    /// Unwrap into the DataFusion `DataFrame`.
    pub fn into_dataframe(self) -> DataFrame {
        self.df
    }

    /// The same table, its sources read in record batches of at most `rows` rows (DataFusion's
    /// `batch_size`, 8192 by default). Smaller batches keep memory low for wide rows: 8192 rows
    /// of 784 floats are 25 MB a batch, and a query holds several at once.
    pub fn with_batch_rows(self, rows: usize) -> Table {
        let (mut state, plan) = self.df.into_parts();
        *state.config_mut() = state.config().clone().with_batch_size(rows.max(1));
        Table { df: DataFrame::new(state, plan), in_order: self.in_order }
    }

    /// How many rows a batch of this table may hold to stay within `bytes`: a multiple of
    /// `unit` rows (at least one `unit`, e.g. a model's batch size, so that batches split evenly
    /// into its runs), when that is fewer than the session's batch size; `None` when the
    /// session's batch size already fits, or a column has no fixed width.
    pub fn batch_rows_within(&self, bytes: usize, unit: usize) -> Option<usize> {
        let configured = self.df.task_ctx().session_config().batch_size();
        let row_bytes: usize = self.df.schema().fields().iter().map(|f| fixed_width(f.data_type())).sum::<Option<usize>>()?;
        let unit = unit.max(1);
        let rows = (bytes / row_bytes.max(1) / unit).max(1) * unit;
        (rows < configured).then_some(rows)
    }

    /// Check the seed's `input_types` declaration (`"FLOAT_32,INT_64,STRING"`), one type per
    /// column in order; a mismatch names the column.
    pub fn check_input_types(&self, declared: &str) -> Result<()> {
        Ok(dlflow_tf::dtype::check_declared_types("input_types", declared, &self.schema())?)
    }

    /// Run the query and gather every batch in memory.
    pub async fn collect(&self) -> Result<Vec<RecordBatch>> {
        Ok(self.stream().await?.try_collect().await?)
    }

    /// Run the query as a stream of batches.
    pub async fn stream(&self) -> Result<SendableRecordBatchStream> {
        if !self.in_order {
            return Ok(self.df.clone().execute_stream().await?);
        }
        let context = Arc::new(self.df.task_ctx());
        let plan = self.df.clone().create_physical_plan().await?;
        if plan.boundedness().is_unbounded() {
            return Ok(datafusion::physical_plan::execute_stream(plan, context)?);
        }
        Ok(dlflow_table::ordered::execute_in_order(plan, context, dlflow_table::ordered::DEFAULT_LOOKAHEAD)?)
    }

    /// The rows of each window of event-time column `time` (and `keys`), one batch per window
    /// and key, as windows fire: when the watermark declared on `time` passes their end (on a
    /// bounded table, all at its end). Feed them to a model with [`Model::predict_batch`](crate::Model::predict_batch).
    ///
    /// ```no_run
    /// # async fn demo(events: dlflow::Table) -> dlflow::Result<()> {
    /// use std::time::Duration;
    /// use futures::StreamExt;
    /// use dlflow::WindowSpec;
    /// let model = dlflow::Model::load("models/linear")?;
    /// let mut windows = events.windows(WindowSpec::tumble(Duration::from_secs(60)), "ts", &["door"]).await?;
    /// while let Some(window) = windows.next().await {
    ///     let scored = model.predict_batch(&window?.rows)?; // the window's rows, scored as one batch
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn windows(&self, spec: dlflow_table::window::WindowSpec, time: &str, keys: &[&str]) -> Result<futures::stream::BoxStream<'static, Result<dlflow_table::window::WindowRows>>> {
        use futures::StreamExt;
        let windows = dlflow_table::window::window_rows(self.df.clone(), spec, time, keys).await?;
        Ok(windows.map(|w| w.map_err(crate::Error::from)).boxed())
    }

    /// Whether the table is a stream: its source never ends.
    pub async fn is_unbounded(&self) -> Result<bool> {
        Ok(self.df.clone().create_physical_plan().await?.boundedness().is_unbounded())
    }

    /// Number of rows.
    pub async fn count(&self) -> Result<usize> {
        Ok(self.df.clone().count().await?)
    }

    /// The first `rows` rows as a text table, vectors abbreviated.
    pub async fn show(&self, rows: usize) -> Result<String> {
        let batches = if self.in_order {
            // A LIMIT would merge the partitions first; read in order and stop after `rows`.
            let mut stream = self.stream().await?;
            let (mut batches, mut kept) = (Vec::new(), 0);
            while kept < rows {
                let Some(batch) = stream.try_next().await? else { break };
                let take = batch.num_rows().min(rows - kept);
                batches.push(batch.slice(0, take));
                kept += take;
            }
            batches
        } else {
            self.df.clone().limit(0, Some(rows))?.collect().await?
        };
        Ok(dlflow_table::format_table(&batches, rows))
    }

    /// Write the table to `path` (format from the extension), streaming; `on_batch` sees each
    /// batch as it is written (for progress). The file appears only when complete: on error
    /// nothing is left at `path`. Returns the number of rows written.
    pub async fn write(&self, path: impl AsRef<Path>, on_batch: impl FnMut(&RecordBatch) + Send) -> Result<u64> {
        let stream = self.stream().await?;
        Ok(dlflow_table::write_stream(stream, path.as_ref(), on_batch).await?)
    }
}

/// Bytes a value of `data_type` takes in a batch, where that is fixed.
fn fixed_width(data_type: &DataType) -> Option<usize> {
    match data_type {
        DataType::FixedSizeList(item, size) => Some(fixed_width(item.data_type())? * usize::try_from(*size).ok()?),
        DataType::Boolean => Some(1),
        other => other.primitive_width(),
    }
}
