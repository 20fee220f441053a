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


def set_metadata(path, **meta):
    """Writes Ultralytics-style metadata_props (str values, as their exporter does)."""
    model = onnx.load(path)
    del model.metadata_props[:]
    for k, v in meta.items():
        p = model.metadata_props.add()
        p.key, p.value = k, v
    onnx.save(model, path)


def red_square_moments(red, nodes):
    """Nodes turning `red` (float [N, H, W], 0..1) into the box of the bright red square.

    m = relu(red − 0.6) × 2.5 is 1 on the square and 0 on a dark background, on YOLO's grey
    letterbox padding (114/255) and on other colours; its centroid is the square's centre and
    its spread per axis gives the side: var = (s² − 1)/12 over pixel centres, so
    s = sqrt(12·var + 1). Outputs (float [N]): sq_cx, sq_cy, sq_w, sq_h (input pixels),
    sq_score (1 with a square, 0 without), and sq_hf, sq_wf (the input size, float scalars)."""
    i64 = TensorProto.INT64
    nodes += [
        const("sq_thr", [], [0.6]), const("sq_gain", [], [2.5]),
        helper.make_node("Sub", [red, "sq_thr"], ["sq_d"]),
        helper.make_node("Relu", ["sq_d"], ["sq_r"]),
        helper.make_node("Mul", ["sq_r", "sq_gain"], ["sq_m"]),
        helper.make_node("Shape", ["sq_m"], ["sq_shape"]),
        const("sq_i1", [], [1], i64), const("sq_i2", [], [2], i64),
        const("sq_zero_i", [], [0], i64), const("sq_one_i", [], [1], i64),
        helper.make_node("Gather", ["sq_shape", "sq_i1"], ["sq_h_i"], axis=0),
        helper.make_node("Gather", ["sq_shape", "sq_i2"], ["sq_w_i"], axis=0),
        helper.make_node("Cast", ["sq_h_i"], ["sq_hf"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["sq_w_i"], ["sq_wf"], to=TensorProto.FLOAT),
        const("sq_half", [], [0.5]),
        const("sq_ax1", [1], [1], i64), const("sq_ax12", [2], [1, 2], i64),
        helper.make_node("Range", ["sq_zero_i", "sq_h_i", "sq_one_i"], ["sq_yr"]),
        helper.make_node("Cast", ["sq_yr"], ["sq_yf"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["sq_yf", "sq_half"], ["sq_y1"]),
        helper.make_node("Unsqueeze", ["sq_y1", "sq_ax1"], ["sq_ys"]),  # [H, 1]
        helper.make_node("Range", ["sq_zero_i", "sq_w_i", "sq_one_i"], ["sq_xr"]),
        helper.make_node("Cast", ["sq_xr"], ["sq_xf"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["sq_xf", "sq_half"], ["sq_xs"]),       # [W]
        helper.make_node("ReduceSum", ["sq_m", "sq_ax12"], ["sq_mass"], keepdims=0),
        const("sq_eps", [], [1e-6]),
        helper.make_node("Add", ["sq_mass", "sq_eps"], ["sq_me"]),
        const("sq_twelve", [], [12.0]), const("sq_onef", [], [1.0]),
        helper.make_node("Min", ["sq_mass", "sq_onef"], ["sq_score"]),
    ]
    for axis, coord in (("x", "sq_xs"), ("y", "sq_ys")):
        nodes += [
            helper.make_node("Mul", ["sq_m", coord], [f"sq_m{axis}"]),
            helper.make_node("Mul", [f"sq_m{axis}", coord], [f"sq_m{axis}{axis}"]),
            helper.make_node("ReduceSum", [f"sq_m{axis}", "sq_ax12"], [f"sq_s{axis}"], keepdims=0),
            helper.make_node("ReduceSum", [f"sq_m{axis}{axis}", "sq_ax12"], [f"sq_s{axis}{axis}"],
                             keepdims=0),
            helper.make_node("Div", [f"sq_s{axis}", "sq_me"], [f"sq_c{axis}"]),
            helper.make_node("Div", [f"sq_s{axis}{axis}", "sq_me"], [f"sq_e{axis}{axis}"]),
            helper.make_node("Mul", [f"sq_c{axis}", f"sq_c{axis}"], [f"sq_c{axis}2"]),
            helper.make_node("Sub", [f"sq_e{axis}{axis}", f"sq_c{axis}2"], [f"sq_v{axis}"]),
            helper.make_node("Mul", [f"sq_v{axis}", "sq_twelve"], [f"sq_v{axis}12"]),
            helper.make_node("Add", [f"sq_v{axis}12", "sq_onef"], [f"sq_v{axis}1"]),
            helper.make_node("Relu", [f"sq_v{axis}1"], [f"sq_v{axis}p"]),
            helper.make_node("Sqrt", [f"sq_v{axis}p"], [f"sq_{'w' if axis == 'x' else 'h'}"]),
        ]


def stack_columns(names, out, nodes, prefix):
    """[N] tensors → [N, len(names)]."""
    nodes.append(const(prefix + "_ax", [1], [1], TensorProto.INT64))
    cols = []
    for n in names:
        nodes.append(helper.make_node("Unsqueeze", [n, prefix + "_ax"], [prefix + "_" + n]))
        cols.append(prefix + "_" + n)
    nodes.append(helper.make_node("Concat", cols, [out], axis=1))


def square_yolo():
    # A YOLOv8-style detector that really finds the red square: float NCHW RGB of any size
    # (metadata imgsz says 64×64, so termtag letterboxes to that), output [N, 5, 8] (cx, cy, w, h,
    # score for the one class, repeated over 8 anchors that NMS folds into one box). Ultralytics
    # metadata names the class.
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, None, None])
    nodes = [const("ch0", [], [0], TensorProto.INT64),
             helper.make_node("Gather", ["images", "ch0"], ["red"], axis=1)]
    red_square_moments("red", nodes)
    stack_columns(["sq_cx", "sq_cy", "sq_w", "sq_h", "sq_score"], "rows", nodes, "st")
    nodes += [
        const("ax2", [1], [2], TensorProto.INT64),
        helper.make_node("Unsqueeze", ["rows", "ax2"], ["rows3"]),
        const("tile", [3], [1, 1, 8], TensorProto.INT64),
        helper.make_node("Expand", ["rows3", "tile"], ["output0"]),
    ]
    out = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [None, 5, 8])
    path = os.path.join(OUT, "square_yolo.onnx")
    save(helper.make_graph(nodes, "square_yolo", [inp], [out]), path)
    set_metadata(path, names="{0: 'red square'}", imgsz="[64, 64]", task="detect",
                 stride="32", description="termtag test fixture: finds the red square")


