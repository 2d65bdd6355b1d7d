//! Models other tools wrote, run by dlflow: the TFX Chicago taxi model (an Estimator with a
//! tf.Transform graph, whose input is serialized `tf.train.Example` protos) over plain feature
//! columns, dlflow building the protos; then a TensorFlow 1.5 counter, a stateful model TF2
//! Python cannot load, called step by step.
//!
//! Run: `source scripts/setup.sh && cargo run --release --example models_from_the_wild -- [DIR]`
//! with DIR the external models folder (default `$DLFLOW_EXTERNAL_MODELS`).

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::array::Float32Array;
use dlflow::layers::dlflow_tf::{SavedModel, TensorValue};
use dlflow::{Environment, Model};

#[tokio::main]
async fn main() -> dlflow::Result<()> {
    let dir: PathBuf = std::env::args().nth(1).or_else(|| std::env::var("DLFLOW_EXTERNAL_MODELS").ok()).map(PathBuf::from).ok_or_else(|| {
        dlflow::Error::Invalid("give the external models folder as the argument, or source scripts/setup.sh (DLFLOW_EXTERNAL_MODELS)".into())
    })?;

    // Trips as a table of features; a missing value is left out of that trip's example.
    let env = Environment::new();
    let trips = env
        .sql(
            "SELECT * FROM (VALUES
               ('Flash Cab', 'Cash', 7.25, 2.1, 540, 8),
               ('No Such Cab Co', 'Bitcoin', 31.5, 11.4, 1800, 23),
               ('Taxi Affiliation Services', 'Credit Card', 12.0, NULL, 900, 17)
             ) AS t(company, payment_type, fare, trip_miles, trip_seconds, trip_start_hour)",
        )
        .await?;
    let taxi = Model::load(dir.join("tfx_taxi_estimator"))?.with_signature("predict").with_outputs(["class_ids", "probabilities"]);
    println!("{}", taxi.transform(&trips)?.show(10).await?);

    // A TF1 counter: state lives in the loaded model, so each call sees the previous ones.
    let counter = SavedModel::load(dir.join("serving_counter_tf1"))?;
    for _ in 0..2 {
        counter.call("incr_counter", &[])?;
    }
    let delta = TensorValue::scalar(Arc::new(Float32Array::from(vec![2.5]))).map_err(dlflow::Error::Invalid)?;
    let (name, value) = counter.call("incr_counter_by", &[("delta", delta)])?.remove(0);
    println!("counter after incr, incr, incr_by(2.5): {name} = {value}"); // 4.5
    Ok(())
}
