#!/usr/bin/env bash
# Benchmarks: dlflow against its baseline, side by side in one run, printing the ratio.
#   scripts/bench.sh inference    table inference vs TensorFlow's own batched inference (Python)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$DLFLOW_ROOT"
case "${1:-inference}" in
  inference) cargo bench -p dlflow --bench inference_vs_tensorflow ;;
  *) echo "unknown benchmark '$1'; available: inference" >&2; exit 2 ;;
esac
