#!/usr/bin/env bash
# The quick start: makes the seed's linear model (y = 2x + 1), generates a table of x values,
# runs the model over it in-process and prints the first rows and a summary.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$DLFLOW_ROOT"
say "building dlflow"
cargo build --release --quiet --workspace  # whole workspace: same dependency features as the tests, one shared build
DLFLOW="$CARGO_TARGET_DIR/release/dlflow"
say "the model: y = 2x + 1, a SavedModel made by python/tools/make_models.py"
"$DLFLOW" model inspect "$DLFLOW_MODELS/linear"
say "inference over a generated table"
"$DLFLOW" predict --model "linear=$DLFLOW_MODELS/linear" --sql "
  CREATE EXTERNAL TABLE points (x FLOAT) STORED AS DATAGEN LOCATION 'datagen://'
    OPTIONS ('number-of-rows' '100000', 'seed' '42', 'fields.x.kind' 'random', 'fields.x.min' '0', 'fields.x.max' '1');
  SELECT x FROM points"
