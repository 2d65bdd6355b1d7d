//! [`DataGen`] (the builder) and [`DataGenTable`] (the DataFusion table it builds).

use std::collections::HashSet;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use super::exec::{DataGenExec, Pacing};
use super::generator::Generator;
use super::random::ColumnRandom;
use crate::error::{Result, TableError};

/// Rows per generated batch unless [`DataGen::batch_size`] says otherwise; DataFusion's own
/// default batch size, so generated batches need no re-chunking downstream.
pub const DEFAULT_BATCH_SIZE: usize = 8192;

/// Builder of a generated table, like Flink's `datagen` connector.
///
/// Every value is a pure function of (seed, column name, row index): the same builder gives
/// the same table whatever the partition count or batch size, and adding a column does not
/// change the others.
///
/// # Example
///
/// ```
/// use dlflow_table::datagen::{DataGen, Generator};
///
/// let table = DataGen::new(1_000)
///     .seed(42)
///     .column("id", Generator::sequence(0))
///     .column("x", Generator::uniform(0.0, 1.0))
///     .column("v", Generator::uniform_vector(16, -1.0, 1.0))
///     .build()?;
/// assert_eq!(table.rows(), 1_000);
/// assert_eq!(table.schema_ref().fields().len(), 3);
/// # Ok::<(), dlflow_table::TableError>(())
/// ```
#[derive(Debug, Clone)]
pub struct DataGen {
    rows: u64,
    /// No end: a stream (`rows` is then the largest row index plus one).
    unbounded: bool,
    /// Rows generated per second at most (Flink's `rows-per-second`); as fast as read if `None`.
    rows_per_second: Option<f64>,
    seed: u64,
    batch_size: usize,
    partitions: Option<usize>,
    columns: Vec<(String, Generator)>,
}

impl DataGen {
    /// A table of `rows` rows, seed 0, no columns yet.
    ///
    /// # Example
    ///
    /// ```
    /// use dlflow_table::datagen::{DataGen, Generator};
    /// let table = DataGen::new(10).column("id", Generator::sequence(0)).build()?;
    /// assert_eq!(table.rows(), 10);
    /// # Ok::<(), dlflow_table::TableError>(())
    /// ```
    pub fn new(rows: u64) -> Self {
        Self {
            rows,
            unbounded: false,
            rows_per_second: None,
            seed: 0,
            batch_size: DEFAULT_BATCH_SIZE,
            partitions: None,
            columns: Vec::new(),
        }
    }

    /// An unbounded (streaming) table with no row limit, like Flink's datagen without
    /// `number-of-rows`; usually paced with [`DataGen::rows_per_second`].
    ///
    /// # Example
    ///
    /// ```
    /// use dlflow_table::datagen::{DataGen, Generator};
    /// let table = DataGen::unbounded().rows_per_second(1000.0).column("x", Generator::uniform(0.0, 1.0)).build()?;
    /// assert!(table.is_unbounded());
    /// # Ok::<(), dlflow_table::TableError>(())
    /// ```
    pub fn unbounded() -> Self {
        Self { unbounded: true, ..Self::new(i64::MAX as u64) }
    }

    /// Generate at most `rows` rows per second (Flink's `rows-per-second`), in small batches
    /// spread evenly over each second.
    pub fn rows_per_second(mut self, rows: f64) -> Self {
        self.rows_per_second = Some(rows);
        self
    }

    /// The seed all columns derive their values from.
    ///
    /// # Example
    ///
    /// ```
    /// use dlflow_table::datagen::{DataGen, Generator};
    /// let table = DataGen::new(5).seed(1).column("x", Generator::uniform(0.0, 1.0)).build()?;
    /// assert_eq!(table.rows(), 5);
    /// # Ok::<(), dlflow_table::TableError>(())
    /// ```
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Rows per record batch (default [`DEFAULT_BATCH_SIZE`]); must be at least 1.
    ///
    /// # Example
    ///
    /// ```
    /// use dlflow_table::datagen::{DataGen, Generator};
    /// let t = DataGen::new(5).batch_size(2).column("id", Generator::sequence(0)).build()?;
    /// assert_eq!(t.rows(), 5);
    /// # Ok::<(), dlflow_table::TableError>(())
    /// ```
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Maximum number of partitions scanned in parallel. By default the session's
    /// `target_partitions` (the number of CPUs); never more than there are batches.
    ///
    /// # Example
    ///
    /// ```
    /// use dlflow_table::datagen::{DataGen, Generator};
    /// let t = DataGen::new(5).partitions(1).column("id", Generator::sequence(0)).build()?;
    /// assert_eq!(t.rows(), 5);
    /// # Ok::<(), dlflow_table::TableError>(())
    /// ```
    pub fn partitions(mut self, partitions: usize) -> Self {
        self.partitions = Some(partitions);
        self
    }

    /// Appends a column named `name` whose values come from `generator`.
    ///
    /// # Example
    ///
    /// ```
    /// use dlflow_table::datagen::{DataGen, Generator};
    /// let t = DataGen::new(5).column("label", Generator::uniform_int(0, 9)).build()?;
    /// assert_eq!(t.schema_ref().field(0).name(), "label");
    /// # Ok::<(), dlflow_table::TableError>(())
    /// ```
    pub fn column(mut self, name: impl Into<String>, generator: Generator) -> Self {
        self.columns.push((name.into(), generator));
        self
    }

