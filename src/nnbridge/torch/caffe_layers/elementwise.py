"""Element-wise and normalisation layers of ``CaffeLayer`` (Caffe's formulas, src/caffe/layers/*_layer.cpp;
autograd gives Caffe's backward):

PReLU ``relu(x) + a * min(x, 0)`` (a (C,) or Caffe's scalar blob ``()`` with ``channel_shared``); ELU; BNLL;
Power ``(shift + scale * x) ^ power`` (constant when ``power * scale == 0``); Exp ``base ^ shift *
exp(ln(base) * scale * x)``; Log ``ln(shift + scale * x) / ln(base)``; Threshold ``x > t`` (no gradient: Caffe
has no backward); Clip; ReLU6 ``min(relu(x) + slope * min(x, 0), threshold)``; Swish ``x * sigmoid(beta * x)``;
Bias / Scale (one bottom, any ``axis``/``num_axes``); LRN (ACROSS_CHANNELS:
``x * (k + alpha / size * sum_window(x^2)) ^ -beta``, WITHIN_CHANNEL: ``x * (1 + alpha / size^2 *
sum_window(x^2)) ^ -beta``); MVN ``(x - mean) / (sqrt(mean((x - mean)^2)) + eps)`` with Caffe's backward;
Normalize (SSD fork): ``x / sqrt(sum(x^2) + eps) * scale`` with Caffe's bottom diff (the scale applied after the
normalisation's gradient).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812

from nnbridge.errors import ConversionError
from nnbridge.torch.layers import TORCH_LAYERS, CaffeLayer, _channels


def _fail(m: CaffeLayer, message: str) -> ConversionError:
    return ConversionError(f"CaffeLayer ({m.kind}): {message}")


@TORCH_LAYERS.register("PReLU")
def _prelu(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    x, a = xs[0], m.blobs[0]
    slope = a.reshape(()) if m.layer.prelu_param.channel_shared else _channels(a, x)
    return F.relu(x) + slope * torch.clamp(x, max=0.0)


@TORCH_LAYERS.register("ELU")
def _elu(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    x = xs[0]
    return torch.where(x > 0, x, float(m.layer.elu_param.alpha) * (torch.exp(torch.clamp(x, max=0.0)) - 1.0))


@TORCH_LAYERS.register("BNLL")
def _bnll(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    return F.relu(xs[0]) + torch.log(1.0 + torch.exp(-torch.abs(xs[0])))


def _affine(x: torch.Tensor, scale: float, shift: float) -> torch.Tensor:
    y = x * scale if scale != 1.0 else x
    return y + shift if shift != 0.0 else y


@TORCH_LAYERS.register("Power")
def _power(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    p = m.layer.power_param
    power, scale, shift = float(p.power), float(p.scale), float(p.shift)
    if power * scale == 0.0:
        return torch.full_like(xs[0], 1.0 if power == 0.0 else shift ** power)
    y = _affine(xs[0], scale, shift)
    return y ** power if power != 1.0 else y


def _ln_base(m: CaffeLayer, base: float) -> float:
    if base == -1.0:
        return 1.0
    if base <= 0.0 or base == 1.0:
        raise _fail(m, f"base {base} must be -1 (e) or positive and not 1")
    return math.log(base)


@TORCH_LAYERS.register("Exp")
def _exp(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    p = m.layer.exp_param
    base, scale, shift = float(p.base), float(p.scale), float(p.shift)
    inner = _ln_base(m, base) * scale
    outer = 1.0 if shift == 0.0 else (math.exp(shift) if base == -1.0 else base ** shift)
    y = torch.exp(xs[0] * inner if inner != 1.0 else xs[0])
    return y * outer if outer != 1.0 else y


@TORCH_LAYERS.register("Log")
def _log(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    p = m.layer.log_param
    factor = 1.0 / _ln_base(m, float(p.base))
    y = torch.log(_affine(xs[0], float(p.scale), float(p.shift)))
    return y * factor if factor != 1.0 else y


@TORCH_LAYERS.register("Threshold")
def _threshold(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    return (xs[0].detach() > float(m.layer.threshold_param.threshold)).to(xs[0].dtype)


@TORCH_LAYERS.register("Clip")
def _clip(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    p = m.layer.clip_param
    lo, hi = float(p.min), float(p.max)
    if math.isnan(lo) or math.isnan(hi) or lo > hi:
        raise _fail(m, f"min {lo} must not exceed max {hi}")
    return torch.clamp(xs[0], lo, hi)


@TORCH_LAYERS.register("ReLU6")
def _relu6(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    p, x = m.layer.relu6_param, xs[0]
    slope = float(p.negative_slope)
    y = F.relu(x) + slope * torch.clamp(x, max=0.0) if slope else F.relu(x)
    return torch.clamp(y, max=float(p.threshold))


@TORCH_LAYERS.register("Swish")
def _swish(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    beta = float(m.layer.swish_param.beta)
    return xs[0] * torch.sigmoid(xs[0] * beta if beta != 1.0 else xs[0])


def broadcast_operand(m: CaffeLayer, x: torch.Tensor, b: torch.Tensor, axis: int) -> torch.Tensor:
    """``b`` (shape = x.shape[axis : axis + b.dim()]) viewed to broadcast against ``x`` (Caffe's Scale/Bias)."""
    axis = axis + x.dim() if axis < 0 else axis
    if tuple(x.shape[axis:axis + b.dim()]) != tuple(b.shape):
        raise _fail(m, f"operand shape {tuple(b.shape)} does not match bottom {tuple(x.shape)} from axis {axis}")
    return b.reshape((1,) * axis + tuple(b.shape) + (1,) * (x.dim() - axis - b.dim()))


def _operand(m: CaffeLayer, xs: Sequence[torch.Tensor], p: Any) -> torch.Tensor:
    """The first blob (Caffe's shape x.shape[axis : axis + num_axes])."""
    if len(xs) != 1:
        raise _fail(m, f"{len(xs)} bottoms: the two-bottom form is not translated (its blob count depends on the "
                       "bottoms, which CaffeLayer does not know when it creates the blobs)")
    return m.blobs[0]


@TORCH_LAYERS.register("Scale")
def _scale(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    p, x = m.layer.scale_param, xs[0]
    out = x * broadcast_operand(m, x, _operand(m, xs, p), int(p.axis))
    if p.bias_term:
        out = out + broadcast_operand(m, x, m.blobs[-1], int(p.axis))
    return out


@TORCH_LAYERS.register("Bias")
def _bias(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    p, x = m.layer.bias_param, xs[0]
    return x + broadcast_operand(m, x, _operand(m, xs, p), int(p.axis))


@TORCH_LAYERS.register("LRN")
def _lrn(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    p, x = m.layer.lrn_param, xs[0]
    size = int(p.local_size)
    if size % 2 == 0 or x.dim() != 4:
        raise _fail(m, f"local_size {size} must be odd and the bottom 4-D (got {x.dim()}-D)")
    pad, alpha, beta = (size - 1) // 2, float(p.alpha), float(p.beta)
    square = x * x
    if p.norm_region == 0:  # ACROSS_CHANNELS
        padded = F.pad(square, (0, 0, 0, 0, pad, pad))
        summed = sum(padded[:, i:i + x.shape[1]] for i in range(size))
        scale = summed * (alpha / size) + float(p.k)
    else:
        summed = F.avg_pool2d(square, size, 1, pad, count_include_pad=True) * (size * size)
        scale = summed * (alpha / (size * size)) + 1.0
    return x * scale ** -beta


@TORCH_LAYERS.register("MVN")
def _mvn(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    p, x = m.layer.mvn_param, xs[0]
    view = x.reshape(x.shape[0], 1 if p.across_channels else x.shape[1], -1)
    centred = view - view.mean(dim=2, keepdim=True)
    if p.normalize_variance:
        std, eps = torch.sqrt((centred * centred).mean(dim=2, keepdim=True)), float(p.eps)
        # value std + eps; std's gradient scaled by std / (std + eps): Caffe's backward (all terms over std + eps)
        centred = centred / (std.detach() + eps + (std - std.detach()) * (std / (std + eps)).detach())
    return centred.reshape(x.shape)


@TORCH_LAYERS.register("Normalize")
def _normalize(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    p, x = m.layer.norm_param, xs[0]
    view = x.reshape(x.shape[0], x.shape[1], -1)
    dims = (1, 2) if p.across_spatial else (1,)

    def normalized(v: torch.Tensor) -> torch.Tensor:
        return v / torch.sqrt((v * v).sum(dim=dims, keepdim=True) + float(p.eps))

    s = m.blobs[0]
    scale = s.reshape(()) if p.channel_shared else s.reshape(1, -1, 1)
    value = normalized(view.detach()) * scale
    # Caffe's bottom diff: the normalisation's gradient of the top diff, then times the scale (SSD's rule)
    routed = view * scale.detach() - (view * scale.detach() - view).detach()
    grad_only = normalized(routed)
    return (value + (grad_only - grad_only.detach())).reshape(x.shape)
