//! Training and node inference on a cluster of real Python TensorFlow nodes: topology, epochs,
//! equal shards under MultiWorkerMirroredStrategy, failures, and no orphan processes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use dlflow::{DataGen, Environment, Error, Generator, TfClusterConfig, TfClusterConfigBuilder, Timeouts};
use serde_json::Value;

fn entry(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/entries").join(file)
}

/// No restarts: these tests are about how a failure is reported (recovery.rs restarts).
fn cluster(file: &str, function: &str, workers: usize) -> TfClusterConfigBuilder {
    TfClusterConfig::builder().worker_count(workers).node_entry(entry(file), function).max_failures(0).quiet(true)
}

fn gone(pid: u32) -> bool {
    // A zombie still has a /proc entry: gone means killed *and* reaped.
    !Path::new(&format!("/proc/{pid}")).exists()
}

fn pids_in(dir: &Path) -> Vec<u32> {
    std::fs::read_dir(dir)
        .expect("out dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "pid"))
        .map(|e| std::fs::read_to_string(e.path()).expect("pid file").trim().parse().expect("a pid"))
        .collect()
}

fn json_of(dir: &Path, name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join(name)).expect(name)).expect("json")
}

fn all_types(env: &Environment, rows: u64, partitions: usize) -> dlflow::Table {
    env.datagen(
        DataGen::new(rows)
            .seed(11)
            .partitions(partitions)
            .batch_size(97)
            .column("id", Generator::sequence(0))
            .column("f32", Generator::uniform(-1.0, 1.0).with_data_type(DataType::Float32))
            .column("f64", Generator::uniform(-1e6, 1e6))
            .column("i32", Generator::uniform_int(-1000, 1000).with_data_type(DataType::Int32))
            .column("s", Generator::random_string(6))
            .column("v", Generator::uniform_vector(3, 0.0, 1.0).with_data_type(DataType::new_fixed_size_list(
                DataType::Float32,
                3,
                false,
            ))),
    )
    .expect("datagen")
}

