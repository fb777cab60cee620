"""Rewrite passes over hub models, and the pipelines the exporters run.

``caffe_lowering`` order (repeated until nothing changes):

1. ``fold-constants`` first, so that shape subgraphs become plain constants the other passes can read;
2. ``remove-identity`` (Identity, inference Dropout);
3. ``fold-pad-into-conv`` and ``pool-to-caffe`` (which absorbs a zero Pad before AveragePool);
4. ``gemm-to-inner-product`` / ``matmul-to-inner-product`` absorb Flatten/Reshape/Add around them;
5. ``mul-add-to-scale`` before ``weighted-sum`` so a per-channel ``Add`` is claimed by Scale first;
6. ``fold-transpose-softmax`` (opset < 13 Softmax over channels) anywhere: it only removes Transposes.
"""

from __future__ import annotations

from nnbridge.hub.passes.affine import MulAddToScale, WeightedSum
from nnbridge.hub.passes.base import NodePass, Pass, PassManager
from nnbridge.hub.passes.cleanup import FoldConstants, RemoveIdentity
from nnbridge.hub.passes.layout import FoldTransposeSoftmax
from nnbridge.hub.passes.linear import GemmToInnerProduct, MatMulToInnerProduct
from nnbridge.hub.passes.pad import FoldPadIntoConv
from nnbridge.hub.passes.pool import PoolToCaffe


def caffe_lowering(dialect: str = "bvlc") -> PassManager:
    """The passes run before exporting to Caffe (the dialect does not change them yet)."""
    del dialect
    return PassManager([
        FoldConstants(),
        RemoveIdentity(),
        FoldPadIntoConv(),
        PoolToCaffe(),
        GemmToInnerProduct(),
        MatMulToInnerProduct(),
        MulAddToScale(),
        WeightedSum(),
        FoldTransposeSoftmax(),
    ])


__all__ = [
    "FoldConstants", "FoldPadIntoConv", "FoldTransposeSoftmax", "GemmToInnerProduct", "MatMulToInnerProduct",
    "MulAddToScale",
    "NodePass", "Pass", "PassManager", "PoolToCaffe", "RemoveIdentity", "WeightedSum", "caffe_lowering",
]
