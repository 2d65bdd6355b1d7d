//! File sources and sinks: format detection, round trips, and errors that name the file.

#![allow(clippy::unwrap_used)] // a failing unwrap is a failing test, with its message

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::SessionContext;
use dlflow_table::datagen::{DataGen, Generator};
use dlflow_table::{
    new_session, register_file, register_file_with_schema, write_stream, FileFormat, TableError,
};

fn table(with_vector: bool) -> DataGen {
    let datagen = DataGen::new(2500)
        .seed(3)
        .batch_size(1000)
        .column("id", Generator::sequence(0))
        .column("x", Generator::uniform(-1.0, 1.0))
        .column(
            "label",
            Generator::uniform_int(0, 9).with_data_type(DataType::Int32),
        )
        .column("name", Generator::random_string(6));
    if with_vector {
        datagen.column("v", Generator::uniform_vector(8, 0.0, 1.0))
    } else {
        datagen
    }
}

async fn stream_of(ctx: &SessionContext, datagen: DataGen) -> SendableRecordBatchStream {
    let table = datagen.build().expect("valid table");
    ctx.read_table(Arc::new(table))
        .expect("read")
        .execute_stream()
        .await
        .expect("stream")
}

async fn all_rows(ctx: &SessionContext, sql: &str) -> datafusion::error::Result<RecordBatch> {
    let df = ctx.sql(sql).await?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    Ok(concat_batches(&schema, &batches)?)
}

/// `batch` with every column cast to `schema`'s type: text formats read Int32 back as Int64,
/// and DataFusion reads strings as Utf8View.
fn cast_to(batch: &RecordBatch, schema: &SchemaRef) -> RecordBatch {
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| {
            cast(
                batch.column_by_name(f.name()).expect("column present"),
                f.data_type(),
            )
            .expect("cast")
        })
        .collect();
    RecordBatch::try_new(Arc::clone(schema), columns).expect("batch")
}

#[test]
fn formats_come_from_extensions() {
    let cases = [
        ("a.csv", FileFormat::Csv),
        ("A.CSV", FileFormat::Csv),
        ("dir/b.parquet", FileFormat::Parquet),
        ("b.Pq", FileFormat::Parquet),
        ("c.json", FileFormat::Json),
        ("c.jsonl", FileFormat::Json),
        ("c.NDJSON", FileFormat::Json),
        ("d.arrow", FileFormat::ArrowIpc),
        ("d.arrows", FileFormat::ArrowIpc),
        ("d.ipc", FileFormat::ArrowIpc),
        ("d.feather", FileFormat::ArrowIpc),
    ];
    for (path, format) in cases {
        assert_eq!(
            FileFormat::from_path(Path::new(path)).expect(path),
            format,
            "{path}"
        );
    }
}

#[test]
fn unknown_extension_lists_the_supported_ones() {
    for path in ["model.bin", "noextension", "archive.csv.gz"] {
        let err = FileFormat::from_path(Path::new(path)).unwrap_err();
        assert!(matches!(err, TableError::UnknownFormat { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains(path), "{message}");
        for ext in [
            ".csv", ".parquet", ".pq", ".json", ".jsonl", ".ndjson", ".arrow", ".arrows", ".ipc",
            ".feather",
        ] {
            assert!(message.contains(ext), "{message} lacks {ext}");
        }
    }
}

#[tokio::test]
async fn every_format_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    for (file, with_vector) in [
        ("t.csv", false),
        ("t.jsonl", false),
        ("t.parquet", true),
        ("t.arrow", true),
    ] {
        let ctx = new_session();
        let expected_table = table(with_vector).build().unwrap();
        let schema = Arc::clone(expected_table.schema_ref());
        let expected = {
            let df = ctx.read_table(Arc::new(expected_table)).unwrap();
            concat_batches(&schema, &df.collect().await.unwrap()).unwrap()
        };

        let path = dir.path().join(file);
        let mut seen_rows = Vec::new();
        let rows = write_stream(stream_of(&ctx, table(with_vector)).await, &path, |b| {
            seen_rows.push(b.num_rows())
        })
        .await
        .unwrap_or_else(|e| panic!("writing {file}: {e}"));
        assert_eq!(rows, 2500, "{file}");
        assert_eq!(
            seen_rows.iter().sum::<usize>(),
            2500,
            "{file}: on_batch saw {seen_rows:?}"
        );
        assert!(
            seen_rows.len() >= 3,
            "{file}: expected one callback per batch, got {seen_rows:?}"
        );

        register_file(&ctx, "back", &path)
            .await
            .unwrap_or_else(|e| panic!("reading {file}: {e}"));
        let back = all_rows(&ctx, "SELECT * FROM back ORDER BY id")
            .await
            .unwrap();
        assert_eq!(
            cast_to(&back, &schema),
            expected,
            "{file} did not round-trip"
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        4,
        "temporary files left behind: {leftovers:?}"
    );
}

#[tokio::test]
async fn a_directory_of_files_is_one_table() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = new_session();
    for (i, rows) in [(0, 100), (1, 250)] {
        let part = DataGen::new(rows)
            .seed(i)
            .column("id", Generator::sequence(0));
        write_stream(
            stream_of(&ctx, part).await,
            &dir.path().join(format!("part-{i}.parquet")),
            |_| {},
        )
        .await
        .unwrap();
    }
    std::fs::write(dir.path().join("_SUCCESS"), "").unwrap();
    register_file(&ctx, "parts", dir.path()).await.unwrap();
    assert_eq!(
        ctx.table("parts").await.unwrap().count().await.unwrap(),
        350
    );

    std::fs::write(dir.path().join("extra.csv"), "id\n1\n").unwrap();
    let err = register_file(&ctx, "mixed", dir.path()).await.unwrap_err();
    assert!(matches!(err, TableError::InvalidPath { .. }), "{err:?}");
    assert!(err.to_string().contains("extra.csv"), "{err}");

    let empty = tempfile::tempdir().unwrap();
    let err = register_file(&ctx, "empty", empty.path())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no data files"), "{err}");
}

#[tokio::test]
async fn a_missing_path_is_named() {
    let ctx = new_session();
    let path = Path::new("/definitely/not/here/rows.csv");
    let err = register_file(&ctx, "t", path).await.unwrap_err();
    assert!(matches!(err, TableError::NotFound { .. }), "{err:?}");
    assert!(
        err.to_string().contains("/definitely/not/here/rows.csv"),
        "{err}"
    );
}

#[tokio::test]
async fn a_malformed_parquet_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.parquet");
    std::fs::write(&path, "this is plain text, not a parquet file\n").unwrap();
    let ctx = new_session();

    // Schema inference reads the footer, so registering already fails.
    let err = register_file(&ctx, "t", &path).await.unwrap_err();
    assert!(matches!(err, TableError::Read { .. }), "{err:?}");
    assert!(err.to_string().contains("broken.parquet"), "{err}");

    // With a schema given, the failure comes at scan time, and still names the file.
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)]));
    register_file_with_schema(&ctx, "t", &path, schema)
        .await
        .unwrap();
    let err = all_rows(&ctx, "SELECT * FROM t").await.unwrap_err();
    assert!(err.to_string().contains("broken.parquet"), "{err}");
}