fn sorted_by_id(batches: &[RecordBatch], schema: &SchemaRef) -> RecordBatch {
    let all = concat_batches(schema, batches).expect("concat");
    let order = sort_to_indices(all.column_by_name("id").expect("id"), None, None).expect("sort");
    take_record_batch(&all, &order).expect("take")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_seed_type_and_a_vector_round_trip_through_python_nodes() {
    let env = Environment::new();
    let table = all_types(&env, 1000, 3);
    let schema = table.schema();
    let config = cluster("echo.py", "echo_entry", 2).property("input_types", "INT_64,FLOAT_32,FLOAT_64,INT_32,STRING,FLOAT_32").build();
    // input_types lists one type per column; the vector column's element type is FLOAT_32.
    let config = config.expect("config");
    let echoed = dlflow::inference(&table, &config, schema.clone()).expect("inference").collect().await.expect("run");
    let expected = table.collect().await.expect("input");
    assert_eq!(echoed.iter().map(RecordBatch::num_rows).sum::<usize>(), 1000, "inference must see every row");
    assert_eq!(sorted_by_id(&echoed, &schema), sorted_by_id(&expected, &schema));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_and_a_parameter_server_see_the_same_cluster() {
    let env = Environment::new();
    let input = env.datagen(DataGen::new(10).column("x", Generator::uniform(0.0, 1.0))).expect("datagen");
    let schema = Arc::new(Schema::new(vec![
        Field::new("node_type", DataType::Utf8, false),
        Field::new("index", DataType::Int64, false),
        Field::new("workers", DataType::Int64, false),
        Field::new("ps", DataType::Int64, false),
        Field::new("chief", DataType::Boolean, false),
        Field::new("task", DataType::Utf8, false),
        Field::new("greeting", DataType::Utf8, false),
    ]));
    let config = cluster("topology.py", "topology_entry", 2).ps_count(1).property("greeting", "hello").build().expect("config");
    let started = Instant::now();
    let rows = dlflow::inference(&input, &config, schema).expect("inference").collect().await.expect("run");
    let rows = concat_batches(&rows[0].schema(), &rows).expect("concat");
    assert_eq!(rows.num_rows(), 2, "one row per worker, none from the ps");
    let mut tasks: Vec<String> = (0..2).map(|i| rows.column(5).as_string::<i32>().value(i).to_string()).collect();
    tasks.sort();
    assert_eq!(tasks, ["worker:0", "worker:1"]);
    for i in 0..2 {
        assert_eq!(rows.column(2).as_primitive::<Int64Type>().value(i), 2);
        assert_eq!(rows.column(3).as_primitive::<Int64Type>().value(i), 1);
        assert_eq!(rows.column(6).as_string::<i32>().value(i), "hello");
        let index = rows.column(1).as_primitive::<Int64Type>().value(i);
        assert_eq!(rows.column(4).as_boolean().value(i), index == 0, "worker 0 is the chief");
    }
    // The ps never returns on its own: the job ended because dlflow stopped it.
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn training_sees_exactly_the_epochs_with_equal_rows_per_worker() {
    let env = Environment::new();
    let out = tempfile::tempdir().expect("tempdir");
    // 1001 rows over 3 uneven partitions, two workers.
    let table = env.datagen(DataGen::new(1001).partitions(3).batch_size(64).column("x", Generator::sequence(0))).expect("datagen");
    let config = cluster("count_epochs.py", "count_entry", 2).property("out_dir", out.path().to_string_lossy()).build().expect("config");
    let report = dlflow::train(&table, &config, 3).await.expect("train");
    assert_eq!(report.epochs.len(), 3);
    // Equal shares: the remainder of 1001 / 2 (one row) is trimmed, nothing more.
    let share = report.epochs[0].rows[0];
    assert_eq!(share, 500, "{report}");
    for epoch in &report.epochs {
        assert_eq!(epoch.rows, vec![share, share]);
        assert_eq!(epoch.dropped(), 1001 - 2 * share);
    }
    assert_eq!(report.rows_dropped(), 3 * (1001 - 2 * share));
    assert!(report.to_string().contains(&format!("{} row(s) dropped", 1001 - 2 * share)), "{report}");
    for worker in 0..2 {
        let seen = json_of(out.path(), &format!("worker_{worker}.json"));
        assert_eq!(seen["counts"], serde_json::json!([share, share, share]), "worker {worker}: {seen}");
        assert_eq!(seen["after"], 0, "no rows after the last epoch");
        assert_eq!(seen["attempt"], 0);
        // Autotuning off (its timer stalls every iterator's end, decision 0014), also in a
        // dataset the entry made from dlflow's.
        assert_eq!(seen["autotune"], serde_json::json!([false, false, false]), "worker {worker}: {seen}");
    }
    for (node, pid) in &report.cluster.nodes {
        assert!(gone(*pid), "{node} (pid {pid}) outlived the job");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uneven_partitions_do_not_hang_multi_worker_mirrored_strategy() {
    let env = Environment::new();
    let out = tempfile::tempdir().expect("tempdir");
    let points = env
        .datagen(DataGen::new(777).partitions(5).batch_size(50).seed(5).column("x", Generator::uniform(0.0, 1.0)))
        .expect("datagen");
    env.context().register_table("points", points.dataframe().clone().into_view()).expect("register");
    let table = env.sql("SELECT x, 2 * x + 1 AS y FROM points WHERE x < 0.9").await.expect("sql");
    let config = cluster("mwms.py", "mwms_entry", 2)
        .property("out_dir", out.path().to_string_lossy())
        .property("batch", "7")
        .build()
        .expect("config");
    let report = dlflow::train(&table, &config, 2).await.expect("train must finish, not hang");
    for worker in 0..2 {
        assert_eq!(json_of(out.path(), &format!("worker_{worker}.json"))["epochs"], 2);
    }
    for epoch in &report.epochs {
        assert_eq!(epoch.rows[0], epoch.rows[1], "equal shares: {epoch:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_raises_fails_the_job_fast_with_its_traceback() {
    let env = Environment::new();
    let out = tempfile::tempdir().expect("tempdir");
    let table = env.datagen(DataGen::new(5000).column("x", Generator::uniform(0.0, 1.0))).expect("datagen");
    let config = cluster("misbehave.py", "raise_entry", 2).property("out_dir", out.path().to_string_lossy()).build().expect("config");
    let started = Instant::now();
    let error = dlflow::train(&table, &config, 1).await.expect_err("worker 1 raises");
    let message = error.to_string();
    assert!(matches!(error, Error::Cluster(_)), "{error:?}");
    assert!(message.contains("worker 1 failed: ValueError: bad row 42"), "{message}");
    assert!(message.contains("Traceback (most recent call last)") && message.contains("misbehave.py"), "{message}");
    // Worker 0 sleeps for ten minutes: the job must not wait for it.
    assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());
    for pid in pids_in(out.path()) {
        assert!(gone(pid), "pid {pid} outlived the failed job");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_is_detected_not_waited_for() {
    let out = tempfile::tempdir().expect("tempdir");
    let config = cluster("misbehave.py", "die_entry", 2).property("out_dir", out.path().to_string_lossy()).build().expect("config");
    let error = dlflow::train_without_input(&config).await.expect_err("worker 0 is killed");
    assert!(error.to_string().contains("worker 0 exited unexpectedly (killed by signal 9 (SIGKILL))"), "{error}");
    for pid in pids_in(out.path()) {
        assert!(gone(pid), "pid {pid} outlived the failed job");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_worker_is_detected_by_its_missing_heartbeats() {
    let out = tempfile::tempdir().expect("tempdir");
    let timeouts = Timeouts { heartbeat: Duration::from_secs(2), ..Timeouts::default() };
    let config = cluster("misbehave.py", "hang_entry", 2)
        .timeouts(timeouts)
        .property("out_dir", out.path().to_string_lossy())
        .build()
        .expect("config");
    let error = dlflow::train_without_input(&config).await.expect_err("worker 0 is stopped");
    assert!(error.to_string().contains("worker 0 is unresponsive: no heartbeat for"), "{error}");
    for pid in pids_in(out.path()) {
        assert!(gone(pid), "pid {pid} outlived the failed job");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_job_stops_every_node() {
    let env = Environment::new();
    let out = tempfile::tempdir().expect("tempdir");
    let table = env.datagen(DataGen::new(100).column("x", Generator::uniform(0.0, 1.0))).expect("datagen");
    let config =
        cluster("misbehave.py", "sleep_entry", 2).ps_count(1).property("out_dir", out.path().to_string_lossy()).build().expect("config");
    let mut job = Box::pin(dlflow::train(&table, &config, 1));
    // Wait until every node runs its entry, then drop the job (what Ctrl-C does to a caller).
    let deadline = Instant::now() + Duration::from_secs(60);
    while pids_in(out.path()).len() < 3 {
        assert!(Instant::now() < deadline, "nodes did not start");
        tokio::select! {
            result = job.as_mut() => panic!("the job ended on its own: {result:?}"),
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
    drop(job);
    let pids = pids_in(out.path());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pids.iter().all(|&pid| gone(pid)) {
        assert!(Instant::now() < deadline, "nodes outlived the cancelled job: {pids:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_without_input_runs_the_entry_on_its_own_data() {
    let out = tempfile::tempdir().expect("tempdir");
    let config = cluster("misbehave.py", "own_data_entry", 1).property("out_dir", out.path().to_string_lossy()).build().expect("config");
    let report = dlflow::train_without_input(&config).await.expect("run");
    assert!(report.epochs.is_empty());
    let said = std::fs::read_to_string(out.path().join("worker_0.txt")).expect("the entry ran");
    assert!(said.contains("this job has no input table"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_declared_types_and_unfeedable_columns_are_refused_before_any_node_starts() {
    let env = Environment::new();
    let table = all_types(&env, 10, 1);
    let config = cluster("echo.py", "echo_entry", 1).property("input_types", "INT_64,FLOAT_64,FLOAT_64,INT_32,STRING,FLOAT_32");
    let error = dlflow::train(&table, &config.build().expect("config"), 1).await.expect_err("f32 declared FLOAT_64");
    assert!(error.to_string().contains("column `f32`"), "{error}");

    let schema = Arc::new(Schema::new(vec![Field::new("y", DataType::Float32, false)]));
    let config = cluster("echo.py", "echo_entry", 1).property("output_types", "INT_32").build().expect("config");
    let Err(error) = dlflow::inference(&table, &config, schema) else { panic!("y declared INT_32 must be refused") };
    assert!(error.to_string().contains("output_types declares INT_32 for column `y`"), "{error}");

    let dated = env.sql("SELECT CAST('2024-01-01' AS DATE) AS day").await.expect("sql");
    let config = cluster("echo.py", "echo_entry", 1).build().expect("config");
    let error = dlflow::train(&dated, &config, 1).await.expect_err("dates have no tensor type");
    assert!(error.to_string().contains("column `day` has type Date32"), "{error}");

    let error = dlflow::train(&table, &config, 0).await.expect_err("zero epochs");
    assert!(error.to_string().contains("epochs must be at least 1"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_that_does_not_exist_is_named() {
    let env = Environment::new();
    let table = env.datagen(DataGen::new(10).column("x", Generator::uniform(0.0, 1.0))).expect("datagen");
    let config = cluster("echo.py", "no_such_entry", 1).build().expect("config");
    let error = dlflow::train(&table, &config, 1).await.expect_err("no such function");
    assert!(error.to_string().contains("has no function 'no_such_entry'"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quick_start_learns_y_equals_2x_plus_1_on_two_workers() {
    let env = Environment::new();
    let model_dir = tempfile::tempdir().expect("tempdir");
    let model_path = model_dir.path().join("linear");
    let points = env.datagen(DataGen::new(5120).seed(1).column("x", Generator::uniform(0.0, 1.0))).expect("datagen");
    env.context().register_table("points", points.dataframe().clone().into_view()).expect("register");
    let samples = env.sql("SELECT x, 2 * x + 1 AS y FROM points").await.expect("sql");
    let entry = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart/train.py");
    let config = TfClusterConfig::builder()
        .worker_count(2)
        .node_entry(entry, "train_entry")
        .property("model_dir", model_path.to_string_lossy())
        .quiet(true)
        .build()
        .expect("config");
    let report = dlflow::train(&samples, &config, 4).await.expect("train");
    assert_eq!(report.epochs.len(), 4);
    assert!(report.epochs.iter().all(|e| e.rows == vec![2560, 2560] && e.dropped() == 0), "{report}");

    // In-process inference with the trained model: y(0) is the bias, y(1) - y(0) the weight.
    let probe = env
        .from_batches(vec![
            RecordBatch::try_from_iter([(
                "x",
                Arc::new(datafusion::arrow::array::Float32Array::from(vec![0.0f32, 1.0])) as Arc<dyn Array>,
            )])
            .expect("batch"),
        ])
        .expect("table");
    let predicted = dlflow::Model::load(&model_path).expect("saved model").transform(&probe).expect("transform");
    let batches = predicted.collect().await.expect("predict");
    let y = batches[0].column_by_name("y").expect("y").as_primitive::<datafusion::arrow::datatypes::Float32Type>();
    let (bias, weight) = (y.value(0), y.value(1) - y.value(0));
    assert!((weight - 2.0).abs() < 0.05, "weight {weight}");
    assert!((bias - 1.0).abs() < 0.05, "bias {bias}");
}
