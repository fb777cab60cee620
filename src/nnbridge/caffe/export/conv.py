"""Conv -> Convolution, ConvTranspose -> Deconvolution (2-D).

Caffe Convolution: ``out = floor((H + 2p - (d(k-1)+1)) / s) + 1``, window ``o`` starts at ``o*s - p``;
weights ``(M, C/g, kh, kw)`` = ONNX's layout. ONNX pads ``(b, e)`` per axis: windows start at
``o*s - b``; so Caffe ``p = b`` reproduces ONNX exactly when both give the same output size (any end
padding ONNX adds but no window reads is irrelevant; if Caffe adds zeros past ``H + e`` that no window
reaches, likewise). Otherwise the pads are refused (no exact single-layer construction).

Caffe Deconvolution: ``out = s(H-1) + d(k-1) + 1 - 2p``, weights ``(C, M/g, kh, kw)`` = ONNX's layout;
exact for symmetric pads and no ``output_padding``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nnbridge.caffe.export.context import ExportContext, Layer, caffe_exporter


def _spatial(ctx: ExportContext, kernel: list[int]) -> tuple[list[int], list[int], list[int], list[int]]:
    n = len(kernel)
    if n != 2:
        raise ctx.fail(f"only 2-D kernels are exported, not {n}-D")
    strides = list(ctx.attr("strides", [1] * n))
    dilations = list(ctx.attr("dilations", [1] * n))
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    if auto_pad not in ("NOTSET", "VALID"):
        raise ctx.fail(f"auto_pad={auto_pad} is not exported; give explicit pads")
    pads = list(ctx.attr("pads", [0] * 2 * n)) if auto_pad == "NOTSET" else [0] * 2 * n
    return strides, dilations, pads[:n], pads[n:]


def _hw(prefix: str, values: list[int]) -> dict[str, int]:
    return {f"{prefix}_h": int(values[0]), f"{prefix}_w": int(values[1])}


def _conv_fields(num_output: int, kernel: list[int], strides: list[int], pads: list[int],
                 dilations: list[int], group: int, bias: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {"num_output": num_output, "bias_term": bias}
    fields.update(_hw("kernel", kernel))
    fields.update(_hw("stride", strides))
    fields.update(_hw("pad", pads))
    if any(d != 1 for d in dilations):
        if dilations[0] != dilations[1]:
            fields["dilation"] = [int(d) for d in dilations]
        else:
            fields["dilation"] = [int(dilations[0])]
    if group != 1:
        fields["group"] = group
    return fields


def _weight_and_bias(ctx: ExportContext) -> tuple[np.ndarray, np.ndarray | None]:
    """The constant weight (input 1) and optional constant bias (input 2) of a Conv/ConvTranspose."""
    weight = ctx.need_const(1, "the weight")
    bias = ctx.const(2) if ctx.input(2) is not None else None
    if ctx.input(2) is not None and bias is None:
        raise ctx.fail("the bias must be a constant")
    return weight, bias


@caffe_exporter("Conv")
def conv(ctx: ExportContext) -> list[Layer]:
    weight, bias = _weight_and_bias(ctx)
    kernel = list(ctx.attr("kernel_shape", weight.shape[2:]))
    strides, dilations, begin, end = _spatial(ctx, kernel)
    shape, out = ctx.shape(0), ctx.out_shape(0)
    caffe_out = [(h + 2 * b - (d * (k - 1) + 1)) // s + 1
                 for h, b, d, k, s in zip(shape[2:], begin, dilations, kernel, strides, strict=False)]
    if caffe_out != list(out[2:]):
        raise ctx.fail(f"asymmetric pads {begin + end} cannot be expressed by Caffe's symmetric padding "
                       f"(output {list(out[2:])}, Caffe would give {caffe_out}); pad explicitly first")
    group = int(ctx.attr("group", 1))
    fields = _conv_fields(int(weight.shape[0]), kernel, strides, begin, dilations, group, bias is not None)
    blobs = [weight] + ([bias.reshape(-1)] if bias is not None else [])
    return [ctx.layer("Convolution", [ctx.x(0)], [ctx.y(0)], "convolution_param", fields, blobs=blobs)]


@caffe_exporter("ConvTranspose")
def conv_transpose(ctx: ExportContext) -> list[Layer]:
    weight, bias = _weight_and_bias(ctx)
    kernel = list(ctx.attr("kernel_shape", weight.shape[2:]))
    strides, dilations, begin, end = _spatial(ctx, kernel)
    if begin != end:
        raise ctx.fail(f"asymmetric pads {begin + end}: Caffe's Deconvolution crops symmetrically")
    group = int(ctx.attr("group", 1))
    shape, out = ctx.shape(0), ctx.out_shape(0)
    caffe_out = [s * (h - 1) + d * (k - 1) + 1 - 2 * p
                 for h, s, d, k, p in zip(shape[2:], strides, dilations, kernel, begin, strict=False)]
    if caffe_out != list(out[2:]):
        raise ctx.fail(f"output size {list(out[2:])} (output_padding/output_shape) differs from Caffe's "
                       f"{caffe_out}")
    fields = _conv_fields(int(weight.shape[1]) * group, kernel, strides, begin, dilations, group,
                          bias is not None)
    blobs = [weight] + ([np.asarray(bias).reshape(-1)] if bias is not None else [])
    return [ctx.layer("Deconvolution", [ctx.x(0)], [ctx.y(0)], "convolution_param", fields, blobs=blobs)]
