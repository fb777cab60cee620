"""Native ``CaffeOp`` translations of Caffe's element-wise layers, each Caffe's own formula
(src/caffe/layers/*_layer.cpp) in MXNet operators, so MXNet's autograd gives Caffe's backward:

- PReLU ``relu(x) + a * min(x, 0)`` (``a`` (C,) on axis 1, or (1,) with ``channel_shared``; trainable);
- ELU ``x > 0 ? x : alpha * (exp(x) - 1)``; BNLL ``x > 0 ? x + log(1 + exp(-x)) : log(1 + exp(x))``;
- Power ``(shift + scale * x) ^ power`` (the constant ``1`` / ``shift ^ power`` when ``power * scale == 0``);
- Exp ``base ^ shift * exp(ln(base) * scale * x)``; Log ``ln(shift + scale * x) / ln(base)`` (base -1 = e);
- Threshold ``x > t ? 1 : 0`` (no gradient: Caffe refuses its backward; here it is zero);
- Clip ``max(min, min(x, max))``; ReLU6 ``min(relu(x) + slope * min(x, 0), threshold)``;
  Swish ``x * sigmoid(beta * x)``;
- Bias ``x + b`` (one bottom, ``b`` of shape x.shape[axis : axis + num_axes]; trainable).
"""

from __future__ import annotations

import math
from typing import Any

from nnbridge.mxnet.caffe_op_layers.base import OpContext, translator


def _out(ctx: OpContext, value: Any) -> list[Any]:
    return [ctx.mx.sym.identity(value, name=ctx.name)]


def _affine(x: Any, scale: float, shift: float) -> Any:
    """``shift + scale * x`` with Caffe's shortcuts (no multiply when scale == 1, no add when shift == 0)."""
    y = x * scale if scale != 1.0 else x
    return y + shift if shift != 0.0 else y


@translator("PReLU")
def _prelu(ctx: OpContext) -> list[Any]:
    sym, x = ctx.mx.sym, ctx.data[0]
    shared = bool(ctx.layer.prelu_param.channel_shared)
    view = ctx.channel_view(x)
    slope = ctx.spread(ctx.per_channel(ctx.weights[0], x, scalar=shared), view)
    out = sym.elemwise_add(sym.relu(view), sym.elemwise_mul(slope, sym.minimum(view, 0.0)))
    return [sym.reshape_like(out, x, name=ctx.name)]


@translator("ELU")
def _elu(ctx: OpContext) -> list[Any]:
    sym, x = ctx.mx.sym, ctx.data[0]
    alpha = float(ctx.layer.elu_param.alpha)
    return _out(ctx, sym.where(x > 0, x, alpha * (sym.exp(sym.minimum(x, 0.0)) - 1.0)))


@translator("BNLL")
def _bnll(ctx: OpContext) -> list[Any]:
    sym, x = ctx.mx.sym, ctx.data[0]
    return _out(ctx, sym.relu(x) + sym.log(1.0 + sym.exp(-sym.abs(x))))


@translator("Power")
def _power(ctx: OpContext) -> list[Any]:
    sym, p, x = ctx.mx.sym, ctx.layer.power_param, ctx.data[0]
    power, scale, shift = float(p.power), float(p.scale), float(p.shift)
    if power * scale == 0.0:
        constant = 1.0 if power == 0.0 else shift ** power
        return _out(ctx, sym.BlockGrad(sym.ones_like(x)) * constant)
    y = _affine(x, scale, shift)
    return _out(ctx, y ** power if power != 1.0 else y)


def _log_base(ctx: OpContext, base: float) -> float:
    if base == -1.0:
        return 1.0
    if base <= 0.0 or base == 1.0:
        raise ctx.fail(f"base {base} must be -1 (e) or positive and not 1")
    return math.log(base)


@translator("Exp")
def _exp(ctx: OpContext) -> list[Any]:
    p, x = ctx.layer.exp_param, ctx.data[0]
    base, scale, shift = float(p.base), float(p.scale), float(p.shift)
    inner = _log_base(ctx, base) * scale
    outer = 1.0 if shift == 0.0 else (math.exp(shift) if base == -1.0 else base ** shift)
    y = ctx.mx.sym.exp(x * inner if inner != 1.0 else x)
    return _out(ctx, y * outer if outer != 1.0 else y)


@translator("Log")
def _log(ctx: OpContext) -> list[Any]:
    p, x = ctx.layer.log_param, ctx.data[0]
    factor = 1.0 / _log_base(ctx, float(p.base))
    y = ctx.mx.sym.log(_affine(x, float(p.scale), float(p.shift)))
    return _out(ctx, y * factor if factor != 1.0 else y)


@translator("Threshold", notes="no gradient (Caffe has no backward for it)")
def _threshold(ctx: OpContext) -> list[Any]:
    x = ctx.mx.sym.BlockGrad(ctx.data[0])
    return _out(ctx, x > float(ctx.layer.threshold_param.threshold))


@translator("Clip")
def _clip(ctx: OpContext) -> list[Any]:
    p = ctx.layer.clip_param
    lo, hi = float(p.min), float(p.max)
    if math.isnan(lo) or math.isnan(hi) or lo > hi:
        raise ctx.fail(f"min {lo} must not exceed max {hi}")
    return _out(ctx, ctx.mx.sym.clip(ctx.data[0], a_min=lo, a_max=hi))


@translator("ReLU6")
def _relu6(ctx: OpContext) -> list[Any]:
    sym, p, x = ctx.mx.sym, ctx.layer.relu6_param, ctx.data[0]
    slope = float(p.negative_slope)
    y = sym.relu(x) + slope * sym.minimum(x, 0.0) if slope != 0.0 else sym.relu(x)
    return _out(ctx, sym.minimum(y, float(p.threshold)))


@translator("Swish")
def _swish(ctx: OpContext) -> list[Any]:
    sym, x = ctx.mx.sym, ctx.data[0]
    beta = float(ctx.layer.swish_param.beta)
    return _out(ctx, x * sym.sigmoid(x * beta if beta != 1.0 else x))


@translator("Bias", notes="one bottom, any axis >= 0 / num_axes")
def _bias(ctx: OpContext) -> list[Any]:
    sym, p, x = ctx.mx.sym, ctx.layer.bias_param, ctx.data[0]
    if p.axis < 0 or p.num_axes < -1 or p.num_axes == 0:
        raise ctx.fail("only a learned bias with axis >= 0 and num_axes != 0 is translated", hint='use engine="caffe"')
    view, beta = ctx.axes_blob(ctx.weights[0], x, int(p.axis), int(p.num_axes))
    return [sym.reshape_like(sym.broadcast_add(view, beta), x, name=ctx.name)]
