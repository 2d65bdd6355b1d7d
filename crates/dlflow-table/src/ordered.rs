//! Reading a plan's partitions in partition order, each read ahead on its own task.
//!
//! Sources that split themselves (files by byte range or row group, `datagen` by row range)
//! number their partitions in row order, so reading partition 0, then 1, … gives the rows in
//! the order of the source. DataFusion's merge of partitions interleaves them instead. Reading
//! them strictly one after another would also serialise everything the partitions compute
//! (decoding, model calls) with what consumes them (encoding, writing): here every partition runs
//! on its own task and reads up to `lookahead` batches ahead, so the work overlaps while memory
//! stays bounded by `partitions × lookahead` batches.
//!
//! A scan of local Parquet files is first rewritten so that its row groups are dealt to the
//! partitions in turn and read back in file order ([`row_groups`]): the partitions then decode
//! side by side instead of one half of the file after the other.

mod row_groups;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::common::runtime::SpawnedTask;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::physical_plan::{FileScanConfig, FileScanConfigBuilder, FileSource, ParquetSource};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::projection::ProjectionExpr;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};
use futures::StreamExt;
use tokio::sync::mpsc;

/// Batches read ahead per partition unless told otherwise.
pub const DEFAULT_LOOKAHEAD: usize = 4;

/// Every batch of `plan`, partition 0 first, each partition's batches in order; see the
/// [module docs](self).
///
/// ```
/// use std::sync::Arc;
/// use futures::TryStreamExt;
/// use dlflow_table::datagen::{DataGen, Generator};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> datafusion::error::Result<()> {
/// let ctx = dlflow_table::new_session();
/// let table = DataGen::new(10_000).partitions(4).batch_size(1000).column("id", Generator::sequence(0)).build()?;
/// let plan = ctx.read_table(Arc::new(table))?.create_physical_plan().await?;
/// let stream = dlflow_table::ordered::execute_in_order(plan, ctx.task_ctx(), 2)?;
/// let batches: Vec<_> = stream.try_collect().await?;
/// let ids: Vec<i64> = batches.iter().flat_map(|b| b.column(0).as_any().downcast_ref::<arrow::array::Int64Array>().unwrap().values().to_vec()).collect();
/// assert_eq!(ids, (0..10_000).collect::<Vec<i64>>());
/// # Ok(())
/// # }
/// ```
pub fn execute_in_order(plan: Arc<dyn ExecutionPlan>, context: Arc<TaskContext>, lookahead: usize) -> Result<SendableRecordBatchStream> {
    let schema = plan.schema();
    let plan = keep_file_order(plan)?;
    if let Some(row_groups::Dealt { plan, schedule }) = row_groups::deal_row_groups(&plan)? {
        let (receivers, tasks) = read_ahead(&plan, context, lookahead)?;
        let reader = Scheduled { left: vec![None; receivers.len()], receivers, schedule: schedule.into(), current: None, tasks, done: false };
        let batches = futures::stream::unfold(reader, |mut reader| async move {
            let next = reader.next().await?;
            Some((next, reader))
        });
        return Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)));
    }
    let (receivers, tasks) = read_ahead(&plan, context, lookahead)?;
    let batches = futures::stream::iter(receivers).flat_map(|mut receiver| futures::stream::poll_fn(move |cx| receiver.poll_recv(cx)));
    let owned = futures::stream::unfold((batches, tasks), |(mut batches, tasks)| async move {
        let next = batches.next().await?;
        Some((next, (batches, tasks)))
    });
    Ok(Box::pin(RecordBatchStreamAdapter::new(schema, owned)))
}

/// The local Parquet files `plan` reads, when [`execute_in_order`] gives every row of them,
/// once, in file order: the scan reads whole files with no filter or limit, and every operator
/// above it keeps its rows (projections, [`PredictExec`](crate::inference::PredictExec), …;
/// they may add computed columns). `None` for any other plan.
pub fn whole_parquet_files(plan: &Arc<dyn ExecutionPlan>) -> Option<Vec<PathBuf>> {
    let scan = row_groups::plain_parquet_scan(plan, row_groups::ROW_KEEPING)?;
    Some(scan.files.iter().map(row_groups::local_path).collect())
}

/// The local Parquet files whose stored columns are exactly what `plan` outputs: every row of
/// the files, in file order (read with [`execute_in_order`]), their columns in file order, none
/// computed, renamed or left out. `None` for any other plan. Such a table's columns can be
/// copied to a new Parquet file as they are stored (see
/// [`write_with_stored_columns`](crate::sink::write_with_stored_columns)).
pub fn stored_parquet_files(plan: &Arc<dyn ExecutionPlan>) -> Option<Vec<PathBuf>> {
    let mut node = plan.clone();
    while node.downcast_ref::<DataSourceExec>().is_none() {
        if let Some(projection) = node.downcast_ref::<ProjectionExec>()
            && !passes_columns_through(projection.expr())
        {
            return None;
        }
        node = node.children().first().copied()?.clone();
    }
    let scan = row_groups::plain_parquet_scan(plan, &["ProjectionExec", "CoalesceBatchesExec", "CooperativeExec", "PathContextExec"])?;
    let (config, source) = scan.scan.downcast_to_file_source::<ParquetSource>()?;
    if FileSource::projection(source).is_some_and(|p| !passes_columns_through(p.as_ref())) || !config.table_partition_cols().is_empty() {
        return None;
    }
    let stored: Vec<&String> = config.file_schema().fields().iter().map(|f| f.name()).collect();
    let schema = plan.schema();
    let output: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
    (stored == output).then(|| scan.files.iter().map(row_groups::local_path).collect())
}

