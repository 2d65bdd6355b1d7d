//! Loading libtensorflow: what a user sees when it is missing, not TensorFlow, or too old.
//! Its own test binary (not a module of `tests/it`): it never loads the real TensorFlow, so every
//! test here starts unloaded, which a binary shared with tests that load TensorFlow cannot give.

use std::path::Path;
use std::process::Command;

use dlflow_tf::{TensorFlow, TfError};

#[test]
fn a_path_without_tensorflow_says_where_it_looked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = TensorFlow::load_from(dir.path()).err().expect("no library there");
    assert!(matches!(err, TfError::LibraryNotFound { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains(&dir.path().display().to_string()) && message.contains("pip install tensorflow-cpu==2.21.0"), "{message}");
}

#[test]
fn a_library_that_is_not_tensorflow_is_named() {
    let libm = ["/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libm.so.6", "/lib64/libm.so.6"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("libm");
    let err = TensorFlow::load_from(Path::new(libm)).err().expect("not TensorFlow");
    assert!(matches!(err, TfError::NotTensorFlow { symbol: "TF_Version", .. }), "{err}");
}

#[test]
fn an_unloadable_file_is_a_load_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("libtensorflow_cc.so.2");
    std::fs::write(&file, b"not an ELF file").expect("write");
    let err = TensorFlow::load_from(dir.path()).err().expect("not loadable");
    assert!(matches!(err, TfError::LibraryLoad { .. }), "{err}");
}

#[test]
fn an_old_tensorflow_is_reported_with_its_version() {
    // A real shared library that answers TF_Version() like TensorFlow 1.15 does.
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join("old.c");
    std::fs::write(&source, "const char* TF_Version(void) { return \"1.15.5\"; }\n").expect("write");
    let library = dir.path().join("libtensorflow.so.2");
    let status = Command::new("cc").args(["-shared", "-fPIC", "-o"]).arg(&library).arg(&source).status().expect("cc");
    assert!(status.success(), "cc failed");
    let err = TensorFlow::load_from(dir.path()).err().expect("too old");
    assert!(matches!(err, TfError::UnsupportedVersion { .. }), "{err}");
    assert!(err.to_string().contains("1.15.5") && err.to_string().contains("2.21.0"), "{err}");
}
