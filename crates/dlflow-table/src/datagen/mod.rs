//! `datagen`: generated tables, like Flink's datagen connector.
//!
//! Build one in Rust with [`DataGen`] and [`Generator`], or in SQL:
//!
//! ```sql
//! CREATE EXTERNAL TABLE t (x DOUBLE, id BIGINT, name VARCHAR)
//! STORED AS DATAGEN LOCATION 'datagen://'
//! OPTIONS ('number-of-rows' '5120', 'seed' '7',
//!          'fields.x.kind' 'random', 'fields.x.min' '0', 'fields.x.max' '1',
//!          'fields.id.kind' 'sequence', 'fields.id.start' '1',
//!          'fields.name.length' '8')
//! ```
//!
//! Values are a pure function of (seed, column name, row index), so a table is the same
//! whatever the number of partitions or the batch size: a test or benchmark can rely on it.
//!
//! Module map: [`Generator`] (one column's recipe) → [`DataGen`] (builder) →
//! [`DataGenTable`] (the `TableProvider`) → `DataGenExec` (the scan); [`DataGenFactory`] turns
//! SQL DDL into a [`DataGen`]; `random` holds the counter-based random numbers.

mod exec;
mod factory;
mod generator;
mod random;
mod table;

pub use factory::{DataGenFactory, DATAGEN_FILE_TYPE, DEFAULT_DDL_ROWS, DEFAULT_STRING_LENGTH};
pub use generator::{Generator, MAX_STRING_LENGTH};
pub use table::{DataGen, DataGenTable, DEFAULT_BATCH_SIZE};
