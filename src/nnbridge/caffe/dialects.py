"""Caffe dialects: which layer types (and options) a target Caffe build understands.

- ``bvlc``: layers of the BVLC Caffe 1.0 release, which most deployed Caffe builds and NPU toolchains
  understand. No Clip or Swish (added to BVLC master after 1.0: ``Clip(a, b)`` is then rewritten exactly
  with ReLU/Power/Eltwise), no Permute, PriorBox, DetectionOutput, Normalize, ReLU6, Upsample, Interp,
  ShuffleChannel, Axpy.
- ``bvlc-master``: ``bvlc`` + ``Clip`` and ``Swish`` (BVLC master, 2019). Not checked against a runtime
  (the pycaffe the tests use has neither layer).
- ``ssd``: ``bvlc`` + the layers of weiliu89/caffe (branch ssd): Permute, PriorBox, DetectionOutput,
  Normalize. Its pycaffe has no ``Clip`` layer, so ``Clip`` is rewritten exactly instead.
- ``opencv``: what OpenCV 4.x's Caffe importer (``cv2.dnn.readNetFromCaffe``) loads and runs like Caffe:
  the ``ssd`` layers + ReLU6, Interp (bilinear, align corners), ShuffleChannel, minus the BVLC layers it
  has no implementation for (:data:`OPENCV_LACKS`: "Can't create layer of type ..."; ``Tile`` is created
  but refuses Caffe's ``tile_param``). OpenCV has no ``Clip`` and no ``Upsample`` layer either: exporters
  use their exact rewrites (ReLU/Eltwise for Clip, a fixed Deconvolution for nearest upsampling). OpenCV
  registers ``Swish`` but ignores ``swish_param.beta`` (it computes ``x * sigmoid(x)``), so Swish is not
  part of the dialect.

Every layer type of ``bvlc``, ``ssd`` and ``opencv`` is checked by ``tests/caffe/test_dialects.py``: a
one-layer net loads and runs in real Caffe (bvlc, ssd) or OpenCV 4.14 (opencv), and OpenCV's outputs
equal Caffe's where Caffe has the layer.

Options: ``scalar_blobs_1d`` -- write the 0-D blobs Caffe keeps for a single shared value (PReLU/Normalize
``channel_shared``, Scale/Bias ``num_axes: 0``) with shape (1,): OpenCV cannot read a 0-D blob, while Caffe
insists on the exact shape.

A layer type outside the dialect is never emitted: exporters either pick an exact rewrite the dialect can
express (e.g. ``Clip(0, 6) = ReLU(x) - ReLU(x - 6)``) or refuse, and every refusal is listed at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nnbridge.errors import ConversionError

_BVLC = frozenset({
    "AbsVal", "BatchNorm", "Bias", "BNLL", "Concat", "Convolution", "Crop", "Deconvolution",
    "Dropout", "Eltwise", "ELU", "Embed", "Exp", "Flatten", "InnerProduct", "Input", "Log", "LRN",
    "MVN", "Parameter", "Pooling", "Power", "PReLU", "Reduction", "ReLU", "Reshape", "Scale",
    "Sigmoid", "Silence", "Slice", "Softmax", "Split", "TanH", "Threshold", "Tile", "ArgMax",
})
_SSD_EXTRA = frozenset({"Permute", "PriorBox", "DetectionOutput", "Normalize"})
_OPENCV_EXTRA = frozenset({"ReLU6", "Interp", "ShuffleChannel"})
#: BVLC layer types OpenCV 4.x cannot run (no implementation; Tile: Caffe's tile_param is refused).
OPENCV_LACKS = frozenset({"ArgMax", "Bias", "Embed", "Parameter", "Reduction", "Threshold", "Tile"})


@dataclass(frozen=True)
class Dialect:
    """A set of layer types a Caffe build understands, plus behaviour switches."""

    name: str
    layers: frozenset[str]
    description: str
    options: dict[str, bool] = field(default_factory=dict)

    def allows(self, layer_type: str) -> bool:
        return layer_type in self.layers


DIALECTS: dict[str, Dialect] = {
    "bvlc": Dialect("bvlc", _BVLC, "BVLC Caffe 1.0 release"),
    "bvlc-master": Dialect("bvlc-master", _BVLC | {"Clip", "Swish"}, "BVLC Caffe master (2019+)"),
    "ssd": Dialect("ssd", _BVLC | _SSD_EXTRA, "weiliu89/caffe, branch ssd"),
    "opencv": Dialect("opencv", (_BVLC - OPENCV_LACKS) | _SSD_EXTRA | _OPENCV_EXTRA,
                      "OpenCV 4.x's dnn Caffe importer", {"scalar_blobs_1d": True}),
}


def get_dialect(name: str | Dialect) -> Dialect:
    if isinstance(name, Dialect):
        return name
    try:
        return DIALECTS[name]
    except KeyError:
        raise ConversionError(f"unknown Caffe dialect {name!r}; choose one of {sorted(DIALECTS)}") from None
