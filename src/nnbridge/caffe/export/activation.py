"""Element-wise activations.

Caffe formulas: ReLU ``max(x,0) + slope*min(x,0)``; PReLU per-channel slope; ELU
``x>0 ? x : alpha(e^x - 1)``; BNLL ``log(1 + e^x)`` = Softplus; AbsVal; Exp/Log (base e, scale 1,
shift 0); Power ``(shift + scale*x)^power``; TanH; Sigmoid; Softmax over one axis.

Clip(a, b) = min(max(x, a), b). Exact rewrites when the dialect lacks ``Clip`` / ``ReLU6``:
``min(max(x,a),b) = a + ReLU(x - a) - ReLU(x - b)`` (a <= b), as Power(shift) / ReLU / Eltwise SUM
with coeff [1, -1] / Power(shift); with ``a = 0`` the outer shifts vanish: ``ReLU(x) - ReLU(x - b)``.
"""

from __future__ import annotations

import math

import numpy as np

from nnbridge.caffe.export.context import ExportContext, Layer, caffe_exporter
from nnbridge.hub.passes.graph import channel_vector

_SIMPLE = {"Relu": "ReLU", "Sigmoid": "Sigmoid", "Tanh": "TanH", "Abs": "AbsVal", "Softplus": "BNLL",
           "Exp": "Exp", "Log": "Log"}


@caffe_exporter(*_SIMPLE)
def simple(ctx: ExportContext) -> list[Layer]:
    return [ctx.layer(_SIMPLE[ctx.node.op_type], [ctx.x(0)], [ctx.y(0)])]


@caffe_exporter("LeakyRelu")
def leaky_relu(ctx: ExportContext) -> list[Layer]:
    slope = float(ctx.attr("alpha", 0.01))
    return [ctx.layer("ReLU", [ctx.x(0)], [ctx.y(0)], "relu_param", {"negative_slope": slope})]


@caffe_exporter("Elu")
def elu(ctx: ExportContext) -> list[Layer]:
    return [ctx.layer("ELU", [ctx.x(0)], [ctx.y(0)], "elu_param", {"alpha": float(ctx.attr("alpha", 1.0))})]


@caffe_exporter("PRelu")
def prelu(ctx: ExportContext) -> list[Layer]:
    slope = ctx.need_const(1, "the slope")
    shape = ctx.shape(0)
    if len(shape) < 2:
        raise ctx.fail("PReLU needs an (N, C, ...) input")
    if slope.size == 1:
        shared = slope.reshape(1) if ctx.dialect.options.get("scalar_blobs_1d") else slope.reshape(())  # Caffe: 0-D
        return [ctx.layer("PReLU", [ctx.x(0)], [ctx.y(0)], "prelu_param", {"channel_shared": True},
                          blobs=[shared])]
    vector = channel_vector(slope, len(shape), shape[1])
    if vector is None:
        raise ctx.fail(f"slope of shape {slope.shape} is not per-channel")
    return [ctx.layer("PReLU", [ctx.x(0)], [ctx.y(0)], blobs=[vector])]


@caffe_exporter("Softmax")
def softmax(ctx: ExportContext) -> list[Layer]:
    rank = len(ctx.shape(0))
    return [ctx.layer("Softmax", [ctx.x(0)], [ctx.y(0)], "softmax_param",
                      {"axis": int(ctx.attr("axis", -1)) % rank})]


def _power(ctx: ExportContext, bottom: str, top: str, *, power: float = 1.0, scale: float = 1.0,
           shift: float = 0.0, suffix: str | None = None) -> Layer:
    return ctx.layer("Power", [bottom], [top], "power_param",
                     {"power": power, "scale": scale, "shift": shift}, suffix=suffix)


@caffe_exporter("Neg")
def neg(ctx: ExportContext) -> list[Layer]:
    return [_power(ctx, ctx.x(0), ctx.y(0), scale=-1.0)]


@caffe_exporter("Sqrt", "Reciprocal")
def sqrt_reciprocal(ctx: ExportContext) -> list[Layer]:
    return [_power(ctx, ctx.x(0), ctx.y(0), power=0.5 if ctx.node.op_type == "Sqrt" else -1.0)]


@caffe_exporter("Pow")
def pow_(ctx: ExportContext) -> list[Layer]:
    exponent = ctx.need_const(1, "the exponent")
    if exponent.size != 1:
        raise ctx.fail("only a scalar constant exponent maps to Caffe's Power")
    return [_power(ctx, ctx.x(0), ctx.y(0), power=float(exponent.reshape(())))]


def _clip_bounds(ctx: ExportContext) -> tuple[float, float]:
    lo, hi = ctx.attr("min", -math.inf), ctx.attr("max", math.inf)
    for i, default in ((1, lo), (2, hi)):
        if ctx.input(i) is None:
            continue
        bound = ctx.need_const(i, "the clip bound")
        value = float(np.asarray(bound).reshape(()))
        lo, hi = (value, hi) if i == 1 else (lo, value)
        del default
    return float(lo), float(hi)


@caffe_exporter("Clip")
def clip(ctx: ExportContext) -> list[Layer]:
    lo, hi = _clip_bounds(ctx)
    x, y = ctx.x(0), ctx.y(0)
    if lo > hi:
        raise ctx.fail(f"min {lo} > max {hi}")
    if lo == 0.0 and hi == math.inf:
        return [ctx.layer("ReLU", [x], [y])]
    if lo == 0.0 and hi == 6.0 and ctx.dialect.allows("ReLU6"):
        return [ctx.layer("ReLU6", [x], [y])]
    if ctx.dialect.allows("Clip") and math.isfinite(lo) and math.isfinite(hi):
        return [ctx.layer("Clip", [x], [y], "clip_param", {"min": lo, "max": hi})]
    layers: list[Layer] = []
    terms: list[str] = []
    coeffs: list[float] = []
    if math.isfinite(lo):  # lo + ReLU(x - lo)
        shifted = x
        if lo != 0.0:
            shifted = ctx.tmp("minus_lo")
            layers.append(_power(ctx, x, shifted, shift=-lo, suffix="minus_lo"))
        terms.append(ctx.tmp("relu_lo"))
        layers.append(ctx.layer("ReLU", [shifted], [terms[-1]], suffix="relu_lo"))
    else:  # x
        terms.append(x)
    coeffs.append(1.0)
    if math.isfinite(hi):  # - ReLU(x - hi)
        layers.append(_power(ctx, x, ctx.tmp("minus_hi"), shift=-hi, suffix="minus_hi"))
        layers.append(ctx.layer("ReLU", [ctx.tmp("minus_hi")], [ctx.tmp("relu_hi")], suffix="relu_hi"))
        terms.append(ctx.tmp("relu_hi"))
        coeffs.append(-1.0)
    need_shift = math.isfinite(lo) and lo != 0.0
    if len(terms) == 1:
        if need_shift:
            layers.append(_power(ctx, terms[0], y, shift=lo))
        else:
            layers[-1].tops = [y]
        return layers
    summed = ctx.tmp("sum") if need_shift else y
    layers.append(ctx.layer("Eltwise", terms, [summed], "eltwise_param",
                            {"operation": "SUM", "coeff": coeffs}, suffix=None if not need_shift else "sum"))
    if need_shift:
        layers.append(_power(ctx, summed, y, shift=lo))
    return layers


@caffe_exporter("Identity", "Dropout")
def identity(ctx: ExportContext) -> list[Layer]:
    """Only reached when the value must keep a name of its own (e.g. a graph input re-exported)."""
    return [ctx.layer("Split", [ctx.x(0)], [ctx.y(0)])]
