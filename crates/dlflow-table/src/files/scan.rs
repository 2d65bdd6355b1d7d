//! Naming the file in scan errors.
//!
//! DataFusion's file scans report malformed content ("Parse error: … at line 3", "Corrupt
//! footer") without saying which file they were reading; with several registered files the
//! user is left guessing. [`FileTable`] wraps the `ListingTable` and puts a
//! [`PathContextExec`] on top of each scan, which turns every error of the scan into
//! [`TableError::Read`] naming the path the table was registered from.
//!
//! The wrapper is transparent to the optimizer where that is cheap to get right: it keeps
//! ordering and partitioning, and passes limits, projections and filters through to the scan.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{ScanArgs, ScanResult, Session, TableProvider};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Constraints, Statistics};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::filter_pushdown::{
    ChildPushdownResult, FilterDescription, FilterPushdownPhase, FilterPushdownPropagation,
};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    replace_children_if_necessary, ChildrenPropertiesMode, DisplayAs, DisplayFormatType,
    ExecutionPlan, PhysicalExpr, PlanProperties, ReplaceChildrenOptions, SendableRecordBatchStream,
};
use futures::StreamExt;

use crate::error::TableError;

/// A table read from files, whose scans name `path` in their errors.
#[derive(Debug)]
pub(crate) struct FileTable {
    path: PathBuf,
    inner: Arc<dyn TableProvider>,
}

impl FileTable {
    pub(crate) fn new(path: PathBuf, inner: Arc<dyn TableProvider>) -> Self {
        Self { path, inner }
    }

    fn wrap(&self, plan: Result<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        // Planning a scan can read files too (footers, for statistics), so its errors are
        // named like those of the scan itself.
        let plan = plan.map_err(|e| name_path(&self.path, e))?;
        Ok(Arc::new(PathContextExec::new(self.path.clone(), plan)))
    }
}

#[async_trait]
impl TableProvider for FileTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn constraints(&self) -> Option<&Constraints> {
        self.inner.constraints()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    fn get_table_definition(&self) -> Option<&str> {
        self.inner.get_table_definition()
    }

    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        self.inner.get_column_default(column)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.wrap(self.inner.scan(state, projection, filters, limit).await)
    }

    async fn scan_with_args<'a>(
        &self,
        state: &dyn Session,
        args: ScanArgs<'a>,
    ) -> Result<ScanResult> {
        let plan = self
            .inner
            .scan_with_args(state, args)
            .await
            .map(ScanResult::into_inner);
        Ok(ScanResult::new(self.wrap(plan)?))
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<Statistics> {
        self.inner.statistics()
    }

    async fn insert_into(
        &self,
        state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.inner.insert_into(state, input, insert_op).await
    }
}

/// `error` as [`TableError::Read`] for `path`, converted back for DataFusion.
fn name_path(path: &std::path::Path, error: DataFusionError) -> DataFusionError {
    TableError::Read {
        path: path.to_path_buf(),
        source: Box::new(error),
    }
    .into()
}

/// Passes its input through, turning each error into [`TableError::Read`] for `path`.
#[derive(Debug, Clone)]
pub(crate) struct PathContextExec {
    path: PathBuf,
    input: Arc<dyn ExecutionPlan>,
}

impl PathContextExec {
    fn new(path: PathBuf, input: Arc<dyn ExecutionPlan>) -> Self {
        Self { path, input }
    }
}

impl DisplayAs for PathContextExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(f, "PathContextExec: path={}", self.path.display())
            }
            DisplayFormatType::TreeRender => write!(f, "path={}", self.path.display()),
        }
    }
}

impl ExecutionPlan for PathContextExec {
    fn name(&self) -> &str {
        "PathContextExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        // Same rows, same order, same partitions: the input's properties are ours.
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return datafusion::common::internal_err!(
                "PathContextExec takes one child, got {}",
                children.len()
            );
        }
        Ok(Arc::new(Self::new(
            self.path.clone(),
            children.swap_remove(0),
        )))
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // Still required by DataFusion 55's trait; it forwards to `replace_children`.
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let path = self.path.clone();
        let name = move |error: DataFusionError| name_path(&path, error);
        // Errors when opening the stream (before the first batch) are named too.
        let input = self.input.execute(partition, context).map_err(&name)?;
        let schema = input.schema();
        let stream = input.map(move |batch| batch.map_err(&name));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    fn supports_limit_pushdown(&self) -> bool {
        true
    }

    fn try_swapping_with_projection(
        &self,
        projection: &ProjectionExec,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        match self.input.try_swapping_with_projection(projection)? {
            Some(new_input) => Ok(Some(replace_children_if_necessary(
                Arc::new(self.clone()),
                vec![new_input],
            )?)),
            None => Ok(None),
        }
    }

    fn gather_filters_for_pushdown(
        &self,
        _phase: FilterPushdownPhase,
        parent_filters: Vec<Arc<dyn PhysicalExpr>>,
        _config: &ConfigOptions,
    ) -> Result<FilterDescription> {
        FilterDescription::from_children(parent_filters, &self.children())
    }

    fn handle_child_pushdown_result(
        &self,
        _phase: FilterPushdownPhase,
        child_pushdown_result: ChildPushdownResult,
        _config: &ConfigOptions,
    ) -> Result<FilterPushdownPropagation<Arc<dyn ExecutionPlan>>> {
        Ok(FilterPushdownPropagation::if_all(child_pushdown_result))
    }
}