def square_tf_od():
    # A TF Object Detection API style detector that really finds the red square: uint8 NHWC
    # RGB of any size; one detection, boxes normalised (ymin, xmin, ymax, xmax).
    inp = helper.make_tensor_value_info("image_tensor:0", TensorProto.UINT8, [1, None, None, 3])
    nodes = [
        helper.make_node("Cast", ["image_tensor:0"], ["pix"], to=TensorProto.FLOAT),
        const("inv255", [], [1.0 / 255.0]),
        helper.make_node("Mul", ["pix", "inv255"], ["unit"]),
        const("ch0", [], [0], TensorProto.INT64),
        helper.make_node("Gather", ["unit", "ch0"], ["red"], axis=3),
    ]
    red_square_moments("red", nodes)
    for a, c, s, size in (("x", "sq_cx", "sq_w", "sq_wf"), ("y", "sq_cy", "sq_h", "sq_hf")):
        nodes += [
            helper.make_node("Mul", [s, "sq_half"], [a + "_hs"]),
            helper.make_node("Sub", [c, a + "_hs"], [a + "_lo_px"]),
            helper.make_node("Add", [c, a + "_hs"], [a + "_hi_px"]),
            helper.make_node("Div", [a + "_lo_px", size], [a + "_lo"]),
            helper.make_node("Div", [a + "_hi_px", size], [a + "_hi"]),
        ]
    stack_columns(["y_lo", "x_lo", "y_hi", "x_hi"], "box2", nodes, "bx")
    nodes += [
        const("ax1", [1], [1], TensorProto.INT64),
        helper.make_node("Unsqueeze", ["box2", "ax1"], ["detection_boxes:0"]),
        helper.make_node("Unsqueeze", ["sq_score", "ax1"], ["detection_scores:0"]),
        helper.make_node("Mul", ["sq_score", "sq_zero_f"], ["cls0"]),
        const("sq_zero_f", [], [0.0]),
        helper.make_node("Add", ["cls0", "sq_onef"], ["cls1"]),
        helper.make_node("Unsqueeze", ["cls1", "ax1"], ["detection_classes:0"]),
        helper.make_node("Identity", ["cls1"], ["num_detections:0"]),
    ]
    # Constants first: the checker wants a topological order.
    nodes.sort(key=lambda n: 0 if n.op_type == "Constant" else 1)
    outs = [
        helper.make_tensor_value_info("detection_boxes:0", TensorProto.FLOAT, [None, 1, 4]),
        helper.make_tensor_value_info("detection_scores:0", TensorProto.FLOAT, [None, 1]),
        helper.make_tensor_value_info("detection_classes:0", TensorProto.FLOAT, [None, 1]),
        helper.make_tensor_value_info("num_detections:0", TensorProto.FLOAT, [None]),
    ]
    save(helper.make_graph(nodes, "square_tf_od", [inp], outs), os.path.join(OUT, "square_tf_od.onnx"))


