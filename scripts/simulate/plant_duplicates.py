#!/usr/bin/env python3
"""Plants near-duplicates for `termtag simulate --diversity`: every image of a COCO set is written
COPIES times with small changes (brightness and colour within a few percent, a little noise), the boxes unchanged, with
a COCO file for the new set.

  python3 plant_duplicates.py --data labels.coco.json --images DIR --out OUTDIR [--copies 5]

Writes OUTDIR/<stem>-c<k>.png (k = 0..COPIES-1) and OUTDIR/labels.coco.json. Needs numpy and
pillow. Deterministic for a given --seed.
"""

import argparse
import json
import os
import random

import numpy as np
from PIL import Image


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--copies", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    nrng = np.random.default_rng(args.seed)
    with open(args.data) as f:
        coco = json.load(f)
    os.makedirs(args.out, exist_ok=True)
    images, annotations = [], []
    by_image = {}
    for a in coco.get("annotations", []):
        by_image.setdefault(a["image_id"], []).append(a)
    for im in coco["images"]:
        pic = np.asarray(Image.open(os.path.join(args.images, im["file_name"])).convert("RGB"), dtype=np.float32)
        stem = os.path.splitext(im["file_name"])[0]
        for k in range(args.copies):
            gain = rng.uniform(0.96, 1.04)
            tint = np.array([rng.uniform(0.98, 1.02) for _ in range(3)], dtype=np.float32)
            noise = nrng.normal(0.0, 2.0, pic.shape).astype(np.float32)
            out = np.clip(pic * gain * tint + noise, 0, 255).astype(np.uint8)
            name = f"{stem}-c{k}.png"
            Image.fromarray(out).save(os.path.join(args.out, name))
            new_id = len(images) + 1
            images.append({**im, "id": new_id, "file_name": name})
            for a in by_image.get(im["id"], []):
                annotations.append({**a, "id": len(annotations) + 1, "image_id": new_id})
    coco = {**coco, "images": images, "annotations": annotations}
    with open(os.path.join(args.out, "labels.coco.json"), "w") as f:
        json.dump(coco, f)
    print(f"wrote {len(images)} images ({args.copies} of each) and {len(annotations)} boxes to {args.out}")


if __name__ == "__main__":
    main()
