//! The environment: a DataFusion session with dlflow's sources, sinks and models.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionConfig;
use dlflow_table::datagen::DataGen;
use dlflow_table::inference::{ModelRegistry, PredictFunction};

use crate::error::{Error, Result};
use crate::model::Model;
use crate::table::Table;

/// Where tables come from and models are known: dlflow's counterpart of Flink's
/// `StreamTableEnvironment`.
///
/// ```no_run
/// # async fn demo() -> dlflow::Result<()> {
/// use dlflow::{Environment, Model};
/// let env = Environment::new();
/// env.register_model("linear", &Model::load("models/linear")?);
/// let table = env
///     .sql("CREATE EXTERNAL TABLE t (x FLOAT) STORED AS DATAGEN LOCATION 'datagen://' \
///           OPTIONS ('number-of-rows' '1000');
///           SELECT x, predict('linear', x) AS y FROM t")
///     .await?;
/// println!("{}", table.show(5).await?);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Environment {
    ctx: SessionContext,
    models: Arc<ModelRegistry>,
}

impl Default for Environment {
    fn default() -> Self {
        Self::new()
    }
}

impl Environment {
    /// A local environment using every core.
    pub fn new() -> Environment {
        Self::with_config(SessionConfig::new())
    }

    /// An environment with explicit DataFusion settings (batch size, partitions, ...).
    pub fn with_config(config: SessionConfig) -> Environment {
        let ctx = dlflow_table::new_session_with_config(config);
        let models = Arc::new(ModelRegistry::default());
        ctx.register_udf(ScalarUDF::new_from_impl(PredictFunction::sql(models.clone())));
        Environment { ctx, models }
    }

    /// The DataFusion session underneath, for anything dlflow does not wrap.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Run SQL. Several statements may be separated by `;` (DDL such as
    /// `CREATE EXTERNAL TABLE ... STORED AS DATAGEN` first); the table of the last one is
    /// returned.
    pub async fn sql(&self, sql: &str) -> Result<Table> {
        let statements = split_statements(sql);
        let Some((last, ddl)) = statements.split_last() else {
            return Err(Error::Invalid("empty SQL: expected a query such as SELECT * FROM t".into()));
        };
        for statement in ddl {
            // Flink's `WATERMARK FOR ts AS ts - INTERVAL ...` column clause, as table options.
            let statement = dlflow_table::window::rewrite_watermark_clause(statement)?;
            self.ctx.sql(&statement).await?.collect().await?;
        }
        let last = dlflow_table::window::rewrite_watermark_clause(last)?;
        Ok(Table::new(self.ctx.sql(&last).await?))
    }

    /// Register a file (or a directory of files of one format) as table `name`; the format
    /// comes from the extension (`.csv`, `.parquet`, `.json`/`.jsonl`, `.arrow`).
    pub async fn register_file(&self, name: &str, path: impl AsRef<Path>) -> Result<()> {
        Ok(dlflow_table::register_file(&self.ctx, name, path.as_ref()).await?)
    }

    /// Read a file as a table (registered under its file stem, e.g. `points` for `points.csv`).
    pub async fn read_file(&self, path: impl AsRef<Path>) -> Result<Table> {
        let path = path.as_ref();
        let name = table_name_for(path);
        self.register_file(&name, path).await?;
        self.table(&name).await
    }

    /// The registered table `name`.
    pub async fn table(&self, name: &str) -> Result<Table> {
        Ok(Table::new(self.ctx.table(name).await?))
    }

    /// A generated table (see [`DataGen`]).
    pub fn datagen(&self, generator: DataGen) -> Result<Table> {
        let table = generator.build()?;
        Ok(Table::new(self.ctx.read_table(Arc::new(table))?))
    }

    /// A table over record batches already in memory.
    pub fn from_batches(&self, batches: Vec<RecordBatch>) -> Result<Table> {
        let schema = batches
            .first()
            .map(|b| b.schema())
            .ok_or_else(|| Error::Invalid("from_batches needs at least one batch (for the schema)".into()))?;
        let table = MemTable::try_new(schema, vec![batches])?;
        Ok(Table::new(self.ctx.read_table(Arc::new(table))?))
    }

    /// Make `model` callable from SQL as `predict('name', ...)`.
    pub fn register_model(&self, name: impl Into<String>, model: &Model) {
        self.models.register(name, model.handle().clone());
    }

    /// Names of the registered models.
    pub fn model_names(&self) -> Vec<String> {
        self.models.names()
    }
}

/// A SQL identifier for a file's table: its stem, with anything but letters, digits and `_`
/// replaced.
fn table_name_for(path: &Path) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "input".into());
    let name: String = stem.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c.to_ascii_lowercase() } else { '_' }).collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) || name.is_empty() {
        format!("t_{name}")
    } else {
        name
    }
}

/// Split a script on `;` outside quotes and comments; drop empty statements.
fn split_statements(sql: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '-') if chars.peek() == Some(&'-') => {
                // A line comment: skip to the end of the line.
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                current.push('\n');
                continue;
            }
            (None, ';') => {
                statements.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    statements.push(current);
    statements.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_outside_quotes_and_comments() {
        let parts = split_statements("CREATE t OPTIONS ('a;b' 'c'); -- a comment; here\n SELECT 1;;");
        assert_eq!(parts, vec!["CREATE t OPTIONS ('a;b' 'c')".to_string(), "SELECT 1".to_string()]);
    }

    #[test]
    fn table_names_are_identifiers() {
        assert_eq!(table_name_for(Path::new("/x/My-Data.v2.csv")), "my_data_v2");
        assert_eq!(table_name_for(Path::new("2024.parquet")), "t_2024");
    }
}