/// Whether every expression of a projection is a column under its own name.
fn passes_columns_through(expressions: &[ProjectionExpr]) -> bool {
    expressions.iter().all(|e| e.expr.downcast_ref::<Column>().is_some_and(|c| c.name() == e.alias))
}

/// `plan` with every file scan reading its own partition's files only. By default DataFusion
/// lets a partition that ran out of files take another's next unread file (work stealing),
/// which would put those rows out of order here.
fn keep_file_order(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    let kept = plan.transform_up(|node| {
        let scan = node.downcast_ref::<DataSourceExec>().and_then(|scan| scan.data_source().downcast_ref::<FileScanConfig>());
        Ok(match scan {
            Some(config) if !config.preserve_order => {
                let config = FileScanConfigBuilder::from(config.clone()).with_preserve_order(true).build();
                Transformed::yes(DataSourceExec::from_data_source(config) as Arc<dyn ExecutionPlan>)
            }
            _ => Transformed::no(node),
        })
    })?;
    Ok(kept.data)
}

type Batches = mpsc::Receiver<Result<RecordBatch>>;

/// Every partition of `plan` running on its own task, `lookahead` batches ahead of its reader.
/// The tasks are aborted when they are dropped (with the stream that owns them).
fn read_ahead(plan: &Arc<dyn ExecutionPlan>, context: Arc<TaskContext>, lookahead: usize) -> Result<(Vec<Batches>, Vec<SpawnedTask<()>>)> {
    let partitions = plan.output_partitioning().partition_count();
    let mut receivers = Vec::with_capacity(partitions);
    let mut tasks = Vec::with_capacity(partitions);
    for partition in 0..partitions {
        let mut input = plan.execute(partition, context.clone())?;
        let (sender, receiver) = mpsc::channel(lookahead.max(1));
        tasks.push(SpawnedTask::spawn(async move {
            while let Some(batch) = input.next().await {
                let failed = batch.is_err();
                if sender.send(batch).await.is_err() || failed {
                    break; // the reader is gone, or this partition has failed
                }
            }
        }));
        receivers.push(receiver);
    }
    Ok((receivers, tasks))
}

/// Reads partitions by a schedule of `(partition, rows)`: that many rows from that partition,
/// then the next entry (batches are split where a row group ends inside one).
struct Scheduled {
    receivers: Vec<Batches>,
    /// The rest of a batch split at a row group's end, per partition.
    left: Vec<Option<RecordBatch>>,
    schedule: VecDeque<(usize, u64)>,
    current: Option<(usize, u64)>,
    #[allow(dead_code)] // held to keep the partitions running
    tasks: Vec<SpawnedTask<()>>,
    done: bool,
}

impl Scheduled {
    async fn next(&mut self) -> Option<Result<RecordBatch>> {
        if self.done {
            return None;
        }
        let next = self.take().await;
        if !matches!(next, Some(Ok(_))) {
            self.done = true;
        }
        next
    }

    async fn take(&mut self) -> Option<Result<RecordBatch>> {
        loop {
            let (partition, rows) = match self.current {
                Some(current) if current.1 > 0 => current,
                _ => match self.schedule.pop_front() {
                    Some(next) => {
                        self.current = Some(next);
                        continue;
                    }
                    None => return self.check_drained().await.err().map(Err),
                },
            };
            let batch = match self.left[partition].take() {
                Some(batch) => batch,
                None => match self.receivers[partition].recv().await {
                    Some(Ok(batch)) => batch,
                    Some(Err(error)) => return Some(Err(error)),
                    None => {
                        return Some(Err(DataFusionError::Internal(format!(
                            "partition {partition} of an ordered Parquet read ended {rows} row(s) short of its row group"
                        ))))
                    }
                },
            };
            let taken = (rows as usize).min(batch.num_rows());
            if taken == 0 {
                continue;
            }
            if taken < batch.num_rows() {
                self.left[partition] = Some(batch.slice(taken, batch.num_rows() - taken));
            }
            self.current = Some((partition, rows - taken as u64));
            return Some(Ok(if taken < batch.num_rows() { batch.slice(0, taken) } else { batch }));
        }
    }

