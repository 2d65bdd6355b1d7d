//! The Rust and Python twins agree: the element type table (`dlflow_common::types` and
//! `python/dlflow/_types.py`) and the wire protocol's frame kinds and limit
//! (`dlflow_cluster::protocol` and `python/dlflow/_protocol.py`).

use std::collections::BTreeMap;
use std::process::Command;

use dlflow_cluster::{Python, interpreter, package_root, protocol};
use dlflow_common::types::ELEMENT_TYPES;

/// Runs `code` with the project's Python and the dlflow package; returns what it printed.
fn python(code: &str) -> Vec<u8> {
    let output = Command::new(interpreter(&Python::Default).expect("python"))
        .args(["-c", code])
        .env("PYTHONPATH", package_root().expect("package"))
        .output()
        .expect("run python");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

#[test]
fn the_python_type_table_is_the_rust_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("types.arrow");
    python(&format!(
        "import pyarrow as pa; from dlflow import _types\n\
         with pa.OSFile({:?}, 'wb') as f:\n    pa.ipc.new_stream(f, _types.as_schema()).close()",
        file.display().to_string()
    ));
    let reader = arrow::ipc::reader::StreamReader::try_new(std::fs::File::open(&file).expect("file"), None).expect("ipc");
    let schema = reader.schema();
    assert_eq!(schema.fields().len(), ELEMENT_TYPES.len(), "rows: {schema:?}");
    for (field, rust) in schema.fields().iter().zip(&ELEMENT_TYPES) {
        let meta = field.metadata();
        let python = (field.data_type(), meta["tf_name"].as_str(), meta["seed_name"].as_str(), meta["to_nodes"] == "true", meta["number"] == "true");
        let expected = (&rust.arrow, rust.tf_name, rust.seed_name.unwrap_or(""), rust.to_nodes, rust.number);
        assert_eq!(python, expected, "row {}", field.name());
    }
    let words = python("from dlflow import _types; print(_types.TO_NODES_IN_WORDS, end='')");
    assert_eq!(String::from_utf8(words).expect("utf-8"), dlflow_common::types::TO_NODES_IN_WORDS);
}

#[test]
fn the_python_protocol_has_the_rust_kinds_and_limit() {
    let printed = python(
        "import json; from dlflow import _protocol as p\n\
         print(json.dumps({n: v for n, v in vars(p).items() if n.isupper() and not n.startswith('_') and isinstance(v, int)}))",
    );
    let python: BTreeMap<String, u64> = serde_json::from_slice(&printed).expect("json");
    let mut rust: BTreeMap<String, u64> = protocol::KINDS.iter().map(|(name, kind)| (name.to_string(), u64::from(*kind))).collect();
    rust.insert("MAX_FRAME".into(), u64::from(protocol::MAX_FRAME));
    assert_eq!(python, rust);
    let mut kinds: Vec<u8> = protocol::KINDS.iter().map(|(_, kind)| *kind).collect();
    kinds.sort_unstable();
    kinds.dedup();
    assert_eq!(kinds.len(), protocol::KINDS.len(), "each kind has its own number");
}
