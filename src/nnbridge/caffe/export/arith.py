"""Binary arithmetic left after the affine passes.

With a constant operand ``c`` and tensor ``x`` of shape (N, C, ...):

- ``c`` a scalar: ``x + c``, ``x - c``, ``c - x``, ``x * c``, ``x / c`` are one Caffe ``Power``
  ``(shift + scale*x)^1`` (``x / c`` as ``scale = 1/c``, a float32 reciprocal);
- otherwise ``c`` spans axes ``[a, a+n)`` of ``x`` (ones elsewhere, materialised by broadcasting):
  ``Mul``/``Div`` -> ``Scale(axis=a, num_axes=n)``, ``Add``/``Sub`` -> ``Bias(axis=a, num_axes=n)`` with
  the blob ``c`` (or ``1/c``, ``-c``) of shape ``x.shape[a:a+n]``.

Two tensors: same shape ``Mul`` -> ``Eltwise PROD``; ``Mul``/``Add`` by a (N, C, 1, 1) tensor (SE
blocks) -> ``Flatten`` (to (N, C)) + two-bottom ``Scale``/``Bias`` with ``axis = 0``; ``Mul``/``Add``/``Sub``
of (N, C, H, W) and (N, 1, H, W) (spatial attention) -> ``Tile(axis=1, tiles=C)`` (copies, exact; a
``Concat`` of C references where the dialect has no Tile) + ``Eltwise``; ``Max``/``Sum`` (variadic,
same shapes) -> ``Eltwise MAX``/``SUM``; ``Min`` -> ``-max(-a, -b, ...)``. Refused: ``Div`` of two
computed tensors (Caffe has no element-wise division), ``MatMul``/``Gemm`` whose weight is computed
(InnerProduct needs a constant blob).
"""

from __future__ import annotations

import numpy as np

from nnbridge.caffe.export.context import ExportContext, Layer, caffe_exporter
from nnbridge.hub.passes.graph import const_array, shape_of


def _span(c: np.ndarray, shape: tuple[int, ...]) -> tuple[int, np.ndarray] | None:
    """(axis, blob) when ``c`` broadcasts to ``shape`` and varies only inside one run of axes."""
    if c.ndim > len(shape):
        return None
    full = (1,) * (len(shape) - c.ndim) + tuple(c.shape)
    if any(d not in (1, s) for d, s in zip(full, shape, strict=False)):
        return None
    varying = [i for i, d in enumerate(full) if d != 1]
    if not varying:
        return None
    a, b = varying[0], varying[-1] + 1
    blob = np.broadcast_to(c.reshape(full), (*full[:a], *shape[a:b], *full[b:])).reshape(shape[a:b])
    return a, np.ascontiguousarray(blob, dtype=np.float32)


@caffe_exporter("Add", "Sub", "Mul", "Div")
def binary(ctx: ExportContext) -> list[Layer]:
    op = ctx.node.op_type
    a, b = ctx.input(0), ctx.input(1)
    ca, cb = const_array(a), const_array(b)
    if ca is not None and cb is not None:
        raise ctx.fail("both operands are constants (not folded)")
    if ca is None and cb is None:
        return _two_tensors(ctx)
    x_index = 1 if ca is not None else 0
    c = np.asarray(ca if ca is not None else cb, dtype=np.float32)
    const_first = ca is not None
    x, y = ctx.x(x_index), ctx.y(0)
    shape = ctx.shape(x_index)
    if ctx.out_shape(0) != shape:
        raise ctx.fail(f"the constant {c.shape} broadcasts the tensor {shape} to {ctx.out_shape(0)}")
    if op == "Div" and const_first:
        raise ctx.fail("constant / tensor: use Reciprocal; not exported")
    if c.size == 1:
        v = float(c.reshape(()))
        fields = {"Add": {"shift": v}, "Mul": {"scale": v}, "Div": {"scale": float(np.float32(1.0) / np.float32(v))},
                  "Sub": {"scale": -1.0, "shift": v} if const_first else {"shift": -v}}[op]
        return [ctx.layer("Power", [x], [y], "power_param", {"power": 1.0, **fields})]
    span = _span(c, shape)
    if span is None:
        raise ctx.fail(f"constant of shape {c.shape} does not map to Caffe Scale/Bias axes of {shape}")
    axis, blob = span
    n = blob.ndim
    if op in ("Mul", "Div"):
        blob = (np.float32(1.0) / blob).astype(np.float32) if op == "Div" else blob
        return [ctx.layer("Scale", [x], [y], "scale_param", {"axis": axis, "num_axes": n, "bias_term": False},
                          blobs=[blob])]
    if op == "Sub" and const_first:
        return [ctx.layer("Scale", [x], [y], "scale_param", {"axis": axis, "num_axes": n, "bias_term": True},
                          blobs=[np.full(blob.shape, -1.0, np.float32), blob])]
    blob = -blob if op == "Sub" else blob
    if not ctx.dialect.allows("Bias"):  # x * 1 + b: multiplying by one is exact, so Scale stands in for Bias
        return [ctx.layer("Scale", [x], [y], "scale_param", {"axis": axis, "num_axes": n, "bias_term": True},
                          blobs=[np.ones(blob.shape, np.float32), blob])]
    return [ctx.layer("Bias", [x], [y], "bias_param", {"axis": axis, "num_axes": n}, blobs=[blob])]


