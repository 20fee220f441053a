#!/usr/bin/env python3
"""Trains termtag's demo detector (knot, defect on wood boards) on CPU and exports it to ONNX with a
YOLOv8-style raw head: one output [batch, 4 + classes, cells], boxes as cx, cy, w, h in input
pixels, class scores after sigmoid, class names in the metadata `names`. termtag's YOLO adapter
reads it as it reads an Ultralytics export (letterbox, NMS in termtag).

  python3 train.py --data labels.coco.json --images DIR --out model.onnx [--init model.pt]

--data is a COCO file (termtag's export, or the generator's ground truth), --images the folder its
`file_name`s are relative to. The weights are also saved beside --out as .pt; --init starts from such a file
(how `termtag train` in the demo fine-tunes the shipped model on the reviewed boards).

Needs torch, onnx, numpy and pillow (`pip install torch onnx pillow`). Deterministic on one
machine for a given --seed.
"""

import argparse
import json
import math
import os
import random
import sys

try:
    import numpy as np
    import onnx
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from PIL import Image
except ImportError as e:  # one line saying what to install
    sys.exit(f"train.py needs torch, onnx, numpy and pillow: pip install torch onnx pillow ({e})")

CLASSES = ["knot", "defect"]
H, W = 256, 384  # input size (the boards' size; other images are resized)
STRIDE = 8
GH, GW = H // STRIDE, W // STRIDE


def conv(cin, cout, stride=1, dilation=1):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.SiLU(),
    )


class Detector(nn.Module):
    """A stride-8 grid fed by a stride-16 context branch; per cell: box (4) and class logits."""

    def __init__(self, nc=len(CLASSES)):
        super().__init__()
        self.nc = nc
        self.stem = nn.Sequential(conv(3, 8, 2), conv(8, 16, 2), conv(16, 32, 2), conv(32, 32))
        self.context = nn.Sequential(conv(32, 64, 2), conv(64, 64), conv(64, 64, dilation=2))
        self.fuse = nn.Sequential(nn.Conv2d(64 + 32, 48, 1), nn.SiLU(), conv(48, 48))
        self.head = nn.Conv2d(48, 4 + nc, 1)
        with torch.no_grad():  # rare positives: start class scores low (as YOLO's bias init)
            self.head.bias[4:] = -4.0
        ys, xs = torch.meshgrid(torch.arange(GH), torch.arange(GW), indexing="ij")
        self.register_buffer("grid", torch.stack([xs, ys]).float().reshape(1, 2, -1), persistent=False)

    def raw(self, x):
        s8 = self.stem(x)
        s16 = self.context(s8)
        up = F.interpolate(s16, scale_factor=2.0, mode="nearest")
        return self.head(self.fuse(torch.cat([s8, up], 1))).flatten(2)  # [b, 4+nc, cells]

    def boxes(self, raw):
        """cx, cy, w, h in input pixels."""
        xy = (self.grid + torch.sigmoid(raw[:, :2]) * 2.0 - 0.5) * STRIDE
        wh = torch.exp(raw[:, 2:4].clamp(-4.0, 4.0)) * 32.0
        return torch.cat([xy, wh], 1)

    def forward(self, x):
        raw = self.raw(x)
        return torch.cat([self.boxes(raw), torch.sigmoid(raw[:, 4:])], 1)


