"""GluonCV SSD anchors and decoding -> weiliu89/caffe ``PriorBox`` and ``DetectionOutput``, exactly.

Anchors. GluonCV (0.10/0.11, ``gluoncv/model_zoo/ssd/anchor.py``) does not call MXNet's MultiBoxPrior: each
``SSDAnchorGenerator`` stores a constant ``anchor_<i>`` of shape ``(1, 1, R, R, 4 * n)`` (``R`` = alloc size,
128 by default), float32 values of ``(cx, cy, w, h)`` in input pixels, computed in float64 as
``cx = (col + offset_x) * step``, ``cy = (row + offset_y) * step``; per cell first ``(s0, s0)``, then
``(sqrt(s0 * s1), sqrt(s0 * s1))``, then ``(s0 * sqrt(r), s0 / sqrt(r))`` for each ratio after the first.
At run time ``slice_like(anchor, feature * 0, axes=(2, 3))`` keeps the top-left ``H x W`` cells.

Caffe's ``PriorBox`` (``prior_box_layer.cpp``) writes per cell the box of side ``min_size``, the box of side
``sqrt(min_size * max_size)``, then ``min_size * sqrt(ar)`` by ``min_size / sqrt(ar)`` for each listed ratio
followed by its reciprocal (``flip``) -- the same order when GluonCV's ratios come in ``(r, 1/r)`` pairs --
as corners divided by ``img_w``/``img_h``. ``min_size``/``max_size`` are truncated to integers there, and
GluonCV sizes are not integers (51.2, 363.52...), so every length is scaled by the smallest integer ``k``
that makes all sizes integral: ``min_size = k * s0``, ``max_size = k * s1``, ``step = k * step``,
``img = k * input``. The normalized corners are unchanged in exact arithmetic; :func:`priorbox_from_anchors`
proves the float32 result numerically (Caffe's numbers vs GluonCV's ``(cx -/+ w / 2) / W`` in float64) and
refuses when they are more than :data:`PRIOR_TOLERANCE` apart (a float32 rounding).

Decoding. ``_contrib_box_decode`` (format ``center``, std ``(0.1, 0.1, 0.2, 0.2)``, clip -1) equals
``DetectionOutput`` with ``code_type: CENTER_SIZE`` and the stds as the prior variances: both compute
``c = std * t * a_size + a_center`` and ``size = exp(std * t) * a_size``; GluonCV works in pixels from
``(cx, w)``, Caffe in normalized units from the prior corners (differences of float32 rounding only).

Scores and NMS. GluonCV: ``softmax`` over the classes; ``MultiPerClassDecoder`` keeps class ``c >= 1`` of an
anchor when ``p > thresh`` (id ``c - 1``, else id -1 and score 0); ``box_nms`` drops invalid rows, sorts all
(anchor, class) rows by score, keeps the best ``topk`` of them, then greedy per-class NMS at ``overlap_thresh``;
the first ``post_nms`` rows are returned. Caffe: per class ``c != background`` the scores ``> thresh``, the best
``top_k`` of that class, greedy NMS; then the best ``keep_top_k`` over all classes. Both greedy NMS decide a box
from the higher-scored boxes of its class only, and GluonCV's global top ``topk`` contains, for every class,
that class's best candidates; so every box GluonCV keeps is kept by Caffe with the same decision. The one
difference: Caffe may add boxes GluonCV cut before NMS (``topk``); these score below all of GluonCV's. Hence
Caffe's detections sorted by score *start with* GluonCV's valid detections, and equal them whenever GluonCV
returns ``post_nms`` valid rows. ``top_k`` is set to GluonCV's ``topk`` (per class, a superset of the
global cut). Labels: Caffe ``label = GluonCV id + 1`` (class 0 is background); boxes: Caffe normalized
``[0, 1]`` coordinates = GluonCV pixels / input size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from nnbridge.errors import ConversionError
from nnbridge.hub.ops.ssd import priorbox

#: Largest absolute difference allowed between Caffe's priors and GluonCV's normalized anchor corners.
PRIOR_TOLERANCE = 1e-6
#: Largest integer scale tried to make the anchor sizes integral.
MAX_SCALE = 1000


@dataclass
class PriorBoxSpec:
    """One Caffe PriorBox layer reproducing one GluonCV anchor generator on an ``H x W`` feature map."""

    min_size: int
    max_size: int
    aspect_ratios: list[float]
    step: float
    offset: float
    img_h: int
    img_w: int
    variances: list[float] = field(default_factory=lambda: [0.1, 0.1, 0.2, 0.2])

    def attrs(self) -> dict[str, object]:
        """Attributes of :func:`nnbridge.hub.ops.ssd.priorbox` (the numpy reference of Caffe's layer)."""
        return {"min_size": [float(self.min_size)], "max_size": [float(self.max_size)],
                "aspect_ratio": self.aspect_ratios, "flip": 1, "clip": 0, "variance": self.variances,
                "img_h": self.img_h, "img_w": self.img_w, "step_h": self.step, "step_w": self.step,
                "offset": self.offset}


def anchor_corners(anchors: np.ndarray, height: int, width: int, img_h: int, img_w: int) -> np.ndarray:
    """GluonCV anchors ``(1, 1, R, R, 4n)`` sliced to ``H x W`` -> normalized corners ``(H * W * n, 4)``, float64."""
    a = anchors[0, 0, :height, :width].reshape(-1, 4).astype(np.float64)
    half_w, half_h = a[:, 2] / 2, a[:, 3] / 2
    return np.stack([(a[:, 0] - half_w) / img_w, (a[:, 1] - half_h) / img_h,
                     (a[:, 0] + half_w) / img_w, (a[:, 1] + half_h) / img_h], axis=1)


def _ratios(sizes: np.ndarray, where: str) -> list[float]:
    """GluonCV ratios after the first two boxes -> Caffe ``aspect_ratio`` (pairs ``r, 1/r``; flip)."""
    ratios = [Fraction(float(w / h)).limit_denominator(64) for w, h in sizes[2:, 2:4]]
    if len(ratios) % 2:
        raise ConversionError(f"{where}: {len(ratios)} extra anchor ratios cannot be (r, 1/r) pairs -- hint: "
                              "Caffe PriorBox with flip lists each ratio with its reciprocal")
    listed = ratios[0::2]
    if any(r == 1 or ratios[2 * i + 1] != 1 / r for i, r in enumerate(listed)):
        raise ConversionError(f"{where}: anchor ratios {[float(r) for r in ratios]} are not (r, 1/r) pairs "
                              "after the square boxes -- hint: no PriorBox configuration has this box order")
    return [float(r) for r in listed]


def _fits(k: int, s0: float, side: float, step: float) -> bool:
    """True when ``k`` reproduces ``s0``, ``step`` and ``sqrt(s0 * s1)`` (the float32 ``side``) from integers."""
    n0 = round(k * s0)
    n1 = round((k * side) ** 2 / n0) if n0 > 0 else 0
    return (n0 > 0 and np.float32(n0 / k) == np.float32(s0) and np.float32(round(k * step) / k) == np.float32(step)
            and np.float32(math.sqrt(n0 * n1) / k) == np.float32(side))


def _scale(layers: Sequence[tuple[float, float, float]], where: str) -> int:
    """Smallest ``k`` making every ``(s0, s1, step)`` integral once scaled (checked through the float32 values)."""
    for k in range(1, MAX_SCALE + 1):
        if all(_fits(k, *layer) for layer in layers):
            return k
    raise ConversionError(f"{where}: no integer scale up to {MAX_SCALE} makes the anchor sizes {list(layers)} "
                          "integral -- hint: Caffe PriorBox truncates min_size and max_size to integers")


def priorbox_from_anchors(anchors: Sequence[np.ndarray], feature_hw: Sequence[tuple[int, int]],
                          image_hw: tuple[int, int], variances: Sequence[float], *,
                          where: str = "SSD anchors") -> list[PriorBoxSpec]:
    """Recover one PriorBox per anchor generator and prove the priors equal GluonCV's (see module docstring)."""
    img_h, img_w = image_hw
    raw: list[tuple[float, float, float, float, list[float]]] = []  # s0, side, step, offset, ratios
    for i, (table, (h, w)) in enumerate(zip(anchors, feature_hw, strict=True)):
        name = f"{where} #{i}"
        if table.ndim != 5 or table.shape[-1] % 4 or table.shape[2] < h or table.shape[3] < w:
            raise ConversionError(f"{name}: anchor table {table.shape} does not cover the {h}x{w} feature map")
        cell = table[0, 0, 0, 0].reshape(-1, 4).astype(np.float64)
        if len(cell) < 2 or cell[0, 2] != cell[0, 3] or cell[1, 2] != cell[1, 3]:
            raise ConversionError(f"{name}: the first two anchors of a cell must be squares (min, max size)")
        s0, side = float(cell[0, 2]), float(cell[1, 2])
        step_x = float(table[0, 0, 0, 1, 0] - table[0, 0, 0, 0, 0]) if table.shape[3] > 1 else float("nan")
        step_y = float(table[0, 0, 1, 0, 1] - table[0, 0, 0, 0, 1]) if table.shape[2] > 1 else float("nan")
        if step_x != step_y:
            raise ConversionError(f"{name}: steps differ ({step_y} in y, {step_x} in x) -- hint: "
                                  "PriorBox with step_h != step_w is not supported here")
        offset = float(cell[0, 0]) / step_x
        if float(cell[0, 1]) / step_y != offset:
            raise ConversionError(f"{name}: offsets differ in x and y -- hint: Caffe PriorBox has one offset")
        raw.append((s0, side, step_x, offset, _ratios(cell, name)))
    k = _scale([(s0, side, step) for s0, side, step, _, _ in raw], where)
    specs: list[PriorBoxSpec] = []
    for i, ((s0, side, step, offset, ratios), table, (h, w)) in enumerate(
            zip(raw, anchors, feature_hw, strict=True)):
        n0 = round(k * s0)
        spec = PriorBoxSpec(n0, round((k * side) ** 2 / n0), ratios, float(round(k * step)), offset, k * img_h,
                            k * img_w, [float(v) for v in variances])
        caffe = caffe_priors(spec, h, w)
        expected = anchor_corners(table, h, w, img_h, img_w)
        if caffe.shape != expected.shape:
            raise ConversionError(f"{where} #{i}: PriorBox gives {caffe.shape[0]} priors, GluonCV "
                                  f"{expected.shape[0]}")
        err = float(np.max(np.abs(caffe.astype(np.float64) - expected))) if len(caffe) else 0.0
        if err > PRIOR_TOLERANCE or math.isnan(err):
            raise ConversionError(f"{where} #{i}: the best PriorBox {spec} differs from GluonCV's anchors by "
                                  f"{err:g} -- hint: these anchors have no exact PriorBox equivalent")
        specs.append(spec)
    return specs


def caffe_priors(spec: PriorBoxSpec, height: int, width: int) -> np.ndarray:
    """Caffe's priors ``(H * W * n, 4)`` (float32 corners) for ``spec`` on an ``H x W`` map, by the reference."""
    feature = np.zeros((1, 1, height, width), np.float32)
    image = np.zeros((1, 1, 1, 1), np.float32)  # unused: img_h/img_w are given
    out = priorbox(spec.attrs(), [feature, image])[0]
    return np.asarray(out[0, 0].reshape(-1, 4))


@dataclass
class DetectionSpec:
    """Caffe ``DetectionOutput`` parameters equivalent to GluonCV's decoder (see the module docstring)."""

    num_classes: int
    confidence_threshold: float
    nms_threshold: float
    top_k: int
    keep_top_k: int
    background_label_id: int = 0
    share_location: bool = True
    code_type: int = 2  # CENTER_SIZE

    def attrs(self) -> dict[str, object]:
        """Attributes of :func:`nnbridge.hub.ops.ssd.detection_output`."""
        return {"num_classes": self.num_classes, "share_location": int(self.share_location),
                "background_label_id": self.background_label_id, "code_type": self.code_type,
                "keep_top_k": self.keep_top_k, "confidence_threshold": self.confidence_threshold,
                "nms_threshold": self.nms_threshold, "top_k": self.top_k}
