//! The integration tests of `dlflow-engine`, one binary (each file a module): one link instead of
//! one per file, which is most of the test build's time (decision 0001).

mod engine;
mod no_panics;
mod processes;
