//! What the user guide promises about errors, checked against the real messages: the table of
//! docs/guide/inference.md ("Errors") quotes each message, and each is produced here from a real
//! model and a real table, so that the guide cannot quote a message dlflow no longer prints.

use std::path::{Path, PathBuf};

use dlflow::{DataGen, Environment, Generator, Model};
use dlflow_testkit as common;

/// The rows of the guide's error table: (problem, quoted message).
fn error_table() -> Vec<(String, String)> {
    let guide = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/guide/inference.md");
    let text = std::fs::read_to_string(&guide).expect("inference guide");
    let table = text.split("| problem | error says |").nth(1).expect("the guide's error table");
    table
        .lines()
        .skip(2) // the separator row
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
            let quoted = cells[1].trim_matches('`').trim().to_string();
            (cells[0].to_string(), quoted)
        })
        .collect()
}

/// Whether `message` reads as `template` says: `DIR` is `dir`, `...` is anything.
fn reads_as(message: &str, template: &str, dir: &str) -> bool {
    let template = template.replace("DIR", dir);
    let mut rest = message;
    for fragment in template.split("...").map(str::trim).filter(|f| !f.is_empty()) {
        match rest.find(fragment) {
            Some(at) => rest = &rest[at + fragment.len()..],
            None => return false,
        }
    }
    true
}

/// The error a user meets for `problem`, and the `DIR` it names.
async fn error_for(problem: &str, env: &Environment, empty_dir: &Path) -> (String, PathBuf) {
    let linear = || Model::load(common::model("linear")).expect("linear");
    let sql = |query: &'static str| async move { env.sql(query).await.expect("table") };
    let missing = PathBuf::from("/nonexistent/dlflow-model");
    let result = match problem {
        "model directory missing" => Model::load(&missing).map(|_| ()),
        "directory is not a SavedModel" => Model::load(empty_dir).map(|_| ()),
        "unknown signature" => linear().with_signature("x").transform(&sql("SELECT CAST(1 AS FLOAT) AS x").await).map(|_| ()),
        "missing input column" => linear().transform(&sql("SELECT CAST(1 AS FLOAT) AS feature").await).map(|_| ()),
        "wrong column type" => linear().transform(&sql("SELECT 'hello' AS x").await).map(|_| ()),
        "wrong vector width" => {
            let pixels = env.datagen(DataGen::new(4).column("pixels", Generator::uniform_vector(783, 0.0, 1.0))).expect("datagen");
            Model::load(common::model("mlp")).expect("mlp").transform(&pixels).map(|_| ())
        }
        "nulls" => {
            // One batch with two nulls.
            let rows = sql("SELECT CAST(column1 AS FLOAT) AS x FROM (VALUES (NULL), (NULL), (1.0))").await;
            match linear().transform(&rows) {
                Ok(predicted) => predicted.collect().await.map(|_| ()),
                Err(e) => Err(e),
            }
        }
        "an output named like a column" => linear().transform(&sql("SELECT CAST(1 AS FLOAT) AS x, 2.0 AS y").await).map(|_| ()),
        other => panic!("the guide's error table has a row this test cannot produce: `{other}`; add it here"),
    };
    let error = result.expect_err(problem).to_string();
    let dir = if problem == "model directory missing" { missing } else { empty_dir.to_path_buf() };
    (error, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inference_guide_quotes_the_errors_dlflow_prints() {
    let rows = error_table();
    assert!(rows.len() >= 8, "the table was not found whole: {rows:?}");
    let env = Environment::new();
    let empty = tempfile::tempdir().expect("tempdir");
    for (problem, quoted) in &rows {
        let (message, dir) = error_for(problem, &env, empty.path()).await;
        assert!(reads_as(&message, quoted, &dir.display().to_string()), "{problem}: the guide says\n  {quoted}\nbut dlflow says\n  {message}");
    }
}

#[test]
fn templates_match_in_order_and_only_in_order() {
    assert!(reads_as("model directory /a/b does not exist", "model directory DIR does not exist", "/a/b"));
    assert!(reads_as("the model has no signature `x`; it has: a, b", "the model has no signature `x`; it has: ...", ""));
    assert!(!reads_as("the model has no signature 'x'; it has: a", "the model has no signature `x`; it has: ...", ""));
    assert!(!reads_as("b then a", "a ... b", ""));
}
