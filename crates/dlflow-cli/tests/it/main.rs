//! The integration tests of `dlflow-cli`, one binary (each file a module): one link instead of
//! one per file, which is most of the test build's time (decision 0001).

mod bounded_memory;
mod cli;
mod docs;
mod external_models;
mod online;
mod output;
mod processes;
mod streams;
mod temp_files;
mod tensorboard;
mod train;
