//! Validation rows for the estimator, and `transform` on a table that still has the label.
//!
//! The nodes read validation rows from an Arrow IPC file in the fit's folder (each worker its
//! equal part, scored after every epoch by Keras); the training rows go through the engine.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::{Expr, SessionContext, ident};

use super::Validation;
use crate::error::{Error, Result};
use crate::{Model, Table};

/// The column a model's prediction hides behind while the label keeps its own name.
const HIDDEN_LABEL: &str = "__dlflow_label__";

/// The training table and the validation file for `validation` over `input` (which holds
/// exactly `columns`).
pub(super) async fn prepare(
    validation: &Validation,
    input: Table,
    columns: &[&str],
    workers: usize,
    folder: &Path,
) -> Result<(Table, PathBuf)> {
    let file = folder.join("validation.arrow");
    let (training, rows) = match validation {
        Validation::Table(table) => {
            let selected = Table::new(table.dataframe().clone().select_columns(columns)?);
            (input, selected.write(&file, |_| {}).await? as usize)
        }
        Validation::Split(fraction) => split(input, *fraction, &file).await?,
    };
    if rows < workers {
        return Err(Error::Invalid(format!(
            "the validation rows number {rows}; each of the {workers} worker(s) needs at least one to score"
        )));
    }
    Ok((training, file))
}

/// Keras's `validation_split`: the last `fraction` of the rows, in the table's order
/// (partition by partition), go to `file`; the rest, partitions kept, is the training table.
async fn split(input: Table, fraction: f64, file: &Path) -> Result<(Table, usize)> {
    let schema = input.schema();
    let partitions = input.dataframe().clone().collect_partitioned().await?;
    let total: usize = partitions.iter().flatten().map(RecordBatch::num_rows).sum();
    let held_out = (total as f64 * fraction).round() as usize;
    if held_out == 0 || held_out >= total {
        return Err(Error::Invalid(format!(
            "validation_split {fraction} of {total} rows holds out {held_out}: nothing would be {}",
            if held_out == 0 { "scored" } else { "left to train on" }
        )));
    }
    let mut keep = total - held_out;
    let mut training = Vec::with_capacity(partitions.len());
    let mut validation = Vec::new();
    for partition in partitions {
        let mut kept = Vec::new();
        for batch in partition {
            let take = keep.min(batch.num_rows());
            if take > 0 {
                kept.push(batch.slice(0, take));
            }
            if take < batch.num_rows() {
                validation.push(batch.slice(take, batch.num_rows() - take));
            }
            keep -= take;
        }
        training.push(kept);
    }
    write_ipc(file, &schema, &validation)?;
    let (state, _) = input.into_dataframe().into_parts();
    let table = MemTable::try_new(schema, training)?;
    Ok((Table::new(SessionContext::new_with_state(state).read_table(Arc::new(table))?), held_out))
}

fn write_ipc(path: &Path, schema: &arrow::datatypes::SchemaRef, batches: &[RecordBatch]) -> Result<()> {
    let io = |e: &dyn std::fmt::Display| Error::Invalid(format!("writing the validation rows to {}: {e}", path.display()));
    let file = std::fs::File::create(path).map_err(|e| io(&e))?;
    let mut writer = arrow::ipc::writer::FileWriter::try_new(std::io::BufWriter::new(file), schema).map_err(|e| io(&e))?;
    for batch in batches {
        writer.write(batch).map_err(|e| io(&e))?;
    }
    writer.finish().map_err(|e| io(&e))
}

/// `model.transform(table)` for a fitted model whose prediction column (`prediction`) is
/// already a column of `table`, usually the label: the label keeps its name and place, and
/// the prediction is appended as `{prediction}_predicted`.
pub(crate) fn transform_beside_label(model: &Model, prediction: &str, table: &Table) -> Result<Table> {
    let renamed = format!("{prediction}_predicted");
    let schema = table.schema();
    if schema.column_with_name(&renamed).is_some() || schema.column_with_name(HIDDEN_LABEL).is_some() {
        return Err(Error::Invalid(format!(
            "the table has both `{prediction}` and `{renamed}`: the model's prediction `{prediction}` has no free name; \
             rename a column first"
        )));
    }
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let hide: Vec<Expr> =
        names.iter().map(|&n| if n == prediction { ident(n).alias(HIDDEN_LABEL) } else { ident(n) }).collect();
    let predicted = model.transform(&Table::new(table.dataframe().clone().select(hide)?))?;
    // `transform` appends the outputs after the input's columns.
    let outputs: Vec<String> = predicted.schema().fields().iter().skip(names.len()).map(|f| f.name().clone()).collect();
    let restore: Vec<Expr> = names
        .iter()
        .map(|&n| if n == prediction { ident(HIDDEN_LABEL).alias(n) } else { ident(n) })
        .chain(outputs.iter().map(|n| if n == prediction { ident(n).alias(&renamed) } else { ident(n) }))
        .collect();
    Ok(Table::new(predicted.into_dataframe().select(restore)?))
}
