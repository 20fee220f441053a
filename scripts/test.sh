#!/usr/bin/env bash
# Installs what the tests need that cargo does not, starts what must run, runs every check and
# test, and stops what it started. Safe to run again: installs are cached in .tools/.
#
#   ONNX Runtime   the shared library from the `onnxruntime` PyPI wheel (ORT_DYLIB_PATH)
#   Azurite        the Azure Storage emulator from npm, started on 127.0.0.1 (AZURITE_BLOB_URL)
#   tmux           from apt, for end-to-end terminal tests
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS=$ROOT/.tools
ORT_VERSION=${ORT_VERSION:-1.31.1}
AZURITE_VERSION=3.35.0
mkdir -p "$TOOLS"

say() { printf '== %s\n' "$*" >&2; }

# --- tmux --------------------------------------------------------------------------------------
if ! command -v tmux >/dev/null; then
  say "installing tmux (apt)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq tmux >/dev/null
fi

# --- ONNX Runtime (the library inside the PyPI wheel; no other download) -------------------------
ORT_DIR=$TOOLS/onnxruntime-$ORT_VERSION
if ! compgen -G "$ORT_DIR/onnxruntime/capi/libonnxruntime.so*" >/dev/null; then
  say "installing onnxruntime $ORT_VERSION (pip wheel)"
  rm -rf "$ORT_DIR"
  python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$ORT_DIR" "onnxruntime==$ORT_VERSION"
fi
ORT_DYLIB_PATH=$(compgen -G "$ORT_DIR/onnxruntime/capi/libonnxruntime.so*" | sort | head -1)
export ORT_DYLIB_PATH

# --- Azurite -----------------------------------------------------------------------------------
AZ_DIR=$TOOLS/azurite-$AZURITE_VERSION
if [ ! -x "$AZ_DIR/node_modules/.bin/azurite-blob" ]; then
  say "installing azurite $AZURITE_VERSION (npm)"
  mkdir -p "$AZ_DIR"
  npm install --silent --no-audit --no-fund --prefix "$AZ_DIR" "azurite@$AZURITE_VERSION" >/dev/null
fi
AZ_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
AZ_DATA=$(mktemp -d)
"$AZ_DIR/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$AZ_PORT" \
  --location "$AZ_DATA" --skipApiVersionCheck --loose --disableTelemetry --silent \
  >"$AZ_DATA/azurite.log" 2>&1 &
AZ_PID=$!
cleanup() {
  kill "$AZ_PID" 2>/dev/null || true
  wait "$AZ_PID" 2>/dev/null || true
  rm -rf "$AZ_DATA"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  (echo >"/dev/tcp/127.0.0.1/$AZ_PORT") 2>/dev/null && break
  kill -0 "$AZ_PID" 2>/dev/null || { cat "$AZ_DATA/azurite.log" >&2; echo "azurite did not start" >&2; exit 1; }
  sleep 0.1
done
export AZURITE_BLOB_URL="http://127.0.0.1:$AZ_PORT/devstoreaccount1"
export AZURITE_PID=$AZ_PID
say "onnxruntime: $ORT_DYLIB_PATH"
say "azurite:     $AZURITE_BLOB_URL"

# --- checks and tests --------------------------------------------------------------------------
say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
say "cargo test"
cargo test "$@"

# --- issue 4 (pre-labeling): `termtag eval` agrees with pycocotools ------------------------------
# pycocotools (and the numpy it needs) from PyPI into .tools/, then a generated data set through
# `termtag eval --json` and COCOeval side by side (scripts/check_eval_pycocotools.py).
PYCOCO_DIR=$TOOLS/pycocotools
if ! PYTHONPATH=$PYCOCO_DIR python3 -c 'import pycocotools.cocoeval' 2>/dev/null; then
  say "installing pycocotools (pip)"
  rm -rf "$PYCOCO_DIR"
  python3 -m pip install --quiet --disable-pip-version-check --target "$PYCOCO_DIR" pycocotools
fi
say "eval vs pycocotools"
cargo build --quiet --bin termtag
PYTHONPATH=$PYCOCO_DIR python3 scripts/check_eval_pycocotools.py \
  "${CARGO_TARGET_DIR:-target}/debug/termtag" >"$TOOLS/eval-check.log" 2>&1 \
  || { cat "$TOOLS/eval-check.log" >&2; echo "termtag eval disagrees with pycocotools" >&2; exit 1; }
grep -E '^(ok|BAD) ' "$TOOLS/eval-check.log" >&2

# --- issue 12 (classification eval): `termtag eval` agrees with scikit-learn --------------------
# scikit-learn (and numpy, scipy) from PyPI into .tools/, then generated classify and multilabel
# projects through `termtag eval --json` and sklearn.metrics (scripts/check_eval_sklearn.py).
SKLEARN_DIR=$TOOLS/scikit-learn
if ! PYTHONPATH=$SKLEARN_DIR python3 -c 'import sklearn.metrics' 2>/dev/null; then
  say "installing scikit-learn (pip)"
  rm -rf "$SKLEARN_DIR"
  python3 -m pip install --quiet --disable-pip-version-check --target "$SKLEARN_DIR" scikit-learn
fi
say "eval vs scikit-learn"
PYTHONPATH=$SKLEARN_DIR python3 scripts/check_eval_sklearn.py \
  "${CARGO_TARGET_DIR:-target}/debug/termtag" >"$TOOLS/eval-sklearn-check.log" 2>&1 \
  || { cat "$TOOLS/eval-sklearn-check.log" >&2; echo "termtag eval disagrees with scikit-learn" >&2; exit 1; }
grep -cE '^ok ' "$TOOLS/eval-sklearn-check.log" | sed 's/^/eval vs scikit-learn: figures agreeing: /' >&2
