//! A SavedModel as a map over a Kafka topic (seed 003's "model as a function that transforms a
//! stream"): records `{"x": ..., "id": ...}` from every partition of a topic go through the model
//! in micro-batches, and the results are written to another topic, until Ctrl-C.
//!
//! ```sh
//! source scripts/setup.sh
//! cargo run --release --example stream_map -- localhost:9092 points scored "$DLFLOW_MODELS/linear"
//! ```
//!
//! The same from the command line:
//!
//! ```sh
//! dlflow predict --model "$DLFLOW_MODELS/linear" --input kafka://localhost:9092/points \
//!     --columns 'id BIGINT' --output kafka://localhost:9092/scored
//! ```

use std::time::Duration;

use dlflow::layers::dlflow_table::options::MicroBatching;
use dlflow::layers::dlflow_table::stream::{write_to_sink, StreamSink};
use dlflow::{Environment, Model};

#[tokio::main]
async fn main() -> dlflow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [broker, input, output, model_dir] = args.as_slice() else {
        eprintln!("usage: stream_map BROKER INPUT_TOPIC OUTPUT_TOPIC MODEL_DIR");
        std::process::exit(2);
    };
    let env = Environment::new();
    // Every partition of the topic, each read on its own; `_partition` and `_offset` say where
    // each record came from.
    let points = env
        .sql(&format!(
            "CREATE UNBOUNDED EXTERNAL TABLE points (x FLOAT, id BIGINT, _partition INT, _offset BIGINT)
             STORED AS JSON LOCATION 'kafka://{broker}/{input}';
             SELECT * FROM points"
        ))
        .await?;
    // Loaded once ("open"); records go through it at most 256 at a time, none waiting over 5 ms.
    let model = Model::load(model_dir)?.with_micro_batching(MicroBatching::default().max_rows(256).max_delay(Duration::from_millis(5)));
    let scored = model.transform(&points)?;
    let sink = StreamSink::Kafka { broker: broker.clone(), topic: output.clone() };
    let written = write_to_sink(scored.stream().await?, &sink, |_| {}).await?;
    eprintln!("{written} records scored");
    Ok(())
}
