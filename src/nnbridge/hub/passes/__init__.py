"""Rewrite passes over hub models, and the pipelines the exporters run.

``caffe_lowering`` order (repeated until nothing changes):

1. ``fold-constants`` first, so that shape subgraphs become plain constants the other passes can read;
2. ``remove-identity`` (Identity, inference Dropout), then the degenerate-shape rewrites
   (:func:`degenerate_shapes`: a computed Conv bias split off, reductions over size-1 axes as Reshape);
3. ``fold-pad-into-conv`` and ``pool-to-caffe`` (which absorbs a zero Pad before AveragePool), then
   ``materialize-zero-pad`` turns every zero Pad left (e.g. before MaxPool) into an exact Deconvolution;
4. the NHWC clean-up of :mod:`nnbridge.hub.passes.nhwc` (tf2onnx output): ``fold-transpose-pair``,
   ``fold-repeat-upsample`` (UpSampling2D's data-movement chain -> nearest Resize) and
   ``fold-flatten-transpose`` (Keras Flatten: weight rows permuted), before
   ``gemm-to-inner-product`` / ``matmul-to-inner-product`` absorb Flatten/Reshape/Add around them;
5. ``min-max-to-clip`` (TensorFlow's clip_by_value as one Clip), ``fuse-swish`` (x * sigmoid(x) -> Swish, only
   for dialects with that layer); ``mul-add-to-scale`` before ``weighted-sum`` so a per-channel ``Add`` is claimed
   by Scale first;
6. ``fold-transpose-softmax`` (opset < 13 Softmax over channels) anywhere: it only removes Transposes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nnbridge.hub.passes.affine import FuseSwish, MinMaxToClip, MulAddToScale, WeightedSum
from nnbridge.hub.passes.base import NodePass, Pass, PassManager
from nnbridge.hub.passes.cleanup import (
    DegenerateReduce,
    FoldConstants,
    RemoveIdentity,
    ReshapeBroadcastOperand,
    SplitComputedBias,
)
from nnbridge.hub.passes.layout import FoldTransposeSoftmax
from nnbridge.hub.passes.linear import GemmToInnerProduct, MatMulToInnerProduct
from nnbridge.hub.passes.nhwc import FoldFlattenTranspose, FoldRepeatUpsample, FoldTransposePair
from nnbridge.hub.passes.pad import FoldPadIntoConv, MaterializeZeroPad
from nnbridge.hub.passes.pool import PoolToCaffe

if TYPE_CHECKING:
    from nnbridge.caffe.dialects import Dialect


def degenerate_shapes() -> list[Pass]:
    """tf2onnx's artefacts of size-1 spatial axes, rewritten plainly (see :mod:`nnbridge.hub.passes.cleanup`);
    used by the Caffe and MXNet exporters."""
    return [SplitComputedBias(), DegenerateReduce(), ReshapeBroadcastOperand()]


def caffe_lowering(dialect: str | Dialect = "bvlc") -> PassManager:
    """The passes run before exporting to Caffe (``fuse-swish`` only where the dialect has ``Swish``)."""
    from nnbridge.caffe.dialects import get_dialect

    swish: list[Pass] = [FuseSwish()] if get_dialect(dialect).allows("Swish") else []
    return PassManager([
        FoldConstants(),
        RemoveIdentity(),
        *degenerate_shapes(),
        FoldPadIntoConv(),
        PoolToCaffe(),
        MaterializeZeroPad(),
        FoldTransposePair(),
        FoldRepeatUpsample(),
        FoldFlattenTranspose(),
        GemmToInnerProduct(),
        MatMulToInnerProduct(),
        MinMaxToClip(),
        *swish,
        MulAddToScale(),
        WeightedSum(),
        FoldTransposeSoftmax(),
    ])


__all__ = [
    "FoldConstants", "FoldFlattenTranspose", "FoldPadIntoConv", "FoldRepeatUpsample", "FoldTransposePair",
    "FoldTransposeSoftmax", "GemmToInnerProduct", "MaterializeZeroPad", "MatMulToInnerProduct", "MinMaxToClip",
    "MulAddToScale", "FuseSwish", "DegenerateReduce", "ReshapeBroadcastOperand", "SplitComputedBias",
    "degenerate_shapes",
    "NodePass", "Pass", "PassManager", "PoolToCaffe", "RemoveIdentity", "WeightedSum", "caffe_lowering",
]
