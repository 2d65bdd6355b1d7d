//! The first load of TensorFlow in a process, raced by two threads: one loads a SavedModel, the
//! other TensorFlow itself. Both take the library's load lock and the stderr filter's lock; taken
//! in opposite orders they deadlocked (seen when two tests of one binary started together). A
//! binary of its own: the race is only there while TensorFlow is not loaded yet.

use std::sync::mpsc;
use std::time::Duration;

use dlflow_tf::{SavedModel, TensorFlow};

#[test]
fn a_model_and_tensorflow_loaded_at_once_by_two_threads_both_finish() {
    let model = dlflow_testkit::model("mlp");
    let (done, finished) = mpsc::channel();
    let model_done = done.clone();
    std::thread::spawn(move || model_done.send(SavedModel::load(&model).map(|_| "model").map_err(|e| e.to_string())));
    std::thread::spawn(move || done.send(TensorFlow::get().map(|_| "TensorFlow").map_err(|e| e.to_string())));
    for _ in 0..2 {
        // Loading takes a few seconds; two minutes without an answer is a deadlock.
        let loaded = finished.recv_timeout(Duration::from_secs(120)).expect("both loads finish (no deadlock between them)");
        loaded.expect("loaded");
    }
}
