#!/usr/bin/env bash
# The quick start (seed 000's): train y = 2x + 1 on a generated table with two TensorFlow workers
# (MultiWorkerMirroredStrategy, 4 epochs), save it as a SavedModel, then run it in-process over
# new generated rows and print the first predictions.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$DLFLOW_ROOT"
say "building dlflow"
cargo build --release --quiet --workspace  # whole workspace: same dependency features as the tests, one shared build
DLFLOW="$CARGO_TARGET_DIR/release/dlflow"
# DLFLOW_QUICKSTART_DIR: where the model goes (default $DLFLOW_HOME/quickstart); its TensorBoard
# events go beside it (linear.tensorboard) and so does its loss curve (linear.loss.svg).
MODEL_DIR="${DLFLOW_QUICKSTART_DIR:-$DLFLOW_HOME/quickstart}/linear"
rm -rf "$MODEL_DIR" "$MODEL_DIR.tensorboard" "$MODEL_DIR.loss.svg"

say "training: 5120 rows of (x, y = 2x + 1), 2 workers, 4 epochs (examples/quickstart/job.toml)"
"$DLFLOW" train --job examples/quickstart/job.toml --property "model_dir=$MODEL_DIR"

say "the trained model"
"$DLFLOW" model inspect "$MODEL_DIR"

say "inference over new rows, in-process"
"$DLFLOW" predict --model "linear=$MODEL_DIR" --show 5 --sql "
  CREATE EXTERNAL TABLE fresh (x FLOAT) STORED AS DATAGEN LOCATION 'datagen://'
    OPTIONS ('number-of-rows' '100000', 'seed' '42', 'fields.x.kind' 'random', 'fields.x.min' '0', 'fields.x.max' '1');
  SELECT x FROM fresh"
