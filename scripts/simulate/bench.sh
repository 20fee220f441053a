#!/usr/bin/env bash
# The figures of README "Does the queue find mistakes sooner?": termtag simulate on the demo's
# generated boards with the demo model (replay), with planted near-duplicates (--diversity), and
# the labelling loop with the demo trainer (--rounds), on distinct boards and on planted copies.
#
#   scripts/simulate/bench.sh [WORKDIR]          # all four (about an hour on two CPU cores)
#   ROUNDS=0 scripts/simulate/bench.sh           # only the replays 1 and 2 (minutes)
#
# Needs ONNX Runtime (ORT_DYLIB_PATH or `pip install onnxruntime`); the loop and the planted set
# need torch, onnx, numpy and pillow for python3 (PYTHONPATH for a --target install). CPU only.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
work=${1:-$(mktemp -d)}
mkdir -p "$work"
cargo build --release --quiet
tt=$repo/target/release/termtag
model=$repo/demo/model/board-detector.onnx
cd "$work"

# 1. Replay: 1000 boards of the demo's seed (13; the model was trained on seed 1001).
"$tt" demo b1000 --boards 1000 --seed 13
"$tt" init p1000 --task detect --classes knot,defect --source "$work/b1000" >/dev/null
"$tt" -C p1000 predict --model "$model" | tail -1
"$tt" -C p1000 simulate --truth b1000/labels.coco.json --format coco

# 2. Planted near-duplicates: 400 boards, each written 5 times with small changes.
"$tt" demo b400 --boards 400 --seed 13
python3 "$repo/scripts/simulate/plant_duplicates.py" --data b400/labels.coco.json --images b400 --out d2000 --copies 5
"$tt" init pd2 --task detect --classes knot,defect --source "$work/d2000" >/dev/null
"$tt" -C pd2 predict --model "$model" | tail -1
"$tt" -C pd2 simulate --truth d2000/labels.coco.json --format coco --diversity

# 3. The loop: a weak start (20 boards of another seed), then 4 rounds of 20 labels out of 200
#    boards, each round fine-tuning the start's weights on every label so far.
if [ "${ROUNDS:-4}" -gt 0 ]; then
  "$tt" demo seedset --boards 20 --seed 2002
  mkdir -p seed
  python3 "$repo/scripts/demo-model/train.py" --data seedset/labels.coco.json --images seedset \
    --out seed/model.onnx --epochs 25
  "$tt" demo b200 --boards 200 --seed 13
  "$tt" init pr --task detect --classes knot,defect --source "$work/b200" >/dev/null
  sed -i "s|^# command = .*|command = \"python3 $repo/scripts/demo-model/train.py --data {export} --images $work/b200 --init $work/seed/model.pt --epochs 12 --out {model}\"|" pr/termtag.toml
  "$tt" -C pr predict --model "$work/seed/model.onnx" | tail -1
  "$tt" -C pr simulate --truth b200/labels.coco.json --format coco \
    --rounds "${ROUNDS:-4}" --batch 20 --train --metric margin --seeds 1

  # 4. The loop on planted near-duplicates: the first 40 of those boards, 5 copies each.
  python3 - <<'PY'
import json
c = json.load(open("b200/labels.coco.json"))
c["images"] = c["images"][:40]
ids = {im["id"] for im in c["images"]}
c["annotations"] = [a for a in c["annotations"] if a["image_id"] in ids]
json.dump(c, open("b40.coco.json", "w"))
PY
  python3 "$repo/scripts/simulate/plant_duplicates.py" --data b40.coco.json --images b200 --out d200 --copies 5
  "$tt" init prd --task detect --classes knot,defect --source "$work/d200" >/dev/null
  sed -i "s|^# command = .*|command = \"python3 $repo/scripts/demo-model/train.py --data {export} --images $work/d200 --init $work/seed/model.pt --epochs 12 --out {model}\"|" prd/termtag.toml
  "$tt" -C prd predict --model "$work/seed/model.onnx" | tail -1
  "$tt" -C prd simulate --truth d200/labels.coco.json --format coco --diversity --metric margin
  "$tt" -C prd simulate --truth d200/labels.coco.json --format coco \
    --rounds 3 --batch 20 --train --metric margin --diversity --seeds 1
fi
