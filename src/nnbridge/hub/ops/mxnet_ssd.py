"""MXNet's SSD operators (domain ``ai.nnbridge``), after ``src/operator/contrib/multibox_*.cc`` of MXNet 1.9.1.

They differ from Caffe's PriorBox/DetectionOutput (layout, box order, decoding and NMS), hence their own ops.

MultiBoxPrior(data (N, C, H, W)) -> anchors (1, H * W * A, 4), float32, ``A = len(sizes) + len(ratios) - 1``.
Attributes ``sizes`` (default [1]), ``ratios`` ([1]), ``clip`` (0), ``steps`` ([-1, -1]: (1/H, 1/W)),
``offsets`` ([0.5, 0.5]), all (y, x) ordered. For each cell (r, c), row-major, centre
``cy = (r + offsets[0]) * step_y``, ``cx = (c + offsets[1]) * step_x`` (float32); with ``q_j = sqrtf(ratios[j])``,
first one box per size s with ratio ``ratios[0]``: half-width ``s * H / W * q_0 / 2``, half-height ``s / q_0 / 2``;
then one box per ratio j >= 1 with size ``sizes[0]``: half-width ``sizes[0] * H / W * q_j / 2``, half-height
``sizes[0] / q_j / 2`` (order measured in MXNet 1.9.1); each box is ``(cx - hw, cy - hh, cx + hw, cy + hh)``;
``clip`` clamps to [0, 1].

MultiBoxDetection(cls_prob (B, K, A), loc_pred (B, A * 4), anchor (1, A, 4)) -> (B, A, 6) float32 rows
``[class_id, score, xmin, ymin, xmax, ymax]``, unused rows -1. Attributes ``clip`` (1), ``threshold`` (0.01),
``background_id`` (0; MXNet's CPU kernel always treats class 0 as background), ``nms_threshold`` (0.5),
``force_suppress`` (0), ``variances`` ([0.1, 0.1, 0.2, 0.2]), ``nms_topk`` (-1). Per image:

1. per anchor: the best class j >= 1 by strictly greater probability (ties: the lowest j; start score -1);
   if its score is below ``threshold`` the anchor is dropped, else ``id = j - 1``;
2. decoding (float32, in this order): ``aw = ar - al``, ``ax = (al + ar) / 2``, ``ox = px * vx * aw + ax``,
   ``ow = exp(pw * vw) * aw / 2`` (same for y/h); box ``(ox - ow, oy - oh, ox + ow, oy + oh)`` clamped to [0, 1]
   when ``clip``;
3. kept anchors are packed in anchor order; if any and ``0 < nms_threshold <= 1``: stable sort by decreasing
   score; with ``0 < nms_topk < count`` only the first ``nms_topk`` rows are re-ordered and the ids of rows
   ``nms_topk..count-1`` are set to -1 (their other columns keep the packed, unsorted values); greedy NMS over
   the first ``nms_topk`` (else all) rows: a row i still valid suppresses (id = -1) every later valid row j of
   the same class (any class with ``force_suppress``) whose IoU with it is ``>= nms_threshold``; IoU =
   ``i / u`` with ``i`` the clamped intersection area and ``u = area_a + area_b - i`` (0 when ``u <= 0``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nnbridge.hub.custom import Shape, custom_op

f32 = np.float32


def _floats(attrs: Mapping[str, Any], name: str, default: Sequence[float]) -> list[float]:
    value = attrs.get(name)
    return [float(v) for v in (default if value is None else value)]


def _prior_infer(attrs: Mapping[str, Any], shapes: Sequence[Shape], dtypes: Sequence[np.dtype]
                 ) -> list[tuple[Shape, np.dtype]]:
    h, w = shapes[0][2], shapes[0][3]
    count = len(_floats(attrs, "sizes", [1.0])) + len(_floats(attrs, "ratios", [1.0])) - 1
    return [((1, h * w * count, 4), np.dtype(np.float32))]


@custom_op("MultiBoxPrior", infer=_prior_infer, doc="MXNet SSD anchors (_contrib_MultiBoxPrior)")
def multibox_prior(attrs: Mapping[str, Any], inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    height, width = int(inputs[0].shape[2]), int(inputs[0].shape[3])
    sizes = [f32(s) for s in _floats(attrs, "sizes", [1.0])]
    ratios = [f32(r) for r in _floats(attrs, "ratios", [1.0])]
    steps = [f32(s) for s in _floats(attrs, "steps", [-1.0, -1.0])]
    offsets = [f32(o) for o in _floats(attrs, "offsets", [0.5, 0.5])]
    step_y = steps[0] if steps[0] > 0 else f32(1) / f32(height)
    step_x = steps[1] if steps[1] > 0 else f32(1) / f32(width)
    half: list[tuple[np.float32, np.float32]] = []  # (half width, half height) per anchor of a cell
    q0 = np.sqrt(ratios[0], dtype=np.float32)
    for size in sizes:
        half.append((size * f32(height) / f32(width) * q0 / f32(2), size / q0 / f32(2)))
    for ratio in ratios[1:]:
        q = np.sqrt(ratio, dtype=np.float32)
        half.append((sizes[0] * f32(height) / f32(width) * q / f32(2), sizes[0] / q / f32(2)))
    hw = np.asarray([h[0] for h in half], np.float32)
    hh = np.asarray([h[1] for h in half], np.float32)
    cy = (np.arange(height, dtype=np.float32) + offsets[0]) * step_y
    cx = (np.arange(width, dtype=np.float32) + offsets[1]) * step_x
    out = np.empty((height, width, len(half), 4), np.float32)
    out[..., 0] = cx[None, :, None] - hw
    out[..., 1] = cy[:, None, None] - hh
    out[..., 2] = cx[None, :, None] + hw
    out[..., 3] = cy[:, None, None] + hh
    if attrs.get("clip", 0):
        out = np.clip(out, f32(0), f32(1))
    return [out.reshape(1, -1, 4)]


def _detection_infer(attrs: Mapping[str, Any], shapes: Sequence[Shape], dtypes: Sequence[np.dtype]
                     ) -> list[tuple[Shape, np.dtype]]:
    return [((shapes[0][0], shapes[0][2], 6), np.dtype(np.float32))]


def _decode(anchors: np.ndarray, loc: np.ndarray, variances: Sequence[float], clip: bool) -> np.ndarray:
    vx, vy, vw, vh = (f32(v) for v in variances)
    al, at, ar, ab = (anchors[:, i] for i in range(4))
    aw, ah = ar - al, ab - at
    ax, ay = (al + ar) / f32(2), (at + ab) / f32(2)
    ox = loc[:, 0] * vx * aw + ax
    oy = loc[:, 1] * vy * ah + ay
    ow = np.exp(loc[:, 2] * vw) * aw / f32(2)
    oh = np.exp(loc[:, 3] * vh) * ah / f32(2)
    boxes = np.stack([ox - ow, oy - oh, ox + ow, oy + oh], axis=1).astype(np.float32)
    return np.clip(boxes, f32(0), f32(1)) if clip else boxes


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    w = np.maximum(f32(0), np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]))
    h = np.maximum(f32(0), np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]))
    inter = w * h
    union = (box[2] - box[0]) * (box[3] - box[1]) + (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = union - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union <= 0, f32(0), inter / union).astype(np.float32)


@custom_op("MultiBoxDetection", infer=_detection_infer,
           doc="MXNet SSD decoding and NMS (_contrib_MultiBoxDetection) -> (B, A, 6)")
def multibox_detection(attrs: Mapping[str, Any], inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    cls_prob, loc_pred, anchor = (np.asarray(x, np.float32) for x in inputs[:3])
    batches, classes, count = cls_prob.shape
    clip = bool(attrs.get("clip", 1))
    threshold = f32(attrs.get("threshold", 0.01))
    nms_threshold = float(np.float32(attrs.get("nms_threshold", 0.5)))
    force = bool(attrs.get("force_suppress", 0))
    variances = _floats(attrs, "variances", [0.1, 0.1, 0.2, 0.2])
    topk = int(attrs.get("nms_topk", -1))
    anchors = anchor.reshape(-1, 4)[:count]
    out = np.full((batches, count, 6), -1.0, np.float32)
    for b in range(batches):
        probs = cls_prob[b, 1:, :] if classes > 1 else np.full((1, count), -1.0, np.float32)
        best = np.argmax(probs, axis=0)  # the first maximum, like the strict ">" scan
        score = probs[best, np.arange(count)]
        valid = (score > f32(-1)) & (score >= threshold) & (classes > 1)
        boxes = _decode(anchors, loc_pred[b].reshape(-1, 4), variances, clip)
        rows = np.concatenate([best[:, None].astype(np.float32), score[:, None], boxes], axis=1)[valid]
        n = len(rows)
        out[b, :n] = rows
        if n < 1 or nms_threshold <= 0 or nms_threshold > 1:
            continue
        order = sorted(range(n), key=lambda i: -float(rows[i, 1]))  # stable, decreasing score
        keep = n
        if 0 < topk < n:
            keep = topk
            out[b, keep:n, 0] = -1
        out[b, :keep] = rows[order[:keep]]
        work = out[b]
        for i in range(keep):
            if work[i, 0] < 0:
                continue
            later = np.arange(i + 1, keep)
            later = later[work[later, 0] >= 0]
            if not force:
                later = later[work[later, 0] == work[i, 0]]
            if len(later):
                overlap = _iou(work[i, 2:6], work[later, 2:6])
                work[later[overlap >= f32(nms_threshold)], 0] = -1
    return [out]
