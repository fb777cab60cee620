"""Convolution and Deconvolution -> ONNX Conv / ConvTranspose.

Caffe (base_conv_layer.cpp, conv_layer.cpp, deconv_layer.cpp), per spatial axis i with kernel k,
stride s, pad p, dilation d and extended kernel ``e = d*(k-1) + 1``:

- Convolution:   ``out = (in + 2p - e) // s + 1``; weight ``(num_output, C/group, k...)``, bias
  ``(num_output,)``.  ONNX ``Conv`` with ``pads = [p..., p...]`` computes the same floor rule and the
  same sum, so the mapping is one node.
- Deconvolution: ``out = s*(in - 1) + e - 2p``; weight ``(C, num_output/group, k...)``, which is
  exactly ONNX ``ConvTranspose``'s ``(C, M/group, k...)`` layout; ``output_padding = 0``.

Geometry fields: ``kernel_size``/``pad``/``stride``/``dilation`` are repeated (one value for every
spatial axis or one per axis; defaults pad 0, stride 1, dilation 1); ``kernel_h/_w``, ``pad_h/_w``,
``stride_h/_w`` are the 2-D-only spellings and win when present.  Only ``axis = 1`` (channels) is
supported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import onnx_ir as ir

from nnbridge.caffe.importer import LayerContext, caffe_layer


@dataclass(frozen=True)
class ConvGeometry:
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    pad: tuple[int, ...]
    dilation: tuple[int, ...]


def _has(param: Any, field: str) -> bool:
    return field in param.DESCRIPTOR.fields_by_name and param.HasField(field)


def _per_axis(ctx: LayerContext, what: str, values: Sequence[int], n: int, default: int) -> tuple[int, ...]:
    if len(values) == 0:
        return (default,) * n
    if len(values) == 1:
        return (int(values[0]),) * n
    if len(values) == n:
        return tuple(int(v) for v in values)
    raise ctx.fail(f"{what} has {len(values)} values for {n} spatial axes",
                   hint="give one value or one per spatial axis")


def conv_geometry(ctx: LayerContext, p: Any, n: int) -> ConvGeometry:
    """Kernel/stride/pad/dilation of a ConvolutionParameter for ``n`` spatial axes."""
    if _has(p, "kernel_h") or _has(p, "kernel_w"):
        if n != 2 or len(p.kernel_size) or not (_has(p, "kernel_h") and _has(p, "kernel_w")):
            raise ctx.fail("kernel_h/kernel_w need a 2-D input, both set and no kernel_size")
        kernel: tuple[int, ...] = (int(p.kernel_h), int(p.kernel_w))
    else:
        if not len(p.kernel_size):
            raise ctx.fail("no kernel size", hint="set kernel_size or kernel_h and kernel_w")
        kernel = _per_axis(ctx, "kernel_size", p.kernel_size, n, 0)
    if _has(p, "stride_h") or _has(p, "stride_w"):
        if n != 2 or len(p.stride):
            raise ctx.fail("stride_h/stride_w need a 2-D input and no stride")
        stride: tuple[int, ...] = (int(p.stride_h), int(p.stride_w))
    else:
        stride = _per_axis(ctx, "stride", p.stride, n, 1)
    if _has(p, "pad_h") or _has(p, "pad_w"):
        if n != 2 or len(p.pad):
            raise ctx.fail("pad_h/pad_w need a 2-D input and no pad")
        pad: tuple[int, ...] = (int(p.pad_h), int(p.pad_w))
    else:
        pad = _per_axis(ctx, "pad", p.pad, n, 0)
    dilation = _per_axis(ctx, "dilation", p.dilation, n, 1)
    if min(kernel) <= 0 or min(stride) <= 0 or min(dilation) <= 0:
        raise ctx.fail(f"kernel {kernel}, stride {stride} and dilation {dilation} must be positive")
    return ConvGeometry(kernel, stride, pad, dilation)


def _check_common(ctx: LayerContext, p: Any) -> tuple[tuple[int, ...], int, int]:
    shape = ctx.in_shape(0)
    axis = int(p.axis) if _has(p, "axis") else 1
    if axis not in (1, 1 - len(shape)):
        raise ctx.fail(f"axis {axis} is not supported", hint="only the channel axis 1 is supported")
    for fork_field in ("width_group", "height_group"):
        if _has(p, fork_field) and int(getattr(p, fork_field)) != 1:
            raise ctx.fail(f"{fork_field} = {getattr(p, fork_field)} is not supported")
    if len(shape) < 3:
        raise ctx.fail(f"input of shape {shape} has no spatial axes")
    group = int(p.group)
    num_output = int(p.num_output)
    channels = shape[1]
    if group <= 0 or channels % group or num_output % group or num_output <= 0:
        raise ctx.fail(f"channels {channels} and num_output {num_output} must be positive multiples "
                       f"of group {group}")
    return shape, group, num_output


def _attrs(g: ConvGeometry, group: int) -> dict[str, Any]:
    return {
        "auto_pad": "NOTSET",
        "kernel_shape": list(g.kernel),
        "strides": list(g.stride),
        "pads": list(g.pad) + list(g.pad),
        "dilations": list(g.dilation),
        "group": group,
    }


@caffe_layer("Convolution")
def convolution(ctx: LayerContext) -> list[ir.Value]:
    p = ctx.layer.convolution_param
    shape, group, num_output = _check_common(ctx, p)
    g = conv_geometry(ctx, p, len(shape) - 2)
    weight = ctx.blob(0, (num_output, shape[1] // group, *g.kernel), "weight")
    inputs: list[ir.Value | None] = [ctx.inputs[0], weight]
    if p.bias_term:
        inputs.append(ctx.blob(1, (num_output,), "bias"))
    return [ctx.op1("Conv", inputs, _attrs(g, group))]


@caffe_layer("Deconvolution")
def deconvolution(ctx: LayerContext) -> list[ir.Value]:
    p = ctx.layer.convolution_param
    shape, group, num_output = _check_common(ctx, p)
    g = conv_geometry(ctx, p, len(shape) - 2)
    weight = ctx.blob(0, (shape[1], num_output // group, *g.kernel), "weight")
    inputs: list[ir.Value | None] = [ctx.inputs[0], weight]
    if p.bias_term:
        inputs.append(ctx.blob(1, (num_output,), "bias"))
    attrs = _attrs(g, group)
    attrs["output_padding"] = [0] * len(g.kernel)
    return [ctx.op1("ConvTranspose", inputs, attrs)]
