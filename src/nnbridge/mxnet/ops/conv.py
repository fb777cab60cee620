"""Convolution and Deconvolution -> ONNX Conv / ConvTranspose (1-D, 2-D, 3-D), with MXNet 1.9.1's defaults.

Convolution(data, weight (F, C/g, *k), [bias (F,)]): ``kernel`` required, ``stride`` 1, ``dilate`` 1, ``pad`` 0
per axis, ``num_group`` 1, ``no_bias`` False. Output ``floor((H + 2p - d(k-1) - 1) / s) + 1`` -- exactly ONNX
``Conv`` with symmetric ``pads``.

Deconvolution(data, weight (C, F/g, *k), [bias (F,)]): ``no_bias`` defaults to **True**; ``adj`` 0, ``pad`` 0.
Output ``s(H - 1) + d(k - 1) + 1 - 2p + adj``. When ``target_shape`` has a non-zero entry, ``pad`` and ``adj``
are recomputed per axis (``DeconvolutionParam::InferPad``): ``t = s(H - 1) + d(k - 1) + 1 - target``,
``adj = t % 2``, ``pad = (t + 1) // 2``. ONNX ``ConvTranspose`` with ``pads = [p, p]`` and
``output_padding = adj`` (extra rows at the end) computes the same. ``layout`` other than channels-first
is refused.
"""

from __future__ import annotations

from typing import Any

import onnx_ir as ir

from nnbridge.mxnet.importer import NodeContext, mxnet_op


def _geometry(ctx: NodeContext) -> tuple[tuple[int, ...], list[int], list[int], list[int]]:
    kernel = ctx.attrs.ints("kernel")
    n = len(kernel)
    if n not in (1, 2, 3):
        raise ctx.fail(f"kernel {kernel} must have 1, 2 or 3 axes")
    layout = ctx.attrs.str("layout", "None")
    if layout not in ("None", "NCW", "NCHW", "NCDHW"):
        raise ctx.fail(f"layout {layout} is not supported", hint="only channels-first layouts are")
    stride = list(ctx.attrs.ints("stride", ())) or [1] * n
    dilate = list(ctx.attrs.ints("dilate", ())) or [1] * n
    pad = list(ctx.attrs.ints("pad", ())) or [0] * n
    if not len(stride) == len(dilate) == len(pad) == n:
        raise ctx.fail(f"kernel {kernel}, stride {stride}, dilate {dilate} and pad {pad} differ in length")
    shape = ctx.in_shape(0)
    if len(shape) != n + 2:
        raise ctx.fail(f"input {shape} must have {n + 2} axes for a {n}-D kernel")
    return kernel, stride, dilate, pad


@mxnet_op("Convolution", "Convolution_v1")
def convolution(ctx: NodeContext) -> list[ir.Value]:
    kernel, stride, dilate, pad = _geometry(ctx)
    channels = ctx.in_shape(0)[1]
    filters = ctx.attrs.int("num_filter")
    group = ctx.attrs.int("num_group", 1)
    if group < 1 or channels % group or filters % group:
        raise ctx.fail(f"num_group {group} must divide the channels {channels} and num_filter {filters}")
    inputs = [ctx.value(0), ctx.check_param(1, (filters, channels // group, *kernel))]
    if not ctx.attrs.bool("no_bias", False):
        inputs.append(ctx.check_param(2, (filters,)))
    attrs: dict[str, Any] = {"kernel_shape": list(kernel), "strides": stride, "dilations": dilate,
                             "pads": pad + pad, "group": group}
    return [ctx.op1("Conv", inputs, attrs)]


@mxnet_op("Deconvolution")
def deconvolution(ctx: NodeContext) -> list[ir.Value]:
    kernel, stride, dilate, pad = _geometry(ctx)
    n = len(kernel)
    shape = ctx.in_shape(0)
    channels = shape[1]
    filters = ctx.attrs.int("num_filter")
    group = ctx.attrs.int("num_group", 1)
    if group < 1 or channels % group or filters % group:
        raise ctx.fail(f"num_group {group} must divide the channels {channels} and num_filter {filters}")
    adj = list(ctx.attrs.ints("adj", ())) or [0] * n
    target = list(ctx.attrs.ints("target_shape", ()))
    if target and any(t != 0 for t in target):
        if len(target) != n:
            raise ctx.fail(f"target_shape {target} must have {n} entries")
        pad, adj = [], []
        for i in range(n):
            total = stride[i] * (shape[2 + i] - 1) + dilate[i] * (kernel[i] - 1) + 1 - target[i]
            if total < 0:
                raise ctx.fail(f"target_shape {target} is too big for input {shape}")
            adj.append(total % 2)
            pad.append((total + 1) // 2)
    if len(adj) != n or any(a >= max(s, d) for a, s, d in zip(adj, stride, dilate, strict=True)):
        raise ctx.fail(f"adj {adj} must have {n} entries, each smaller than the stride or dilation")
    inputs = [ctx.value(0), ctx.check_param(1, (channels, filters // group, *kernel))]
    if not ctx.attrs.bool("no_bias", True):
        inputs.append(ctx.check_param(2, (filters,)))
    attrs: dict[str, Any] = {"kernel_shape": list(kernel), "strides": stride, "dilations": dilate,
                             "pads": pad + pad, "group": group, "output_padding": adj}
    return [ctx.op1("ConvTranspose", inputs, attrs)]
