#!/usr/bin/env bash
# Benchmarks: dlflow against its baseline, side by side in one run, printing the ratio.
#   scripts/bench.sh inference [files]          table inference vs TensorFlow's own batched inference (Python);
#                                               `files`: `dlflow predict` file to file vs copying the file with
#                                               `dlflow sql` and vs a plain Python script (pyarrow + SavedModel),
#                                               on an I/O-bound and a compute-bound MLP, with peak memory
#   scripts/bench.sh training [feed|train|startup|fit|online]
#                                               feeding tf.data, training the MLP, start-up, and `dlflow fit`
#                                               over many epochs, each against its baseline (in-memory tf.data /
#                                               Keras fit / the seed's CSV feed / a Keras script on NumPy); online
#                                               training over a TCP stream vs the same rows bounded, and
#                                               the time from a version's export to its first prediction
#   scripts/bench.sh streams [throughput|latency|reload|windows|delays|rows]
#                                               streaming inference: stream vs table vs one call per record,
#                                               latency at half the peak rate, the gap of a hot reload,
#                                               window aggregation vs a bounded GROUP BY, window latency
#   scripts/bench.sh examples                   tf.Example models from feature columns vs serializing protos in Python
#   scripts/bench.sh cluster [scaling|exchange|recovery|checkpoint]
#                                               2 processes x 1 worker vs 1 x 2, the engine's cross-process
#                                               exchange vs in-process, kill -> training again, checkpoint cost
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$DLFLOW_ROOT"
what="${1:-inference}"
shift || true
case "$what" in
  inference)
    case "${1:-}" in
      "") cargo bench --workspace --bench inference_vs_tensorflow ;;
      # Runs the dlflow binary, as a user does.
      files) cargo build --release --workspace --bins && cargo bench --workspace --bench inference_files ;;
      *) echo "unknown inference benchmark '$1'; available: files (or none)" >&2; exit 2 ;;
    esac ;;
  # The `fit` case runs the dlflow binary, as a user does.
  training) cargo build --release --workspace --bins && cargo bench --workspace --bench training_vs_keras -- "$@" ;;
  streams) cargo bench --workspace --bench streams -- "$@" ;;
  examples) cargo bench --workspace --bench examples_vs_python ;;
  cluster) cargo bench --workspace --bench cluster -- "$@" ;;
  *) echo "unknown benchmark '$what'; available: inference, training, streams, examples, cluster" >&2; exit 2 ;;
esac
