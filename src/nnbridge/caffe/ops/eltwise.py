"""Element-wise layers: Eltwise (BVLC) and Axpy (SENet/MobileNet forks).

Eltwise (``eltwise_layer.cpp``), all bottoms of one shape (Caffe never broadcasts):

- ``PROD``: ``top = b0 * b1``, then ``top *= b_i`` for ``i >= 2``: a left-to-right chain of ``Mul``.
- ``SUM``: ``top = 0``, then ``top += c_i * b_i`` for every bottom in order (``caffe_axpy``), with
  ``c_i = coeff[i]`` (default 1; ``coeff`` must have one value per bottom). Emitted in the same
  accumulation order: coefficient 1 as ``Add``, -1 as ``Sub`` (``Neg`` for the first bottom), any other
  value as ``Mul`` by a float32 scalar followed by ``Add``.
- ``MAX``: ``top = max(b0, b1, ...)``: one variadic ``Max`` (the maximum is exact, order is irrelevant).

Axpy (fork layer, three bottoms ``a (N, C, 1, 1)``, ``x (N, C, H, W)``, ``y (N, C, H, W)``):
``top[n, c] = a[n, c] * x[n, c] + y[n, c]`` -> ``Add(Mul(a, x), y)`` (broadcasting ``a`` over H, W).
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from nnbridge.caffe.importer import LayerContext, caffe_layer

PROD, SUM, MAX = 0, 1, 2


@caffe_layer("Eltwise")
def eltwise(ctx: LayerContext) -> list[ir.Value]:
    param = ctx.layer.eltwise_param
    operation = int(param.operation)
    bottoms = ctx.inputs
    if len(bottoms) < 2:
        raise ctx.fail(f"needs at least 2 bottoms, got {len(bottoms)}")
    shapes = [ctx.in_shape(i) for i in range(len(bottoms))]
    if any(shape != shapes[0] for shape in shapes):
        raise ctx.fail(f"bottom shapes differ: {shapes}", hint="Caffe's Eltwise does not broadcast")
    coeffs = [float(c) for c in param.coeff]
    if coeffs and operation != SUM:
        raise ctx.fail("coeff is only allowed with operation SUM")
    if coeffs and len(coeffs) != len(bottoms):
        raise ctx.fail(f"{len(coeffs)} coeff values for {len(bottoms)} bottoms",
                       hint="give one coeff per bottom or none")
    if operation == MAX:
        return [ctx.op1("Max", bottoms)]
    if operation == PROD:
        acc = bottoms[0]
        for i, bottom in enumerate(bottoms[1:], start=1):
            acc = ctx.op1("Mul", [acc, bottom], suffix=None if i == len(bottoms) - 1 else f"mul{i}")
        return [acc]
    if operation != SUM:
        raise ctx.fail(f"unknown Eltwise operation {operation}", hint="expected PROD (0), SUM (1) or MAX (2)")
    return [_weighted_sum(ctx, bottoms, coeffs or [1.0] * len(bottoms))]


def _weighted_sum(ctx: LayerContext, bottoms: list[ir.Value], coeffs: list[float]) -> ir.Value:
    last = len(bottoms) - 1

    def scaled(i: int) -> ir.Value:
        scale = ctx.const(f"coeff{i}", np.asarray(coeffs[i], dtype=np.float32))
        return ctx.op1("Mul", [bottoms[i], scale], suffix=f"scale{i}")

    # first term: 0 + c0 * b0 == c0 * b0 exactly
    if coeffs[0] == 1.0:
        acc = bottoms[0]
    elif coeffs[0] == -1.0:
        acc = ctx.op1("Neg", [bottoms[0]], suffix="neg0")
    else:
        acc = scaled(0)
    for i in range(1, len(bottoms)):
        suffix = None if i == last else f"acc{i}"
        if coeffs[i] == 1.0:
            acc = ctx.op1("Add", [acc, bottoms[i]], suffix=suffix)
        elif coeffs[i] == -1.0:
            acc = ctx.op1("Sub", [acc, bottoms[i]], suffix=suffix)
        else:
            acc = ctx.op1("Add", [acc, scaled(i)], suffix=suffix)
    return acc


@caffe_layer("Axpy", notes="fork layer (SENet): a (N,C,1,1) * x + y")
def axpy(ctx: LayerContext) -> list[ir.Value]:
    if len(ctx.inputs) != 3:
        raise ctx.fail(f"needs 3 bottoms (a, x, y), got {len(ctx.inputs)}")
    a, x, y = ctx.inputs
    a_shape, x_shape, y_shape = ctx.in_shape(0), ctx.in_shape(1), ctx.in_shape(2)
    if x_shape != y_shape or len(x_shape) < 2 or a_shape[:2] != x_shape[:2] or any(d != 1 for d in a_shape[2:]):
        raise ctx.fail(f"bottom shapes {a_shape}, {x_shape}, {y_shape} do not fit a (N,C,1,1), x and y (N,C,...)")
    if len(a_shape) != len(x_shape):
        a = ctx.op1("Reshape", [a, ctx.int64s("a_shape", list(a_shape[:2]) + [1] * (len(x_shape) - 2))],
                    suffix="a")
    scaled = ctx.op1("Mul", [a, x], suffix="mul")
    return [ctx.op1("Add", [scaled, y])]