def load_coco(path, images_dir):
    with open(path) as f:
        coco = json.load(f)
    names = {c["id"]: c["name"] for c in coco.get("categories", [])}
    boxes = {im["id"]: [] for im in coco["images"]}
    for a in coco.get("annotations", []):
        name = names.get(a["category_id"])
        if name in CLASSES and "bbox" in a:
            boxes[a["image_id"]].append((CLASSES.index(name), *a["bbox"]))
    samples = []
    for im in coco["images"]:
        file = os.path.join(images_dir, im["file_name"])
        if not os.path.isfile(file):
            print(f"skipped {file}: no such file", file=sys.stderr)
            continue
        pic = Image.open(file).convert("RGB")
        sx, sy = W / pic.width, H / pic.height
        if pic.size != (W, H):
            pic = pic.resize((W, H), Image.BILINEAR)
        x = torch.from_numpy(np.asarray(pic, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()
        t = [(c, bx * sx, by * sy, (bx + bw) * sx, (by + bh) * sy) for c, bx, by, bw, bh in boxes[im["id"]]]
        samples.append((x, torch.tensor(t, dtype=torch.float32).reshape(-1, 5)))
    return samples


def augment(x, tgt, rng):
    """Flips (the targets flip with the picture: the grid is symmetric) and a colour jitter."""
    cls, box, pos = (v.reshape(v.shape[0], GH, GW) if v.dim() == 2 else v.reshape(GH, GW) for v in tgt)
    if rng.random() < 0.5:
        x, cls, box, pos = x.flip(2), cls.flip(2), box.flip(2), pos.flip(1)
        box = torch.stack([W - box[2], box[1], W - box[0], box[3]])
    if rng.random() < 0.5:
        x, cls, box, pos = x.flip(1), cls.flip(1), box.flip(1), pos.flip(0)
        box = torch.stack([box[0], H - box[3], box[2], H - box[1]])
    gain = 0.8 + 0.4 * rng.random()
    tint = torch.tensor([rng.uniform(0.92, 1.08) for _ in range(3)]).reshape(3, 1, 1)
    return (x * gain * tint).clamp(0, 1), (cls.flatten(1), box.flatten(1), pos.flatten())


def targets(t):
    """Per cell: class target [nc, cells], box target [4, cells] (x0,y0,x1,y1), positive mask.
    A box owns the cells whose centre lies within 1.5 cells of its centre and inside it."""
    cls = torch.zeros(len(CLASSES), GH * GW)
    box = torch.zeros(4, GH * GW)
    pos = torch.zeros(GH * GW, dtype=torch.bool)
    area = torch.full((GH * GW,), float("inf"))
    cx = (torch.arange(GW).float() + 0.5) * STRIDE
    cy = (torch.arange(GH).float() + 0.5) * STRIDE
    for c, x0, y0, x1, y1 in t.tolist():
        mx, my = (x0 + x1) / 2, (y0 + y1) / 2
        r = 1.5 * STRIDE
        inx = (cx > max(x0, mx - r)) & (cx < min(x1, mx + r))
        iny = (cy > max(y0, my - r)) & (cy < min(y1, my + r))
        if not inx.any():
            inx = torch.zeros(GW, dtype=torch.bool)
            inx[min(int(mx // STRIDE), GW - 1)] = True
        if not iny.any():
            iny = torch.zeros(GH, dtype=torch.bool)
            iny[min(int(my // STRIDE), GH - 1)] = True
        m = (iny[:, None] & inx[None, :]).flatten()
        a = (x1 - x0) * (y1 - y0)
        m &= area > a  # a cell claimed by two boxes goes to the smaller
        area[m] = a
        cls[:, m] = 0
        cls[int(c), m] = 1
        box[:, m] = torch.tensor([x0, y0, x1, y1])[:, None]
        pos |= m
    return cls, box, pos


def giou(p, g):
    """Both [4, n] as x0, y0, x1, y1."""
    ix0, iy0 = torch.max(p[0], g[0]), torch.max(p[1], g[1])
    ix1, iy1 = torch.min(p[2], g[2]), torch.min(p[3], g[3])
    inter = (ix1 - ix0).clamp(min=0) * (iy1 - iy0).clamp(min=0)
    ap = (p[2] - p[0]) * (p[3] - p[1])
    ag = (g[2] - g[0]) * (g[3] - g[1])
    union = ap + ag - inter + 1e-6
    cw = torch.max(p[2], g[2]) - torch.min(p[0], g[0])
    ch = torch.max(p[3], g[3]) - torch.min(p[1], g[1])
    hull = cw * ch + 1e-6
    return inter / union - (hull - union) / hull


def loss_of(model, x, tcls, tbox, tpos):
    raw = model.raw(x)
    logits = raw[:, 4:]
    npos = max(int(tpos.sum()), 1)
    l_cls = F.binary_cross_entropy_with_logits(logits, tcls, reduction="sum") / npos
    if tpos.any():
        b = model.boxes(raw)  # [b, 4, cells]
        xyxy = torch.cat([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], 1)
        p = xyxy.permute(1, 0, 2)[:, tpos]
        g = tbox.permute(1, 0, 2)[:, tpos]
        l_box = (1 - giou(p, g)).mean()
    else:
        l_box = raw.sum() * 0
    return l_cls + 5.0 * l_box


def init_from(model, path):
    """Starts from the weights saved beside a model this script exported (`--out` with .pt)."""
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))


def export(model, path):
    model.eval()
    dummy = torch.zeros(1, 3, H, W)
    torch.onnx.export(
        model,
        (dummy,),
        path,
        input_names=["images"],
        output_names=["output0"],
        dynamic_axes={"images": {0: "batch"}, "output0": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    m = onnx.load(path)
    meta = {
        "names": "{" + ", ".join(f"{i}: '{n}'" for i, n in enumerate(CLASSES)) + "}",
        "imgsz": f"[{H}, {W}]",
        "stride": str(STRIDE),
        "task": "detect",
        "description": "termtag demo: knot/defect detector for wood boards (scripts/demo-model/train.py)",
    }
    del m.metadata_props[:]
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    onnx.save(m, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="COCO labels file")
    ap.add_argument("--images", required=True, help="folder the COCO file_names are relative to")
    ap.add_argument("--out", required=True, help="ONNX file to write")
    ap.add_argument("--init", help="start from these weights (the .pt written beside an earlier --out)")
    ap.add_argument("--epochs", type=int, help="default 10, or 12 with --init")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    epochs = args.epochs or (12 if args.init else 10)

    random.seed(args.seed)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    samples = load_coco(args.data, args.images)
    if not samples:
        sys.exit(f"{args.data}: no labelled image found under {args.images}")
    model = Detector()
    if args.init:
        init_from(model, args.init)
    lr = args.lr / 3 if args.init else args.lr
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * math.ceil(len(samples) / args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    nobj = sum(len(t) for _, t in samples)
    tgts = [targets(t) for _, t in samples]
    print(f"training on {len(samples)} images, {nobj} boxes, {epochs} epochs", flush=True)
    for epoch in range(epochs):
        model.train()
        order = list(range(len(samples)))
        rng.shuffle(order)
        total = 0.0
        for i in range(0, len(order), args.batch):
            xs, cs, bs, ps = [], [], [], []
            for j in order[i : i + args.batch]:
                x, (c, b, p) = augment(samples[j][0], tgts[j], rng)
                xs.append(x)
                cs.append(c)
                bs.append(b)
                ps.append(p)
            loss = loss_of(model, torch.stack(xs), torch.stack(cs), torch.stack(bs), torch.stack(ps))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            sched.step()
            total += loss.item() * len(xs)
        print(f"epoch {epoch + 1}/{epochs}: loss {total / len(samples):.4f}", flush=True)
    torch.save(model.state_dict(), os.path.splitext(args.out)[0] + ".pt")
    export(model, args.out)
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
