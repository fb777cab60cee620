"""Detection outputs as boxes, their agreement between two models, and average precision (pure numpy).

A detection set of one image is an ``(n, 6)`` float array of rows ``[label, score, x1, y1, x2, y2]``.

- :func:`parse_detections`: ``caffe_ssd`` = Caffe SSD ``DetectionOutput`` blob ``(1, 1, N, 7)``, rows ``[image,
  label, score, x1, y1, x2, y2]`` (rows with image or label -1 are padding); ``mxnet_multibox`` = MXNet
  ``MultiBoxDetection`` ``(B, A, 6)``, rows ``[label, score, x1, y1, x2, y2]`` (label -1 = suppressed).
- :func:`agreement`: per image and class, greedy matching: the other model's boxes in decreasing score order,
  each to the unmatched reference box of the same class with the highest IoU, when that IoU >= ``iou``.
- :func:`average_precision`: VOC style (a detection is a true positive when its best-overlapping ground-truth
  box of the same class has IoU >= ``iou`` and was not taken by a higher-scored detection), either
  ``voc11`` (VOC2007: mean of the interpolated precision at recall 0, 0.1, .., 1) or ``all`` (VOC2010+: area
  under the interpolated precision-recall curve at every recall step). mAP is the mean over classes with
  ground truth.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nnbridge.errors import NNBridgeError


def parse_detections(array: np.ndarray, layout: str, images: int, score_threshold: float = 0.0,
                     ) -> list[np.ndarray]:
    """One ``(n, 6)`` array per image of a batch of ``images`` (padding images beyond it are dropped)."""
    data = np.asarray(array, np.float64)
    per_image: list[np.ndarray] = []
    if layout == "caffe_ssd":
        if data.ndim != 4 or data.shape[:2] != (1, 1) or data.shape[3] != 7:
            raise NNBridgeError(f"detection output of shape {data.shape} is not Caffe SSD's (1, 1, N, 7); "
                                "set [model.detection] layout / output in the manifest")
        rows = data[0, 0]
        for index in range(images):
            mine = rows[(rows[:, 0] == index) & (rows[:, 1] >= 0)]
            per_image.append(mine[:, 1:7])
    elif layout == "mxnet_multibox":
        if data.ndim != 3 or data.shape[2] != 6:
            raise NNBridgeError(f"detection output of shape {data.shape} is not MultiBoxDetection's (B, A, 6); "
                                "set [model.detection] layout / output in the manifest")
        for index in range(min(images, data.shape[0])):
            rows = data[index]
            per_image.append(rows[rows[:, 0] >= 0])
    else:
        raise NNBridgeError(f"unknown detection layout {layout!r}: use caffe_ssd or mxnet_multibox")
    return [rows[rows[:, 1] >= score_threshold] if score_threshold > 0 else rows for rows in per_image]


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one ``[x1, y1, x2, y2]`` box with each row of ``boxes`` (0 where the union is empty)."""
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    area = max(box[2] - box[0], 0) * max(box[3] - box[1], 0)
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    union = area + areas - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _match(ref: np.ndarray, got: np.ndarray, threshold: float) -> list[tuple[int, int, float]]:
    """Greedy per-class matching: ``[(ref row, got row, IoU)]``."""
    pairs: list[tuple[int, int, float]] = []
    for label in np.unique(np.concatenate([ref[:, 0], got[:, 0]])):
        ref_rows = np.flatnonzero(ref[:, 0] == label)
        free = np.ones(len(ref_rows), bool)
        for g in sorted(np.flatnonzero(got[:, 0] == label), key=lambda r: -got[r, 1]):
            if not free.any():
                break
            overlaps = np.where(free, iou(got[g, 2:6], ref[ref_rows, 2:6]), -1.0)
            best = int(np.argmax(overlaps))
            if overlaps[best] >= threshold:
                free[best] = False
                pairs.append((int(ref_rows[best]), int(g), float(overlaps[best])))
    return pairs


def agreement(ref: list[np.ndarray], got: list[np.ndarray], threshold: float = 0.5) -> dict[str, Any]:
    """Matched boxes, mean matched IoU, largest score difference of matched boxes, unmatched counts;
    ``agreement`` = matched / max(reference boxes, other boxes) over all images (1.0 when both have none)."""
    matched, ious, score_diff = 0, [], 0.0
    unmatched_ref = unmatched_got = 0
    for r, g in zip(ref, got, strict=True):
        pairs = _match(r, g, threshold)
        matched += len(pairs)
        ious += [value for _, _, value in pairs]
        for a, b, _ in pairs:
            score_diff = max(score_diff, abs(float(r[a, 1]) - float(g[b, 1])))
        unmatched_ref += len(r) - len(pairs)
        unmatched_got += len(g) - len(pairs)
    total_ref, total_got = sum(len(r) for r in ref), sum(len(g) for g in got)
    most = max(total_ref, total_got)
    return {"source_boxes": total_ref, "boxes": total_got, "matched": matched,
            "agreement": matched / most if most else 1.0, "mean_iou": float(np.mean(ious)) if ious else None,
            "min_iou": float(np.min(ious)) if ious else None, "max_score_diff": score_diff,
            "unmatched_source": unmatched_ref, "unmatched": unmatched_got, "iou_threshold": threshold}


def _ap(recall: np.ndarray, precision: np.ndarray, method: str) -> float:
    if method == "voc11":
        return float(np.mean([precision[recall >= t].max() if (recall >= t).any() else 0.0
                              for t in np.linspace(0, 1, 11)]))
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]  # the precision envelope
    steps = np.flatnonzero(r[1:] != r[:-1]) + 1
    return float(np.sum((r[steps] - r[steps - 1]) * p[steps]))


def average_precision(detections: list[np.ndarray], truth: list[np.ndarray], threshold: float = 0.5,
                      method: str = "voc11") -> dict[str, Any]:
    """Per-class AP and mAP of ``detections`` against ``truth`` (per image ``(m, 5)`` rows ``[label, x1, y1,
    x2, y2]``), see the module docstring."""
    if method not in ("voc11", "all"):
        raise NNBridgeError(f"unknown AP method {method!r}: use voc11 or all")
    per_class: dict[str, float] = {}
    labels = sorted({float(label) for rows in truth for label in rows[:, 0]})
    for label in labels:
        scored: list[tuple[float, int, int]] = []  # (score, image, detection row)
        for image, rows in enumerate(detections):
            scored += [(float(rows[k, 1]), image, int(k)) for k in np.flatnonzero(rows[:, 0] == label)]
        scored.sort(key=lambda item: -item[0])
        gts = [rows[rows[:, 0] == label, 1:5] for rows in truth]
        taken = [np.zeros(len(g), bool) for g in gts]
        hits = np.zeros(len(scored))
        for n, (_, image, k) in enumerate(scored):
            if not len(gts[image]):
                continue
            overlaps = iou(detections[image][k, 2:6], gts[image])
            best = int(np.argmax(overlaps))
            if overlaps[best] >= threshold and not taken[image][best]:
                taken[image][best] = True
                hits[n] = 1
        positives = sum(len(g) for g in gts)
        tp = np.cumsum(hits)
        recall = tp / positives
        precision = tp / np.arange(1, len(scored) + 1)
        per_class[str(int(label))] = _ap(recall, precision, method) if len(scored) else 0.0
    return {"method": method, "iou_threshold": threshold, "per_class": per_class,
            "map": float(np.mean(list(per_class.values()))) if per_class else None}
