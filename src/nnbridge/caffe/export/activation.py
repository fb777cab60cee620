"""Element-wise activations.

Caffe formulas: ReLU ``max(x,0) + slope*min(x,0)``; PReLU per-channel slope; ELU
``x>0 ? x : alpha(e^x - 1)``; BNLL ``log(1 + e^x)`` = Softplus; AbsVal; Exp/Log (base e, scale 1,
shift 0); Power ``(shift + scale*x)^power``; TanH; Sigmoid; Softmax over one axis.

Clip(a, b) = min(max(x, a), b). Exact rewrites when the dialect lacks ``Clip`` / ``ReLU6``:
``min(max(x,a),b) = a + ReLU(x - a) - ReLU(x - b)`` (a <= b), as Power(shift) / ReLU / Eltwise SUM
with coeff [1, -1] / Power(shift); with ``a = 0`` the outer shifts vanish: ``ReLU(x) - ReLU(x - b)``.
Float32, ``a = 0``, ``b`` an integer: for ``x < b``, ``ReLU(x - b) = 0`` whatever the rounding; for
``b <= x < 2^24`` both are multiples of ``ulp(x) <= 1``, so ``x - b`` and ``x - (x - b) = b`` are exact:
the rewrite is bit-exact (huge or infinite inputs are not). A nonzero ``a`` adds the roundings of the
shifts by ``a`` (a few ulps).

HardSigmoid ``max(0, min(1, alpha x + beta))`` (ONNX) = ``Power(scale=alpha, shift=beta)`` (Caffe computes
``alpha*x`` then ``+ beta``; ONNX's ``alpha*x + beta`` may fuse the rounding) followed by the clip to
``[0, 1]`` above. HardSwish ``x * HardSigmoid(x)`` with ``alpha = 1/6``, ``beta = 1/2`` appends
``Eltwise PROD(x, gate)``. Dialects with ``Clip`` get ``Power + Clip`` instead of ReLU/Eltwise.

LogSoftmax = Softmax + Log: see :func:`log_softmax` for the underflow caveat.
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


@caffe_exporter("LogSoftmax")
def log_softmax(ctx: ExportContext) -> list[Layer]:
    """``log(softmax(x))``: Softmax then Log (base e). Differs from the fused ``x - max - log(sum e^(x-max))``
    only by float rounding while the probabilities stay normal floats; where a probability underflows
    (a logit more than ~87 below the largest) Caffe gives ``-inf`` (or a denormal's log) where ONNX
    gives a finite value: saturated logits are not exact."""
    rank = len(ctx.shape(0))
    prob = ctx.tmp("prob")
    return [ctx.layer("Softmax", [ctx.x(0)], [prob], "softmax_param", {"axis": int(ctx.attr("axis", -1)) % rank},
                      suffix="softmax"),
            ctx.layer("Log", [prob], [ctx.y(0)])]


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
    if lo > hi:
        raise ctx.fail(f"min {lo} > max {hi}")
    return clip_layers(ctx, ctx.x(0), ctx.y(0), lo, hi)


def clip_layers(ctx: ExportContext, x: str, y: str, lo: float, hi: float, prefix: str = "") -> list[Layer]:
    """``y = min(max(x, lo), hi)`` with the layers the dialect has (see the module docstring)."""
    if lo == 0.0 and hi == math.inf:
        return [ctx.layer("ReLU", [x], [y], suffix=prefix.rstrip("/") or None)]
    if lo == 0.0 and hi == 6.0 and ctx.dialect.allows("ReLU6"):
        return [ctx.layer("ReLU6", [x], [y], suffix=prefix.rstrip("/") or None)]
    if ctx.dialect.allows("Clip") and math.isfinite(lo) and math.isfinite(hi):
        return [ctx.layer("Clip", [x], [y], "clip_param", {"min": lo, "max": hi},
                          suffix=prefix.rstrip("/") or None)]
    layers: list[Layer] = []
    terms: list[str] = []
    coeffs: list[float] = []
    if math.isfinite(lo):  # lo + ReLU(x - lo)
        shifted = x
        if lo != 0.0:
            shifted = ctx.tmp(prefix + "minus_lo")
            layers.append(_power(ctx, x, shifted, shift=-lo, suffix=prefix + "minus_lo"))
        terms.append(ctx.tmp(prefix + "relu_lo"))
        layers.append(ctx.layer("ReLU", [shifted], [terms[-1]], suffix=prefix + "relu_lo"))
    else:  # x
        terms.append(x)
    coeffs.append(1.0)
    if math.isfinite(hi):  # - ReLU(x - hi)
        layers.append(_power(ctx, x, ctx.tmp(prefix + "minus_hi"), shift=-hi, suffix=prefix + "minus_hi"))
        layers.append(ctx.layer("ReLU", [ctx.tmp(prefix + "minus_hi")], [ctx.tmp(prefix + "relu_hi")],
                                suffix=prefix + "relu_hi"))
        terms.append(ctx.tmp(prefix + "relu_hi"))
        coeffs.append(-1.0)
    need_shift = math.isfinite(lo) and lo != 0.0
    if len(terms) == 1:
        if need_shift:
            layers.append(_power(ctx, terms[0], y, shift=lo, suffix=prefix.rstrip("/") or None))
        else:
            layers[-1].tops = [y]
        return layers
    summed = ctx.tmp(prefix + "sum") if need_shift else y
    layers.append(ctx.layer("Eltwise", terms, [summed], "eltwise_param", {"operation": "SUM", "coeff": coeffs},
                            suffix=prefix + "sum" if need_shift else prefix.rstrip("/") or None))
    if need_shift:
        layers.append(_power(ctx, summed, y, shift=lo, suffix=prefix.rstrip("/") or None))
    return layers


@caffe_exporter("HardSigmoid", "HardSwish")
def hard_sigmoid(ctx: ExportContext) -> list[Layer]:
    """``HardSigmoid = clip(alpha x + beta, 0, 1)``: one Power, then :func:`clip_layers`;
    ``HardSwish(x) = x * HardSigmoid(x)`` (alpha 1/6, beta 1/2): the same, then Eltwise PROD with x."""
    swish = ctx.node.op_type == "HardSwish"
    alpha = 1.0 / 6.0 if swish else float(ctx.attr("alpha", 0.2))
    beta = 0.5 if swish else float(ctx.attr("beta", 0.5))
    x, y = ctx.x(0), ctx.y(0)
    affine, gate = ctx.tmp("affine"), ctx.tmp("gate") if swish else y
    layers = [_power(ctx, x, affine, scale=float(np.float32(alpha)), shift=beta, suffix="affine")]
    layers.extend(clip_layers(ctx, affine, gate, 0.0, 1.0, prefix="gate/" if swish else ""))
    if swish:
        layers.append(ctx.layer("Eltwise", [x, gate], [y], "eltwise_param", {"operation": "PROD"}))
    return layers


@caffe_exporter("Identity", "Dropout")
def identity(ctx: ExportContext) -> list[Layer]:
    """Only reached when the value must keep a name of its own (e.g. a graph input re-exported)."""
    return [ctx.layer("Split", [ctx.x(0)], [ctx.y(0)])]
