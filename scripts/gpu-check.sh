#!/usr/bin/env bash
# Pre-labeling on the GPU, measured next to the CPU: installs the onnxruntime-gpu wheel (with the
# CUDA and cuDNN wheels it needs) into .tools/, runs `termtag predict` with the COCO SSD on the
# same images with the CPU build and with CUDA, and prints the provider that ran and images/s.
#
#   scripts/gpu-check.sh [MODEL.onnx] [IMAGE_DIR] [COPIES]
#
# Defaults: ../shared/models/ssd_mobilenet_v2_coco.onnx, ../shared/images, each image copied 40
# times (so that images/s measures inference, not start-up). On a machine without internet, put
# the wheels in a folder and set WHEELS=/that/folder. Needs an NVIDIA driver; exits non-zero
# when CUDA did not run.
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL=$(realpath "${1:-../shared/models/ssd_mobilenet_v2_coco.onnx}")
IMAGES=$(realpath "${2:-../shared/images}")
COPIES=${3:-40}
ORT_VERSION=${ORT_VERSION:-1.31.1}
TOOLS=$PWD/.tools
say() { printf '== %s\n' "$*" >&2; }

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >&2 \
  || say "nvidia-smi not found: CUDA will most likely not start"

pip_install() { # DIR PACKAGE...
  local dir=$1; shift
  local src=()
  [ -n "${WHEELS:-}" ] && src=(--no-index --find-links "$WHEELS")
  python3 -m pip install --quiet --disable-pip-version-check "${src[@]}" --target "$dir" "$@"
}

CPU_DIR=$TOOLS/onnxruntime-$ORT_VERSION
GPU_DIR=$TOOLS/onnxruntime-gpu-$ORT_VERSION
if ! compgen -G "$CPU_DIR/onnxruntime/capi/libonnxruntime.so*" >/dev/null; then
  say "installing onnxruntime $ORT_VERSION"
  pip_install "$CPU_DIR" --no-deps "onnxruntime==$ORT_VERSION"
fi
if ! compgen -G "$GPU_DIR/onnxruntime/capi/libonnxruntime_providers_cuda.so" >/dev/null; then
  say "installing onnxruntime-gpu $ORT_VERSION with its CUDA and cuDNN wheels"
  pip_install "$GPU_DIR" "onnxruntime-gpu[cuda,cudnn]==$ORT_VERSION"
fi
CPU_LIB=$(compgen -G "$CPU_DIR/onnxruntime/capi/libonnxruntime.so*" | sort | head -1)
GPU_LIB=$(compgen -G "$GPU_DIR/onnxruntime/capi/libonnxruntime.so*" | sort | head -1)
# The CUDA runtime, cuBLAS, cuDNN … from the nvidia-* wheels.
NV_LIBS=$(find "$GPU_DIR/nvidia" -maxdepth 2 -type d -name lib 2>/dev/null | paste -sd: || true)

if [ ! -x target/release/termtag ]; then
  say "building termtag (release)"
  cargo build --release --quiet --bin termtag
fi
TERMTAG=$PWD/target/release/termtag

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/images"
for i in $(seq 1 "$COPIES"); do
  for f in "$IMAGES"/*; do
    case "$f" in *.jpg|*.jpeg|*.png|*.JPG|*.JPEG|*.PNG) cp "$f" "$WORK/images/${i}_$(basename "$f")" ;; esac
  done
done
N=$(find "$WORK/images" -type f | wc -l)
"$TERMTAG" init "$WORK/proj" --task detect --classes person,cup,bowl,cat,motorcycle \
  --source "$WORK/images" >/dev/null

# DEVICE LIB [LD_LIBRARY_PATH]: one predict run, its summary lines on stdout.
run_predict() {
  local device=$1 lib=$2 ld=${3:-}
  sed -i "/^\[onnxruntime\]/,/^\[/{/^device = /d}" "$WORK/proj/termtag.toml"
  sed -i "s/^\[onnxruntime\]$/[onnxruntime]\ndevice = \"$device\"/" "$WORK/proj/termtag.toml"
  ORT_DYLIB_PATH=$lib LD_LIBRARY_PATH=$ld${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
    "$TERMTAG" -C "$WORK/proj" predict --model "$MODEL" --rerun
}

say "CPU: $N images"
CPU_OUT=$(run_predict cpu "$CPU_LIB")
echo "$CPU_OUT"
say "CUDA: $N images"
GPU_OUT=$(run_predict cuda "$GPU_LIB" "$NV_LIBS")
echo "$GPU_OUT"

rate() { grep -o '([0-9.]* images/s' <<<"$1" | tr -d '(' | head -1; }
provider() { grep -o ', on [A-Za-z]*' <<<"$1" | sed 's/, on //' | head -1; }
echo
printf '%-6s %-10s %s\n' run provider rate
printf '%-6s %-10s %s\n' cpu "$(provider "$CPU_OUT")" "$(rate "$CPU_OUT")"
printf '%-6s %-10s %s\n' cuda "$(provider "$GPU_OUT")" "$(rate "$GPU_OUT")"
if [ "$(provider "$GPU_OUT")" != CUDA ]; then
  echo "CUDA did not run: see the 'not used:' lines above" >&2
  exit 1
fi