def _two_tensors(ctx: ExportContext) -> list[Layer]:
    op = ctx.node.op_type
    sa, sb, out = ctx.shape(0), ctx.shape(1), ctx.out_shape(0)
    if op == "Div":
        raise ctx.fail("division of two computed tensors: Caffe has no element-wise division layer "
                       "(only a constant divisor maps to Power/Scale)")
    bottoms, layers = [ctx.x(0), ctx.x(1)], []
    for i, shape in enumerate((sa, sb)):
        if shape != out and _single_channel(shape, out):  # (N, 1, H, W): Tile along the channels
            tiled = ctx.tmp(f"tile{i}")
            if ctx.dialect.allows("Tile"):
                layers.append(ctx.layer("Tile", [bottoms[i]], [tiled], "tile_param", {"axis": 1, "tiles": out[1]},
                                        suffix=f"tile{i}"))
            else:  # the same copies: Concat of C references to the one-channel blob
                layers.append(ctx.layer("Concat", [bottoms[i]] * out[1], [tiled], "concat_param", {"axis": 1},
                                        suffix=f"tile{i}"))
            bottoms[i] = tiled
            if i == 0:
                sa = out
            else:
                sb = out
    if sa == sb == out:
        if op == "Mul":
            return [*layers, ctx.layer("Eltwise", bottoms, [ctx.y(0)], "eltwise_param", {"operation": "PROD"})]
        coeff = [1.0, -1.0] if op == "Sub" else None
        return [*layers, ctx.layer("Eltwise", bottoms, [ctx.y(0)], "eltwise_param",
                                   {"operation": "SUM", "coeff": coeff})]
    if op not in ("Mul", "Add"):
        raise ctx.fail(f"broadcasting {op} of {sa} and {sb} is not exported")
    big, small = (0, 1) if sa == out else (1, 0)
    ss = ctx.shape(small)
    if len(ss) != len(out) or len(out) < 2 or ss[:2] != out[:2] or any(d != 1 for d in ss[2:]):
        raise ctx.fail(f"broadcasting {op} of {sa} and {sb}: only (N, C, 1, ...) and (N, 1, ...) operands "
                       "are exported")
    flat = ctx.tmp("flat")
    layers = [ctx.layer("Flatten", [ctx.x(small)], [flat], "flatten_param", {"axis": 1}, suffix="flatten")]
    kind, param = ("Scale", "scale_param") if op == "Mul" else ("Bias", "bias_param")
    layers.append(ctx.layer(kind, [ctx.x(big), flat], [ctx.y(0)], param, {"axis": 0}))
    return layers


def _single_channel(shape: tuple[int, ...], out: tuple[int, ...]) -> bool:
    """``shape`` is ``out`` with one channel: (N, 1, H, ...) against (N, C, H, ...), C > 1."""
    return len(shape) == len(out) >= 2 and shape[1] == 1 and out[1] > 1 and \
        shape[0] == out[0] and shape[2:] == out[2:]


@caffe_exporter("Max", "Sum", "Min")
def variadic(ctx: ExportContext) -> list[Layer]:
    """``Max``/``Sum`` -> Eltwise MAX/SUM; ``Min(a, b, ...) = -max(-a, -b, ...)``: Power(scale -1) per
    input, Eltwise MAX, Power(scale -1) (negation is exact in floating point, so is the max)."""
    shapes = [shape_of(v) if v is not None else None for v in ctx.node.inputs]
    if any(s != ctx.out_shape(0) for s in shapes):
        raise ctx.fail(f"inputs of shapes {shapes} broadcast; Caffe's Eltwise does not")
    bottoms = [ctx.x(i) for i in range(len(ctx.node.inputs))]
    if len(bottoms) == 1:
        return [ctx.layer("Split", bottoms, [ctx.y(0)])]
    op = ctx.node.op_type
    if op != "Min":
        operation = "MAX" if op == "Max" else "SUM"
        return [ctx.layer("Eltwise", bottoms, [ctx.y(0)], "eltwise_param", {"operation": operation})]
    negated = [ctx.tmp(f"neg{i}") for i in range(len(bottoms))]
    layers = [ctx.layer("Power", [b], [n], "power_param", {"power": 1.0, "scale": -1.0, "shift": 0.0},
                        suffix=f"neg{i}") for i, (b, n) in enumerate(zip(bottoms, negated, strict=True))]
    layers.append(ctx.layer("Eltwise", negated, [ctx.tmp("max")], "eltwise_param", {"operation": "MAX"},
                            suffix="max"))
    layers.append(ctx.layer("Power", [ctx.tmp("max")], [ctx.y(0)], "power_param",
                            {"power": 1.0, "scale": -1.0, "shift": 0.0}))
    return layers


@caffe_exporter("MatMul", "Gemm")
def matmul(ctx: ExportContext) -> list[Layer]:
    """Reached only when the dense-layer passes did not fire: a computed (non-constant) weight, or a
    layout InnerProduct cannot express."""
    if ctx.const(1) is None:
        raise ctx.fail("the weight (input 1) is a computed tensor: Caffe's InnerProduct needs a constant "
                       "weight blob and no BVLC layer multiplies two blobs as matrices")
    raise ctx.fail("this layout has no InnerProduct equivalent (Gemm with transA, or a weight that is not 2-D)")
