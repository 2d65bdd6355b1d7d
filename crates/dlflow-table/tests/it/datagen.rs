//! datagen: determinism, value ranges, pushdown, the SQL DDL path and its errors.

#![allow(clippy::unwrap_used)] // a failing unwrap is a failing test, with its message

use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Float32Type, Float64Type, Int32Type, Int64Type};
use datafusion::error::DataFusionError;
use datafusion::prelude::{SessionConfig, SessionContext};
use dlflow_table::datagen::{DataGen, DataGenTable, Generator};
use dlflow_table::{new_session, new_session_with_config, TableError};
use futures::TryStreamExt;

fn sample(rows: u64) -> DataGen {
    DataGen::new(rows)
        .seed(42)
        .column("id", Generator::sequence(100))
        .column("x", Generator::uniform(-2.0, 3.0))
        .column(
            "x32",
            Generator::uniform(0.0, 1.0).with_data_type(DataType::Float32),
        )
        .column(
            "dice",
            Generator::uniform_int(1, 6).with_data_type(DataType::Int32),
        )
        .column("name", Generator::random_string(5))
        .column("v", Generator::uniform_vector(4, -1.0, 1.0))
}

/// All rows of `table`, partition by partition in order, and the number of partitions used.
async fn scan_in_order(ctx: &SessionContext, table: DataGenTable) -> (RecordBatch, usize) {
    let df = ctx.read_table(Arc::new(table)).expect("read table");
    let streams = df.execute_stream_partitioned().await.expect("execute");
    let partitions = streams.len();
    let schema = streams[0].schema();
    let mut batches = Vec::new();
    for stream in streams {
        batches.extend(stream.try_collect::<Vec<_>>().await.expect("scan"));
    }
    (
        concat_batches(&schema, &batches).expect("concat"),
        partitions,
    )
}

fn session(partitions: usize) -> SessionContext {
    new_session_with_config(SessionConfig::new().with_target_partitions(partitions))
}

async fn collect_sql(ctx: &SessionContext, sql: &str) -> RecordBatch {
    let df = ctx.sql(sql).await.expect("plan");
    let schema = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await.expect("collect");
    concat_batches(&schema, &batches).expect("concat")
}

#[tokio::test]
async fn values_do_not_depend_on_partitions_or_batch_size() {
    let (one, p1) = scan_in_order(&session(1), sample(20_000).build().unwrap()).await;
    let (four, p4) = scan_in_order(
        &session(4),
        sample(20_000).batch_size(1000).build().unwrap(),
    )
    .await;
    let (three, p3) = scan_in_order(
        &session(8),
        sample(20_000)
            .batch_size(777)
            .partitions(3)
            .build()
            .unwrap(),
    )
    .await;
    assert_eq!((p1, p4, p3), (1, 4, 3), "partition counts");
    assert_eq!(one.num_rows(), 20_000);
    assert_eq!(one, four);
    assert_eq!(one, three);
}

#[tokio::test]
async fn partitions_are_capped_by_batch_count() {
    // 10 rows fit one batch: more partitions would only be idle.
    let table = DataGen::new(10)
        .column("id", Generator::sequence(0))
        .build()
        .unwrap();
    let (_, partitions) = scan_in_order(&session(8), table).await;
    assert_eq!(partitions, 1);
}

#[tokio::test]
async fn seed_changes_values_and_columns_are_independent() {
    let ctx = session(2);
    let base = |seed| {
        DataGen::new(500)
            .seed(seed)
            .column("x", Generator::uniform(0.0, 1.0))
    };
    let (a, _) = scan_in_order(&ctx, base(1).build().unwrap()).await;
    let (b, _) = scan_in_order(&ctx, base(2).build().unwrap()).await;
    let (c, _) = scan_in_order(
        &ctx,
        base(1)
            .column("y", Generator::uniform(0.0, 1.0))
            .build()
            .unwrap(),
    )
    .await;
    assert_ne!(
        a.column(0),
        b.column(0),
        "different seeds must give different values"
    );
    assert_eq!(
        a.column(0),
        c.column(0),
        "adding a column must not change another"
    );
    assert_ne!(
        c.column(0),
        c.column(1),
        "two columns of one table must differ"
    );
}

