//! Classification on real data a package ships: scikit-learn's 8x8 digits (1797 images,
//! exported to Parquet by `scripts/setup.sh`). The Estimator fits an MLP on 1500 images with
//! 2 workers; the model then classifies the other 297 in-process and the accuracy is printed.
//!
//! Run: `source scripts/setup.sh && cargo run --release --example digits`

use dlflow::{Environment, Estimator};

#[tokio::main]
async fn main() -> dlflow::Result<()> {
    let data = std::env::var("DLFLOW_DATA").map_err(|_| dlflow::Error::Invalid("DLFLOW_DATA is not set: source scripts/setup.sh".into()))?;
    let factory = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/digits/mlp.py");
    let env = Environment::new();
    env.register_file("digits", format!("{data}/digits.parquet")).await?;
    let train = env.sql("SELECT pixels, label FROM digits WHERE id < 1500").await?;
    let test = env.sql("SELECT id, pixels, label AS truth FROM digits WHERE id >= 1500").await?;

    let model = Estimator::factory(factory, "build_model")
        .loss("sparse_categorical_crossentropy")
        .loss_params(serde_json::json!({"from_logits": true}))
        .metrics(["accuracy"])
        .learning_rate(0.01)
        .feature_cols(["pixels"])
        .label_col("label")
        .max_epochs(20)
        .batch_size(32)
        .worker_count(2)
        .on_epoch(|m| eprintln!("epoch {:>2}: loss {:.4}, accuracy {:.4}", m.epoch + 1, m.values["loss"], m.values["accuracy"]))
        .fit(&train)
        .await?;

    // The integer label makes the saved model predict the class: `label` is appended.
    let predicted = model.transform(&test)?;
    env.context().register_table("predicted", predicted.dataframe().clone().into_view())?;
    let accuracy = env.sql("SELECT avg(CASE WHEN label = truth THEN 1.0 ELSE 0.0 END) AS accuracy, count(*) AS images FROM predicted").await?;
    println!("{}", accuracy.show(1).await?);
    Ok(())
}
