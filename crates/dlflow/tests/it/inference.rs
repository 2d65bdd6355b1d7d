//! Inference over tables end to end: generated and file tables, `Model::transform`, the SQL
//! `predict` function, sinks; against real SavedModels and TensorFlow.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type, Int64Type};
use datafusion::prelude::{col, lit};
use dlflow::{DataGen, Environment, Generator, Model};
use dlflow_testkit as common;

fn linear() -> Model {
    Model::load(common::model("linear")).expect("load linear")
}

fn points(env: &Environment, rows: u64, partitions: usize) -> dlflow::Table {
    env.datagen(
        DataGen::new(rows)
            .seed(7)
            .partitions(partitions)
            .column("id", Generator::sequence(0))
            .column("x", Generator::uniform(0.0, 1.0).with_data_type(DataType::Float32)),
    )
    .expect("datagen")
}

fn f32_values(batches: &[RecordBatch], column: &str) -> Vec<f32> {
    batches.iter().flat_map(|b| b.column_by_name(column).expect(column).as_primitive::<Float32Type>().values().to_vec()).collect()
}

fn i64_values(batches: &[RecordBatch], column: &str) -> Vec<i64> {
    batches.iter().flat_map(|b| b.column_by_name(column).expect(column).as_primitive::<Int64Type>().values().to_vec()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transform_appends_predictions_to_every_row_in_input_order() {
    let env = Environment::new();
    // Several partitions and small batches: order must survive both.
    let table = points(&env, 20_000, 4);
    let predicted = linear().with_batch_size(333).transform(&table).expect("transform");
    let names: Vec<String> = predicted.schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, vec!["id", "x", "y"]);
    let batches = predicted.collect().await.expect("collect");
    let ids = i64_values(&batches, "id");
    assert_eq!(ids, (0..20_000).collect::<Vec<i64>>(), "every row once, in input order");
    for (x, y) in f32_values(&batches, "x").iter().zip(f32_values(&batches, "y")) {
        assert!((y - (2.0 * x + 1.0)).abs() < 1e-5, "y = {y} for x = {x}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_predict_function_runs_a_registered_model() {
    let env = Environment::new();
    env.register_model("linear", &linear());
    let table = env
        .sql(
            "CREATE EXTERNAL TABLE t (x FLOAT) STORED AS DATAGEN LOCATION 'datagen://' \
               OPTIONS ('number-of-rows' '5000', 'seed' '3', 'fields.x.min' '0', 'fields.x.max' '1');
             SELECT x, predict('linear', x) AS y FROM t WHERE x > 0.5",
        )
        .await
        .expect("sql");
    let batches = table.collect().await.expect("collect");
    let (xs, ys) = (f32_values(&batches, "x"), f32_values(&batches, "y"));
    assert!(xs.len() > 2000 && xs.len() < 3000, "about half the rows pass the filter: {}", xs.len());
    for (x, y) in xs.iter().zip(ys) {
        assert!(*x > 0.5 && (y - (2.0 * x + 1.0)).abs() < 1e-5);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_predict_with_several_outputs_returns_a_struct() {
    let env = Environment::new();
    env.register_model("two", &Model::load(common::model("two_in_two_out")).expect("load"));
    let batches = env
        .sql("SELECT predict('two', a, b)['total'] AS total FROM (VALUES (1.5, 2), (0.25, -3)) AS v(a, b)")
        .await
        .expect("sql")
        .collect()
        .await
        .expect("collect");
    let totals: Vec<f64> = batches.iter().flat_map(|b| b.column(0).as_primitive::<Float64Type>().values().to_vec()).collect();
    assert_eq!(totals, vec![3.5, -2.75]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_predict_can_name_a_signature() {
    let env = Environment::new();
    env.register_model("mlp", &Model::load(common::model("mlp")).expect("load"));
    let reference = common::reference("mlp");
    env.context().register_batch("digits", common::reference_inputs(&reference)).expect("register");
    let batches = env.sql("SELECT predict('mlp:classify', pixels)['classes'] AS c FROM digits").await.expect("sql").collect().await.expect("collect");
    let classes = i64_values(&batches, "c");
    assert_eq!(classes.len(), reference.num_rows());
    assert!(classes.iter().all(|c| (0..10).contains(c)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_errors_name_the_model_the_column_and_the_expectation() {
    let env = Environment::new();
    env.register_model("linear", &linear());
    env.context().register_batch("t", RecordBatch::try_from_iter([("s", Arc::new(datafusion::arrow::array::StringArray::from(vec!["a"])) as _)]).expect("batch")).expect("register");

    let err = env.sql("SELECT predict('nope', s) FROM t").await.err().expect("unknown model");
    assert!(err.to_string().contains("no model named `nope`") && err.to_string().contains("linear"), "{err}");

    let err = env.sql("SELECT predict('linear', s) FROM t").await.err().expect("string into float");
    assert!(err.to_string().contains("column `s`") && err.to_string().contains("float32"), "{err}");

    let err = env.sql("SELECT predict('linear', 1.0, 2.0) FROM t").await.err().expect("two args for one input");
    assert!(err.to_string().contains("takes 1 input(s) (x"), "{err}");

    let err = env.sql("SELECT predict(s, s) FROM t").await.err().expect("model name not a literal");
    assert!(err.to_string().contains("string literal naming a model"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transform_errors_come_before_any_row_is_read() {
    let env = Environment::new();
    let table = env.datagen(DataGen::new(10).column("z", Generator::uniform(0.0, 1.0))).expect("datagen");
    let err = linear().transform(&table).err().expect("missing column");
    assert!(err.to_string().contains("no column `x`") && err.to_string().contains("columns: z"), "{err}");

    let clash = env.datagen(DataGen::new(10).column("x", Generator::uniform(0.0, 1.0)).column("y", Generator::sequence(0))).expect("datagen");
    let err = linear().transform(&clash).err().expect("output would replace a column");
    assert!(err.to_string().contains("`y`"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nulls_reaching_the_model_fail_the_query_naming_the_column() {
    let env = Environment::new();
    env.register_model("linear", &linear());
    let table = env
        .sql("SELECT CASE WHEN x > 1.5 THEN NULL ELSE x END AS x FROM (VALUES (CAST(1.0 AS FLOAT)), (CAST(2.0 AS FLOAT))) AS v(x)")
        .await
        .expect("sql");
    let err = linear().transform(&table).expect("plan").collect().await.expect_err("null");
    assert!(err.to_string().contains("column `x` has 1 null value"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_in_parquet_out_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("points.csv");
    std::fs::write(&csv, "id,x\n0,0.0\n1,0.25\n2,1.5\n").expect("write csv");
    let env = Environment::new();
    let input = env.read_file(&csv).await.expect("read csv");
    assert_eq!(input.schema().field_with_name("x").expect("x").data_type(), &DataType::Float64, "CSV floats are DOUBLE");
    let output = dir.path().join("predicted.parquet");
    let rows = linear().transform(&input).expect("transform").write(&output, |_| {}).await.expect("write");
    assert_eq!(rows, 3);
    let back = env.read_file(&output).await.expect("read parquet").collect().await.expect("collect");
    assert_eq!(f32_values(&back, "y"), vec![1.0, 1.5, 4.0], "DOUBLE x converted for the float32 input");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_write_leaves_no_file_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = Environment::new();
    let table = env
        .sql("SELECT CASE WHEN x > 1.5 THEN NULL ELSE x END AS x FROM (VALUES (CAST(1.0 AS FLOAT)), (CAST(2.0 AS FLOAT))) AS v(x)")
        .await
        .expect("sql");
    let output = dir.path().join("out.csv");
    let err = linear().transform(&table).expect("plan").write(&output, |_| {}).await.expect_err("null fails the write");
    assert!(err.to_string().contains("null"), "{err}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("read dir").collect();
    assert!(left.is_empty(), "nothing may be left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_input_types_are_checked_against_the_table() {
    let env = Environment::new();
    let table = points(&env, 10, 1);
    table.check_input_types("INT_64,FLOAT_32").expect("matches");
    let err = table.check_input_types("INT_64,FLOAT_64").expect_err("mismatch");
    assert!(err.to_string().contains("column `x`") && err.to_string().contains("FLOAT_64"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vector_columns_from_datagen_feed_the_mlp() {
    let env = Environment::new();
    let table = env.datagen(DataGen::new(300).seed(1).column("pixels", Generator::uniform_vector(784, 0.0, 1.0))).expect("datagen");
    let predicted = Model::load(common::model("mlp")).expect("load").transform(&table).expect("transform");
    let batches = predicted.collect().await.expect("collect");
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 300);
    let logits = batches[0].column_by_name("logits").expect("logits");
    assert_eq!(logits.data_type(), &DataType::FixedSizeList(Arc::new(datafusion::arrow::datatypes::Field::new("item", DataType::Float32, false)), 10));
    assert_eq!(logits.null_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_shows_the_predict_operator_with_its_model_signature_and_batch_size() {
    let env = Environment::new();
    env.register_model("linear", &linear());
    let table = points(&env, 1000, 2);
    env.context().register_table("p", table.dataframe().clone().into_view()).expect("register");
    let plan = env.sql("EXPLAIN SELECT id, predict('linear', x) AS y FROM p WHERE predict('linear', x) > 2").await.expect("explain");
    // The plan column's full text (a printed table shortens long cells).
    let batches = plan.collect().await.expect("collect");
    let text: String = batches
        .iter()
        .flat_map(|b| {
            let plans = datafusion::arrow::compute::cast(b.column_by_name("plan").expect("plan column"), &datafusion::arrow::datatypes::DataType::Utf8).expect("text");
            let plans = plans.as_any().downcast_ref::<datafusion::arrow::array::StringArray>().expect("strings").clone();
            (0..plans.len()).map(move |i| format!("{}\n", plans.value(i))).collect::<Vec<_>>()
        })
        .collect();
    let line = text.lines().find(|l| l.contains("PredictExec")).unwrap_or_else(|| panic!("no PredictExec in\n{text}"));
    assert!(line.contains("signature=serving_default") && line.contains("batch_size=1024"), "{line}");
    assert!(line.contains(&common::model("linear").display().to_string()), "{line}");
    // Every predict call is an operator of its own with its model (the filter's call and the
    // projection's reach the plan as different expressions through the view: two operators).
    for line in text.lines().filter(|l| l.contains("PredictExec")) {
        assert!(line.contains("model=") && line.contains("signature=serving_default"), "{line}");
    }
    // And the query gives what the model computes.
    let rows = env.sql("SELECT id, predict('linear', x) AS y FROM p WHERE predict('linear', x) > 2").await.expect("sql").collect().await.expect("run");
    let ys = f32_values(&rows, "y");
    assert!(!ys.is_empty() && ys.iter().all(|y| *y > 2.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transform_of_files_read_in_several_groups_plans_the_predict_operator() {
    // Two files: a scan of several file groups, into which DataFusion pushes projections. The
    // model call must stay an operator of its own, not run inside the file decoder.
    let env = Environment::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let table = points(&env, 3000, 1);
    for (name, half) in [("a.parquet", col("id").lt(lit(1500))), ("b.parquet", col("id").gt_eq(lit(1500)))] {
        let half = dlflow::Table::new(table.dataframe().clone().filter(half).expect("filter"));
        half.write(dir.path().join(name), |_| {}).await.expect("write");
    }
    let files = env.read_file(dir.path()).await.expect("read the directory");
    let predicted = linear().transform(&files).expect("transform");
    let plan = predicted.dataframe().clone().create_physical_plan().await.expect("plan");
    let text = datafusion::physical_plan::displayable(plan.as_ref()).indent(true).to_string();
    assert!(text.contains("PredictExec"), "no PredictExec in\n{text}");
    let scan = text.lines().find(|l| l.contains("DataSourceExec")).unwrap_or_else(|| panic!("no scan in\n{text}"));
    assert!(scan.contains("2 groups") && !scan.contains("predict"), "the model call went into the scan: {scan}");
    // Every row in file order, with y = 2x + 1.
    let rows = predicted.collect().await.expect("run");
    assert_eq!(i64_values(&rows, "id"), (0..3000).collect::<Vec<_>>());
    for (x, y) in f32_values(&rows, "x").iter().zip(f32_values(&rows, "y")) {
        assert!((y - (2.0 * x + 1.0)).abs() < 1e-5, "x {x}: y {y}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transform_over_an_unbounded_table_maps_records_as_they_arrive() {
    use futures::StreamExt;
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let env = Environment::new();
    let records = env
        .sql(&format!("CREATE UNBOUNDED EXTERNAL TABLE r (x FLOAT, id BIGINT) STORED AS JSON LOCATION 'tcp://127.0.0.1:{port}'; SELECT * FROM r"))
        .await
        .expect("stream table");
    assert!(records.is_unbounded().await.expect("plan"));
    let mut predicted = linear().transform(&records).expect("transform").stream().await.expect("stream");
    // dlflow connects when the stream is first polled: the peer accepts meanwhile, on a thread.
    let peer = std::thread::spawn(move || {
        let (mut peer, _) = listener.accept().expect("accept");
        writeln!(peer, "{{\"x\": 1.5, \"id\": 7}}").expect("send");
        peer // the connection stays open
    });
    let batch = tokio::time::timeout(std::time::Duration::from_secs(30), predicted.next()).await.expect("a result in time").expect("a batch").expect("ok");
    let _peer = peer.join().expect("peer");
    assert_eq!(i64_values(std::slice::from_ref(&batch), "id"), vec![7]);
    assert_eq!(f32_values(&[batch], "y"), vec![4.0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_s_rows_go_to_a_model_as_one_batch_with_the_table_path_s_outputs() {
    use datafusion::arrow::array::{Float32Array, Int64Array, StringArray, TimestampMillisecondArray};
    use futures::StreamExt;
    let env = Environment::new();
    let n = 500i64;
    let batch = RecordBatch::try_from_iter([
        ("ts", Arc::new(TimestampMillisecondArray::from_iter_values((0..n).map(|i| i * 37 % 5000))) as Arc<dyn Array>),
        ("door", Arc::new(StringArray::from_iter_values((0..n).map(|i| if i % 3 == 0 { "front" } else { "back" })))),
        ("id", Arc::new(Int64Array::from_iter_values(0..n))),
        ("x", Arc::new(Float32Array::from_iter_values((0..n).map(|i| i as f32 / n as f32)))),
    ])
    .expect("batch");
    let table = env.from_batches(vec![batch]).expect("table");
    let model = linear();
    let by_table: std::collections::HashMap<i64, f32> = {
        let rows = model.transform(&table).expect("transform").collect().await.expect("collect");
        i64_values(&rows, "id").into_iter().zip(f32_values(&rows, "y")).collect()
    };
    let mut windows = table.windows(dlflow::WindowSpec::tumble(std::time::Duration::from_secs(1)), "ts", &["door"]).await.expect("windows");
    let (mut seen, mut count) = (0, 0);
    while let Some(window) = windows.next().await {
        let window = window.expect("window");
        assert!(window.end - window.start == 1_000_000_000);
        let scored = model.predict_batch(&window.rows).expect("predict a window");
        let doors: std::collections::BTreeSet<String> = scored.column_by_name("door").expect("door").as_string::<i32>().iter().flatten().map(String::from).collect();
        assert_eq!(doors.len(), 1, "one key per window");
        for (id, y) in i64_values(std::slice::from_ref(&scored), "id").into_iter().zip(f32_values(&[scored], "y")) {
            assert_eq!(by_table[&id], y, "row {id}");
            seen += 1;
        }
        count += 1;
    }
    assert_eq!(seen, n, "every row in exactly one tumbling window");
    assert_eq!(count, 10, "5 seconds x 2 doors");
}

/// Two Parquet files as other tools write them: zstd, small row groups, a dictionary-encoded
/// string column and a nested list with nulls beside the model's input `x`.
fn stored_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    use datafusion::arrow::array::{Float32Array, Int32Builder, Int64Array, ListBuilder, StringArray};
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::basic::{Compression, ZstdLevel};
    use datafusion::parquet::file::properties::WriterProperties;
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(700))
        .build();
    let mut start = 0;
    [5_000, 2_300]
        .into_iter()
        .enumerate()
        .map(|(k, rows)| {
            let ids = Int64Array::from_iter_values(start..start + rows);
            let xs = Float32Array::from_iter_values((start..start + rows).map(|i| (i % 97) as f32 / 97.0));
            let names = StringArray::from_iter_values((start..start + rows).map(|i| format!("n{}", i % 5)));
            let mut tags = ListBuilder::new(Int32Builder::new());
            for i in start..start + rows {
                if i % 3 == 0 {
                    tags.append_null();
                } else {
                    tags.values().append_value(i as i32);
                    tags.values().append_null();
                    tags.append(true);
                }
            }
            let batch = RecordBatch::try_from_iter([
                ("id", Arc::new(ids) as Arc<dyn Array>),
                ("x", Arc::new(xs)),
                ("name", Arc::new(names)),
                ("tags", Arc::new(tags.finish())),
            ])
            .expect("batch");
            start += rows;
            let path = dir.join(format!("part-{k}.parquet"));
            let mut writer = ArrowWriter::try_new(std::fs::File::create(&path).expect("create"), batch.schema(), Some(properties.clone())).expect("writer");
            for offset in (0..batch.num_rows()).step_by(1000) {
                writer.write(&batch.slice(offset, 1000.min(batch.num_rows() - offset))).expect("write");
            }
            writer.close().expect("close");
            path
        })
        .collect()
}

fn parquet_metadata(path: &std::path::Path) -> datafusion::parquet::file::metadata::ParquetMetaData {
    let file = std::fs::File::open(path).expect("open");
    datafusion::parquet::file::metadata::ParquetMetaDataReader::new().parse_and_finish(&file).expect("footer")
}

/// The bytes of column `column`'s chunk in row group `group` of `path`.
fn chunk_bytes(path: &std::path::Path, group: usize, column: usize) -> Vec<u8> {
    let metadata = parquet_metadata(path);
    let chunk = metadata.row_group(group).column(column);
    let (start, length) = chunk.byte_range();
    std::fs::read(path).expect("read")[start as usize..(start + length) as usize].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_to_parquet_copies_the_stored_columns_and_writes_what_transform_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inputs = dir.path().join("in");
    std::fs::create_dir(&inputs).expect("mkdir");
    let files = stored_files(&inputs);
    let env = Environment::new();
    let table = env.read_file(&inputs).await.expect("read the directory");
    let model = linear().with_batch_size(256);

    let copied = dir.path().join("copied.parquet");
    let mut seen = 0;
    let rows = model.write_transformed(&table, &copied, |batch| seen += batch.num_rows()).await.expect("write_transformed");
    assert_eq!((rows, seen), (7_300, 7_300));
    let encoded = dir.path().join("encoded.arrow");
    model.transform(&table).expect("transform").write(&encoded, |_| {}).await.expect("transform, then write");

    // The same rows, columns and values as transform-then-write.
    let read = |path: std::path::PathBuf| {
        let env = &env;
        async move { datafusion::arrow::util::pretty::pretty_format_batches(&env.read_file(&path).await.expect("read").collect().await.expect("collect")).expect("format").to_string() }
    };
    let (from_copy, from_transform) = (read(copied.clone()).await, read(encoded).await);
    assert_eq!(from_copy.lines().count(), 7_300 + 4);
    assert_eq!(from_copy, from_transform);

    // The input's row groups, their column chunks copied byte for byte (zstd as they were);
    // only the model's output is encoded by dlflow (Snappy).
    let metadata = parquet_metadata(&copied);
    let groups: Vec<i64> = files.iter().flat_map(|f| parquet_metadata(f).row_groups().iter().map(|g| g.num_rows()).collect::<Vec<_>>()).collect();
    assert_eq!(metadata.row_groups().iter().map(|g| g.num_rows()).collect::<Vec<_>>(), groups);
    let last = metadata.num_row_groups() - 1;
    for column in 0..4 {
        assert_eq!(chunk_bytes(&copied, 0, column), chunk_bytes(&files[0], 0, column), "column {column} of the first row group");
        assert_eq!(chunk_bytes(&copied, last, column), chunk_bytes(&files[1], parquet_metadata(&files[1]).num_row_groups() - 1, column));
    }
    let y = metadata.row_group(0).column(metadata.row_group(0).num_columns() - 1);
    assert_eq!(y.column_path().string(), "y");
    assert_eq!(y.compression(), datafusion::parquet::basic::Compression::SNAPPY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_tables_that_are_not_the_files_as_stored_are_encoded_afresh() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = stored_files(dir.path());
    let env = Environment::new();
    let table = env.read_file(&files[0]).await.expect("read");
    let model = linear();
    for (what, table) in [
        ("filtered", dlflow::Table::new(table.dataframe().clone().filter(col("id").gt_eq(lit(4_000))).expect("filter"))),
        ("computed", dlflow::Table::new(table.dataframe().clone().with_column("x", col("x") * lit(2.0f32)).expect("x * 2"))),
        ("fewer columns", dlflow::Table::new(table.dataframe().clone().select_columns(&["x", "id"]).expect("select"))),
    ] {
        let output = dir.path().join(format!("{what}.parquet"));
        let expected = model.transform(&table).expect("transform").collect().await.expect("collect");
        let rows = model.write_transformed(&table, &output, |_| {}).await.expect(what);
        assert_eq!(rows as usize, expected.iter().map(|b| b.num_rows()).sum::<usize>(), "{what}");
        let back = env.read_file(&output).await.expect("read").collect().await.expect("collect");
        assert_eq!(f32_values(&back, "y"), f32_values(&expected, "y"), "{what}");
        assert_eq!(f32_values(&back, "x"), f32_values(&expected, "x"), "{what}");
        let metadata = parquet_metadata(&output);
        let x = metadata.row_group(0).columns().iter().find(|c| c.column_path().string() == "x").expect("x");
        assert_eq!(x.compression(), datafusion::parquet::basic::Compression::SNAPPY, "{what}: written by dlflow, not copied");
    }
}