#[tokio::test]
async fn a_bad_csv_value_is_named_at_scan_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.csv");
    std::fs::write(&path, "id,x\n1,0.5\n2,oops\n3,1.5\n").unwrap();
    let ctx = new_session();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("x", DataType::Float64, true),
    ]));
    register_file_with_schema(&ctx, "t", &path, schema)
        .await
        .unwrap();
    let err = all_rows(&ctx, "SELECT sum(x) FROM t").await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains("bad.csv"), "{message}");
    assert!(
        message.contains("oops"),
        "the cause should survive: {message}"
    );
    // Converted with `?`, it is still a dlflow error naming the file.
    let table_error = TableError::from(err);
    assert!(table_error.to_string().contains("bad.csv"));
}

/// A stream that yields one good batch and then fails.
fn failing_stream() -> SendableRecordBatchStream {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![Arc::new(arrow::array::Int64Array::from(vec![1, 2, 3]))],
    )
    .unwrap();
    let items = vec![
        Ok(batch),
        Err(DataFusionError::Execution("upstream failed".into())),
    ];
    Box::pin(RecordBatchStreamAdapter::new(
        schema,
        futures::stream::iter(items),
    ))
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_failed_write_leaves_nothing_behind() {
    for file in ["out.csv", "out.jsonl", "out.parquet", "out.arrow"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file);
        let mut batches = 0;
        let err = write_stream(failing_stream(), &path, |_| batches += 1)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("upstream failed"), "{file}: {err}");
        assert_eq!(
            batches, 1,
            "{file}: the good batch should have been written first"
        );
        assert!(
            names_in(dir.path()).is_empty(),
            "{file}: left {:?}",
            names_in(dir.path())
        );
    }
}

#[tokio::test]
async fn a_failed_write_keeps_the_previous_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("result.parquet");
    std::fs::write(&path, "previous result").unwrap();
    assert!(write_stream(failing_stream(), &path, |_| {}).await.is_err());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "previous result");
    assert_eq!(names_in(dir.path()), vec!["result.parquet".to_string()]);
}

#[tokio::test]
async fn unwritable_outputs_are_errors_naming_the_path() {
    let ctx = new_session();
    let dir = tempfile::tempdir().unwrap();

    // CSV cannot hold vectors: the writer fails, and nothing is left.
    let path = dir.path().join("vectors.csv");
    let err = write_stream(stream_of(&ctx, table(true)).await, &path, |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, TableError::Write { .. }), "{err:?}");
    assert!(err.to_string().contains("vectors.csv"), "{err}");
    assert!(
        names_in(dir.path()).is_empty(),
        "left {:?}",
        names_in(dir.path())
    );

    let path = dir.path().join("no/such/dir/out.parquet");
    let err = write_stream(stream_of(&ctx, table(false)).await, &path, |_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no/such/dir/out.parquet"), "{err}");

    let path = dir.path().join("out.xlsx");
    let err = write_stream(stream_of(&ctx, table(false)).await, &path, |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, TableError::UnknownFormat { .. }), "{err:?}");
    assert!(names_in(dir.path()).is_empty());
}

#[tokio::test]
async fn parquet_floats_are_written_without_a_dictionary_other_columns_with_one() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.parquet");
    let ctx = new_session();
    write_stream(stream_of(&ctx, table(true)).await, &path, |_| {})
        .await
        .unwrap();
    let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
    let group = reader.metadata().row_group(0);
    let dictionary = |name: &str| {
        let column = group
            .columns()
            .iter()
            .find(|c| c.column_path().string() == name)
            .unwrap_or_else(|| {
                let names: Vec<String> =
                    group.columns().iter().map(|c| c.column_path().string()).collect();
                panic!("no column {name} in {names:?}")
            });
        column.dictionary_page_offset().is_some()
    };
    // Random floats never repeat: a dictionary would only cost time.
    assert!(!dictionary("x"), "x (Float64) has a dictionary");
    assert!(!dictionary("v.list.item"), "v's floats have a dictionary");
    // Integers and strings keep Parquet's default.
    assert!(dictionary("label"), "label (Int32) lost its dictionary");
    assert!(dictionary("name"), "name (string) lost its dictionary");
}
