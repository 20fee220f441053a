#!/usr/bin/env python3
"""Checks `termtag eval` against pycocotools on one generated data set.

    python3 scripts/check_eval_pycocotools.py path/to/termtag

Makes 30 small images with 3 classes of reviewed boxes and noisy predictions (fixed seed:
jittered copies of the reviewed boxes, misses, duplicates and false alarms), loads them into a
termtag project (import labels, import predictions), and compares `termtag eval --json` with
COCOeval: mAP@[.5:.95], AP50, and the per-class AP. Exits non-zero on any difference > 1e-9.
"""

import json
import os
import random
import subprocess
import sys
import tempfile

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from tiny_png import png

W, H = 64, 48
CLASSES = ["a", "b", "c"]


def clip_box(x, y, w, h):
    x0, y0 = max(0.0, x), max(0.0, y)
    x1, y1 = min(float(W), x + w), min(float(H), y + h)
    return [x0, y0, x1 - x0, y1 - y0]


def make(rng):
    images, anns, dets = [], [], []
    for i in range(1, 31):
        images.append({"id": i, "file_name": f"img{i:02d}.png", "width": W, "height": H})
        for _ in range(rng.randint(0, 4)):
            cat = rng.randint(1, 3)
            w, h = rng.uniform(6, 30), rng.uniform(6, 24)
            box = clip_box(rng.uniform(0, W - w), rng.uniform(0, H - h), w, h)
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": cat, "bbox": box,
                         "area": box[2] * box[3], "iscrowd": 0})
            r = rng.random()
            if r < 0.8:  # found, with some jitter
                j = [v + rng.uniform(-3, 3) for v in box]
                dets.append({"image_id": i, "category_id": cat,
                             "bbox": clip_box(j[0], j[1], max(1.0, j[2]), max(1.0, j[3])),
                             "score": rng.uniform(0.3, 1.0)})
            if r < 0.2:  # a duplicate
                dets.append({"image_id": i, "category_id": cat, "bbox": box,
                             "score": rng.uniform(0.1, 0.9)})
        for _ in range(rng.randint(0, 2)):  # false alarms
            w, h = rng.uniform(4, 20), rng.uniform(4, 20)
            dets.append({"image_id": i, "category_id": rng.randint(1, 3),
                         "bbox": clip_box(rng.uniform(0, W - w), rng.uniform(0, H - h), w, h),
                         "score": rng.uniform(0.05, 0.8)})
    cats = [{"id": k + 1, "name": n} for k, n in enumerate(CLASSES)]
    return {"images": images, "annotations": anns, "categories": cats}, dets


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {out.stderr}")
    return out.stdout


def main():
    termtag = os.path.abspath(sys.argv[1])
    gt, dets = make(random.Random(4))
    with tempfile.TemporaryDirectory() as d:
        imgs = os.path.join(d, "images")
        os.makedirs(imgs)
        for im in gt["images"]:
            png(os.path.join(imgs, im["file_name"]), W, H)
        gt_path = os.path.join(d, "gt.json")
        with open(gt_path, "w") as f:
            json.dump(gt, f)
        # Predictions for termtag in the instances layout, so that it learns that the model saw
        # every image (a results list names only those with predictions); pycocotools gets the
        # same boxes as a results list.
        det_path = os.path.join(d, "dets.json")
        with open(det_path, "w") as f:
            json.dump({"images": gt["images"], "categories": gt["categories"],
                       "annotations": [dict(r, id=n + 1) for n, r in enumerate(dets)]}, f)
        proj = os.path.join(d, "proj")
        run([termtag, "init", proj, "--task", "detect", "--classes", ",".join(CLASSES),
             "--source", imgs])
        run([termtag, "-C", proj, "import", gt_path, "--format", "coco"])
        run([termtag, "-C", proj, "import", det_path, "--format", "coco", "--as", "predictions"])
        mine = json.loads(run([termtag, "-C", proj, "eval", "--json"]))

        coco = COCO(gt_path)
        res = coco.loadRes(dets)
        ev = COCOeval(coco, res, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    checks = [("mAP@[.5:.95]", mine["coco_map"], ev.stats[0]),
              ("AP50", mine["coco_map50"], ev.stats[1])]
    prec = ev.eval["precision"]  # [T, R, K, A, M]; area "all" = 0, maxDets 100 = 2
    for k, name in enumerate(CLASSES):
        p = prec[:, :, k, 0, 2]
        want = float(p[p > -1].mean()) if (p > -1).any() else None
        got = next(c["coco_ap"] for c in mine["classes"] if c["class"] == name)
        checks.append((f"AP {name}", got, want))
    bad = False
    for what, got, want in checks:
        ok = (got is None and want is None) or (
            got is not None and want is not None and abs(got - want) <= 1e-9)
        print(f"{'ok ' if ok else 'BAD'} {what}: termtag {got} pycocotools {want}")
        bad |= not ok
    print(f"{len(gt['annotations'])} reviewed boxes, {len(dets)} predictions on "
          f"{len(gt['images'])} images")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
