#!/usr/bin/env python3
"""Checks `termtag eval` on classify and multilabel projects against scikit-learn.

    python3 scripts/check_eval_sklearn.py path/to/termtag

Makes 40 small images, reviewed classes and noisy predictions (fixed seed), loads them into a
classify and a multilabel termtag project (Azure ML JSONL import, labels and predictions with
scores), and compares `termtag eval --json` with scikit-learn: top-1 accuracy, per-class
precision/recall/F1 and the confusion matrix; per-class average precision, their mean and
precision/recall/F1 at the threshold, per class and micro-averaged. Exits non-zero on any
difference > 1e-9.
"""

import json
import os
import random
import subprocess
import sys
import tempfile

import numpy as np
from sklearn.metrics import (accuracy_score, average_precision_score, confusion_matrix,
                             precision_recall_fscore_support)

from tiny_png import png

CLASSES = ["cat", "dog", "fox", "owl"]
N = 40
THRESHOLD = 0.5


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {out.stderr}")
    return out.stdout


def project(termtag, d, task, truth_lines, pred_lines):
    imgs = os.path.join(d, task + "_images")
    os.makedirs(imgs)
    for i in range(N):
        png(os.path.join(imgs, f"img{i:02d}.png"), 8, 8)
    proj = os.path.join(d, task)
    run([termtag, "init", proj, "--task", task, "--classes", ",".join(CLASSES),
         "--source", imgs])
    for name, lines, extra in (("gt.jsonl", truth_lines, []),
                               ("pred.jsonl", pred_lines, ["--as", "predictions"])):
        path = os.path.join(d, task + "_" + name)
        with open(path, "w") as f:
            f.write("".join(json.dumps(line) + "\n" for line in lines))
        run([termtag, "-C", proj, "import", path, "--format", "azureml-jsonl"] + extra)
    return proj


class Checker:
    def __init__(self):
        self.bad = 0

    def eq(self, what, got, want):
        ok = got is not None and abs(float(got) - float(want)) <= 1e-9
        print(f"{'ok' if ok else 'BAD'} {what}: termtag {got} sklearn {want}")
        self.bad += not ok


def check_classify(termtag, d, rng, c):
    truth, preds, gt_lines, pred_lines = [], [], [], []
    for i in range(N):
        t = rng.choice(CLASSES)
        # Right 60% of the time; else a random class (often wrong).
        p = t if rng.random() < 0.6 else rng.choice(CLASSES)
        truth.append(t)
        preds.append(p)
        url = f"img{i:02d}.png"
        gt_lines.append({"image_url": url, "label": t})
        pred_lines.append({"image_url": url, "label": p,
                           "scores": {p: round(rng.uniform(0.3, 1.0), 4)}})
    proj = project(termtag, d, "classify", gt_lines, pred_lines)
    mine = json.loads(run([termtag, "-C", proj, "eval", "--json"]))
    c.eq("classify accuracy", mine["accuracy"], accuracy_score(truth, preds))
    p, r, f, s = precision_recall_fscore_support(truth, preds, labels=CLASSES, zero_division=0)
    for k, name in enumerate(CLASSES):
        got = next(x for x in mine["classes"] if x["class"] == name)
        c.eq(f"classify {name} precision", got["precision"], p[k])
        c.eq(f"classify {name} recall", got["recall"], r[k])
        c.eq(f"classify {name} F1", got["f1"], f[k])
        c.eq(f"classify {name} support", got["support"], s[k])
    want = confusion_matrix(truth, preds, labels=CLASSES).tolist()
    ok = mine["confusion"]["labels"] == CLASSES and mine["confusion"]["matrix"] == want
    print(f"{'ok' if ok else 'BAD'} classify confusion matrix: termtag {mine['confusion']} "
          f"sklearn {want}")
    c.bad += not ok


def check_multilabel(termtag, d, rng, c):
    y = np.zeros((N, len(CLASSES)), dtype=int)
    scores = np.zeros((N, len(CLASSES)))
    gt_lines, pred_lines = [], []
    for i in range(N):
        present = [name for name in CLASSES if rng.random() < 0.35]
        sc = {}
        for k, name in enumerate(CLASSES):
            y[i, k] = name in present
            # Positives score higher on average; some classes get no score at all (0).
            if rng.random() < 0.8:
                base = 0.55 if name in present else 0.3
                sc[name] = round(min(1.0, max(0.0, base + rng.uniform(-0.3, 0.4))), 2)
                scores[i, k] = sc[name]
        url = f"img{i:02d}.png"
        gt_lines.append({"image_url": url, "label": present})
        pred_lines.append({"image_url": url, "label": list(sc), "scores": sc})
    proj = project(termtag, d, "multilabel", gt_lines, pred_lines)
    mine = json.loads(run([termtag, "-C", proj, "eval", "--json",
                           "--threshold", str(THRESHOLD)]))
    aps = []
    pred = (scores >= THRESHOLD).astype(int)
    p, r, f, _ = precision_recall_fscore_support(y, pred, average=None, zero_division=0)
    for k, name in enumerate(CLASSES):
        got = next(x for x in mine["classes"] if x["class"] == name)
        if y[:, k].any():
            ap = average_precision_score(y[:, k], scores[:, k])
            aps.append(ap)
            c.eq(f"multilabel {name} AP", got["ap"], ap)
        c.eq(f"multilabel {name} precision", got["precision"], p[k])
        c.eq(f"multilabel {name} recall", got["recall"], r[k])
        c.eq(f"multilabel {name} F1", got["f1"], f[k])
    c.eq("multilabel mAP", mine["map"], sum(aps) / len(aps))
    mp, mr, mf, _ = precision_recall_fscore_support(y, pred, average="micro", zero_division=0)
    c.eq("multilabel micro precision", mine["micro_precision"], mp)
    c.eq("multilabel micro recall", mine["micro_recall"], mr)
    c.eq("multilabel micro F1", mine["micro_f1"], mf)


def main():
    termtag = os.path.abspath(sys.argv[1])
    rng = random.Random(12)
    c = Checker()
    with tempfile.TemporaryDirectory() as d:
        check_classify(termtag, d, rng, c)
        check_multilabel(termtag, d, rng, c)
    if c.bad:
        sys.exit(f"{c.bad} figures differ from scikit-learn")


if __name__ == "__main__":
    main()
