//! The integration tests of `dlflow`, one binary (each file a module): one link instead of
//! one per file, which is most of the test build's time (decision 0001).

mod cluster;
mod data_handling;
mod estimator;
mod guide;
mod inference;
mod johnny;
mod layering;
mod online;
mod parameter_server;
mod pattern;
mod recovery;
