#!/usr/bin/env bash
# Benchmarks: dlflow against its baseline, side by side in one run, printing the ratio.
#   scripts/bench.sh inference                  table inference vs TensorFlow's own batched inference (Python)
#   scripts/bench.sh training [feed|train|startup]
#                                               feeding tf.data, training the MLP, and start-up, each against
#                                               its baseline (in-memory tf.data / Keras fit / the seed's CSV feed)
#   scripts/bench.sh cluster [scaling|exchange|recovery|checkpoint]
#                                               2 processes x 1 worker vs 1 x 2, the engine's cross-process
#                                               exchange vs in-process, kill -> training again, checkpoint cost
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$DLFLOW_ROOT"
what="${1:-inference}"
shift || true
case "$what" in
  inference) cargo bench --workspace --bench inference_vs_tensorflow ;;
  training) cargo bench --workspace --bench training_vs_keras -- "$@" ;;
  cluster) cargo bench --workspace --bench cluster -- "$@" ;;
  *) echo "unknown benchmark '$what'; available: inference, training, cluster" >&2; exit 2 ;;
esac
