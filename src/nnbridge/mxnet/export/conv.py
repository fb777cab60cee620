"""Conv / ConvTranspose -> Convolution / Deconvolution; Gemm / MatMul -> FullyConnected.

Convolution (MXNet 1.x, ``convolution-inl.h``): weight ``(F, C/group, k...)`` like ONNX, symmetric
``pad`` per axis, ``dilate``, ``num_group``, ``no_bias``. ONNX pads ``(b, e)`` with ``b != e``: the
symmetric part ``m = min(b, e)`` stays in the convolution and the rest is an explicit zero ``Pad``
``(b - m, e - m)`` before it; padding with zeros composes, so the sums are the same terms. ``auto_pad``
SAME_UPPER / SAME_LOWER is resolved to explicit pads from the static shapes first.

Deconvolution: weight ``(C, F/group, k...)`` like ONNX ConvTranspose; output
``(H - 1) s - 2p + d (k - 1) + 1 + adj``. ONNX: ``(H - 1) s + output_padding + d (k - 1) + 1 - b - e``.
With ``p = min(b, e)`` and ``adj = output_padding`` MXNet computes the full transposed convolution
cropped by ``p`` on both sides; the remaining ``b - p`` rows at the start / ``e - p`` at the end are cut
with ``slice``. MXNet requires ``adj < stride`` (as ONNX requires ``output_padding < stride``).

FullyConnected: ``y = x W^T + b`` with ``W (N, K)``; ``flatten=True`` first reshapes ``x`` to
``(x.shape[0], K)``, ``flatten=False`` applies to the last axis. Gemm ``alpha A B' + beta C`` with a
constant ``B`` (``transB=1``: ``W = B``, else ``W = B^T``), ``transA = 0`` and ``C`` a bias vector
(``(N,)`` or ``(1, N)``); ``alpha``/``beta`` other than 1 are folded into ``W``/``b`` (one extra
float32 rounding of each weight). MatMul with a constant 2-D ``B``: ``flatten=False``, ``W = B^T``.
"""

from __future__ import annotations

import numpy as np

from nnbridge.mxnet.export.context import ExportContext, mxnet_exporter, pad_width, spatial_pads


