//! The integration tests of `dlflow-tf`, one binary (each file a module): one link instead of
//! one per file, which is most of the test build's time (decision 0001).

mod conversion_properties;
mod external_models;
mod no_panics;
mod predict;
mod saved_model;