    /// Checks every setting and returns the table, or [`TableError::InvalidOption`] naming
    /// the offending option in its SQL spelling (`fields.x.min`, `batch-size`, …).
    ///
    /// # Example
    ///
    /// ```
    /// use dlflow_table::datagen::{DataGen, Generator};
    /// let err = DataGen::new(5).column("x", Generator::uniform(1.0, 0.0)).build().unwrap_err();
    /// assert!(err.to_string().contains("fields.x.min"));
    /// ```
    pub fn build(self) -> Result<DataGenTable> {
        if self.columns.is_empty() {
            return Err(TableError::invalid_option(
                "fields",
                "a datagen table needs at least one column",
            ));
        }
        if self.batch_size == 0 {
            return Err(TableError::invalid_option(
                "batch-size",
                "expected at least 1 row per batch",
            ));
        }
        if let Some(rate) = self.rows_per_second
            && !(rate > 0.0 && rate.is_finite()) {
                return Err(TableError::invalid_option("rows-per-second", format!("{rate}: expected a positive number")));
            }
        if self.partitions == Some(0) {
            return Err(TableError::invalid_option(
                "partitions",
                "expected at least 1 partition",
            ));
        }
        let mut seen = HashSet::new();
        for (name, generator) in &self.columns {
            if !seen.insert(name.as_str()) {
                return Err(TableError::invalid_option(
                    format!("fields.{name}"),
                    format!("column '{name}' is defined twice; expected unique column names"),
                ));
            }
            generator.validate(name, self.rows)?;
        }
        let schema = Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|(name, g)| Field::new(name, g.data_type().clone(), false))
                .collect::<Vec<_>>(),
        ));
        let columns = self
            .columns
            .into_iter()
            .map(|(name, generator)| GeneratedColumn {
                random: ColumnRandom::new(self.seed, &name),
                name,
                generator,
            })
            .collect();
        Ok(DataGenTable {
            schema,
            columns: Arc::new(columns),
            rows: self.rows,
            unbounded: self.unbounded,
            rows_per_second: self.rows_per_second,
            batch_size: self.batch_size,
            partitions: self.partitions,
        })
    }
}

/// One validated column: its name, recipe and random stream.
#[derive(Debug)]
pub(crate) struct GeneratedColumn {
    pub(crate) name: String,
    pub(crate) generator: Generator,
    pub(crate) random: ColumnRandom,
}

/// A generated table: a DataFusion [`TableProvider`] that makes its rows lazily, batch by
/// batch and partition by partition, when scanned. Only projected columns are generated and
/// a `LIMIT` stops generation early, so a 100-million-row table costs no memory until read.
///
/// Build it with [`DataGen`], or in SQL with `CREATE EXTERNAL TABLE … STORED AS DATAGEN`
/// (see [`DataGenFactory`](super::DataGenFactory)).
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use dlflow_table::datagen::{DataGen, Generator};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dlflow_table::Result<()> {
/// let ctx = dlflow_table::new_session();
/// let table = DataGen::new(100).column("id", Generator::sequence(0)).build()?;
/// ctx.register_table("ids", Arc::new(table))?;
/// let batches = ctx.sql("SELECT sum(id) AS s FROM ids").await?.collect().await?;
/// assert_eq!(dlflow_table::format_table(&batches, 10).contains("4950"), true);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct DataGenTable {
    schema: SchemaRef,
    columns: Arc<Vec<GeneratedColumn>>,
    rows: u64,
    unbounded: bool,
    rows_per_second: Option<f64>,
    batch_size: usize,
    partitions: Option<usize>,
}

impl DataGenTable {
    /// Number of rows the table holds.
    ///
    /// # Example
    ///
    /// ```
    /// use dlflow_table::datagen::{DataGen, Generator};
    /// let t = DataGen::new(7).column("id", Generator::sequence(0)).build()?;
    /// assert_eq!(t.rows(), 7);
    /// # Ok::<(), dlflow_table::TableError>(())
    /// ```
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Whether the table is a stream with no end.
    pub fn is_unbounded(&self) -> bool {
        self.unbounded
    }

    /// The table's Arrow schema (all columns non-nullable).
    ///
    /// # Example
    ///
    /// ```
    /// use dlflow_table::datagen::{DataGen, Generator};
    /// let t = DataGen::new(7).column("id", Generator::sequence(0)).build()?;
    /// assert_eq!(t.schema_ref().field(0).name(), "id");
    /// # Ok::<(), dlflow_table::TableError>(())
    /// ```
    pub fn schema_ref(&self) -> &SchemaRef {
        &self.schema
    }
}

#[async_trait]
impl TableProvider for DataGenTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        // Filters are not pushed down (the default), so DataFusion applies them above this
        // scan and `limit` is only passed when no filter sits in between.
        let rows = match limit {
            Some(limit) => self.rows.min(limit as u64),
            None => self.rows,
        };
        let indices: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.columns.len()).collect(),
        };
        let schema = Arc::new(self.schema.project(&indices)?);
        let max_partitions = self
            .partitions
            .unwrap_or_else(|| state.config().target_partitions());
        let pacing = Pacing { unbounded: self.unbounded, rows_per_second: self.rows_per_second };
        // A paced or endless table is one partition: its rate is the table's rate.
        let max_partitions = if pacing.is_paced() { 1 } else { max_partitions };
        Ok(Arc::new(DataGenExec::new(
            schema,
            Arc::clone(&self.columns),
            indices,
            rows,
            self.batch_size,
            max_partitions,
            pacing,
        )))
    }
}