def ultralytics_cls():
    # Like `yolov8n-cls.onnx`: float NCHW, softmax output `output0`, class names and task in the
    # metadata. Logits are the mean colour per channel × 10, so red gives class 0.
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[2, 3], keepdims=0),
        const("scale", [], [10.0]),
        helper.make_node("Mul", ["mean", "scale"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["output0"], axis=1),
    ]
    out = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 3])
    path = os.path.join(OUT, "ultralytics_cls.onnx")
    save(helper.make_graph(nodes, "ultralytics_cls", [inp], [out]), path)
    set_metadata(path, names="{0: 'red', 1: 'green', 2: 'blue'}", imgsz="[8, 8]",
                 task="classify", stride="1")


def unknown():
    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "unknown", [inp], [out])
    save(g, os.path.join(OUT, "unknown.onnx"))


def broken_models():
    """Models that load but do not fit what they claim: the errors tests/predict_cli.rs expects."""
    # A detector whose input has no batch axis: rank 3 where every adapter wants 4.
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, [3, 64, 64])
    g = constant_outputs("wrong_rank", inp, [("output0", [1, 6, 8], [0.5] * 48, TensorProto.FLOAT)])
    save(g, os.path.join(OUT, "wrong_rank.onnx"))
    # An SSD whose num_detections (3) says more than its scores and classes hold (2).
    inp = helper.make_tensor_value_info("image_tensor:0", TensorProto.UINT8, [1, None, None, 3])
    g = constant_outputs("tf_od_short", inp, [
        ("detection_boxes:0", [1, 2, 4], [0.1, 0.2, 0.5, 0.6, 0.0, 0.0, 1.0, 1.0], TensorProto.FLOAT),
        ("detection_scores:0", [1, 2], [0.9, 0.8], TensorProto.FLOAT),
        ("detection_classes:0", [1, 2], [1.0, 3.0], TensorProto.FLOAT),
        ("num_detections:0", [1], [3.0], TensorProto.FLOAT),
    ])
    save(g, os.path.join(OUT, "tf_od_short.onnx"))
    # A YOLO head declared with dynamic dims that answers [1, 3, 8]: fewer rows than 4 box
    # coordinates and one class.
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])
    g = constant_outputs("yolo_short", inp, [("output0", [1, 3, 8], [0.5] * 24, TensorProto.FLOAT)])
    g.output[0].CopyFrom(helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, None, None]))
    save(g, os.path.join(OUT, "yolo_short.onnx"))


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
    square_yolo()
    square_tf_od()
    ultralytics_cls()
    broken_models()
