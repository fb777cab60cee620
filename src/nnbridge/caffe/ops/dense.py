"""InnerProduct -> Flatten + Gemm (+ Reshape when ``axis != 1``).

Caffe (inner_product_layer.cpp): with ``axis`` canonicalised (negative counts from the end), the input
is viewed as a matrix ``X`` of shape ``(M, K)``, ``M = prod(shape[:axis])``, ``K = prod(shape[axis:])``;
the weight blob is ``W`` of shape ``(N, K)`` (``transpose: false``, ``Y = X W^T``) or ``(K, N)``
(``transpose: true``, ``Y = X W``); ``Y += b`` with bias ``(N,)`` when ``bias_term``. The output shape
is ``shape[:axis] + (N,)``.

ONNX: ``Flatten(axis)`` gives exactly ``(M, K)``; ``Gemm(transB = not transpose, alpha = beta = 1)``
uses the stored weight without copying it; a final ``Reshape`` restores ``shape[:axis] + (N,)`` when
that is not already 2-D.
"""

from __future__ import annotations

import math

import onnx_ir as ir

from nnbridge.caffe.importer import LayerContext, caffe_layer


@caffe_layer("InnerProduct")
def inner_product(ctx: LayerContext) -> list[ir.Value]:
    p = ctx.layer.inner_product_param
    shape = ctx.in_shape(0)
    rank = len(shape)
    axis = int(p.axis)
    if not -rank <= axis < rank:
        raise ctx.fail(f"axis {axis} is out of range for an input of rank {rank}")
    axis %= rank
    num_output = int(p.num_output)
    if num_output <= 0:
        raise ctx.fail(f"num_output must be positive, not {num_output}")
    k = math.prod(shape[axis:])
    transpose = bool(p.transpose)
    w_shape = (k, num_output) if transpose else (num_output, k)
    weight = ctx.blob(0, w_shape, "weight")
    inputs: list[ir.Value | None] = [ctx.inputs[0]]
    if axis != 1 or rank != 2:
        inputs = [ctx.op1("Flatten", [ctx.inputs[0]], {"axis": axis}, suffix="flatten")]
    inputs.append(weight)
    if p.bias_term:
        inputs.append(ctx.blob(1, (num_output,), "bias"))
    out_shape = (*shape[:axis], num_output)
    reshape = len(out_shape) != 2
    y = ctx.op1("Gemm", inputs, {"alpha": 1.0, "beta": 1.0, "transA": 0, "transB": 0 if transpose else 1},
                suffix="gemm" if reshape else None)
    if reshape:
        y = ctx.op1("Reshape", [y, ctx.int64s("shape", out_shape)], {"allowzero": 0})
    return [y]
