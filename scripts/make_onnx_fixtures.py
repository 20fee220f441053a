#!/usr/bin/env python3
"""Writes the tiny ONNX models the inference tests run through real ONNX Runtime.

    pip install onnx && python3 scripts/make_onnx_fixtures.py

Each detector emits known boxes in one adapter's layout (the outputs still depend on the input,
through a zero term, so the runtime cannot fold the graph away); the classifiers really compute
their logits from the pixels (mean colour per channel), so a red image gives class `red`.
The expected values are written down in tests/infer.rs. Output: tests/fixtures/onnx/.
"""

import json
import os

import onnx
from onnx import TensorProto, helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "onnx")
OPSET = 13


def const(name, dims, vals, dtype=TensorProto.FLOAT):
    return helper.make_node(
        "Constant", [], [name], value=helper.make_tensor(name + "_v", dtype, dims, vals)
    )


def zero_from(input_name, prefix="z"):
    """Nodes computing a float scalar 0 that depends on the input."""
    return [
        helper.make_node("Cast", [input_name], [prefix + "_f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", [prefix + "_f"], [prefix + "_m"], keepdims=0),
        const(prefix + "_zero_c", [], [0.0]),
        helper.make_node("Mul", [prefix + "_m", prefix + "_zero_c"], [prefix]),
    ]


def save(graph, path):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    onnx.save(model, path)
    print("wrote", os.path.relpath(path))


def constant_outputs(name, inp, outputs):
    """A graph whose outputs are constants (+ a zero that depends on the input).

    outputs: list of (name, dims, flat values, dtype)."""
    nodes = zero_from(inp.name)
    outs = []
    for oname, dims, vals, dtype in outputs:
        nodes.append(const(oname + "_c", dims, vals, dtype))
        if dtype == TensorProto.FLOAT:
            nodes.append(helper.make_node("Add", [oname + "_c", "z"], [oname]))
        else:
            nodes.append(helper.make_node("Cast", ["z"], [oname + "_z"], to=dtype))
            nodes.append(helper.make_node("Add", [oname + "_c", oname + "_z"], [oname]))
        outs.append(helper.make_tensor_value_info(oname, dtype, dims))
    return helper.make_graph(nodes, name, [inp], outs)


def tf_od():
    # Like an SSD export: uint8 [1, H, W, 3] of any size; 4 slots, num_detections = 3, so the
    # fourth (score 0.99) must be ignored; the third scores under the 0.05 threshold.
    inp = helper.make_tensor_value_info("image_tensor:0", TensorProto.UINT8, [1, None, None, 3])
    boxes = [0.1, 0.2, 0.5, 0.6,   0.0, 0.0, 1.0, 1.0,   0.3, 0.3, 0.4, 0.4,   0.5, 0.5, 0.9, 0.9]
    g = constant_outputs("tf_od", inp, [
        ("detection_boxes:0", [1, 4, 4], boxes, TensorProto.FLOAT),
        ("detection_scores:0", [1, 4], [0.9, 0.3, 0.01, 0.99], TensorProto.FLOAT),
        ("detection_classes:0", [1, 4], [1.0, 3.0, 1.0, 1.0], TensorProto.FLOAT),
        ("num_detections:0", [1], [3.0], TensorProto.FLOAT),
    ])
    save(g, os.path.join(OUT, "tf_od.onnx"))


def yolo_v8():
    # [1, 4 + 2 classes, 8 anchors], channels first; input 64×64. Anchors (cx, cy, w, h, p0, p1):
    anchors = [
        (32, 32, 32, 16, 0.90, 0.05),  # A: class 0, kept
        (33, 32, 32, 16, 0.80, 0.10),  # B: class 0, IoU with A > 0.45 → suppressed by NMS
        (33, 32, 32, 16, 0.10, 0.70),  # C: class 1, same place: other class, kept
        (8, 20, 8, 8, 0.02, 0.03),     # D: below threshold
        (56, 40, 8, 8, 0.60, 0.00),    # E: class 0, far away, kept
        (56, 41, 8, 8, 0.55, 0.00),    # F: class 0, IoU with E = 0.78 → suppressed
        (10, 4, 8, 8, 0.50, 0.00),     # G: in the letterbox padding (y < 16) → dropped
        (20, 30, 4, 4, 0.00, 0.00),    # H: nothing
    ]
    rows = [[a[k] for a in anchors] for k in range(6)]
    vals = [v for r in rows for v in r]
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])
    g = constant_outputs("yolo_v8", inp, [("output0", [1, 6, 8], vals, TensorProto.FLOAT)])
    save(g, os.path.join(OUT, "yolo_v8.onnx"))


