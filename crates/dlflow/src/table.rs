//! [`Table`]: a lazily evaluated table (a DataFusion `DataFrame`) with dlflow's conveniences.

use std::path::Path;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::dataframe::DataFrame;
use datafusion::execution::SendableRecordBatchStream;

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
}

impl Table {
    /// Wrap a DataFusion `DataFrame`.
    pub fn new(df: DataFrame) -> Table {
        Table { df }
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

    /// Check the seed's `input_types` declaration (`"FLOAT_32,INT_64,STRING"`), one type per
    /// column in order; a mismatch names the column.
    pub fn check_input_types(&self, declared: &str) -> Result<()> {
        Ok(dlflow_tf::dtype::check_declared_types("input_types", declared, &self.schema())?)
    }

    /// Run the query and gather every batch in memory.
    pub async fn collect(&self) -> Result<Vec<RecordBatch>> {
        Ok(self.df.clone().collect().await?)
    }

    /// Run the query as a stream of batches.
    pub async fn stream(&self) -> Result<SendableRecordBatchStream> {
        Ok(self.df.clone().execute_stream().await?)
    }

    /// Number of rows.
    pub async fn count(&self) -> Result<usize> {
        Ok(self.df.clone().count().await?)
    }

    /// The first `rows` rows as a text table, vectors abbreviated.
    pub async fn show(&self, rows: usize) -> Result<String> {
        let batches = self.df.clone().limit(0, Some(rows))?.collect().await?;
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
