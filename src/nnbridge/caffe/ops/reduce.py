"""Reductions: Reduction and ArgMax.

Reduction (``reduction_layer.cpp``): with ``a`` the canonical ``axis``, every slice ``x[i0, ..., i(a-1), :]``
(all axes from ``a`` to the end) reduces to one value; the top has shape ``bottom.shape[:a]`` (a 0-D blob for
``axis = 0``):

- ``SUM``: ``sum(x)``; ``ASUM``: ``sum(|x|)``; ``SUMSQ``: ``sum(x^2)``; ``MEAN``: ``sum(x)``;
- then, when the factor is not 1, ``top *= factor`` with ``factor = coeff`` (``coeff / dim`` in float32 for
  MEAN, ``dim`` being the number of reduced elements).

-> ``ReduceSum`` / ``ReduceL1`` / ``ReduceSumSquare`` (``keepdims=0``) then ``Mul`` by the float32 factor.

ArgMax (``argmax_layer.cpp``): the ``top_k`` largest values, in decreasing order (Caffe sorts pairs
``(value, index)`` with ``std::greater``, so equal values put the larger index first; ONNX ``TopK`` puts the
smaller index first: only ties differ). Indices are output as float.

- with ``axis``: along that axis; the top is the bottom shape with ``shape[axis] = top_k`` and holds the
  indices, or the values when ``out_max_val``;
- without ``axis``: per sample over all of ``bottom[n]`` flattened; the top has ``max(rank, 3)`` axes, all 1
  except ``shape[0] = N``, ``shape[2] = top_k`` and ``shape[1] = 2`` when ``out_max_val``
  (``top[n, 0] =`` indices, ``top[n, 1] =`` values).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import onnx_ir as ir

from nnbridge.caffe.importer import LayerContext, caffe_layer
from nnbridge.caffe.ops.shape import canonical_axis, reshape_to

SUM, ASUM, SUMSQ, MEAN = 1, 2, 3, 4


@caffe_layer("Reduction")
def reduction(ctx: LayerContext) -> list[ir.Value]:
    param = ctx.layer.reduction_param
    shape = ctx.in_shape(0)
    axis = canonical_axis(ctx, int(param.axis), len(shape))
    operation = int(param.operation)
    axes = list(range(axis, len(shape)))
    coeff = np.float32(param.coeff)
    if operation == MEAN:
        coeff = np.float32(coeff / np.float32(math.prod(shape[axis:])))
    attrs: dict[str, Any] = {"keepdims": 0}
    if operation in (SUM, MEAN):
        inputs = [ctx.inputs[0], ctx.int64s("axes", axes)]
        op_type = "ReduceSum"
    elif operation in (ASUM, SUMSQ):
        inputs = [ctx.inputs[0]]
        attrs["axes"] = axes  # an attribute up to opset 17
        op_type = "ReduceL1" if operation == ASUM else "ReduceSumSquare"
    else:
        raise ctx.fail(f"unknown Reduction operation {operation}", hint="expected SUM, ASUM, SUMSQ or MEAN")
    if coeff == np.float32(1.0):
        return [ctx.op1(op_type, inputs, attrs)]
    reduced = ctx.op1(op_type, inputs, attrs, suffix="reduce")
    return [ctx.op1("Mul", [reduced, ctx.const("coeff", np.asarray(coeff, dtype=np.float32))])]


@caffe_layer("ArgMax")
def argmax(ctx: LayerContext) -> list[ir.Value]:
    param = ctx.layer.argmax_param
    shape = ctx.in_shape(0)
    top_k, out_max_val = int(param.top_k), bool(param.out_max_val)
    if top_k < 1:
        raise ctx.fail(f"top_k must be >= 1 (got {top_k})")
    if param.HasField("axis"):
        axis = canonical_axis(ctx, int(param.axis), len(shape))
        if top_k > shape[axis]:
            raise ctx.fail(f"top_k {top_k} exceeds the size {shape[axis]} of axis {axis}")
        values, indices = ctx.op("TopK", [ctx.inputs[0], ctx.int64s("k", [top_k])],
                                 {"axis": axis, "largest": 1, "sorted": 1}, suffix="topk", outputs=2)
        if out_max_val:
            return [ctx.op1("Identity", [values])]
        return [ctx.op1("Cast", [indices], {"to": ir.DataType.FLOAT})]
    n, inner = shape[0], math.prod(shape[1:])
    if top_k > inner:
        raise ctx.fail(f"top_k {top_k} exceeds the {inner} values per sample")
    flat = reshape_to(ctx, ctx.inputs[0], [n, inner], suffix="flatten")
    values, indices = ctx.op("TopK", [flat, ctx.int64s("k", [top_k])], {"axis": 1, "largest": 1, "sorted": 1},
                             suffix="topk", outputs=2)
    out_shape = [1] * max(len(shape), 3)
    out_shape[0], out_shape[2] = n, top_k
    if not out_max_val:
        return [reshape_to(ctx, ctx.op1("Cast", [indices], {"to": ir.DataType.FLOAT}, suffix="cast"), out_shape)]
    out_shape[1] = 2
    as_float = ctx.op1("Cast", [indices], {"to": ir.DataType.FLOAT}, suffix="cast")
    both = ctx.op1("Concat", [as_float, values], {"axis": 1}, suffix="concat")  # (N, 2 * top_k)
    return [reshape_to(ctx, both, out_shape)]
