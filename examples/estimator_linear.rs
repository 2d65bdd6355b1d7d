//! The seed's estimator example: fit y = 2*x1 + 3*x2 + 1 with 2 workers, no training script,
//! scored on held-out rows after every epoch, then save, load and run the model in-process over
//! fresh rows, and over labelled rows (the prediction beside the label).
//!
//! Run: `cargo run --release --example estimator_linear -- [MODEL_DIR]`

use dlflow::{DataGen, Environment, Estimator, Generator, Model};

#[tokio::main]
async fn main() -> dlflow::Result<()> {
    let save_to = std::env::args().nth(1).unwrap_or_else(|| "/tmp/dlflow-estimator/linear".into());
    let factory = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/estimator/linear_model.py");

    let env = Environment::new();
    let rows = env.datagen(
        DataGen::new(4096).seed(1).column("x1", Generator::uniform(0.0, 1.0)).column("x2", Generator::uniform(0.0, 1.0)),
    )?;
    env.context().register_table("rows", rows.dataframe().clone().into_view())?;
    let samples = env.sql("SELECT x1, x2, 2 * x1 + 3 * x2 + 1 AS y FROM rows").await?;

    let model = Estimator::factory(factory, "build_model")
        .loss("mse")
        .optimizer("adam")
        .learning_rate(0.05)
        .feature_cols(["x1", "x2"])
        .label_col("y")
        .metrics(["mae"])
        .max_epochs(8)
        .batch_size(32) // rows per step, both workers together
        .worker_count(2)
        .validation_split(0.1) // the last 10% of the rows: scored, not trained on
        .seed(7) // the same shuffles and initial weights on every run
        .on_epoch(|m| {
            let value = |key: &str| m.values.get(key).copied().unwrap_or(f64::NAN);
            println!("epoch {}: loss {:.6}, val_loss {:.6}, val_mae {:.4}", m.epoch + 1, value("loss"), value("val_loss"), value("val_mae"))
        })
        .fit(&samples)
        .await?;
    let _ = std::fs::remove_dir_all(&save_to);
    model.save(&save_to)?;

    // Fresh rows through the saved model: `y` is appended, next to the truth.
    let fresh = env.datagen(
        DataGen::new(10).seed(99).column("x1", Generator::uniform(0.0, 1.0)).column("x2", Generator::uniform(0.0, 1.0)),
    )?;
    let predicted = Model::load(&save_to)?.transform(&fresh)?;
    env.context().register_table("predicted", predicted.dataframe().clone().into_view())?;
    let check = env.sql("SELECT x1, x2, y, 2 * x1 + 3 * x2 + 1 AS truth FROM predicted").await?;
    println!("{}", check.show(10).await?);

    // Rows that still have the label: `y` stays, the prediction comes as `y_predicted`.
    let labelled = model.transform(&samples)?;
    println!("{}", labelled.show(5).await?);
    Ok(())
}
