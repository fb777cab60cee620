"""SSD custom ops (domain ``ai.nnbridge``): PriorBox and DetectionOutput, after weiliu89/caffe.

PriorBox(feature (N, C, H, W), image (N, C', H_img, W_img)) -> (1, 2, H * W * P * 4), float32.
Attributes: ``min_size``, ``max_size`` (same count or none), ``aspect_ratio`` (floats), ``flip``, ``clip``
(ints), ``variance`` (1 or 4 floats, default 0.1), ``img_h``, ``img_w`` (0: the image input's size),
``step_h``, ``step_w`` (0: ``img / layer`` in float32), ``offset`` (default 0.5).

- aspect ratios: ``[1]``, then each given ratio not within 1e-6 of one already listed, followed by its
  reciprocal when ``flip``; ``P = len(ratios) * len(min_size) + len(max_size)``;
- cell ``(h, w)``: centre ``cx = (w + offset) * step_w``, ``cy = (h + offset) * step_h`` (float32); for each
  ``min_size`` m (truncated to an integer as ``prior_box_layer.cpp`` does, like ``max_size`` M): the box of
  side m, then (with ``max_size``) the box of side ``sqrt(m * M)``, then for every ratio r != 1 the box
  ``m * sqrt(r)`` wide and ``m / sqrt(r)`` high; each box is written as
  ``((cx - bw / 2) / img_w, (cy - bh / 2) / img_h, (cx + bw / 2) / img_w, (cy + bh / 2) / img_h)``;
- ``clip`` clamps every coordinate to [0, 1]; channel 1 holds the variances (repeated per box).

DetectionOutput(loc (N, P * L * 4), conf (N, P * K), prior (1, 2, P * 4)) -> (1, 1, D, 7), float32 rows
``[image_id, label, score, xmin, ymin, xmax, ymax]``. Attributes: ``num_classes`` K, ``share_location``
(L = 1, else L = K), ``background_label_id``, ``code_type`` (1 CORNER, 2 CENTER_SIZE, 3 CORNER_SIZE),
``variance_encoded_in_target``, ``keep_top_k`` (-1: all), ``confidence_threshold`` (-FLT_MAX when unset),
``nms_threshold``, ``top_k`` (-1: all), ``eta``.

- decode (``DecodeBBox``, no clipping), with prior p, variances v and prediction t:
  CORNER ``p + v * t``; CORNER_SIZE ``p + v * t * (pw or ph)``; CENTER_SIZE
  ``c = v[0:2] * t[0:2] * (pw, ph) + p_center``, ``size = exp(v[2:4] * t[2:4]) * (pw, ph)``, box
  ``c -/+ size / 2`` (with ``variance_encoded_in_target`` the variances are taken as 1);
- per image, per class c != background (ascending): scores ``> confidence_threshold``, stable-sorted by
  decreasing score, cut to ``top_k``; greedy NMS keeps a box when its Jaccard overlap with every kept box is
  ``<= threshold`` (the threshold is multiplied by ``eta`` after each kept box while ``eta < 1`` and it is
  above 0.5); overlap = intersection / (area1 + area2 - intersection), area 0 for an inverted box;
- if ``keep_top_k > -1`` and more detections than that remain, the best ``keep_top_k`` over all classes
  survive (then regrouped by class, each class in decreasing score);
- rows are written per image, per class ascending, per class in kept order. Without any detection the
  output is N rows ``[i, -1, -1, -1, -1, -1, -1]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np

from nnbridge.hub.custom import Shape, custom_op

FLT_MAX = float(np.finfo(np.float32).max)
CORNER, CENTER_SIZE, CORNER_SIZE = 1, 2, 3


# -- PriorBox --------------------------------------------------------------------------------------
def _aspect_ratios(attrs: Mapping[str, Any]) -> list[float]:
    ratios = [1.0]
    for ar in attrs.get("aspect_ratio", []):
        ar = float(np.float32(ar))
        if any(abs(ar - r) < 1e-6 for r in ratios):
            continue
        ratios.append(ar)
        if attrs.get("flip", 1):
            ratios.append(float(np.float32(1.0 / ar)))
    return ratios


def num_priors(attrs: Mapping[str, Any]) -> int:
    return len(_aspect_ratios(attrs)) * len(attrs.get("min_size", [])) + len(attrs.get("max_size", []))


def _priorbox_infer(attrs: Mapping[str, Any], shapes: Sequence[Shape], dtypes: Sequence[np.dtype]
                    ) -> list[tuple[Shape, np.dtype]]:
    h, w = shapes[0][2], shapes[0][3]
    return [((1, 2, h * w * num_priors(attrs) * 4), np.dtype(np.float32))]


@custom_op("PriorBox", infer=_priorbox_infer, doc="SSD prior (anchor) boxes and their variances")
def priorbox(attrs: Mapping[str, Any], inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    f32 = np.float32
    layer_h, layer_w = int(inputs[0].shape[2]), int(inputs[0].shape[3])
    img_h, img_w = int(attrs.get("img_h", 0)), int(attrs.get("img_w", 0))
    if img_h == 0 or img_w == 0:
        img_h, img_w = int(inputs[1].shape[2]), int(inputs[1].shape[3])
    step_h, step_w = f32(attrs.get("step_h", 0.0)), f32(attrs.get("step_w", 0.0))
    if step_h == 0 or step_w == 0:
        step_w, step_h = f32(img_w) / f32(layer_w), f32(img_h) / f32(layer_h)
    offset = f32(attrs.get("offset", 0.5))
    min_sizes = [int(np.float32(m)) for m in attrs.get("min_size", [])]
    max_sizes = [int(np.float32(m)) for m in attrs.get("max_size", [])]
    ratios = _aspect_ratios(attrs)
    sizes: list[tuple[float, float]] = []  # (box width, box height) per prior, as float32 values
    for s, m in enumerate(min_sizes):
        sizes.append((float(f32(m)), float(f32(m))))
        if max_sizes:
            side = float(f32(math.sqrt(m * max_sizes[s])))
            sizes.append((side, side))
        for r in ratios:
            if abs(r - 1.0) < 1e-6:
                continue
            sizes.append((float(f32(m * math.sqrt(r))), float(f32(m / math.sqrt(r)))))
    cx = ((np.arange(layer_w, dtype=f32) + offset) * step_w).astype(np.float64)
    cy = ((np.arange(layer_h, dtype=f32) + offset) * step_h).astype(np.float64)
    bw = np.asarray([s[0] for s in sizes], dtype=np.float64)
    bh = np.asarray([s[1] for s in sizes], dtype=np.float64)
    boxes = np.empty((layer_h, layer_w, len(sizes), 4), dtype=np.float64)
    boxes[..., 0] = (cx[None, :, None] - bw[None, None, :] / 2.0) / img_w
    boxes[..., 1] = (cy[:, None, None] - bh[None, None, :] / 2.0) / img_h
    boxes[..., 2] = (cx[None, :, None] + bw[None, None, :] / 2.0) / img_w
    boxes[..., 3] = (cy[:, None, None] + bh[None, None, :] / 2.0) / img_h
    coords = boxes.astype(f32).reshape(-1)
    if attrs.get("clip", 1):
        coords = np.clip(coords, f32(0), f32(1))
    variance = [float(v) for v in attrs.get("variance", [])] or [0.1]
    if len(variance) not in (1, 4):
        raise ValueError(f"PriorBox: variance must have 1 or 4 values, got {len(variance)}")
    variances = np.resize(np.asarray(variance, dtype=f32), coords.shape)
    return [np.stack([coords, variances])[None].astype(f32)]


# -- DetectionOutput -------------------------------------------------------------------------------
def _detection_infer(attrs: Mapping[str, Any], shapes: Sequence[Shape], dtypes: Sequence[np.dtype]
                     ) -> list[tuple[Shape, np.dtype]]:
    # The number of detections is only known at run time (Caffe itself reshapes the top in Forward).
    return [(cast(Shape, (1, 1, "detections", 7)), np.dtype(np.float32))]


def decode_boxes(loc: np.ndarray, priors: np.ndarray, variances: np.ndarray, code_type: int,
                 variance_encoded_in_target: bool) -> np.ndarray:
    """``DecodeBBox`` for arrays: ``loc`` (P, 4), ``priors`` (P, 4), ``variances`` (P, 4) -> (P, 4), float32."""
    f32 = np.float32
    loc, priors = loc.astype(f32), priors.astype(f32)
    var = np.ones_like(variances, dtype=f32) if variance_encoded_in_target else variances.astype(f32)
    pw = priors[:, 2] - priors[:, 0]
    ph = priors[:, 3] - priors[:, 1]
    out = np.empty_like(loc)
    if code_type == CORNER:
        out = priors + var * loc
    elif code_type == CORNER_SIZE:
        size = np.stack([pw, ph, pw, ph], axis=1)
        out = priors + var * loc * size
    elif code_type == CENTER_SIZE:
        pcx = ((priors[:, 0] + priors[:, 2]).astype(np.float64) / 2.0).astype(f32)
        pcy = ((priors[:, 1] + priors[:, 3]).astype(np.float64) / 2.0).astype(f32)
        cx = var[:, 0] * loc[:, 0] * pw + pcx
        cy = var[:, 1] * loc[:, 1] * ph + pcy
        w = (np.exp((var[:, 2] * loc[:, 2]).astype(np.float64)) * pw).astype(f32)
        h = (np.exp((var[:, 3] * loc[:, 3]).astype(np.float64)) * ph).astype(f32)
        half_w, half_h = w.astype(np.float64) / 2.0, h.astype(np.float64) / 2.0
        out = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1).astype(f32)
    else:
        raise ValueError(f"DetectionOutput: unknown code_type {code_type}")
    return out.astype(f32)


def _area(box: np.ndarray) -> np.float32:
    if box[2] < box[0] or box[3] < box[1]:
        return np.float32(0)
    return np.float32((box[2] - box[0]) * (box[3] - box[1]))


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """``JaccardOverlap`` of two normalized float32 boxes, in float32 like Caffe."""
    if b[0] > a[2] or b[2] < a[0] or b[1] > a[3] or b[3] < a[1]:
        return 0.0
    iw = np.float32(min(a[2], b[2]) - max(a[0], b[0]))
    ih = np.float32(min(a[3], b[3]) - max(a[1], b[1]))
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = np.float32(iw * ih)
    return float(np.float32(inter / np.float32(_area(a) + _area(b) - inter)))


def nms_fast(boxes: np.ndarray, scores: np.ndarray, score_threshold: float, nms_threshold: float, eta: float,
             top_k: int) -> list[int]:
    """``ApplyNMSFast``: indices kept, in decreasing score order."""
    candidates = [i for i in range(len(scores)) if scores[i] > score_threshold]
    candidates.sort(key=lambda i: -float(scores[i]))  # stable, like std::stable_sort
    if top_k > -1:
        candidates = candidates[:top_k]
    threshold = nms_threshold
    kept: list[int] = []
    for i in candidates:
        keep = all(jaccard(boxes[i], boxes[k]) <= threshold for k in kept)
        if keep:
            kept.append(i)
            if eta < 1 and threshold > 0.5:
                threshold = float(np.float32(threshold * eta))
    return kept


def _attr(attrs: Mapping[str, Any], name: str, default: Any) -> Any:
    value = attrs.get(name)
    return default if value is None else value


@custom_op("DetectionOutput", infer=_detection_infer,
           doc="SSD box decoding, per-class NMS and top-k selection -> (1, 1, D, 7) detections")
def detection_output(attrs: Mapping[str, Any], inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    loc_data, conf_data, prior_data = (np.asarray(x, dtype=np.float32) for x in inputs[:3])
    num_classes = int(attrs["num_classes"])
    share_location = bool(_attr(attrs, "share_location", 1))
    background = int(_attr(attrs, "background_label_id", 0))
    code_type = int(_attr(attrs, "code_type", CORNER))
    in_target = bool(_attr(attrs, "variance_encoded_in_target", 0))
    keep_top_k = int(_attr(attrs, "keep_top_k", -1))
    conf_threshold = float(np.float32(_attr(attrs, "confidence_threshold", -FLT_MAX)))
    nms_threshold = float(np.float32(_attr(attrs, "nms_threshold", 0.3)))
    top_k = int(_attr(attrs, "top_k", -1))
    eta = float(np.float32(_attr(attrs, "eta", 1.0)))

    num = loc_data.shape[0]
    num_loc_classes = 1 if share_location else num_classes
    priors_flat = prior_data.reshape(-1)
    count = priors_flat.size // 8
    priors = priors_flat[: count * 4].reshape(count, 4)
    variances = priors_flat[count * 4: count * 8].reshape(count, 4)
    loc = loc_data.reshape(num, count, num_loc_classes, 4)
    conf = conf_data.reshape(num, count, num_classes)

    rows: list[list[float]] = []
    for i in range(num):
        decoded = {c: decode_boxes(loc[i, :, c], priors, variances, code_type, in_target)
                   for c in range(num_loc_classes) if share_location or c != background}
        indices: dict[int, list[int]] = {}
        for c in range(num_classes):
            if c == background:
                continue
            boxes = decoded[0 if share_location else c]
            indices[c] = nms_fast(boxes, conf[i, :, c], conf_threshold, nms_threshold, eta, top_k)
        total = sum(len(v) for v in indices.values())
        if keep_top_k > -1 and total > keep_top_k:
            pairs = [(float(conf[i, idx, c]), c, idx) for c, kept in indices.items() for idx in kept]
            pairs.sort(key=lambda p: -p[0])
            indices = {}
            for _, c, idx in pairs[:keep_top_k]:
                indices.setdefault(c, []).append(idx)
        for c in sorted(indices):
            boxes = decoded[0 if share_location else c]
            for idx in indices[c]:
                rows.append([float(i), float(c), float(conf[i, idx, c]), *(float(v) for v in boxes[idx])])
    if not rows:
        out = np.full((1, 1, num, 7), -1.0, dtype=np.float32)
        out[0, 0, :, 0] = np.arange(num, dtype=np.float32)
        return [out]
    return [np.asarray(rows, dtype=np.float32).reshape(1, 1, len(rows), 7)]
