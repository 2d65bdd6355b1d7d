//! The quick start with ParameterServerStrategy: y = 2x + 1 learned with the variables on a
//! TensorFlow parameter server and the steps on two TensorFlow workers, then the SavedModel run
//! in-process over new rows.
//!
//! dlflow runs one worker (TF's coordinator, which gets the rows) and three parameter-server
//! nodes: one TF parameter server and two TF workers (`examples/parameter_server/train.py`).
//!
//! Run: `cargo run --release --example parameter_server -- [MODEL_DIR]`

use dlflow::{DataGen, Environment, Generator, Model, TfClusterConfig};

#[tokio::main]
async fn main() -> dlflow::Result<()> {
    let model_dir = std::env::args().nth(1).unwrap_or_else(|| "/tmp/dlflow-parameter-server/linear".into());
    let entry = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/parameter_server/train.py");

    let env = Environment::new();
    let points = env.datagen(DataGen::new(5120).seed(1).column("x", Generator::uniform(0.0, 1.0)))?;
    env.context().register_table("points", points.dataframe().clone().into_view())?;
    let samples = env.sql("SELECT x, 2 * x + 1 AS y FROM points").await?;

    let config = TfClusterConfig::builder()
        .worker_count(1) // the coordinator
        .ps_count(3) // ps_tasks = 1 parameter server, the other 2 are TF workers
        .node_entry(entry, "train_entry")
        .property("ps_tasks", "1")
        .property("model_dir", &model_dir)
        .build()?;
    let report = dlflow::train(&samples, &config, 4).await?;
    print!("{report}");

    let fresh = env.datagen(DataGen::new(100_000).seed(42).column("x", Generator::uniform(0.0, 1.0)))?;
    let predicted = Model::load(&model_dir)?.transform(&fresh)?;
    println!("{}", predicted.show(5).await?);
    Ok(())
}
