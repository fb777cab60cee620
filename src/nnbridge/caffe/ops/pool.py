"""Pooling (MAX / AVE, global) -> MaxPool / AveragePool with explicit, possibly asymmetric pads.

Caffe (pooling_layer.cpp), per spatial axis with input size H, kernel k, stride s, pad p:

- output size: ``out = ceil((H + 2p - k) / s) + 1`` (``floor`` when the fork field ``ceil_mode: false``
  or ``round_mode: FLOOR`` is set); then, if ``p > 0`` and ``(out - 1) * s >= H + p``, ``out -= 1``
  (the last window must start inside the image or its left padding).
- window of output ``o``: ``start = o*s - p``.
  MAX takes the maximum over ``[max(start, 0), min(start + k, H))``.
  AVE sums over that same clipped window and divides by
  ``(min(start + k, H + p) - start)``, i.e. the window clipped to ``[-p, H + p)`` -- it counts the
  symmetric padding but not the extra cells the ceil rule may add past ``H + p``.
- ``global_pooling``: ``k = H`` (pad 0, stride 1) -> one output, the max or the mean of the plane.

ONNX mapping: ``pad_begin = p`` and ``pad_end = (out - 1)*s + k - H - p`` (clamped at 0; a negative
value only means trailing rows that no window reads, and ONNX's floor rule then still yields ``out``),
``ceil_mode = 0``, so ONNX computes exactly ``out`` windows at the same positions.

- MAX: ``MaxPool`` (padding never wins a max).
- AVE, ``p == 0``: divisor = cells inside the image = ``count_include_pad = 0``.
- AVE, ``pad_end <= p`` on every axis: every window lies inside ``[-p, H + p)`` and the divisor is
  ``k_h*k_w`` = ``count_include_pad = 1``.
- AVE otherwise: ``Pad`` the input with ``p`` zeros on both sides (real zeros, counted) and run
  ``AveragePool(pads = [0, pad_end - p], count_include_pad = 0)``: the divisor is then the window
  clipped to ``[-p, H + p)``, exactly Caffe's.
- STOCHASTIC pooling is a training-time sampler (test-time it is a weighted average) and is refused.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import onnx_ir as ir

from nnbridge.caffe.importer import LayerContext, caffe_layer

MAX, AVE, STOCHASTIC = 0, 1, 2


def caffe_pool_output(size: int, kernel: int, stride: int, pad: int, *, ceil: bool = True) -> int:
    """Caffe's pooled size along one axis (PoolingLayer::Reshape)."""
    # Caffe computes the quotient in float32 before rounding; for realistic sizes this equals exact maths.
    quotient = (size + 2 * pad - kernel) / stride
    out = (math.ceil(quotient) if ceil else math.floor(quotient)) + 1
    if pad > 0 and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _has(param: Any, field: str) -> bool:
    return field in param.DESCRIPTOR.fields_by_name and param.HasField(field)


def _pair(ctx: LayerContext, p: Any, name: str, default: int) -> tuple[int, int]:
    if _has(p, f"{name}_h") or _has(p, f"{name}_w"):
        if not (_has(p, f"{name}_h") and _has(p, f"{name}_w")) or _has(p, name if name != "kernel" else "kernel_size"):
            raise ctx.fail(f"give {name} or both {name}_h and {name}_w")
        return int(getattr(p, f"{name}_h")), int(getattr(p, f"{name}_w"))
    scalar = "kernel_size" if name == "kernel" else name
    value = int(getattr(p, scalar)) if _has(p, scalar) else default
    return value, value


def _ceil_mode(p: Any) -> bool:
    if _has(p, "ceil_mode"):
        return bool(p.ceil_mode)
    if _has(p, "round_mode"):
        return int(p.round_mode) == 0  # RoundMode { CEIL = 0; FLOOR = 1; }
    return True


