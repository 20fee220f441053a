#!/usr/bin/env bash
# Rebuilds what `termtag demo` ships: the detector (demo/model/board-detector.onnx and its weights
# board-detector.pt) and the predictions it makes on the demo's 100 boards
# (demo/model/recorded-predictions.coco.json, imported when no ONNX Runtime is at hand).
#
#   scripts/demo-model/build.sh
#
# Needs torch, onnx, numpy and pillow importable by python3 (pip install torch onnx pillow; set
# PYTHONPATH for a --target install) and ONNX Runtime (ORT_DYLIB_PATH, or `pip install
# onnxruntime`). CPU only; about 20 minutes on two cores. Rebuild termtag afterwards: it embeds
# these files.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release --quiet
tt=$PWD/target/release/termtag

# Training boards: another seed than the demo's (13), so the demo's boards are unseen.
"$tt" demo "$work/train" --boards 600 --seed 1001
python3 scripts/demo-model/train.py --data "$work/train/labels.coco.json" --images "$work/train" \
  --out demo/model/board-detector.onnx --seed 0

# The model's predictions on the demo's boards, recorded as termtag makes them.
"$tt" demo "$work/boards" --boards 100 --seed 13
"$tt" init "$work/rec" --task detect --classes knot,defect --source "$work/boards" >/dev/null
"$tt" -C "$work/rec" predict --model "$PWD/demo/model/board-detector.onnx"
"$tt" -C "$work/rec" export --predictions --format coco "$PWD/demo/model/recorded-predictions.coco.json"
ls -l demo/model