def yolo_v5():
    # [1, 10 anchors, 5 + 2 classes], channels last with objectness; input 64×64.
    anchors = [
        (32, 32, 32, 16, 0.9, 0.2, 0.8),   # obj 0.9 × 0.8 = 0.72, class 1
        (32, 33, 32, 16, 0.8, 0.1, 0.7),   # 0.56, class 1, overlaps the first → suppressed
        (56, 40, 8, 8, 0.5, 0.9, 0.1),     # 0.45, class 0
        (10, 40, 8, 8, 0.04, 1.0, 0.0),    # objectness under threshold
    ] + [(0, 0, 0, 0, 0.0, 0.0, 0.0)] * 6
    vals = [v for a in anchors for v in a]
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])
    g = constant_outputs("yolo_v5", inp, [("output", [1, 10, 7], vals, TensorProto.FLOAT)])
    save(g, os.path.join(OUT, "yolo_v5.onnx"))


def automl_rcnn():
    # Faster R-CNN export: float [1, 3, 60, 80]; boxes in resized-input pixels.
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 60, 80])
    g = constant_outputs("automl_rcnn", inp, [
        ("boxes_0", [3, 4], [8, 6, 40, 30,   0, 0, 80, 60,   70, 50, 90, 70], TensorProto.FLOAT),
        ("labels_0", [3], [1, 2, 1], TensorProto.INT64),
        ("scores_0", [3], [0.95, 0.5, 0.8], TensorProto.FLOAT),
    ])
    save(g, os.path.join(OUT, "automl_rcnn", "model.onnx"))
    with open(os.path.join(OUT, "automl_rcnn", "labels.json"), "w") as f:
        json.dump(["--bg--", "can", "carton"], f)


def automl_yolo():
    # AutoML YOLO after NMS: (n, 6) x_min, y_min, x_max, y_max, confidence, class in the
    # letterboxed 64×64 input.
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])
    rows = [16, 24, 48, 40, 0.9, 1,   0, 16, 64, 48, 0.3, 0]
    g = constant_outputs("automl_yolo", inp, [("output", [2, 6], rows, TensorProto.FLOAT)])
    save(g, os.path.join(OUT, "automl_yolo", "model.onnx"))
    with open(os.path.join(OUT, "automl_yolo", "labels.json"), "w") as f:
        json.dump(["can", "carton"], f)


def mean_colour_classifier(name, path, dtype, layout, logits_name, scale, labels_json=None):
    """logits = mean of each colour channel × scale: a real function of the pixels."""
    if layout == "nchw":
        dims, axes = [None, 3, 8, 8], [2, 3]
    else:
        dims, axes = [None, 8, 8, 3], [1, 2]
    inp = helper.make_tensor_value_info("pixels", dtype, dims)
    nodes = [
        helper.make_node("Cast", ["pixels"], ["pf"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["pf"], ["mean"], axes=axes, keepdims=0),
        const("scale", [], [scale]),
        helper.make_node("Mul", ["mean", "scale"], [logits_name]),
    ]
    out = helper.make_tensor_value_info(logits_name, TensorProto.FLOAT, [None, 3])
    save(helper.make_graph(nodes, name, [inp], [out]), path)
    if labels_json:
        with open(os.path.join(os.path.dirname(path), "labels.json"), "w") as f:
            json.dump(labels_json, f)


def unknown():
    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "unknown", [inp], [out])
    save(g, os.path.join(OUT, "unknown.onnx"))


if __name__ == "__main__":
    tf_od()
    yolo_v8()
    yolo_v5()
    automl_rcnn()
    automl_yolo()
    # Float NCHW in 0..1, dynamic batch: red (1, 0, 0) gives logits (10, 0, 0).
    mean_colour_classifier("classify_f32", os.path.join(OUT, "classify_f32.onnx"),
                           TensorProto.FLOAT, "nchw", "logits", 10.0)
    # uint8 NHWC: red (255, 0, 0) gives logits (10, 0, 0) with scale 10/255.
    mean_colour_classifier("classify_u8", os.path.join(OUT, "classify_u8.onnx"),
                           TensorProto.UINT8, "nhwc", "logits", 10.0 / 255.0)
    # AutoML classification: ImageNet-normalised input, names from labels.json.
    mean_colour_classifier("automl_cls", os.path.join(OUT, "automl_cls", "model.onnx"),
                           TensorProto.FLOAT, "nchw", "logits", 1.0,
                           labels_json=["red", "green", "blue"])
    unknown()
