#!/usr/bin/env python3
"""The Python pipelines benches/predict.rs compares with.

    python3 benches/predict_baseline.py MODEL FILE_LIST THREADS
    python3 benches/predict_baseline.py --capacity WIDTH HEIGHT FILE_LIST

With a model, two pre-labeling pipelines on the same files (EXIF orientation applied, detections
above 0.05 kept), each printing images/s and the share of time outside `InferenceSession.run`:

- careful (the main row): what someone tuning a Python pipeline writes. PIL `draft()` (the JPEG
  decoder's DCT scaling) to the smallest scale whose longer side still reaches 1024, `thumbnail`
  to a longer side of at most 1024 (what termtag feeds this any-size model), decoding on a
  2-thread pool a few images ahead of `run`.
- naive (the second row): the full-size image decoded and fed to the model, one at a time.

With --capacity, no model: the per-core cost of getting a model input of WIDTH×HEIGHT (letterbox,
float32 NCHW in 0..1) from each file: `draft` + `exif_transpose` + bilinear resize + numpy, in
this one process and thread. Prints images/s, and images per CPU second of the thread.
"""

import collections
import math
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, ImageOps

MAX_SIDE = 1024
AHEAD = 4


def load_naive(path):
    img = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    return np.asarray(img, dtype=np.uint8)[None]


def load_careful(path):
    img = Image.open(path)
    img.draft("RGB", (MAX_SIDE, MAX_SIDE))
    img = ImageOps.exif_transpose(img).convert("RGB")
    img.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)[None]


def run_model(sess, name, x):
    boxes, scores, classes, num = sess.run(None, {name: x})
    return int((scores[0, : int(num[0])] >= 0.05).sum())


def pipeline(label, sess, files, threads, load, pool_threads):
    name = sess.get_inputs()[0].name
    start = time.perf_counter()
    in_run = 0.0
    kept = 0
    if pool_threads:
        with ThreadPoolExecutor(pool_threads) as pool:
            pending = collections.deque()
            it = iter(files)
            for f in it:
                pending.append(pool.submit(load, f))
                if len(pending) >= AHEAD:
                    break
            while pending:
                x = pending.popleft().result()
                nxt = next(it, None)
                if nxt is not None:
                    pending.append(pool.submit(load, nxt))
                t = time.perf_counter()
                kept += run_model(sess, name, x)
                in_run += time.perf_counter() - t
    else:
        for f in files:
            x = load(f)
            t = time.perf_counter()
            kept += run_model(sess, name, x)
            in_run += time.perf_counter() - t
    total = time.perf_counter() - start
    print(f"python {label}: {len(files)} images in {total:.1f}s, {kept} detections; "
          f"run {in_run:.1f}s, {100 * (1 - in_run / total):.0f}% of the time outside it "
          f"({threads} ORT threads, {pool_threads or 'no'} decode threads)")
    print(f"python {label} images/s {len(files) / total:.3f}")


def predict(model, listing, threads):
    import onnxruntime as ort

    files = [line for line in open(listing).read().splitlines() if line]
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    print(f"onnxruntime {ort.__version__}, Pillow {Image.__version__}")
    pipeline("careful", sess, files, threads, load_careful, 2)
    pipeline("naive", sess, files, threads, load_naive, 0)


def prepare(path, width, height):
    img = Image.open(path)
    w, h = img.size
    s = min(width / w, height / h)
    img.draft("RGB", (math.ceil(w * s), math.ceil(h * s)))
    img = ImageOps.exif_transpose(img).convert("RGB")
    w, h = img.size
    s = min(width / w, height / h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    canvas = Image.new("RGB", (width, height), (114, 114, 114))
    canvas.paste(img.resize((nw, nh), Image.Resampling.BILINEAR), ((width - nw) // 2, (height - nh) // 2))
    x = np.asarray(canvas).transpose(2, 0, 1).astype(np.float32)
    x *= 1.0 / 255.0
    return x


def capacity(width, height, listing):
    files = [line for line in open(listing).read().splitlines() if line]
    start, cpu = time.perf_counter(), time.thread_time()
    for f in files:
        prepare(f, width, height)
    total, cpu = time.perf_counter() - start, time.thread_time() - cpu
    print(f"pil images/s {len(files) / total:.3f}")
    print(f"pil images per cpu second {len(files) / cpu:.3f}")


def main():
    if sys.argv[1] == "--capacity":
        capacity(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    else:
        predict(sys.argv[1], sys.argv[2], int(sys.argv[3]))


if __name__ == "__main__":
    main()