    /// Once the schedule is read, every partition must have ended too.
    async fn check_drained(&mut self) -> Result<()> {
        for (partition, receiver) in self.receivers.iter_mut().enumerate() {
            let extra = match self.left[partition].take() {
                Some(batch) => Some(Ok(batch)),
                None => receiver.recv().await,
            };
            match extra {
                None => {}
                Some(Err(error)) => return Err(error),
                Some(Ok(batch)) if batch.num_rows() == 0 => {}
                Some(Ok(batch)) => {
                    return Err(DataFusionError::Internal(format!(
                        "partition {partition} of an ordered Parquet read gave {} row(s) more than its row groups hold",
                        batch.num_rows()
                    )))
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::prelude::{ParquetReadOptions, SessionConfig};
    use futures::TryStreamExt;
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    /// A Parquet file of ids `0..rows` in row groups of `group` rows, written in batches of 700
    /// (so that batches and row groups do not line up).
    fn ids_file(path: &std::path::Path, rows: i64, group: usize) {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let properties = WriterProperties::builder().set_max_row_group_row_count(Some(group)).build();
        let mut writer = ArrowWriter::try_new(std::fs::File::create(path).expect("create"), schema.clone(), Some(properties)).expect("writer");
        for start in (0..rows).step_by(700) {
            let ids = Int64Array::from_iter_values(start..(start + 700).min(rows));
            writer.write(&RecordBatch::try_new(schema.clone(), vec![Arc::new(ids)]).expect("batch")).expect("write");
        }
        writer.close().expect("close");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn row_groups_dealt_in_turn_come_back_in_file_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (first, second) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
        ids_file(&first, 10_000, 1_000);
        ids_file(&second, 3_500, 400);
        // Split even small files into byte ranges, as DataFusion does with large ones.
        let mut config = SessionConfig::new().with_target_partitions(3).with_batch_size(300);
        config.options_mut().optimizer.repartition_file_min_size = 0;
        let ctx = crate::new_session_with_config(config);
        let paths = [first.to_str().expect("utf8"), second.to_str().expect("utf8")];
        let table = ctx.read_parquet(paths.to_vec(), ParquetReadOptions::default()).await.expect("read");
        let plan = table.create_physical_plan().await.expect("plan");

        let dealt = super::row_groups::deal_row_groups(&plan).expect("deal").expect("a plain Parquet scan is dealt");
        assert_eq!(dealt.schedule.len(), 10 + 9, "one entry per row group");
        assert_eq!(dealt.schedule.iter().map(|(_, rows)| rows).sum::<u64>(), 13_500);
        let partitions: Vec<usize> = dealt.schedule.iter().map(|(p, _)| *p).collect();
        assert_eq!(&partitions[..6], &[0, 1, 2, 0, 1, 2], "dealt in turn");

        let batches: Vec<RecordBatch> = super::execute_in_order(plan, ctx.task_ctx(), 2).expect("execute").try_collect().await.expect("read");
        let ids: Vec<i64> = batches
            .iter()
            .flat_map(|b| b.column(0).as_any().downcast_ref::<Int64Array>().expect("ids").values().to_vec())
            .collect();
        let expected: Vec<i64> = (0..10_000).chain(0..3_500).collect();
        assert_eq!(ids, expected);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn files_are_read_in_order_although_datafusion_would_let_partitions_steal_them() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut paths = Vec::new();
        let mut next = 0;
        // Uneven files, so that one partition runs out of its own while the other has some left.
        for (k, rows) in [50, 3000, 40, 2500, 30, 2000, 20, 1500].into_iter().enumerate() {
            let path = dir.path().join(format!("part-{k}.csv"));
            let text: String = std::iter::once("id\n".to_string()).chain((next..next + rows).map(|i| format!("{i}\n"))).collect();
            std::fs::write(&path, text).expect("write");
            next += rows;
            paths.push(path.to_str().expect("utf8").to_string());
        }
        let ctx = crate::new_session_with_config(SessionConfig::new().with_target_partitions(2).with_batch_size(100));
        let table = ctx.read_csv(paths, datafusion::prelude::CsvReadOptions::new()).await.expect("read");
        let plan = table.create_physical_plan().await.expect("plan");
        assert_eq!(datafusion::physical_plan::ExecutionPlanProperties::output_partitioning(&plan).partition_count(), 2);
        let batches: Vec<RecordBatch> = super::execute_in_order(plan, ctx.task_ctx(), 1).expect("execute").try_collect().await.expect("read");
        let ids: Vec<i64> = batches
            .iter()
            .flat_map(|b| b.column(0).as_any().downcast_ref::<Int64Array>().expect("ids").values().to_vec())
            .collect();
        assert_eq!(ids, (0..next).collect::<Vec<i64>>());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_filtered_scan_is_read_as_it_is() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a.parquet");
        ids_file(&path, 5_000, 500);
        let mut config = SessionConfig::new().with_target_partitions(2);
        config.options_mut().optimizer.repartition_file_min_size = 0;
        let ctx = crate::new_session_with_config(config);
        ctx.register_parquet("t", path.to_str().expect("utf8"), ParquetReadOptions::default()).await.expect("register");
        let plan = ctx.sql("SELECT id FROM t WHERE id % 2 = 0").await.expect("sql").create_physical_plan().await.expect("plan");
        assert!(super::row_groups::deal_row_groups(&plan).expect("deal").is_none(), "a filter changes the row counts");
    }
}
