"""Caffe dialects: which layer types (and options) a target Caffe build understands.

- ``bvlc``: layers of the BVLC Caffe 1.0 release, which most deployed Caffe builds and NPU toolchains
  understand. No Clip or Swish (added to BVLC master after 1.0: ``Clip(a, b)`` is then rewritten exactly
  with ReLU/Power/Eltwise), no Permute, PriorBox, DetectionOutput, Normalize, ReLU6, Upsample, Interp,
  ShuffleChannel, Axpy.
- ``bvlc-master``: ``bvlc`` + ``Clip`` and ``Swish`` (BVLC master, 2019).
- ``ssd``: ``bvlc`` + the layers of weiliu89/caffe (branch ssd): Permute, PriorBox, DetectionOutput,
  Normalize. Its pycaffe has no ``Clip`` layer, so ``Clip`` is rewritten exactly instead.
- ``opencv``: what OpenCV's Caffe importer accepts: ``ssd`` + ReLU6, Upsample (nearest), Interp
  (bilinear, align_corners), ShuffleChannel, Clip.

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
_OPENCV_EXTRA = frozenset({"ReLU6", "Upsample", "Interp", "ShuffleChannel"})


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
    "opencv": Dialect("opencv", _BVLC | {"Clip"} | _SSD_EXTRA | _OPENCV_EXTRA, "OpenCV's dnn Caffe importer",
                      {"scalar_blobs_1d": True}),
}


def get_dialect(name: str | Dialect) -> Dialect:
    if isinstance(name, Dialect):
        return name
    try:
        return DIALECTS[name]
    except KeyError:
        raise ConversionError(f"unknown Caffe dialect {name!r}; choose one of {sorted(DIALECTS)}") from None
