//! The seed's quick start, whole: train y = 2x + 1 on a generated table with two TensorFlow
//! workers (MultiWorkerMirroredStrategy, 4 epochs), then run the trained SavedModel in-process
//! over new rows.
//!
//! Run: `cargo run --release --example quickstart_train -- [MODEL_DIR]`
//! (the node entry is `examples/quickstart/train.py`; `scripts/setup.sh` makes the Python side).

use dlflow::{DataGen, Environment, Generator, Model, TfClusterConfig};

#[tokio::main]
async fn main() -> dlflow::Result<()> {
    let model_dir = std::env::args().nth(1).unwrap_or_else(|| "/tmp/dlflow-quickstart/linear".into());
    let entry = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/quickstart/train.py");

    // 5120 rows: x uniform in [0, 1), y = 2x + 1.
    let env = Environment::new();
    let points = env.datagen(DataGen::new(5120).seed(1).column("x", Generator::uniform(0.0, 1.0)))?;
    env.context().register_table("points", points.dataframe().clone().into_view())?;
    let samples = env.sql("SELECT x, 2 * x + 1 AS y FROM points").await?;

    // Two workers; each gets an equal share of the rows, one epoch per pass of its dataset.
    let config = TfClusterConfig::builder()
        .worker_count(2)
        .node_entry(entry, "train_entry")
        .property("model_dir", &model_dir)
        .build()?;
    let report = dlflow::train(&samples, &config, 4).await?;
    print!("{report}");

    // The chief's TensorBoard events, beside the model (train.py's tensorboard_callback): the
    // loss per epoch and per step, drawn with characters.
    match dlflow::LossCurve::read(format!("{model_dir}.tensorboard").as_ref()) {
        Ok(curve) => print!("{}", curve.to_text(60)),
        Err(e) => eprintln!("no loss curve: {e}"),
    }

    // The chief saved a SavedModel (serving_default: x -> y): run it over new rows.
    let fresh = env.datagen(DataGen::new(100_000).seed(42).column("x", Generator::uniform(0.0, 1.0)))?;
    let predicted = Model::load(&model_dir)?.transform(&fresh)?;
    println!("{}", predicted.show(5).await?);
    Ok(())
}
