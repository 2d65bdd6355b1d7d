//! The crate graph matches the data path (docs/design.md, "Layout"): nothing imports from
//! above it, and the layers that need no model need no TensorFlow.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Each workspace crate's normal dependencies on other dlflow crates, `(name, optional)`.
fn dlflow_dependencies() -> BTreeMap<String, Vec<(String, bool)>> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline", "--manifest-path"])
        .arg(&manifest)
        .output()
        .expect("cargo metadata");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("json");
    let mut graph = BTreeMap::new();
    for package in metadata["packages"].as_array().expect("packages") {
        let dependencies = package["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .filter(|d| d["kind"].is_null() && d["name"].as_str().is_some_and(|n| n.starts_with("dlflow")))
            .map(|d| (d["name"].as_str().expect("name").to_string(), d["optional"].as_bool().unwrap_or(false)))
            .collect();
        graph.insert(package["name"].as_str().expect("name").to_string(), dependencies);
    }
    graph
}

#[test]
fn no_crate_imports_from_above_it_and_only_models_bring_tensorflow() {
    let graph = dlflow_dependencies();
    let allowed: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("dlflow-common", &[][..]),
        ("dlflow-tf", &["dlflow-common"][..]),
        ("dlflow-table", &["dlflow-common", "dlflow-tf"][..]),
        ("dlflow-engine", &[][..]),
        ("dlflow-cluster", &["dlflow-common"][..]),
        ("dlflow-tensorboard", &["dlflow-common"][..]),
        ("dlflow", &["dlflow-common", "dlflow-tf", "dlflow-table", "dlflow-engine", "dlflow-cluster", "dlflow-tensorboard"][..]),
        ("dlflow-cli", &["dlflow"][..]),
        ("dlflow-testkit", &[][..]),
    ]);
    assert_eq!(graph.keys().map(String::as_str).collect::<Vec<_>>(), allowed.keys().copied().collect::<Vec<_>>(), "a new crate needs a place in the layering");
    for (name, dependencies) in &graph {
        for (dependency, _) in dependencies {
            assert!(allowed[name.as_str()].contains(&dependency.as_str()), "{name} must not depend on {dependency} (docs/design.md, Layout)");
        }
    }
    // Tables without models need no TensorFlow: dlflow-tf comes with the `inference` feature only.
    assert!(graph["dlflow-table"].contains(&("dlflow-tf".to_string(), true)), "{:?}", graph["dlflow-table"]);
}
