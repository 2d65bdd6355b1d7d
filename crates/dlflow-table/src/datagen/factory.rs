//! [`DataGenFactory`]: `CREATE EXTERNAL TABLE … STORED AS DATAGEN` with Flink-style options.
//!
//! DataFusion hands the factory the DDL schema and the `OPTIONS` map. Two things about that
//! map matter here (both from `datafusion-sql` 55):
//! - keys are lower-cased, so `fields.X.min` arrives as `fields.x.min`; column names are
//!   therefore matched case-insensitively;
//! - a key without a dot gets a `format.` prefix (`'number-of-rows'` arrives as
//!   `format.number-of-rows`); the prefix is stripped, so both spellings work.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider, TableProviderFactory};
use datafusion::logical_expr::CreateExternalTable;

use super::generator::Generator;
use super::table::DataGen;
use crate::error::{Result, TableError};

/// The `STORED AS` name datagen tables are registered under.
pub const DATAGEN_FILE_TYPE: &str = "DATAGEN";

/// Rows of a bounded DDL datagen table without `'number-of-rows'`. Flink's connector is unbounded
/// in that case; dlflow makes a stream only when the DDL says `UNBOUNDED`, so a small table is the
/// safe guess.
pub const DEFAULT_DDL_ROWS: u64 = 1000;

/// Length of random strings without `'fields.<col>.length'`.
pub const DEFAULT_STRING_LENGTH: usize = 10;

/// Creates [`DataGenTable`](super::DataGenTable)s from SQL DDL; registered by
/// [`new_session`](crate::new_session) for `STORED AS DATAGEN`.
///
/// The column types come from the DDL; options configure the values:
///
/// | option | default | meaning |
/// |---|---|---|
/// | `'number-of-rows'` | 1000 | rows in the table (none with `CREATE UNBOUNDED`: a stream with no end) |
/// | `'rows-per-second'` | unlimited | Flink's rate limit: rows per second at most |
/// | `'seed'` | 0 | seed of all columns |
/// | `'fields.<col>.kind'` | `random` | `random` or `sequence` (integer columns) |
/// | `'fields.<col>.min'`, `'fields.<col>.max'` | 0 and 1 for FLOAT/DOUBLE, the type's range for INT/BIGINT | bounds of random numbers, inclusive |
/// | `'fields.<col>.start'` | 0 | first value of a sequence |
/// | `'fields.<col>.length'` | 10 | length of random strings (VARCHAR) |
///
/// Supported column types: FLOAT, DOUBLE, INT, BIGINT, VARCHAR/STRING. DataFusion requires a
/// `LOCATION`; its value is ignored (write `'datagen://'`).
///
/// # Example
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dlflow_table::Result<()> {
/// let ctx = dlflow_table::new_session();
/// ctx.sql(
///     "CREATE EXTERNAL TABLE t (x DOUBLE, id BIGINT, name VARCHAR) \
///      STORED AS DATAGEN LOCATION 'datagen://' \
///      OPTIONS ('number-of-rows' '5120', 'seed' '7', \
///               'fields.x.min' '0', 'fields.x.max' '1', \
///               'fields.id.kind' 'sequence', 'fields.id.start' '1', \
///               'fields.name.length' '8')",
/// )
/// .await?;
/// let df = ctx.sql("SELECT count(*) AS n, max(id) AS last FROM t").await?;
/// let text = dlflow_table::format_table(&df.collect().await?, 10);
/// assert!(text.contains("5120"));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct DataGenFactory;

#[async_trait]
impl TableProviderFactory for DataGenFactory {
    async fn create(
        &self,
        _state: &dyn Session,
        cmd: &CreateExternalTable,
    ) -> datafusion::error::Result<Arc<dyn TableProvider>> {
        let table = datagen_from_ddl(cmd)?.build()?;
        Ok(Arc::new(table))
    }
}

/// Rejects DDL clauses datagen cannot honour, rather than silently ignoring them.
fn datagen_from_ddl(cmd: &CreateExternalTable) -> Result<DataGen> {
    if !cmd.table_partition_cols.is_empty() {
        return Err(TableError::invalid_option(
            "PARTITIONED BY",
            "datagen tables have no partition columns; remove PARTITIONED BY",
        ));
    }
    datagen_from_options(cmd.schema.as_arrow(), &cmd.options, cmd.unbounded)
}

/// Column settings collected from `fields.<col>.<property>` options.
#[derive(Default)]
struct FieldOptions<'a> {
    kind: Option<&'a str>,
    min: Option<&'a str>,
    max: Option<&'a str>,
    start: Option<&'a str>,
    length: Option<&'a str>,
}

