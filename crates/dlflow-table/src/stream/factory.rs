//! Stream tables from SQL DDL, and from a [`StreamSpec`] in Rust.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::catalog::{Session, TableProvider, TableProviderFactory};
use datafusion::datasource::provider::DefaultTableFactory;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::CreateExternalTable;
use datafusion::physical_plan::streaming::PartitionStream;

use super::follow::FollowPartition;
use super::kafka::{client, partitions, KafkaPartition};
use super::socket::{StdinPartition, TcpPartition};
use super::spec::{Location, StreamSpec};
use crate::error::Result;

/// The unbounded table `spec` describes: one DataFusion partition per source partition (a
/// Kafka partition, a socket, a followed directory), each read on its own, so an idle
/// partition never holds back another.
///
/// ```no_run
/// use std::sync::Arc;
/// use arrow::datatypes::{DataType, Field, Schema};
/// use dlflow_table::stream::{stream_table, Location, StreamSpec};
///
/// # async fn demo() -> dlflow_table::Result<()> {
/// let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Float32, true)]));
/// let table = stream_table(StreamSpec::new(Location::Stdin, schema)).await?;
/// let ctx = dlflow_table::new_session();
/// ctx.register_table("events", table)?;
/// # Ok(()) }
/// ```
pub async fn stream_table(mut spec: StreamSpec) -> Result<Arc<dyn TableProvider>> {
    if let Some(watermark) = &spec.watermark {
        spec.schema = Arc::new(watermark.apply(&spec.schema)?);
    }
    let schema = spec.schema.clone();
    // Checks the columns (position columns, the event-time column) before anything is read.
    super::socket::decoder(&spec, 0)?;
    let partitions: Vec<Arc<dyn PartitionStream>> = match spec.location.clone() {
        Location::Stdin => vec![Arc::new(StdinPartition::new(spec))],
        Location::Tcp(address) => vec![Arc::new(TcpPartition::new(spec, address))],
        Location::Directory(dir) => vec![Arc::new(FollowPartition::new(spec, dir)?)],
        Location::Kafka { broker, topic } => {
            let client = Arc::new(client(&broker).await?);
            partitions(&client, &broker, &topic)
                .await?
                .into_iter()
                .enumerate()
                .map(|(index, partition)| Arc::new(KafkaPartition::new(spec.clone(), client.clone(), broker.clone(), topic.clone(), partition, index)) as Arc<dyn PartitionStream>)
                .collect()
        }
    };
    Ok(Arc::new(StreamingTable::try_new(schema, partitions)?.with_infinite_table(true)))
}

/// `STORED AS JSON | CSV | PARQUET | ARROW`: a stream table when the DDL says `UNBOUNDED` or the
/// location is a stream (`-`, `tcp://…`, `kafka://…`); DataFusion's file table otherwise.
/// Registered by [`new_session`](crate::new_session).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dlflow_table::Result<()> {
/// let dir = tempfile::tempdir().expect("temp dir");
/// std::fs::write(dir.path().join("a.json"), "{\"x\": 1.5}\n{\"x\": 2.5}\n").expect("write");
/// let ctx = dlflow_table::new_session();
/// ctx.sql(&format!(
///     "CREATE UNBOUNDED EXTERNAL TABLE events (x DOUBLE, _offset BIGINT) STORED AS JSON LOCATION '{}'",
///     dir.path().display()
/// ))
/// .await?;
/// let mut stream = ctx.sql("SELECT x, _offset FROM events").await?.execute_stream().await?;
/// use futures::StreamExt;
/// let first = stream.next().await.expect("a batch")?; // the directory is followed: no end
/// assert_eq!(first.num_rows(), 2);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
pub struct StreamTableFactory {
    files: DefaultTableFactory,
}

#[async_trait]
impl TableProviderFactory for StreamTableFactory {
    async fn create(&self, state: &dyn Session, cmd: &CreateExternalTable) -> datafusion::error::Result<Arc<dyn TableProvider>> {
        let location = cmd.locations.first().map(String::as_str).unwrap_or_default();
        if !cmd.unbounded && !Location::is_stream_location(location) {
            check_local_location(&cmd.name.to_string(), location)?;
            let table = self.files.create(state, cmd).await?;
            self.check_declared_columns(state, cmd).await?;
            // Errors in the files' content ("… at line 3") then name the table's location.
            let path = location.strip_prefix("file://").unwrap_or(location);
            return Ok(Arc::new(crate::files::scan::FileTable::new(path.into(), table)));
        }
        let spec = StreamSpec::from_options(location, &cmd.file_type, Arc::new(cmd.schema.as_arrow().clone()), &cmd.options)?;
        Ok(stream_table(spec).await?)
    }
}

impl StreamTableFactory {
    /// Parquet files carry their own column names; a declared column they do not have would
    /// read as NULL in every row (DataFusion fills columns missing from a file so that a
    /// directory's schema can grow), so a typo, or an unquoted `Pixels` that SQL lowercases,
    /// would go unnoticed until a model met the NULLs. A column must be in at least one file.
    async fn check_declared_columns(&self, state: &dyn Session, cmd: &CreateExternalTable) -> datafusion::error::Result<()> {
        if !cmd.file_type.eq_ignore_ascii_case("parquet") || cmd.schema.fields().is_empty() {
            return Ok(());
        }
        let mut inferred = cmd.clone();
        inferred.schema = Arc::new(datafusion::common::DFSchema::empty());
        let stored = self.files.create(state, &inferred).await?.schema();
        let missing: Vec<String> = cmd
            .schema
            .fields()
            .iter()
            .map(|f| f.name())
            .filter(|name| stored.field_with_name(name).is_err() && !cmd.table_partition_cols.contains(name))
            .map(|name| format!("`{name}`"))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let columns: Vec<&str> = stored.fields().iter().map(|f| f.name().as_str()).collect();
        Err(DataFusionError::Plan(format!(
            "table `{}`: column {} not in the Parquet files at '{}', whose columns are {}; a column they lack would read as NULL \
             (names are lowercased unless quoted: \"Pixels\")",
            cmd.name,
            missing.join(", "),
            cmd.locations.first().map(String::as_str).unwrap_or_default(),
            columns.join(", ")
        )))
    }
}

/// A table over local files whose `LOCATION` does not exist would read as empty: a typo would
/// give no rows and no error. Globs and URLs (`s3://…`) are left to DataFusion.
fn check_local_location(table: &str, location: &str) -> datafusion::error::Result<()> {
    let path = location.strip_prefix("file://").unwrap_or(location);
    let is_local = location.starts_with("file://") || !location.contains("://");
    let is_glob = path.contains(['*', '?', '[']);
    if is_local && !is_glob && !path.is_empty() && !std::path::Path::new(path).exists() {
        return Err(DataFusionError::Plan(format!(
            "table `{table}`: LOCATION '{location}' does not exist; expected a file or a directory of files"
        )));
    }
    Ok(())
}
