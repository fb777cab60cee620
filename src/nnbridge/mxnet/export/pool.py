"""MaxPool / AveragePool / global pooling -> MXNet ``Pooling``, exactly.

Hub pooling (ONNX) per spatial axis: input ``H``, kernel ``k``, stride ``s``, pads ``(b, e)``, output
``O`` (the node's static output shape). Window ``o`` covers ``W_o = [o s - b, o s - b + k)``. MAX takes
the max of ``W_o`` ∩ ``[0, H)``; AVE sums ``W_o`` ∩ ``[0, H)`` and divides by ``|W_o ∩ [0, H)|``
(``count_include_pad=0``) or ``|W_o ∩ [-b, H + e)|`` (``=1``); the 2-D divisor is the product of the
per-axis ones.

MXNet ``Pooling`` (``pool.h``) with symmetric pad ``p``: windows ``[o s - p, o s - p + k)``; output
``floor((H + 2p - k)/s) + 1`` (``pooling_convention="valid"``) or ``ceil(...) + 1`` (``"full"``; it does
not apply Caffe's "last window must start inside image + pad" correction: H=5 k=2 s=2 p=1 gives 4,
Caffe 3). MAX ignores padding. AVE divides by ``|W ∩ [0, H)|`` with ``count_include_pad=False``; with
``True`` by ``|W ∩ [-p, H + p)|`` in the native kernel but by ``k`` in oneDNN's ``include_padding``
kernel, so that mode is only chosen when every kept window lies inside ``[-p, H + p)``, where both are
``k``.

Plan (per node, checked numerically per axis, so each choice is a proof for these sizes):

1. ``p = b`` (same window starts). Choose a convention whose output ``O' >= O`` and, for AVE, a
   ``count_include_pad`` whose divisor equals the hub's at every kept position. Extra windows
   (``O' > O``) are cut off with ``slice`` (every kept window must meet ``[0, H)``).
2. Else an explicit ``Pad`` of ``(b, e)`` and a valid, unpadded ``Pooling``: MAX pads with ``edge``
   (each window meeting the image contains the edge cell it replicates, so the max is unchanged); AVE
   pads zeros, pools with ``count_include_pad=True`` (divisor ``k_h k_w`` everywhere) and multiplies by
   the constant map ``k_h k_w / hub_divisor`` when that is not all ones.
"""

from __future__ import annotations

import math

import numpy as np

from nnbridge.mxnet.export.context import ExportContext, mxnet_exporter, pad_width, spatial_pads


def _window_sizes(count: int, stride: int, kernel: int, begin: int, lo: int, hi: int) -> np.ndarray:
    starts = np.arange(count) * stride - begin
    return np.minimum(starts + kernel, hi) - np.maximum(starts, lo)


def _mx_out(size: int, kernel: int, stride: int, pad: int, convention: str) -> int:
    quotient = (size + 2 * pad - kernel) / stride
    return (math.floor(quotient) if convention == "valid" else math.ceil(quotient)) + 1


def _plan_axis(size: int, kernel: int, stride: int, begin: int, end: int, out: int, method: str,
               include: bool, convention: str, mx_include: bool) -> bool:
    """Does MXNet Pooling(pad=begin, convention, count_include_pad=mx_include) give the hub's kept
    windows (and divisors) along this axis?"""
    if _mx_out(size, kernel, stride, begin, convention) < out:
        return False
    if begin >= kernel:
        return False
    if method == "max":
        return True
    hub = _window_sizes(out, stride, kernel, begin, -begin if include else 0, size + end if include else size)
    if mx_include:
        inside = _window_sizes(out, stride, kernel, begin, -begin, size + begin)
        return bool(np.all(inside == kernel) and np.all(hub == kernel))
    mx = _window_sizes(out, stride, kernel, begin, 0, size)
    return bool(np.array_equal(hub, mx))