#[tokio::test]
async fn ranges_sequences_strings_and_vectors() {
    let (all, _) = scan_in_order(&session(2), sample(10_000).build().unwrap()).await;

    let ids = all
        .column_by_name("id")
        .unwrap()
        .as_primitive::<Int64Type>();
    assert!(
        ids.values().iter().copied().eq(100..10_100),
        "sequence must be start..start+rows"
    );

    let x = all
        .column_by_name("x")
        .unwrap()
        .as_primitive::<Float64Type>();
    let (min, max) = x
        .values()
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    assert!(min >= -2.0 && max <= 3.0, "x out of range: [{min}, {max}]");
    assert!(
        min < -1.99 && max > 2.99,
        "x does not cover its range: [{min}, {max}]"
    );
    let mean = x.values().iter().sum::<f64>() / x.len() as f64;
    assert!(
        (mean - 0.5).abs() < 0.05,
        "mean of U(-2, 3) should be 0.5, got {mean}"
    );

    let x32 = all
        .column_by_name("x32")
        .unwrap()
        .as_primitive::<Float32Type>();
    assert!(x32.values().iter().all(|v| (0.0..=1.0).contains(v)));

    let dice = all
        .column_by_name("dice")
        .unwrap()
        .as_primitive::<Int32Type>();
    for face in 1..=6 {
        let n = dice.values().iter().filter(|v| **v == face).count();
        assert!(
            (1400..2000).contains(&n),
            "face {face} rolled {n} times of 10000"
        );
    }
    assert!(dice.values().iter().all(|v| (1..=6).contains(v)));

    let names = all.column_by_name("name").unwrap().as_string::<i32>();
    assert!(names
        .iter()
        .flatten()
        .all(|s| s.len() == 5 && s.bytes().all(|b| b.is_ascii_alphanumeric())));
    let distinct: std::collections::HashSet<_> = names.iter().flatten().collect();
    assert!(
        distinct.len() > 9_990,
        "random strings repeat too often: {}",
        distinct.len()
    );

    let v = all.column_by_name("v").unwrap().as_fixed_size_list();
    assert_eq!(v.value_length(), 4);
    let items = v.values().as_primitive::<Float32Type>();
    assert_eq!(items.len(), 40_000);
    assert!(items.values().iter().all(|f| (-1.0..=1.0).contains(f)));
}

#[tokio::test]
async fn projection_and_limit_reach_the_scan() {
    let ctx = session(4);
    ctx.register_table("t", Arc::new(sample(1_000_000).build().unwrap()))
        .unwrap();
    let plan = collect_sql(&ctx, "EXPLAIN SELECT x FROM t LIMIT 5").await;
    let text = arrow::util::pretty::pretty_format_batches(&[plan])
        .unwrap()
        .to_string();
    assert!(
        text.contains("DataGenExec: rows=5,"),
        "limit not pushed into the scan:\n{text}"
    );
    assert!(
        text.contains("columns=[x]"),
        "projection not pushed into the scan:\n{text}"
    );

    let rows = collect_sql(&ctx, "SELECT x FROM t LIMIT 5").await;
    assert_eq!(rows.num_rows(), 5);
    assert_eq!(rows.num_columns(), 1);
}

#[tokio::test]
async fn hundred_million_rows_are_generated_lazily() {
    let ctx = session(2);
    let table = DataGen::new(100_000_000)
        .column("id", Generator::sequence(0))
        .column("v", Generator::uniform_vector(784, 0.0, 1.0))
        .build()
        .unwrap();
    ctx.register_table("big", Arc::new(table)).unwrap();
    // count(*) projects no column, so this only walks row ranges; materialising the vectors
    // would need 300 GB.
    let count = collect_sql(&ctx, "SELECT count(*) AS n FROM big").await;
    assert_eq!(
        count.column(0).as_primitive::<Int64Type>().value(0),
        100_000_000
    );
    let head = collect_sql(&ctx, "SELECT id, v FROM big LIMIT 3").await;
    assert_eq!(head.num_rows(), 3);
}

const DDL: &str = "CREATE EXTERNAL TABLE t (x DOUBLE, id BIGINT, name VARCHAR) \
    STORED AS DATAGEN LOCATION 'datagen://' \
    OPTIONS ('number-of-rows' '5120', 'seed' '7', \
             'fields.x.kind' 'random', 'fields.x.min' '0', 'fields.x.max' '1', \
             'fields.id.kind' 'sequence', 'fields.id.start' '1', \
             'fields.name.length' '8')";

