//! The integration tests of `dlflow-cluster`, one binary (each file a module): one link instead of
//! one per file, which is most of the test build's time (decision 0001).

mod nodes;
mod tables_agree;
