"""Normalisation and reductions.

- ``BatchNormalization(x, g, b, m, v)`` = ``g (x - m) / sqrt(v + eps) + b``: Caffe ``BatchNorm``
  (blobs mean, variance, scale_factor = [1]; ``eps``) computing ``(x - m) / sqrt(v + eps)``, then
  ``Scale(bias_term)`` with ``g``, ``b`` unless ``g == 1`` and ``b == 0`` (the importer's lone BatchNorm).
- ``LRN(size, alpha, beta, bias)`` = ``x / (bias + alpha/size * sum_{window} x^2)^beta``: Caffe LRN
  ACROSS_CHANNELS with ``local_size = size`` (odd), ``alpha``, ``beta``, ``k = bias`` (same convention).
- ``ReduceMean`` over the two spatial axes of a 4-D tensor, ``keepdims=1`` = global AVE pooling
  (divides by ``H*W``); over trailing axes ``[a, rank)`` = ``Reduction(MEAN, axis=a)`` (+ ``Reshape``
  for ``keepdims``); ``ReduceSum`` the same with ``SUM``.
- One inner axis with ``keepdims`` (e.g. CBAM's channel mean/max, ``axes=[1]``): ``Slice`` into single
  slices + ``Eltwise`` ``MAX`` (exact) / ``SUM`` (``ReduceSum``) / ``SUM`` with coeff ``1/n`` (``ReduceMean``:
  ``sum_i x_i / n`` becomes ``sum_i fl(x_i / n)``, rounding only). ``ReduceMax`` over the spatial axes of a
  4-D tensor = global MAX pooling.
"""

from __future__ import annotations

import numpy as np

from nnbridge.caffe.export.context import ExportContext, Layer, caffe_exporter


@caffe_exporter("BatchNormalization")
def batch_norm(ctx: ExportContext) -> list[Layer]:
    if len(ctx.node.outputs) > 1 and any(v.uses() for v in ctx.node.outputs[1:]):
        raise ctx.fail("training-mode outputs (running mean/var) are used")
    if ctx.attr("training_mode", 0):
        raise ctx.fail("training_mode=1")
    gamma, beta, mean, var = (ctx.need_const(i, what).reshape(-1).astype(np.float32)
                              for i, what in ((1, "scale"), (2, "bias"), (3, "mean"), (4, "var")))
    eps = float(ctx.attr("epsilon", 1e-5))
    plain = bool(np.all(gamma == 1.0) and np.all(beta == 0.0))
    mid = ctx.y(0) if plain else ctx.tmp("normalized")
    layers = [ctx.layer("BatchNorm", [ctx.x(0)], [mid], "batch_norm_param", {"eps": eps},
                        blobs=[mean, var, np.ones((1,), np.float32)])]
    if not plain:
        layers.append(ctx.layer("Scale", [mid], [ctx.y(0)], "scale_param", {"axis": 1, "bias_term": True},
                                blobs=[gamma, beta], suffix="scale"))
    return layers


@caffe_exporter("LRN")
def lrn(ctx: ExportContext) -> list[Layer]:
    size = int(ctx.attr("size"))
    if size % 2 == 0:
        raise ctx.fail(f"even size {size}: Caffe's LRN window is centred (odd local_size)")
    fields = {"local_size": size, "alpha": float(ctx.attr("alpha", 1e-4)), "beta": float(ctx.attr("beta", 0.75)),
              "k": float(ctx.attr("bias", 1.0)), "norm_region": "ACROSS_CHANNELS"}
    return [ctx.layer("LRN", [ctx.x(0)], [ctx.y(0)], "lrn_param", fields)]


@caffe_exporter("ReduceMean", "ReduceSum", "ReduceMax")
def reduce(ctx: ExportContext) -> list[Layer]:
    shape = ctx.shape(0)
    rank = len(shape)
    if ctx.input(1) is not None:
        axes_arr = ctx.need_const(1, "the axes")
        axes = sorted(int(a) % rank for a in axes_arr.reshape(-1))
    else:
        axes = [int(a) % rank for a in ctx.attr("axes", list(range(rank)))]
        axes.sort()
    keep = int(ctx.attr("keepdims", 1))
    op = ctx.node.op_type
    mean = op == "ReduceMean"
    if op != "ReduceSum" and rank == 4 and axes == [2, 3] and keep:
        return [ctx.layer("Pooling", [ctx.x(0)], [ctx.y(0)], "pooling_param",
                          {"pool": "AVE" if mean else "MAX", "global_pooling": True})]
    if len(axes) == 1 and axes[0] < rank - 1 and keep:
        return _reduce_one_axis(ctx, axes[0], shape[axes[0]])
    if op == "ReduceMax":
        raise ctx.fail(f"ReduceMax over axes {axes}: Caffe's Reduction has no MAX; only one axis with "
                       "keepdims or the spatial axes (global MAX pooling) are exported")
    if not axes or axes != list(range(axes[0], rank)):
        raise ctx.fail(f"axes {axes}: Caffe's Reduction reduces all trailing axes from one axis")
    fields = {"operation": "MEAN" if mean else "SUM", "axis": axes[0]}
    if not keep:
        return [ctx.layer("Reduction", [ctx.x(0)], [ctx.y(0)], "reduction_param", fields)]
    mid = ctx.tmp("reduced")
    return [ctx.layer("Reduction", [ctx.x(0)], [mid], "reduction_param", fields, suffix="reduce"),
            ctx.layer("Reshape", [mid], [ctx.y(0)], "reshape_param",
                      {"shape": {"dim": list(ctx.out_shape(0))}})]


def _reduce_one_axis(ctx: ExportContext, axis: int, count: int) -> list[Layer]:
    """One inner axis, keepdims: Slice it into ``count`` pieces, then Eltwise MAX / SUM (coeff 1 or
    ``1/count`` for the mean)."""
    if count == 1:
        return [ctx.layer("Split", [ctx.x(0)], [ctx.y(0)])]
    pieces = [ctx.tmp(f"piece{i}") for i in range(count)]
    layers = [ctx.layer("Slice", [ctx.x(0)], pieces, "slice_param", {"axis": axis}, suffix="slice")]
    if ctx.node.op_type == "ReduceMax":
        fields: dict[str, object] = {"operation": "MAX"}
    else:
        coeff = float(np.float32(1.0) / np.float32(count)) if ctx.node.op_type == "ReduceMean" else 1.0
        fields = {"operation": "SUM", "coeff": [coeff] * count if coeff != 1.0 else None}
    layers.append(ctx.layer("Eltwise", pieces, [ctx.y(0)], "eltwise_param", fields))
    return layers
