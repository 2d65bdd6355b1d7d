#!/usr/bin/env bash
# Runs every test: sets up the virtualenv and models (once), builds, and runs the Rust test
# suite (unit, integration and doc tests) against real TensorFlow.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$DLFLOW_ROOT"
say "cargo test (target dir $CARGO_TARGET_DIR)"
cargo test --release --workspace "$@"
