"""Pooling (max / avg / sum; global; conventions valid, full, same) -> MaxPool / AveragePool with explicit pads.

MXNet 1.9.1 (``pooling.cc``, ``pool.h``), per spatial axis with input size H, kernel k, stride s (default 1),
pad p (default 0); defaults ``pool_type`` max, ``pooling_convention`` valid, ``count_include_pad`` True:

- valid: ``out = floor((H + 2p - k) / s) + 1``; full: ``out = ceil((H + 2p - k) / s) + 1`` -- unlike Caffe, a
  last window that starts in the right padding is kept (H=5 k=2 s=2 p=1 gives 4). 'same' is refused (MXNet
  1.9.1 itself fails on it).
- window of output o: ``start = o s - p``; max over ``[max(start, 0), min(start + k, H))``; sum over that window;
  avg divides the sum by ``min(start + k, H + p) - start`` (the window clipped to ``[-p, H + p)``), or by the
  clipped window's size when ``count_include_pad`` is False.
- ``global_pool``: the whole plane (kernel, pad and stride ignored).

ONNX: ``pads = [p, pad_end]`` with ``pad_end = (out - 1) s + k - H - p`` (clamped at 0), ``ceil_mode = 0``, so
ONNX computes exactly ``out`` windows at the same positions. Windows all meet the image when ``p < k`` and
``pad_end < k`` ("regular"); then max -> ``MaxPool``, avg not counting pads (or without pads) ->
``AveragePool(count_include_pad = 0)``, avg counting pads with ``pad_end <= p`` -> ``count_include_pad = 1``.
Otherwise: max -> ``Pad`` with the lowest float (MXNet's value for a window entirely in the padding) and
``MaxPool``; avg and sum -> zero ``Pad``, ``AveragePool`` without pads, times the constant
``k_1 k_2 ... / max(divisor, 1)`` per output position, the divisor being MXNet's (1 for sum; an empty window
gives 0). ``lp`` pooling is refused.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import onnx_ir as ir

from nnbridge.mxnet.importer import NodeContext, mxnet_op


def mxnet_pool_output(size: int, kernel: int, stride: int, pad: int, convention: str) -> int:
    """MXNet's pooled size along one axis (``PoolingShape``)."""
    if convention == "valid":
        return (size + 2 * pad - kernel) // stride + 1
    if convention == "full":
        return math.ceil((size + 2 * pad - kernel) / stride) + 1
    return math.ceil((size + 2 * pad) / stride)


@mxnet_op("Pooling", "Pooling_v1")
def pooling(ctx: NodeContext) -> list[ir.Value]:
    shape = ctx.in_shape(0)
    pool_type = ctx.attrs.str("pool_type", "max")
    if pool_type not in ("max", "avg", "sum"):
        raise ctx.fail(f"pool_type {pool_type!r} is not supported", hint="max, avg and sum are")
    layout = ctx.attrs.str("layout", "None")
    if layout not in ("None", "NCW", "NCHW", "NCDHW"):
        raise ctx.fail(f"layout {layout} is not supported", hint="only channels-first layouts are")
    if not 3 <= len(shape) <= 5:
        raise ctx.fail(f"input {shape} must have 3 to 5 axes")
    x = ctx.value(0)
    if ctx.attrs.bool("global_pool", False):
        if pool_type == "max":
            return [ctx.op1("GlobalMaxPool", [x])]
        if pool_type == "avg":
            return [ctx.op1("GlobalAveragePool", [x])]
        axes = ctx.int64s("axes", list(range(2, len(shape))))
        return [ctx.op1("ReduceSum", [x, axes], {"keepdims": 1})]
    n = len(shape) - 2
    kernel = list(ctx.attrs.ints("kernel"))
    stride = list(ctx.attrs.ints("stride", ())) or [1] * n
    pad = list(ctx.attrs.ints("pad", ())) or [0] * n
    if not len(kernel) == len(stride) == len(pad) == n:
        raise ctx.fail(f"kernel {kernel}, stride {stride} and pad {pad} must have {n} entries for input {shape}")
    if min(kernel) <= 0 or min(stride) <= 0:
        raise ctx.fail(f"kernel {kernel} and stride {stride} must be positive")
    convention = ctx.attrs.str("pooling_convention", "valid")
    sizes = list(shape[2:])
    if convention not in ("valid", "full"):
        raise ctx.fail(f"pooling_convention {convention!r} is not supported",
                       hint="MXNet 1.9.1 itself fails on 'same' (1-D only)")
    if any(k > h + 2 * p for k, h, p in zip(kernel, sizes, pad, strict=True)):
        raise ctx.fail(f"kernel {kernel} exceeds input {sizes} padded by {pad}")
    geometry = list(zip(sizes, kernel, stride, pad, strict=True))
    out = [mxnet_pool_output(h, k, s, p, convention) for h, k, s, p in geometry]
    pad_end = [(o - 1) * s + k - h - p for o, (h, k, s, p) in zip(out, geometry, strict=True)]
    regular = all(p < k and pe < k for p, pe, k in zip(pad, pad_end, kernel, strict=True))
    ends = [max(pe, 0) for pe in pad_end]
    attrs: dict[str, Any] = {"kernel_shape": kernel, "strides": stride, "ceil_mode": 0}
    include = ctx.attrs.bool("count_include_pad", True)
    if pool_type == "max":
        if regular:
            y = ctx.op1("MaxPool", [x], {**attrs, "pads": pad + ends})
        else:  # windows entirely in the padding give the lowest float, as in MXNet
            lowest = float(np.finfo(np.float32).min)
            y = ctx.op1("MaxPool", [_pad(ctx, x, pad, ends, lowest)], {**attrs, "pads": [0] * (2 * n)})
    elif pool_type == "avg" and regular and (not include or not any(pad)):
        y = ctx.op1("AveragePool", [x], {**attrs, "pads": pad + ends, "count_include_pad": 0})
    elif pool_type == "avg" and regular and all(pe <= p for pe, p in zip(pad_end, pad, strict=True)):
        y = ctx.op1("AveragePool", [x], {**attrs, "pads": pad + ends, "count_include_pad": 1})
    else:
        divisor = np.ones([1, 1, *out], np.float64)
        if pool_type == "avg":
            for i, (o, (h, k, s, p)) in enumerate(zip(out, geometry, strict=True)):
                start = np.arange(o) * s - p
                if include:
                    size = np.minimum(start + k, h + p) - start
                else:
                    size = np.maximum(np.minimum(start + k, h) - np.maximum(start, 0), 0)
                view = [1] * (n + 2)
                view[2 + i] = o
                divisor = divisor * size.reshape(view)
        factor = math.prod(kernel) / np.maximum(divisor, 1)  # an empty window sums to 0, like MXNet's
        mean = ctx.op1("AveragePool", [_pad(ctx, x, pad, ends, 0.0)], {**attrs, "pads": [0] * (2 * n)},
                       suffix="mean")
        y = ctx.op1("Mul", [mean, ctx.f32("window_factor", factor.astype(np.float32))])
    got = y.shape
    if got is None or list(got[2:]) != out:
        raise ctx.fail(f"internal error: ONNX pooling output {got} differs from MXNet's {out}")
    return [y]


def _pad(ctx: NodeContext, x: ir.Value, begin: list[int], end: list[int], value: float) -> ir.Value:
    pads = ctx.int64s("pads", [0, 0, *begin, 0, 0, *end])
    return ctx.op1("Pad", [x, pads, ctx.f32("pad_value", np.asarray(value, np.float32))], {"mode": "constant"},
                   suffix="pad")