@caffe_layer("Pooling")
def pooling(ctx: LayerContext) -> list[ir.Value]:
    p = ctx.layer.pooling_param
    shape = ctx.in_shape(0)
    if len(shape) != 4:
        raise ctx.fail(f"input must be 4-D (N, C, H, W), not {shape}")
    if len(ctx.layer.top) != 1:
        raise ctx.fail("the second top (the MAX pooling argmax mask) is not supported")
    method = int(p.pool)
    if method == STOCHASTIC:
        raise ctx.fail("STOCHASTIC pooling is not supported",
                       hint="it samples activations at training time; use MAX or AVE")
    if method not in (MAX, AVE):
        raise ctx.fail(f"unknown pooling method {method}")
    x = ctx.inputs[0]
    if p.global_pooling:
        if _has(p, "kernel_size") or _has(p, "kernel_h") or _has(p, "kernel_w"):
            raise ctx.fail("global_pooling with a kernel size", hint="remove kernel_size")
        if _pair(ctx, p, "pad", 0) != (0, 0) or _pair(ctx, p, "stride", 1) != (1, 1):
            raise ctx.fail("global_pooling needs pad 0 and stride 1")
        return [ctx.op1("GlobalMaxPool" if method == MAX else "GlobalAveragePool", [x])]

    kernel = _pair(ctx, p, "kernel", 0)
    stride = _pair(ctx, p, "stride", 1)
    pad = _pair(ctx, p, "pad", 0)
    if min(kernel) <= 0 or min(stride) <= 0:
        raise ctx.fail(f"kernel {kernel} and stride {stride} must be positive")
    if any(pd >= k for pd, k in zip(pad, kernel, strict=True)):
        raise ctx.fail(f"pad {pad} must be smaller than the kernel {kernel}")
    ceil = _ceil_mode(p)
    sizes = shape[2:]
    axes = list(zip(sizes, kernel, stride, pad, strict=True))
    out = [caffe_pool_output(h, k, s, pd, ceil=ceil) for h, k, s, pd in axes]
    if min(out) <= 0:
        raise ctx.fail(f"pooling output would be empty ({out}) for input {sizes}")
    pad_end = [(o - 1) * s + k - h - pd for o, (h, k, s, pd) in zip(out, axes, strict=True)]
    if any(pe >= k for pe, k in zip(pad_end, kernel, strict=True)):
        raise ctx.fail(f"the last window lies entirely outside the input (kernel {kernel}, stride {stride}, "
                       f"input {sizes})", hint="Caffe fills it with -FLT_MAX or 0; not reproduced")
    pad_end = [max(pe, 0) for pe in pad_end]
    attrs: dict[str, Any] = {
        "auto_pad": "NOTSET",
        "kernel_shape": list(kernel),
        "strides": list(stride),
        "ceil_mode": 0,
    }
    if method == MAX:
        attrs.update(pads=[*pad, *pad_end], dilations=[1, 1], storage_order=0)
        y = ctx.op1("MaxPool", [x], attrs)
    elif all(pd == 0 for pd in pad) or all(pe <= pd for pe, pd in zip(pad_end, pad, strict=True)):
        include = 0 if all(pd == 0 for pd in pad) else 1
        attrs.update(pads=[*pad, *pad_end], count_include_pad=include)
        y = ctx.op1("AveragePool", [x], attrs)
    else:
        pads = ctx.int64s("pads", [0, 0, *pad, 0, 0, *pad])
        padded = ctx.op1("Pad", [x, pads, ctx.const("pad_value", np.zeros((), np.float32))],
                         {"mode": "constant"}, suffix="pad")
        extra = [max(pe - pd, 0) for pe, pd in zip(pad_end, pad, strict=True)]
        attrs.update(pads=[0, 0, *extra], count_include_pad=0)
        y = ctx.op1("AveragePool", [padded], attrs)
    got = y.shape
    if got is None or tuple(got[2:]) != tuple(out):
        raise ctx.fail(f"internal error: ONNX pooling output {got} differs from Caffe's {out}")
    return [y]
