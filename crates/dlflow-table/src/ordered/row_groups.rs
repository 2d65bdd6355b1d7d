//! An ordered read that still decodes in parallel: a plan over local Parquet files whose row
//! groups are dealt to the partitions in turn (0, 2, 4, … to partition 0 and 1, 3, 5, … to
//! partition 1, with two partitions), and the schedule to read them back in file order.
//!
//! DataFusion splits a file into contiguous byte ranges, one per partition: reading those in
//! order decodes the second half only once the first is read (see decision 0013). Dealt in
//! turn, every partition has the next row groups to decode while the reader takes the current
//! one, so the decoders run side by side with memory still bounded by the lookahead.
//!
//! Only plans whose every operator above the scan keeps each partition's rows and their order
//! are rewritten (a filter would change the row counts the schedule is made of); others are
//! read as they are.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::ParquetAccessPlan;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileScanConfigBuilder, FileSource, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};

/// Operators that keep every partition's rows, in order, one partition in, the same one out.
pub(crate) const ROW_KEEPING: &[&str] = &["ProjectionExec", "CoalesceBatchesExec", "CooperativeExec", "PredictExec", "PathContextExec"];

/// A rewritten plan and the order to read it in: `(partition, rows)`, one per row group.
pub(crate) struct Dealt {
    pub plan: Arc<dyn ExecutionPlan>,
    pub schedule: Vec<(usize, u64)>,
}

/// `plan` with its Parquet row groups dealt to partitions in turn, or `None` when it cannot be
/// (not a plain scan of local Parquet files under row-keeping operators, one partition, a
/// filter or limit in the scan, a footer that cannot be read: then the plan is read as it is).
pub(crate) fn deal_row_groups(plan: &Arc<dyn ExecutionPlan>) -> Result<Option<Dealt>> {
    let partitions = plan.output_partitioning().partition_count();
    if partitions < 2 {
        return Ok(None);
    }
    let Some(PlainScan { scan, files }) = plain_parquet_scan(plan, ROW_KEEPING) else { return Ok(None) };
    let Some((config, _)) = scan.downcast_to_file_source::<ParquetSource>() else { return Ok(None) };
    let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); partitions];
    let mut schedule = Vec::new();
    for file in files {
        let Some(row_counts) = row_group_rows(&file) else { return Ok(None) };
        let mut plans: Vec<Option<ParquetAccessPlan>> = vec![None; partitions];
        for (group, rows) in row_counts.iter().enumerate().filter(|(_, rows)| **rows > 0) {
            let partition = schedule.len() % partitions;
            plans[partition].get_or_insert_with(|| ParquetAccessPlan::new_none(row_counts.len())).scan(group);
            schedule.push((partition, *rows));
        }
        for (partition, access) in plans.into_iter().enumerate() {
            if let Some(access) = access {
                groups[partition].push(file.clone().with_extension(access));
            }
        }
    }
    let config = FileScanConfigBuilder::from(config.clone())
        .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
        .with_preserve_order(true) // each partition reads its own row groups only: no work stealing
        .build();
    let dealt: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(config);
    let plan = plan
        .clone()
        .transform_up(|node| {
            Ok(if node.downcast_ref::<DataSourceExec>().is_some() { Transformed::yes(dealt.clone()) } else { Transformed::no(node) })
        })?
        .data;
    if plan.output_partitioning().partition_count() != partitions {
        return Ok(None);
    }
    tracing::debug!("{} row group(s) dealt to {partitions} partitions in turn", schedule.len());
    Ok(Some(Dealt { plan, schedule }))
}

/// A scan of whole local Parquet files, with no filter or limit, and the files in row order.
pub(crate) struct PlainScan {
    pub scan: DataSourceExec,
    pub files: Vec<PartitionedFile>,
}

/// The scan at the bottom of `plan` when `plan` reads every row of some local Parquet files:
/// every operator above the scan is one of `keeping` (operators that keep each partition's
/// rows and their order) with one child of as many partitions, and the scan reads whole files,
/// with no filter and no limit.
pub(crate) fn plain_parquet_scan(plan: &Arc<dyn ExecutionPlan>, keeping: &[&str]) -> Option<PlainScan> {
    let partitions = plan.output_partitioning().partition_count();
    let mut node = plan.clone();
    let scan = loop {
        if let Some(scan) = node.downcast_ref::<DataSourceExec>() {
            break scan.clone();
        }
        let children = node.children();
        if !keeping.contains(&node.name()) || children.len() != 1 {
            tracing::debug!("not a plain Parquet read: {} may change rows or partitions", node.name());
            return None;
        }
        let child = children[0].clone();
        if child.output_partitioning().partition_count() != partitions {
            return None;
        }
        node = child;
    };
    let (config, source) = scan.downcast_to_file_source::<ParquetSource>()?;
    if FileSource::filter(source).is_some() || config.limit.is_some() || config.object_store_url.as_str() != "file:///" {
        return None;
    }
    let Some(files) = whole_files(config) else {
        tracing::debug!("not a plain Parquet read: a file is only partly scanned");
        return None;
    };
    Some(PlainScan { scan, files })
}

/// Where a file of a scan is on the local file system.
pub(crate) fn local_path(file: &PartitionedFile) -> std::path::PathBuf {
    std::path::Path::new("/").join(file.path().as_ref())
}

/// The scan's files in order, each once and whole, or `None` if some file is only partly
/// read (its byte ranges do not cover it) or carries reader extensions of its own.
fn whole_files(config: &FileScanConfig) -> Option<Vec<PartitionedFile>> {
    let mut order: Vec<PartitionedFile> = Vec::new();
    let mut ranges: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
    for file in config.file_groups.iter().flat_map(|group| group.files()) {
        if !file.extensions.is_empty() {
            return None;
        }
        let key = file.path().to_string();
        let size = file.object_meta.size as i64;
        let range = file.range.as_ref().map_or((0, size), |r| (r.start, r.end));
        if !ranges.contains_key(&key) {
            let mut whole = file.clone();
            whole.range = None;
            order.push(whole);
        }
        ranges.entry(key).or_default().push(range);
    }
    for file in &order {
        let mut covered = ranges.remove(&file.path().to_string()).unwrap_or_default();
        covered.sort_unstable();
        let mut end = 0;
        for (start, stop) in covered {
            if start != end {
                return None;
            }
            end = stop;
        }
        if end != file.object_meta.size as i64 {
            return None;
        }
    }
    Some(order)
}

/// The row count of every row group of a local Parquet file, from its footer.
fn row_group_rows(file: &PartitionedFile) -> Option<Vec<u64>> {
    let reader = std::fs::File::open(local_path(file)).ok()?;
    let metadata = parquet::file::metadata::ParquetMetaDataReader::new().parse_and_finish(&reader).ok()?;
    Some(metadata.row_groups().iter().map(|group| group.num_rows().max(0) as u64).collect())
}
