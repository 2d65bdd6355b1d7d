# Sourced by the other scripts: makes sure the project virtualenv and the build cache exist and
# exports where they are. Safe to run again: an up-to-date virtualenv is reused.
#
# Sourced, it also puts the built `dlflow` ($CARGO_TARGET_DIR/release) first on PATH.
#
#   DLFLOW_HOME        cache root (default ~/.cache/dlflow)
#   DLFLOW_VENV        virtualenv with the pinned python/requirements.txt (default $DLFLOW_HOME/venv)
#   CARGO_TARGET_DIR   cargo build cache, kept outside the checkout so fresh clones build incrementally
#                      (default $DLFLOW_HOME/target)
#   DLFLOW_DATA        example data made from the virtualenv's packages (scikit-learn's digits)
#   DLFLOW_EXTERNAL_MODELS  the SavedModels other projects wrote (../shared/external_models next to the
#                      checkout, or /work/shared/external_models), when present; tests of models from the
#                      wild need it
#   DLFLOW_PYTHON_BIN  the python used to create the virtualenv (default: python3.11, else python3)

set -euo pipefail

# -P: the real checkout, also when the scripts are reached through a symbolic link.
DLFLOW_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
export DLFLOW_ROOT
export DLFLOW_HOME="${DLFLOW_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/dlflow}"
export DLFLOW_VENV="${DLFLOW_VENV:-$DLFLOW_HOME/venv}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$DLFLOW_HOME/target}"
export PATH="$CARGO_TARGET_DIR/release:$PATH"
mkdir -p "$DLFLOW_HOME"

# Bold on a terminal, plain text in a pipe or a log file.
say() {
  if [ -t 2 ]; then printf '\033[1m==> %s\033[0m\n' "$*" >&2; else printf '==> %s\n' "$*" >&2; fi
}

require() {
  command -v "$1" >/dev/null 2>&1 || { echo "error: $1 not found: $2" >&2; exit 1; }
}

setup_venv() {
  local requirements="$DLFLOW_ROOT/python/requirements.txt"
  local stamp="$DLFLOW_VENV/.dlflow-requirements"
  if [ -f "$stamp" ] && cmp -s "$requirements" "$stamp"; then
    return 0
  fi
  local python="${DLFLOW_PYTHON_BIN:-}"
  if [ -z "$python" ]; then
    if command -v python3.11 >/dev/null 2>&1; then python=python3.11; else python=python3; fi
  fi
  require "$python" "install Python 3.11 with pip"
  say "creating the virtualenv $DLFLOW_VENV ($(basename "$python"), $(grep -v '^#' "$requirements" | xargs))"
  rm -rf "$DLFLOW_VENV"
  "$python" -m venv "$DLFLOW_VENV"
  "$DLFLOW_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$DLFLOW_VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$stamp"
}

# The test and example SavedModels, made once per version of the script that makes them.
make_models() {
  local key
  key="$(cat "$DLFLOW_ROOT/python/tools/make_models.py" "$DLFLOW_ROOT/python/requirements.txt" | sha256sum | cut -c1-16)"
  export DLFLOW_MODELS="$DLFLOW_HOME/models/$key"
  if [ ! -f "$DLFLOW_MODELS/.complete" ]; then
    say "making the example models in $DLFLOW_MODELS"
    rm -rf "$DLFLOW_MODELS"
    "$DLFLOW_VENV/bin/python" "$DLFLOW_ROOT/python/tools/make_models.py" --out "$DLFLOW_MODELS" >/dev/null
    touch "$DLFLOW_MODELS/.complete"
  fi
}

# Example data from packages in the virtualenv (no download): scikit-learn's digits.
make_data() {
  local key
  key="$(cat "$DLFLOW_ROOT/python/tools/export_digits.py" "$DLFLOW_ROOT/python/requirements.txt" | sha256sum | cut -c1-16)"
  export DLFLOW_DATA="$DLFLOW_HOME/data/$key"
  if [ ! -f "$DLFLOW_DATA/digits.parquet" ]; then
    mkdir -p "$DLFLOW_DATA"
    "$DLFLOW_VENV/bin/python" "$DLFLOW_ROOT/python/tools/export_digits.py" --out "$DLFLOW_DATA/digits.parquet.tmp"
    mv "$DLFLOW_DATA/digits.parquet.tmp" "$DLFLOW_DATA/digits.parquet"
  fi
}

# SavedModels written by other projects and TensorFlow versions (not in the repository).
find_external_models() {
  if [ -n "${DLFLOW_EXTERNAL_MODELS:-}" ]; then
    return 0
  fi
  local candidate
  for candidate in "$DLFLOW_ROOT/../shared/external_models" "/work/shared/external_models"; do
    if [ -d "$candidate" ]; then
      DLFLOW_EXTERNAL_MODELS="$(cd "$candidate" && pwd)"
      export DLFLOW_EXTERNAL_MODELS
      return 0
    fi
  done
}

require cargo "install the Rust toolchain (https://rustup.rs)"
setup_venv
make_models
make_data
find_external_models
