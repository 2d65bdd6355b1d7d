//! The seed's quick start, inference half: the linear model y = 2x + 1 over a generated table.
//!
//! Run: `cargo run --release --example quickstart_inference -- MODEL_DIR`
//! (`scripts/quickstart.sh` makes the model; with no argument, `$DLFLOW_MODELS/linear` is used).

use dlflow::{DataGen, Environment, Generator, Model};

#[tokio::main]
async fn main() -> dlflow::Result<()> {
    let model_dir = std::env::args().nth(1).unwrap_or_else(|| format!("{}/linear", std::env::var("DLFLOW_MODELS").unwrap_or_default()));

    // 5120 rows of x uniform in [0, 1) as FLOAT, the seed's input table.
    let env = Environment::new();
    let points = env.datagen(
        DataGen::new(5120)
            .seed(42)
            .column("x", Generator::uniform(0.0, 1.0).with_data_type(datafusion::arrow::datatypes::DataType::Float32)),
    )?;

    // Load once, run in-process over every batch; y is appended to each row.
    let model = Model::load(&model_dir)?;
    let predicted = model.transform(&points)?;
    println!("{}", predicted.show(5).await?);

    // The result is a table like any other: query it. The model *is* y = 2x + 1, so the
    // largest error is float rounding.
    env.context().register_table("predicted", predicted.dataframe().clone().into_view())?;
    let check = env.sql("SELECT count(*) AS rows, max(abs(y - (2 * x + 1))) AS max_error FROM predicted").await?;
    println!("{}", check.show(1).await?);
    Ok(())
}