#[tokio::test]
async fn ddl_creates_the_documented_table() {
    let ctx = new_session();
    ctx.sql(DDL).await.unwrap();
    let all = collect_sql(&ctx, "SELECT * FROM t ORDER BY id").await;
    assert_eq!(all.num_rows(), 5120);
    let schema = all.schema();
    assert_eq!(schema.field(0).data_type(), &DataType::Float64);
    assert_eq!(schema.field(1).data_type(), &DataType::Int64);
    // DataFusion 55 maps VARCHAR to Utf8View by default.
    assert_eq!(schema.field(2).data_type(), &DataType::Utf8View);

    let ids = all.column(1).as_primitive::<Int64Type>();
    assert!(ids.values().iter().copied().eq(1..=5120));
    let x = all.column(0).as_primitive::<Float64Type>();
    assert!(x.values().iter().all(|v| (0.0..=1.0).contains(v)));
    let names = all.column(2).as_string_view();
    assert!(names.iter().flatten().all(|s| s.len() == 8));

    // The DDL and the builder describe the same table, so they give the same values.
    let built = DataGen::new(5120)
        .seed(7)
        .column("x", Generator::uniform(0.0, 1.0))
        .build()
        .unwrap();
    let (same, _) = scan_in_order(&session(3), built).await;
    assert_eq!(same.column(0).as_ref(), all.column(0).as_ref());
}

#[tokio::test]
async fn ddl_defaults_and_spellings() {
    let ctx = new_session();
    // Unquoted number, upper-case key and an explicit `format.` prefix all work.
    ctx.sql(
        "CREATE EXTERNAL TABLE d (f FLOAT, i INT, n BIGINT, s STRING) STORED AS DATAGEN \
         LOCATION 'datagen://' OPTIONS ('format.number-of-rows' 300, 'FIELDS.I.MIN' '-3', 'fields.i.max' '3')",
    )
    .await
    .unwrap();
    let all = collect_sql(&ctx, "SELECT * FROM d").await;
    assert_eq!(all.num_rows(), 300);
    let f = all.column(0).as_primitive::<Float32Type>();
    assert!(
        f.values().iter().all(|v| (0.0..=1.0).contains(v)),
        "FLOAT defaults to [0, 1]"
    );
    let i = all.column(1).as_primitive::<Int32Type>();
    assert!(i.values().iter().all(|v| (-3..=3).contains(v)));
    let n = all.column(2).as_primitive::<Int64Type>();
    assert!(
        n.values().iter().any(|v| *v < 0),
        "BIGINT defaults to the full range"
    );
    let s = all.column(3).as_string_view();
    assert!(s
        .iter()
        .flatten()
        .all(|v| v.len() == dlflow_table::datagen::DEFAULT_STRING_LENGTH));

    ctx.sql("CREATE EXTERNAL TABLE e (x DOUBLE) STORED AS DATAGEN LOCATION 'datagen://'")
        .await
        .unwrap();
    assert_eq!(
        ctx.table("e").await.unwrap().count().await.unwrap(),
        dlflow_table::datagen::DEFAULT_DDL_ROWS as usize
    );
}

/// Runs a DDL statement that must fail and returns its message, checking it is a datagen
/// option error (not a panic or some unrelated failure).
async fn ddl_error(columns: &str, options: &str) -> String {
    let ctx = new_session();
    let sql = format!("CREATE EXTERNAL TABLE bad ({columns}) STORED AS DATAGEN LOCATION 'datagen://' OPTIONS ({options})");
    let err = match ctx.sql(&sql).await {
        Ok(_) => panic!("expected an error for: {sql}"),
        Err(e) => e,
    };
    let is_option_error = matches!(
        err.find_root(),
        DataFusionError::External(inner)
            if matches!(inner.downcast_ref::<TableError>(), Some(TableError::InvalidOption { .. }))
    );
    assert!(is_option_error, "not an InvalidOption error: {err:?}");
    err.to_string()
}

