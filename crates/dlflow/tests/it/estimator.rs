//! The Estimator end to end: fit with real Python nodes, save, load, transform in-process.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type, Int64Type};
use dlflow::{DataGen, Environment, Estimator, Generator, Model, Table};

fn factories() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/entries/models.py")
}

async fn sql(env: &Environment, name: &str, table: Table, query: &str) -> Table {
    env.context().register_table(name, table.dataframe().clone().into_view()).expect("register");
    env.sql(query).await.expect("sql")
}

fn column_f64(batches: &[RecordBatch], name: &str) -> Vec<f64> {
    batches
        .iter()
        .flat_map(|b| {
            let c = b.column_by_name(name).unwrap_or_else(|| panic!("no column {name}"));
            match c.data_type() {
                DataType::Float32 => c.as_primitive::<Float32Type>().values().iter().map(|v| *v as f64).collect::<Vec<_>>(),
                DataType::Float64 => c.as_primitive::<Float64Type>().values().to_vec(),
                DataType::Int64 => c.as_primitive::<Int64Type>().values().iter().map(|v| *v as f64).collect(),
                other => panic!("{name}: {other}"),
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_estimator_example_fits_y_equals_2x1_plus_3x2_plus_1_on_two_workers() {
    let env = Environment::new();
    let rows = env
        .datagen(DataGen::new(4096).seed(1).column("x1", Generator::uniform(0.0, 1.0)).column("x2", Generator::uniform(0.0, 1.0)))
        .expect("datagen");
    let samples = sql(&env, "rows", rows, "SELECT x1, x2, 2 * x1 + 3 * x2 + 1 AS y FROM rows").await;
    let epochs = Arc::new(Mutex::new(Vec::new()));
    let seen = epochs.clone();
    let factory = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/estimator/linear_model.py");
    let model = Estimator::factory(factory, "build_model")
        .loss("mse")
        .learning_rate(0.05)
        .feature_cols(["x1", "x2"])
        .label_col("y")
        .max_epochs(8)
        .batch_size(32)
        .worker_count(2)
        .quiet(true)
        .on_epoch(move |m| seen.lock().expect("lock").push(m.values["loss"]))
        .fit(&samples)
        .await
        .expect("fit");
    let losses = epochs.lock().expect("lock").clone();
    assert_eq!(losses.len(), 8, "one report per epoch: {losses:?}");
    assert!(losses[7] < losses[0], "{losses:?}");
    let fitted = model.fitted_with().expect("estimator metadata");
    assert_eq!((fitted.feature_cols.clone(), fitted.prediction_col.as_str()), (vec!["x1".to_string(), "x2".to_string()], "y"));

    let fresh = env
        .datagen(DataGen::new(500).seed(77).column("x1", Generator::uniform(0.0, 1.0)).column("x2", Generator::uniform(0.0, 1.0)))
        .expect("fresh");
    let right_after = model.transform(&fresh).expect("transform").collect().await.expect("predict");
    let (x1, x2, y) = (column_f64(&right_after, "x1"), column_f64(&right_after, "x2"), column_f64(&right_after, "y"));
    for i in 0..y.len() {
        let truth = 2.0 * x1[i] + 3.0 * x2[i] + 1.0;
        assert!((y[i] - truth).abs() < 0.05, "row {i}: predicted {} for {truth}", y[i]);
    }

    // save -> load -> transform: the same predictions, and the metadata survives.
    let dir = tempfile::tempdir().expect("tempdir");
    let saved = dir.path().join("linear");
    model.save(&saved).expect("save");
    assert!(model.save(&saved).is_err(), "saving over an existing folder is refused");
    let loaded = Model::load(&saved).expect("load");
    assert_eq!(loaded.fitted_with(), model.fitted_with());
    let again = loaded.transform(&fresh).expect("transform").collect().await.expect("predict");
    assert_eq!(column_f64(&again, "y"), y);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_seed_feature_type_trains_with_a_float_label_and_an_int_label() {
    let env = Environment::new();
    let rows = env
        .datagen(
            DataGen::new(2000)
                .seed(3)
                .column("f32", Generator::uniform(0.0, 1.0).with_data_type(DataType::Float32))
                .column("f64", Generator::uniform(0.0, 1.0))
                .column("i32", Generator::uniform_int(0, 9).with_data_type(DataType::Int32))
                .column("i64", Generator::uniform_int(0, 9)),
        )
        .expect("datagen");
    let samples = sql(
        &env,
        "typed",
        rows,
        "SELECT f32, f64, i32, i64, f64 + CAST(i64 AS DOUBLE) / 10 AS target, CAST(f64 > 0.5 AS BIGINT) AS class FROM typed",
    )
    .await;
    let features = ["f32", "f64", "i32", "i64"];

    let regression = Estimator::factory(factories(), "linear")
        .learning_rate(0.05)
        .feature_cols(features)
        .label_col("target")
        .max_epochs(5)
        .seed(3) // deterministic: the same shuffles and initial weights on every run
        .quiet(true)
        .fit(&samples)
        .await
        .expect("fit a float label");
    // The prediction is named after the label: transform rows without it.
    let unlabelled = Table::new(samples.dataframe().clone().select_columns(&features).expect("select"));
    let predicted = regression.transform(&unlabelled).expect("transform").collect().await.expect("predict");
    assert_eq!(predicted.iter().map(RecordBatch::num_rows).sum::<usize>(), 2000);
    let (f64s, i64s, target) = (column_f64(&predicted, "f64"), column_f64(&predicted, "i64"), column_f64(&predicted, "target"));
    let error: f64 = (0..2000).map(|i| (target[i] - (f64s[i] + i64s[i] / 10.0)).abs()).sum::<f64>() / 2000.0;
    // Seed 3 gives 0.007 (seeds 1-10: at most 0.11), well inside the bound.
    assert!(error < 0.2, "mean absolute error {error}");

    let classifier = Estimator::factory(factories(), "two_classes")
        .loss("sparse_categorical_crossentropy")
        .loss_params(serde_json::json!({"from_logits": true}))
        .metrics(["accuracy"])
        .learning_rate(0.02)
        .feature_cols(features)
        .label_col("class")
        .prediction_col("predicted_class")
        .max_epochs(12)
        .seed(3) // deterministic: the same shuffles and initial weights on every run
        .quiet(true)
        .fit(&samples)
        .await
        .expect("fit an int label");
    let predicted = classifier.transform(&samples).expect("transform").collect().await.expect("predict");
    let (class, guess) = (column_f64(&predicted, "class"), column_f64(&predicted, "predicted_class"));
    let right = class.iter().zip(&guess).filter(|(a, b)| a == b).count();
    // Seed 3 gives 0.99 (seeds 3-10: at least 0.94).
    assert!(right as f64 / class.len() as f64 > 0.9, "accuracy {right}/{}", class.len());
    assert_eq!(predicted[0].column_by_name("predicted_class").expect("col").data_type(), &DataType::Int64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_estimator_inputs_are_named_before_or_while_training() {
    let env = Environment::new();
    let rows = env.datagen(DataGen::new(100).column("x", Generator::uniform(0.0, 1.0)).column("s", Generator::random_string(3))).expect("datagen");
    let samples = sql(&env, "bad", rows, "SELECT x, s, x * 2 AS y FROM bad").await;
    let base = || Estimator::factory(factories(), "linear").label_col("y").quiet(true);

    let error = base().feature_cols(["x", "nope"]).fit(&samples).await.expect_err("missing column");
    assert!(error.to_string().contains("feature column `nope` is not in the table; it has x, s, y"), "{error}");

    let error = base().feature_cols(["s"]).fit(&samples).await.expect_err("string feature");
    assert!(error.to_string().contains("feature column `s` has type Utf8"), "{error}");

    let error = Estimator::factory(factories(), "raises").feature_cols(["x"]).label_col("y").quiet(true).fit(&samples).await.expect_err("factory raises");
    assert!(error.to_string().contains("RuntimeError: no model today") && error.to_string().contains("Traceback"), "{error}");

    let empty = sql(&env, "empty", env.sql("SELECT x, y FROM (SELECT 1.0 AS x, 2.0 AS y) WHERE x > 5").await.expect("sql"), "SELECT * FROM empty").await;
    let error = base().feature_cols(["x"]).fit(&empty).await.expect_err("zero rows");
    assert!(error.to_string().contains("has no rows"), "{error}");

    let error = Estimator::factory("/nonexistent/model.py", "f").feature_cols(["x"]).label_col("y").fit(&samples).await.expect_err("no file");
    assert!(error.to_string().contains("/nonexistent/model.py does not exist"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digits_from_scikit_learn_are_classified_above_the_floor() {
    let data = std::env::var("DLFLOW_DATA").expect("DLFLOW_DATA: run through scripts/test.sh (setup.sh exports the digits)");
    let env = Environment::new();
    env.register_file("digits", format!("{data}/digits.parquet")).await.expect("digits");
    let train = env.sql("SELECT pixels, label FROM digits WHERE id < 1500").await.expect("train");
    let test = env.sql("SELECT id, pixels, label AS truth FROM digits WHERE id >= 1500").await.expect("test");
    let factory = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/digits/mlp.py");
    let model = Estimator::factory(factory, "build_model")
        .loss("sparse_categorical_crossentropy")
        .loss_params(serde_json::json!({"from_logits": true}))
        .learning_rate(0.01)
        .feature_cols(["pixels"])
        .label_col("label")
        .max_epochs(20)
        .worker_count(2)
        .quiet(true)
        .fit(&train)
        .await
        .expect("fit");
    let predicted = model.transform(&test).expect("transform").collect().await.expect("predict");
    let (truth, label) = (column_f64(&predicted, "truth"), column_f64(&predicted, "label"));
    assert_eq!(truth.len(), 297);
    let accuracy = truth.iter().zip(&label).filter(|(a, b)| a == b).count() as f64 / truth.len() as f64;
    assert!(accuracy > 0.85, "accuracy {accuracy}");
}

/// `SELECT x1, x2, 2 * x1 + 3 * x2 + 1 AS y` over `rows` generated rows.
async fn linear_rows(env: &Environment, rows: u64, seed: u64) -> Table {
    let points = env
        .datagen(DataGen::new(rows).seed(seed).column("x1", Generator::uniform(0.0, 1.0)).column("x2", Generator::uniform(0.0, 1.0)))
        .expect("datagen");
    let name = format!("points_{seed}");
    sql(env, &name, points, &format!("SELECT x1, x2, 2 * x1 + 3 * x2 + 1 AS y FROM {name}")).await
}

fn linear_factory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/estimator/linear_model.py")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_metrics_come_every_epoch_and_transform_keeps_the_label() {
    let env = Environment::new();
    let samples = linear_rows(&env, 2000, 21).await;
    let epochs = Arc::new(Mutex::new(Vec::new()));
    let seen = epochs.clone();
    let model = Estimator::factory(linear_factory(), "build_model")
        .learning_rate(0.05)
        .metrics(["mae"])
        .feature_cols(["x1", "x2"])
        .label_col("y")
        .max_epochs(6)
        .batch_size(32)
        .worker_count(2)
        .validation_split(0.2)
        .seed(1)
        .quiet(true)
        .on_epoch(move |m| seen.lock().expect("lock").push(m.values.clone()))
        .fit(&samples)
        .await
        .expect("fit");
    let epochs = epochs.lock().expect("lock").clone();
    assert_eq!(epochs.len(), 6, "{epochs:?}");
    for values in &epochs {
        for key in ["loss", "mae", "val_loss", "val_mae"] {
            assert!(values.get(key).is_some_and(|v| v.is_finite()), "{key} missing: {values:?}");
        }
    }
    assert!(epochs[5]["val_loss"] < epochs[0]["val_loss"] / 2.0, "{epochs:?}");

    // The labelled table itself: `y` stays, the prediction comes as `y_predicted`.
    let predicted = model.transform(&samples).expect("transform").collect().await.expect("predict");
    let schema = predicted[0].schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["x1", "x2", "y", "y_predicted"]);
    let (y, guess) = (column_f64(&predicted, "y"), column_f64(&predicted, "y_predicted"));
    assert_eq!(y.len(), 2000);
    let error = y.iter().zip(&guess).map(|(a, b)| (a - b).abs()).sum::<f64>() / 2000.0;
    assert!(error < 0.1, "mean absolute error {error}");

    // A validation table instead of a split: scored every epoch too.
    let held_out = linear_rows(&env, 300, 22).await;
    let values = Arc::new(Mutex::new(Vec::new()));
    let seen = values.clone();
    Estimator::factory(linear_factory(), "build_model")
        .feature_cols(["x1", "x2"])
        .label_col("y")
        .max_epochs(2)
        .validation_data(&held_out)
        .quiet(true)
        .on_epoch(move |m| seen.lock().expect("lock").push(m.values.contains_key("val_loss")))
        .fit(&samples)
        .await
        .expect("fit with a validation table");
    assert_eq!(*values.lock().expect("lock"), vec![true, true]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keras_3_and_tf_keras_files_train_from_their_own_weights() {
    let dir = tempfile::tempdir().expect("tempdir");
    let python = dlflow::layers::dlflow_cluster::interpreter(&dlflow::Python::Default).expect("python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/entries/save_keras_files.py");
    for mode in ["keras3", "tf_keras"] {
        let output = std::process::Command::new(&python).arg(&script).arg(mode).arg(dir.path()).output().expect("python");
        assert!(output.status.success(), "{mode}: {}", String::from_utf8_lossy(&output.stderr));
    }
    let env = Environment::new();
    let samples = linear_rows(&env, 256, 23).await;
    let probe = env
        .from_batches(vec![
            RecordBatch::try_from_iter([
                ("x1", Arc::new(datafusion::arrow::array::Float64Array::from(vec![0.0, 1.0, 0.0, 0.5])) as Arc<dyn Array>),
                ("x2", Arc::new(datafusion::arrow::array::Float64Array::from(vec![0.0, 0.0, 1.0, 0.25])) as Arc<dyn Array>),
            ])
            .expect("batch"),
        ])
        .expect("probe");
    for file in ["m3.keras", "m2.keras", "m2.h5"] {
        // A learning rate of 0: the fitted model is the file's model, so its predictions are the file's.
        let model = Estimator::model_file(dir.path().join(file))
            .optimizer("sgd")
            .learning_rate(0.0)
            .feature_cols(["x1", "x2"])
            .label_col("y")
            .quiet(true)
            .fit(&samples)
            .await
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let predicted = model.transform(&probe).expect("transform").collect().await.expect("predict");
        let expected: Vec<f64> =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(format!("{file}.json"))).expect("json")).expect("floats");
        let got = column_f64(&predicted, "y");
        for (g, e) in got.iter().zip(&expected) {
            assert!((g - e).abs() < 1e-5, "{file}: predicted {got:?}, the file's model {expected:?}");
        }
    }
    // A Keras 3 file with a layer of its own cannot be rebuilt: refused before any node starts.
    let started = std::time::Instant::now();
    let error = Estimator::model_file(dir.path().join("m3_custom.keras"))
        .feature_cols(["x1", "x2"])
        .label_col("y")
        .quiet(true)
        .fit(&samples)
        .await
        .expect_err("a custom Keras 3 layer");
    let message = error.to_string();
    assert!(matches!(error, dlflow::Error::Invalid(_)), "{error:?}");
    assert!(message.contains("m3_custom.keras is a .keras file saved by Keras 3"), "{message}");
    assert!(message.contains("tests>Doubled") && message.contains("model factory"), "{message}");
    assert!(started.elapsed().as_secs() < 60, "refused late: {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batch_size_is_global_and_must_split_evenly() {
    let env = Environment::new();
    let samples = linear_rows(&env, 100, 24).await;
    let error = Estimator::factory(linear_factory(), "build_model")
        .feature_cols(["x1", "x2"])
        .label_col("y")
        .batch_size(33)
        .worker_count(2)
        .fit(&samples)
        .await
        .expect_err("33 rows over 2 workers");
    assert!(error.to_string().contains("batch_size 33 is the global batch, split evenly across the 2 workers"), "{error}");
    let error = Estimator::factory(linear_factory(), "build_model")
        .feature_cols(["x1", "x2"])
        .label_col("y")
        .validation_split(1.5)
        .fit(&samples)
        .await
        .expect_err("a split above 1");
    assert!(error.to_string().contains("validation_split 1.5"), "{error}");
    let tiny = linear_rows(&env, 3, 25).await;
    let error = Estimator::factory(linear_factory(), "build_model")
        .feature_cols(["x1", "x2"])
        .label_col("y")
        .batch_size(4)
        .worker_count(4)
        .fit(&tiny)
        .await
        .expect_err("3 rows for 4 workers");
    assert!(error.to_string().contains("has 3 row(s), fewer than the 4 workers"), "{error}");
}