/// Turns a DDL schema and its `OPTIONS` into a [`DataGen`] builder.
pub(crate) fn datagen_from_options(
    schema: &Schema,
    options: &HashMap<String, String>,
    unbounded: bool,
) -> Result<DataGen> {
    let mut rows = None;
    let mut rate = None;
    let mut seed = 0;
    let mut fields: Vec<FieldOptions<'_>> = schema
        .fields()
        .iter()
        .map(|_| FieldOptions::default())
        .collect();
    // Sorted so that, with several bad options, the reported one does not depend on hash order.
    let mut entries: Vec<(&String, &String)> = options.iter().collect();
    entries.sort();
    for (key, value) in entries {
        let key = key.strip_prefix("format.").unwrap_or(key);
        match key {
            "number-of-rows" => rows = Some(parse(key, value, "a non-negative integer")?),
            "rows-per-second" => rate = Some(parse::<f64>(key, value, "a positive number of rows")?),
            "seed" => seed = parse(key, value, "a non-negative integer")?,
            _ => {
                let (index, property) = field_option(schema, key)?;
                let slot = match property {
                    "kind" => &mut fields[index].kind,
                    "min" => &mut fields[index].min,
                    "max" => &mut fields[index].max,
                    "start" => &mut fields[index].start,
                    "length" => &mut fields[index].length,
                    _ => {
                        return Err(TableError::invalid_option(
                            key,
                            format!("unknown property '{property}'; expected kind, min, max, start or length"),
                        ))
                    }
                };
                *slot = Some(value.as_str());
            }
        }
    }
    let mut datagen = match (unbounded, rows) {
        (false, rows) => DataGen::new(rows.unwrap_or(DEFAULT_DDL_ROWS)),
        (true, None) => DataGen::unbounded(),
        (true, Some(_)) => {
            return Err(TableError::invalid_option(
                "number-of-rows",
                "an UNBOUNDED datagen table has no row limit; remove 'number-of-rows' or UNBOUNDED",
            ));
        }
    }
    .seed(seed);
    if let Some(rate) = rate {
        datagen = datagen.rows_per_second(rate);
    }
    for (field, options) in schema.fields().iter().zip(&fields) {
        datagen = datagen.column(field.name(), generator_for(field, options)?);
    }
    Ok(datagen)
}

/// Splits `fields.<col>.<property>` and finds the column; column names may contain dots, so
/// the property is what follows the last dot.
fn field_option<'k>(schema: &Schema, key: &'k str) -> Result<(usize, &'k str)> {
    let Some((column, property)) = key
        .strip_prefix("fields.")
        .and_then(|rest| rest.rsplit_once('.'))
    else {
        return Err(TableError::invalid_option(
            key,
            "unknown option; expected number-of-rows, rows-per-second, seed or fields.<column>.<kind|min|max|start|length>",
        ));
    };
    let matches: Vec<usize> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| f.name().eq_ignore_ascii_case(column))
        .map(|(i, _)| i)
        .collect();
    match matches.as_slice() {
        [index] => Ok((*index, property)),
        [] => {
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            Err(TableError::invalid_option(
                key,
                format!("the table has no column '{column}'; its columns are {}", names.join(", ")),
            ))
        }
        _ => Err(TableError::invalid_option(
            key,
            format!("several columns are named '{column}' when case is ignored (option keys are lower-cased by DataFusion); rename one"),
        )),
    }
}

/// The generator for one DDL column, from its type and options.
fn generator_for(field: &Field, options: &FieldOptions<'_>) -> Result<Generator> {
    let name = field.name();
    let option = |property: &str| format!("fields.{name}.{property}");
    let kind = options.kind.unwrap_or("random");
    let data_type = field.data_type();
    // Each kind/type pair accepts only the options it uses, so a misplaced option is an error
    // rather than silently ignored.
    let allowed: &[&str] = match (kind, data_type) {
        ("random", DataType::Float32 | DataType::Float64 | DataType::Int32 | DataType::Int64) => &["min", "max"],
        ("random", DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) => &["length"],
        ("sequence", DataType::Int32 | DataType::Int64) => &["start"],
        ("sequence", DataType::Float32 | DataType::Float64 | DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) => {
            return Err(TableError::invalid_option(
                option("kind"),
                format!("kind 'sequence' needs an INT or BIGINT column, but '{name}' is {data_type}; expected kind 'random'"),
            ))
        }
        ("random" | "sequence", _) => {
            return Err(TableError::invalid_option(
                format!("fields.{name}"),
                format!("column type {data_type} is not supported by datagen; expected FLOAT, DOUBLE, INT, BIGINT or VARCHAR"),
            ))
        }
        (other, _) => {
            return Err(TableError::invalid_option(
                option("kind"),
                format!("unknown kind '{other}'; expected 'random' or 'sequence'"),
            ))
        }
    };
    for (property, value) in [
        ("min", options.min),
        ("max", options.max),
        ("start", options.start),
        ("length", options.length),
    ] {
        if value.is_some() && !allowed.contains(&property) {
            return Err(TableError::invalid_option(
                option(property),
                format!("'{property}' does not apply to a {kind} {data_type} column; expected one of: {}", allowed.join(", ")),
            ));
        }
    }
    let generator = match (kind, data_type) {
        ("sequence", _) => {
            Generator::sequence(parse_or(&option("start"), options.start, 0, "an integer")?)
        }
        (_, DataType::Float32 | DataType::Float64) => Generator::uniform(
            parse_or(&option("min"), options.min, 0.0, "a number")?,
            parse_or(&option("max"), options.max, 1.0, "a number")?,
        ),
        (_, DataType::Int32) => Generator::uniform_int(
            parse_or(
                &option("min"),
                options.min,
                i64::from(i32::MIN),
                "an integer",
            )?,
            parse_or(
                &option("max"),
                options.max,
                i64::from(i32::MAX),
                "an integer",
            )?,
        ),
        (_, DataType::Int64) => Generator::uniform_int(
            parse_or(&option("min"), options.min, i64::MIN, "an integer")?,
            parse_or(&option("max"), options.max, i64::MAX, "an integer")?,
        ),
        _ => Generator::random_string(parse_or(
            &option("length"),
            options.length,
            DEFAULT_STRING_LENGTH,
            "a non-negative integer",
        )?),
    };
    Ok(generator.with_data_type(data_type.clone()))
}

fn parse<T: std::str::FromStr>(option: &str, value: &str, expected: &str) -> Result<T> {
    value
        .trim()
        .parse()
        .map_err(|_| TableError::invalid_option(option, format!("'{value}' is not {expected}")))
}

fn parse_or<T: std::str::FromStr>(
    option: &str,
    value: Option<&str>,
    default: T,
    expected: &str,
) -> Result<T> {
    value.map_or(Ok(default), |v| parse(option, v, expected))
}