#[tokio::test]
async fn bad_options_name_the_field_and_the_expectation() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "x DOUBLE",
            "'colour' 'red'",
            &["'colour'", "expected number-of-rows, rows-per-second, seed or fields."],
        ),
        (
            "x DOUBLE",
            "'fields.x.mean' '0'",
            &["fields.x.mean", "expected kind, min, max, start or length"],
        ),
        (
            "x DOUBLE",
            "'fields.y.min' '0'",
            &["fields.y.min", "no column 'y'", "x"],
        ),
        (
            "x DOUBLE",
            "'fields.x.min' 'abc'",
            &["fields.x.min", "'abc' is not a number"],
        ),
        (
            "x DOUBLE",
            "'fields.x.min' '2', 'fields.x.max' '1'",
            &["fields.x.min", "min (2) is greater than max (1)"],
        ),
        (
            "x DOUBLE",
            "'fields.x.max' 'inf'",
            &["fields.x.max", "finite"],
        ),
        (
            "x DOUBLE",
            "'fields.x.kind' 'gaussian'",
            &["fields.x.kind", "'gaussian'", "'random' or 'sequence'"],
        ),
        (
            "x DOUBLE",
            "'fields.x.length' '3'",
            &["fields.x.length", "does not apply"],
        ),
        (
            "name VARCHAR",
            "'fields.name.kind' 'sequence'",
            &["fields.name.kind", "INT or BIGINT"],
        ),
        (
            "name VARCHAR",
            "'fields.name.length' '-1'",
            &["fields.name.length", "non-negative integer"],
        ),
        (
            "flag BOOLEAN",
            "'seed' '1'",
            &[
                "fields.flag",
                "Boolean",
                "expected FLOAT, DOUBLE, INT, BIGINT or VARCHAR",
            ],
        ),
        (
            "i INT",
            "'fields.i.min' '-9999999999'",
            &["fields.i.min", "Int32"],
        ),
        (
            "i INT",
            "'fields.i.kind' 'sequence', 'fields.i.min' '0'",
            &["fields.i.min", "does not apply"],
        ),
        (
            "i INT",
            "'fields.i.kind' 'sequence', 'fields.i.start' '2147483000'",
            &["fields.i.start", "does not fit"],
        ),
        (
            "i BIGINT",
            "'fields.i.min' '1.5'",
            &["fields.i.min", "'1.5' is not an integer"],
        ),
        (
            "x DOUBLE",
            "'number-of-rows' '-5'",
            &["number-of-rows", "non-negative integer"],
        ),
        (
            "x DOUBLE",
            "'seed' 'abc'",
            &["'seed'", "non-negative integer"],
        ),
    ];
    for (columns, options, expected) in cases {
        let message = ddl_error(columns, options).await;
        for part in *expected {
            assert!(
                message.contains(part),
                "error for ({columns}) OPTIONS ({options}) lacks {part:?}: {message}"
            );
        }
    }
}

#[tokio::test]
async fn unsupported_ddl_clauses_are_rejected() {
    let ctx = new_session();
    for (sql, clause) in [
        (
            "CREATE EXTERNAL TABLE p (x DOUBLE, k INT) STORED AS DATAGEN PARTITIONED BY (k) LOCATION 'datagen://'",
            "PARTITIONED BY",
        ),
    ] {
        let err = ctx.sql(sql).await.err().unwrap_or_else(|| panic!("accepted: {sql}"));
        assert!(err.to_string().contains(clause), "{err}");
    }
}

#[test]
fn builder_errors_name_the_setting() {
    let cases: Vec<(DataGen, &str)> = vec![
        (DataGen::new(5), "'fields'"),
        (
            DataGen::new(5)
                .batch_size(0)
                .column("a", Generator::sequence(0)),
            "'batch-size'",
        ),
        (
            DataGen::new(5)
                .partitions(0)
                .column("a", Generator::sequence(0)),
            "'partitions'",
        ),
        (
            DataGen::new(5)
                .column("a", Generator::sequence(0))
                .column("a", Generator::sequence(0)),
            "'fields.a'",
        ),
        (
            DataGen::new(5).column("a", Generator::uniform_int(3, 2)),
            "'fields.a.min'",
        ),
        (
            DataGen::new(5).column("a", Generator::random_string(1 << 20)),
            "'fields.a.length'",
        ),
        (
            DataGen::new(5).column("a", Generator::uniform_vector(0, 0.0, 1.0)),
            "'fields.a.length'",
        ),
        (
            DataGen::new(5).column(
                "a",
                Generator::uniform(0.0, 1.0).with_data_type(DataType::Int64),
            ),
            "'fields.a.kind'",
        ),
        (
            DataGen::new(5).column(
                "a",
                Generator::uniform(0.0, 1e300).with_data_type(DataType::Float32),
            ),
            "'fields.a.max'",
        ),
        (
            DataGen::new(5).column("a", Generator::uniform(-f64::MAX, f64::MAX)),
            "'fields.a.max'",
        ),
    ];
    for (datagen, option) in cases {
        let debug = format!("{datagen:?}");
        let err = datagen.build().expect_err(&debug);
        assert!(matches!(err, TableError::InvalidOption { .. }), "{err:?}");
        assert!(
            err.to_string().contains(option),
            "{debug}: {err} lacks {option}"
        );
    }
}