@mxnet_exporter("MaxPool", "AveragePool")
def pooling(ctx: ExportContext) -> None:
    shape, out_shape = ctx.shape(0), ctx.out_shape(0)
    method = "max" if ctx.node.op_type == "MaxPool" else "avg"
    kernel = [int(k) for k in ctx.attr("kernel_shape", [])]
    n = len(kernel)
    if len(shape) != n + 2 or n not in (1, 2, 3):
        raise ctx.fail(f"kernel {kernel} does not fit an input of shape {shape}")
    if any(d != 1 for d in ctx.attr("dilations", [1] * n)):
        raise ctx.fail("dilated pooling has no MXNet equivalent")
    if len(ctx.node.outputs) > 1 and ctx.node.outputs[1].uses():
        raise ctx.fail("the Indices output has no MXNet equivalent")
    stride = [int(s) for s in ctx.attr("strides", [1] * n)]
    begin, end = spatial_pads(ctx, len(shape))
    sizes, outs = list(shape[2:]), list(out_shape[2:])
    include = bool(int(ctx.attr("count_include_pad", 0)))
    axes = list(zip(sizes, kernel, stride, begin, end, outs, strict=True))
    for h, _k, s, b, _, o in axes:
        if (o - 1) * s - b >= h or o < 1:
            raise ctx.fail(f"a window lies entirely in the padding (input {sizes}, output {outs}, pads {begin + end})")
    base: dict[str, object] = {"kernel": tuple(kernel), "stride": tuple(stride), "pool_type": method}
    for convention in ("valid", "full"):
        for mx_include in ((False,) if method == "max" else (False, True)):
            if all(_plan_axis(h, k, s, b, e, o, method, include, convention, mx_include)
                   for h, k, s, b, e, o in axes):
                attrs: dict[str, object] = {**base, "pad": tuple(begin), "pooling_convention": convention}
                if method == "avg":
                    attrs["count_include_pad"] = mx_include
                mx_outs = [_mx_out(h, k, s, b, convention) for h, k, s, b, _, _ in axes]
                if mx_outs == outs:
                    ctx.emit("Pooling", [ctx.x(0)], attrs)
                else:
                    pooled = ctx.tmp("Pooling", [ctx.x(0)], attrs, suffix="pool")
                    ctx.emit("slice", [pooled], {"begin": (None, None, *[0] * n), "end": (None, None, *outs)})
                return
    _explicit_pad(ctx, method, include, axes, base)


def _explicit_pad(ctx: ExportContext, method: str, include: bool,
                  axes: list[tuple[int, int, int, int, int, int]], base: dict[str, object]) -> None:
    n = len(axes)
    if n + 2 not in (4, 5):
        raise ctx.fail("asymmetric 1-D pooling (MXNet Pad is 4-D/5-D only)")
    for h, k, s, b, e, o in axes:
        if _mx_out(h + b + e, k, s, 0, "valid") != o:
            raise ctx.fail(f"output size {o} is not the floor-mode size of the padded input (ceil_mode)")
    begin = [a[3] for a in axes]
    end = [a[4] for a in axes]
    mode = {"mode": "edge"} if method == "max" else {"mode": "constant", "constant_value": 0.0}
    padded = ctx.tmp("Pad", [ctx.x(0)], {**mode, "pad_width": pad_width(begin, end)}, suffix="pad")
    attrs = {**base, "pad": (0,) * n, "pooling_convention": "valid"}
    if method == "max":
        ctx.emit("Pooling", [padded], attrs)
        return
    attrs["count_include_pad"] = True
    divisor = np.ones((1,), np.float64)
    for h, k, s, b, e, o in axes:
        hub = _window_sizes(o, s, k, b, -b if include else 0, h + e if include else h)
        divisor = np.multiply.outer(divisor, hub.astype(np.float64))
    area = float(np.prod([a[1] for a in axes]))
    factor = (area / divisor).astype(np.float32)
    if np.all(factor == 1.0):
        ctx.emit("Pooling", [padded], attrs)
        return
    pooled = ctx.tmp("Pooling", [padded], attrs, suffix="pool")
    ctx.emit("broadcast_mul", [pooled, ctx.param("divisor", factor.reshape(1, *factor.shape))])


@mxnet_exporter("GlobalMaxPool", "GlobalAveragePool")
def global_pooling(ctx: ExportContext) -> None:
    n = len(ctx.shape(0)) - 2
    method = "max" if ctx.node.op_type == "GlobalMaxPool" else "avg"
    ctx.emit("Pooling", [ctx.x(0)], {"kernel": (1,) * n, "global_pool": True, "pool_type": method})
