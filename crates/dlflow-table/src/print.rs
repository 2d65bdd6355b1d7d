//! Rendering query results as a text table for terminals and logs.
//!
//! ML tables hold vectors (784 pixels, 512-wide embeddings) and blobs; printed in full, one
//! row fills a screen. Cells are therefore abbreviated: lists show their first few elements
//! and how many were left out, and any other cell longer than [`MAX_CELL_CHARS`] is cut.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, RecordBatchOptions, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use arrow::util::pretty::pretty_format_batches_with_schema;

/// Elements shown of a list or vector cell, e.g. `[0.1, 0.2, 0.3, 0.4, … 780 more]`.
pub const LIST_PREVIEW: usize = 4;

/// Longest cell, in characters, before it is cut with `…`.
pub const MAX_CELL_CHARS: usize = 48;

/// Formats at most `max_rows` rows of `batches` as a text table, followed by a line such as
/// `(showing 10 of 5120 rows)` when rows were left out. List and vector cells show their
/// first [`LIST_PREVIEW`] elements; long cells are cut at [`MAX_CELL_CHARS`] characters.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use arrow::array::{ArrayRef, Int64Array, RecordBatch};
///
/// let ids: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3]));
/// let batch = RecordBatch::try_from_iter([("id", ids)]).expect("batch");
/// let text = dlflow_table::format_table(&[batch], 2);
/// assert!(text.contains("| 2  |"));
/// assert!(!text.contains("| 3  |"));
/// assert!(text.ends_with("(showing 2 of 3 rows)"));
/// ```
pub fn format_table(batches: &[RecordBatch], max_rows: usize) -> String {
    let Some(first) = batches.first() else {
        return "(no rows)".to_string();
    };
    let total_rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    // Every column is rendered to text first (abbreviating as it goes), then laid out by
    // Arrow's pretty printer, so alignment and borders stay Arrow's.
    let schema = Arc::new(Schema::new(
        first
            .schema()
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let mut remaining = max_rows;
    let mut shown = Vec::new();
    for batch in batches {
        if remaining == 0 {
            break;
        }
        let rows = batch.num_rows().min(remaining);
        remaining -= rows;
        let columns = batch
            .columns()
            .iter()
            .map(|column| Arc::new(display_column(&column.slice(0, rows))) as ArrayRef)
            .collect();
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        match RecordBatch::try_new_with_options(Arc::clone(&schema), columns, &options) {
            Ok(batch) => shown.push(batch),
            Err(e) => return format!("(cannot display the result: {e})"),
        }
    }
    let mut text = match pretty_format_batches_with_schema(schema, &shown) {
        Ok(table) => table.to_string(),
        Err(e) => format!("(cannot display the result: {e})"),
    };
    if total_rows > max_rows {
        text.push_str(&format!(
            "\n(showing {} of {total_rows} rows)",
            max_rows.min(total_rows)
        ));
    }
    text
}

/// One column as display strings.
fn display_column(array: &ArrayRef) -> StringArray {
    (0..array.len())
        .map(|row| Some(display_cell(array.as_ref(), row)))
        .collect()
}

/// The text of one cell: lists abbreviated (recursively), everything else cut to length.
fn display_cell(array: &dyn Array, row: usize) -> String {
    if array.is_null(row) {
        return "NULL".to_string();
    }
    if let Some(items) = list_items(array, row) {
        let shown = items.len().min(LIST_PREVIEW);
        let mut parts: Vec<String> = (0..shown)
            .map(|i| display_cell(items.as_ref(), i))
            .collect();
        if items.len() > shown {
            parts.push(format!("… {} more", items.len() - shown));
        }
        return format!("[{}]", parts.join(", "));
    }
    let options = FormatOptions::default().with_display_error(true);
    let text = ArrayFormatter::try_new(array, &options)
        .and_then(|formatter| formatter.value(row).try_to_string())
        .unwrap_or_else(|e| format!("<{e}>"));
    truncate(text)
}

/// The elements of a list-like cell, or `None` for other types.
fn list_items(array: &dyn Array, row: usize) -> Option<ArrayRef> {
    match array.data_type() {
        DataType::FixedSizeList(..) => Some(array.as_fixed_size_list().value(row)),
        DataType::List(_) => Some(array.as_list::<i32>().value(row)),
        DataType::LargeList(_) => Some(array.as_list::<i64>().value(row)),
        _ => None,
    }
}

fn truncate(text: String) -> String {
    if text.chars().count() <= MAX_CELL_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(MAX_CELL_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{FixedSizeListArray, Float32Array, Int64Array};

    #[test]
    fn vectors_are_abbreviated() {
        let values = Float32Array::from_iter_values((0..784).map(|i| i as f32 / 10.0));
        let item = Arc::new(Field::new_list_field(DataType::Float32, false));
        let vectors = FixedSizeListArray::try_new(item, 784, Arc::new(values), None).expect("list");
        let ids = Int64Array::from(vec![7]);
        let batch = RecordBatch::try_from_iter([
            ("id", Arc::new(ids) as ArrayRef),
            ("v", Arc::new(vectors) as ArrayRef),
        ])
        .expect("batch");
        let text = format_table(&[batch], 10);
        assert!(text.contains("[0.0, 0.1, 0.2, 0.3, … 780 more]"), "{text}");
        assert!(!text.contains("78.3"), "{text}");
        assert!(!text.contains("showing"), "{text}");
    }

    #[test]
    fn long_strings_are_cut() {
        let long = "x".repeat(500);
        assert_eq!(truncate(long).chars().count(), MAX_CELL_CHARS);
        assert_eq!(truncate("short".into()), "short");
    }

    #[test]
    fn rows_across_batches_are_counted() {
        let batch = RecordBatch::try_from_iter([(
            "n",
            Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef,
        )])
        .expect("batch");
        let text = format_table(&[batch.clone(), batch], 4);
        assert!(text.ends_with("(showing 4 of 6 rows)"), "{text}");
        assert_eq!(text.matches("| 1 ").count(), 2, "{text}");
    }
}