def _conv_pads(ctx: ExportContext, rank: int) -> tuple[list[int], list[int]]:
    """(begin, end) pads of a Conv; ``auto_pad`` SAME_UPPER/SAME_LOWER resolved from the static shapes
    (``total = max((ceil(H / s) - 1) s + d (k - 1) + 1 - H, 0)``, the odd one at the end / the begin)."""
    auto = ctx.attr("auto_pad", "NOTSET")
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        return spatial_pads(ctx, rank)
    shape, weight = ctx.shape(0), ctx.need_const(1, "the weight")
    n = rank - 2
    begin, end = [], []
    for h, k, s, d in zip(shape[2:], weight.shape[2:], ctx.attr("strides", [1] * n), ctx.attr("dilations", [1] * n),
                          strict=True):
        total = max((-(-h // s) - 1) * s + d * (k - 1) + 1 - h, 0)
        begin.append(total // 2 if auto == "SAME_UPPER" else total - total // 2)
        end.append(total - begin[-1])
    return begin, end


def _padded_input(ctx: ExportContext, rank: int) -> tuple[tuple[int, int], list[int]]:
    """(input entry, symmetric pads) with an explicit zero Pad for the asymmetric remainder."""
    begin, end = _conv_pads(ctx, rank)
    sym = [min(b, e) for b, e in zip(begin, end, strict=True)]
    if min(begin + end) < 0:
        raise ctx.fail(f"negative pads {begin + end}")
    x = ctx.x(0)
    if sym != begin or sym != end:
        if rank not in (4, 5):
            raise ctx.fail("asymmetric padding of a 1-D convolution (MXNet Pad is 4-D/5-D only)")
        x = ctx.tmp("Pad", [x], {"mode": "constant", "constant_value": 0.0,
                                 "pad_width": pad_width([b - m for b, m in zip(begin, sym, strict=True)],
                                                        [e - m for e, m in zip(end, sym, strict=True)])},
                    suffix="pad")
    return x, sym


@mxnet_exporter("Conv")
def conv(ctx: ExportContext) -> None:
    shape = ctx.shape(0)
    weight = ctx.need_const(1, "the weight")
    bias = ctx.const(2)
    if ctx.input(2) is not None and bias is None:
        raise ctx.fail("the bias (input 2) must be a constant")
    kernel = tuple(int(k) for k in weight.shape[2:])
    n = len(kernel)
    x, sym = _padded_input(ctx, len(shape))
    inputs = [x, ctx.param("weight", weight)]
    if bias is not None:
        inputs.append(ctx.param("bias", bias.reshape(-1)))
    ctx.emit("Convolution", inputs, {
        "kernel": kernel, "stride": tuple(ctx.attr("strides", [1] * n)),
        "dilate": tuple(ctx.attr("dilations", [1] * n)),
        "pad": tuple(sym), "num_filter": int(weight.shape[0]), "num_group": int(ctx.attr("group", 1)),
        "no_bias": bias is None,
    })


@mxnet_exporter("ConvTranspose")
def conv_transpose(ctx: ExportContext) -> None:
    shape = ctx.shape(0)
    out_shape = ctx.out_shape(0)
    weight = ctx.need_const(1, "the weight")
    bias = ctx.const(2)
    if ctx.input(2) is not None and bias is None:
        raise ctx.fail("the bias (input 2) must be a constant")
    group = int(ctx.attr("group", 1))
    kernel = tuple(int(k) for k in weight.shape[2:])
    n = len(kernel)
    stride = [int(s) for s in ctx.attr("strides", [1] * n)]
    dilate = [int(d) for d in ctx.attr("dilations", [1] * n)]
    if ctx.attr("output_shape") is not None or ctx.attr("auto_pad", "NOTSET") in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = _transpose_pads_from_shape(ctx, shape, out_shape, kernel, stride, dilate)
    else:
        begin, end = spatial_pads(ctx, len(shape))
    adj = [int(a) for a in ctx.attr("output_padding", [0] * n)]
    if any(a >= s for a, s in zip(adj, stride, strict=True)):
        raise ctx.fail(f"output_padding {adj} must be smaller than the stride {stride}")
    sym = [min(b, e) for b, e in zip(begin, end, strict=True)]
    inputs = [ctx.x(0), ctx.param("weight", weight)]
    if bias is not None:
        inputs.append(ctx.param("bias", bias.reshape(-1)))
    attrs = {"kernel": kernel, "stride": tuple(stride), "dilate": tuple(dilate), "pad": tuple(sym),
             "adj": tuple(adj), "num_filter": int(weight.shape[1]) * group, "num_group": group,
             "no_bias": bias is None}
    if sym == begin and sym == end:
        ctx.emit("Deconvolution", inputs, attrs)
        return
    full = ctx.tmp("Deconvolution", inputs, attrs, suffix="full")
    start = [None, None, *[b - m for b, m in zip(begin, sym, strict=True)]]
    stop = [None, None, *[b - m + o for b, m, o in zip(begin, sym, out_shape[2:], strict=True)]]
    ctx.emit("slice", [full], {"begin": tuple(start), "end": tuple(stop)})


def _transpose_pads_from_shape(ctx: ExportContext, shape: tuple[int, ...], out_shape: tuple[int, ...],
                               kernel: tuple[int, ...], stride: list[int],
                               dilate: list[int]) -> tuple[list[int], list[int]]:
    """ONNX ``output_shape``: total pad = full size + output_padding - output, split as the ONNX spec and
    onnxruntime do: SAME_UPPER puts the odd one at the end, NOTSET and SAME_LOWER at the beginning."""
    begin, end = [], []
    extra = [int(a) for a in ctx.attr("output_padding", [0] * len(kernel))]
    for h, o, k, s, d, a in zip(shape[2:], out_shape[2:], kernel, stride, dilate, extra, strict=True):
        total = (h - 1) * s + d * (k - 1) + 1 - o + a
        if total < 0:
            raise ctx.fail("output_shape larger than the full transposed convolution")
        b = total // 2 if ctx.attr("auto_pad", "NOTSET") == "SAME_UPPER" else total - total // 2
        begin.append(b)
        end.append(total - b)
    return begin, end


@mxnet_exporter("Gemm")
def gemm(ctx: ExportContext) -> None:
    if int(ctx.attr("transA", 0)):
        raise ctx.fail("transA=1 is not exported")
    b = ctx.need_const(1, "B")
    if b.ndim != 2:
        raise ctx.fail(f"B of shape {b.shape} must be 2-D")
    weight = b if int(ctx.attr("transB", 0)) else b.T
    alpha, beta = float(ctx.attr("alpha", 1.0)), float(ctx.attr("beta", 1.0))
    if alpha != 1.0:
        weight = weight * np.float32(alpha)
    inputs = [ctx.x(0), ctx.param("weight", np.ascontiguousarray(weight, dtype=np.float32))]
    c = ctx.const(2)
    if ctx.input(2) is not None:
        if c is None:
            raise ctx.fail("C (input 2) must be a constant")
        if c.size != weight.shape[0] or (c.ndim == 2 and c.shape[0] != 1) or c.ndim > 2:
            raise ctx.fail(f"C of shape {c.shape} is not a bias vector of {weight.shape[0]} values")
        bias = c.reshape(-1) * np.float32(beta) if beta != 1.0 else c.reshape(-1)
        inputs.append(ctx.param("bias", bias))
    ctx.emit("FullyConnected", inputs, {"num_hidden": int(weight.shape[0]), "no_bias": len(inputs) == 2,
                                        "flatten": True})


@mxnet_exporter("MatMul")
def matmul(ctx: ExportContext) -> None:
    b = ctx.const(1)
    if b is None or b.ndim != 2:
        raise ctx.fail("only MatMul by a constant 2-D matrix is exported")
    if len(ctx.shape(0)) < 2:
        raise ctx.fail("a 1-D left operand is not exported")
    weight = np.ascontiguousarray(b.T, dtype=np.float32)
    ctx.emit("FullyConnected", [ctx.x(0), ctx.param("weight", weight)],
             {"num_hidden": int(weight.shape[0]), "no_bias": True, "flatten": False})
