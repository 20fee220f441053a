#!/usr/bin/env python3
"""The plain Python pre-labeling pipeline benches/predict.rs compares with.

    python3 benches/predict_baseline.py MODEL FILE_LIST THREADS

For each image: PIL decode (EXIF orientation applied, as termtag does), numpy array, one
`InferenceSession.run` on the full-size uint8 image (what the TF Object Detection API model
accepts), detections above 0.05 kept. Prints images/s and the share of time outside `run`.
"""

import sys
import time

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps


def main():
    model, listing, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    files = [line for line in open(listing).read().splitlines() if line]
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    start = time.perf_counter()
    in_run = 0.0
    kept = 0
    for f in files:
        img = ImageOps.exif_transpose(Image.open(f)).convert("RGB")
        x = np.asarray(img, dtype=np.uint8)[None]
        t = time.perf_counter()
        boxes, scores, classes, num = sess.run(None, {name: x})
        in_run += time.perf_counter() - t
        kept += int((scores[0, : int(num[0])] >= 0.05).sum())
    total = time.perf_counter() - start
    print(f"python: {len(files)} images in {total:.1f}s, {kept} detections; "
          f"run {in_run:.1f}s, {100 * (1 - in_run / total):.0f}% of the time outside it "
          f"({threads} ORT threads, onnxruntime {ort.__version__})")
    print(f"python images/s {len(files) / total:.3f}")


if __name__ == "__main__":
    main()
