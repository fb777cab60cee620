"""Identity-like operators, casts, constants and resizing.

- Dropout (``p`` 0.5, ``mode`` training): the identity at inference; ``mode = always`` (dropout at inference
  too, random) is refused. BlockGrad / stop_gradient, identity / _copy, MakeLoss / make_loss: the identity.
- Cast ``dtype`` -> ONNX Cast. zeros_like / ones_like -> a constant of the input's shape and type.
- UpSampling ``scale`` (required), ``sample_type`` nearest: ``y[.., i, j] = x[.., i // s, j // s]`` -> Resize
  (nearest, asymmetric, floor); with several inputs (``multi_input_mode`` concat, default, or sum) input i
  is scaled by ``s * H_0 / H_i`` so all match the first. bilinear: ``Deconvolution(data, weight)`` with
  ``kernel = 2s - s % 2``, ``stride = s``, ``pad = ceil((s - 1) / 2)``, ``num_group = num_filter`` = C, no bias.
- _contrib_BilinearResize2D ``height``/``width`` (1) or ``scale_height``/``scale_width``, ``mode`` size,
  ``align_corners`` True: ``align_corners`` -> Resize linear ``align_corners``; otherwise source index
  ``max((dst + 0.5) * in / out - 0.5, 0)`` -> Resize linear ``half_pixel`` (onnxruntime clamps at 0 too).
"""

from __future__ import annotations

import math

import numpy as np
import onnx_ir as ir

from nnbridge.mxnet.importer import NodeContext, mxnet_op

_DTYPES = {"float32": ir.DataType.FLOAT, "float16": ir.DataType.FLOAT16, "float64": ir.DataType.DOUBLE,
           "int32": ir.DataType.INT32, "int64": ir.DataType.INT64, "int8": ir.DataType.INT8,
           "uint8": ir.DataType.UINT8, "bool": ir.DataType.BOOL}


@mxnet_op("Dropout")
def dropout(ctx: NodeContext) -> list[ir.Value]:
    if ctx.attrs.str("mode", "training") == "always":
        raise ctx.fail("mode 'always' drops activations at inference too (random)", hint="use mode 'training'")
    return [ctx.op1("Identity", [ctx.value(0)])]


@mxnet_op("BlockGrad", "stop_gradient", "identity", "_copy", "MakeLoss", "make_loss", "_CrossDeviceCopy")
def identity(ctx: NodeContext) -> list[ir.Value]:
    return [ctx.op1("Identity", [ctx.value(0)])]


@mxnet_op("Cast", "cast")
def cast(ctx: NodeContext) -> list[ir.Value]:
    dtype = ctx.attrs.str("dtype")
    if dtype not in _DTYPES:
        raise ctx.fail(f"dtype {dtype} is not supported")
    return [ctx.op1("Cast", [ctx.value(0)], {"to": _DTYPES[dtype]})]


def _filled(value: float):  # type: ignore[no-untyped-def]
    def importer(ctx: NodeContext) -> list[ir.Value]:
        dtype = (ctx.value(0).dtype or ir.DataType.FLOAT).numpy()
        return [ctx.op1("Identity", [ctx.const("value", np.full(ctx.in_shape(0), value, dtype=dtype))])]

    return importer


mxnet_op("zeros_like")(_filled(0.0))
mxnet_op("ones_like")(_filled(1.0))


def _nearest(ctx: NodeContext, x: ir.Value, factor: float, suffix: str | None) -> ir.Value:
    rank = len(ctx.in_shape(0))
    scales = ctx.f32(f"scales{suffix or ''}", [1.0, 1.0] + [factor] * (rank - 2))
    attrs = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
    return ctx.op1("Resize", [x, None, scales], attrs, suffix=suffix)


@mxnet_op("UpSampling")
def upsampling(ctx: NodeContext) -> list[ir.Value]:
    scale = ctx.attrs.int("scale")
    kind = ctx.attrs.str("sample_type")
    shape = ctx.in_shape(0)
    if len(shape) != 4 or scale < 1:
        raise ctx.fail(f"needs a 4-D input and a positive scale, got {shape} and {scale}")
    if kind == "bilinear":
        channels = shape[1]
        kernel = 2 * scale - scale % 2
        pad = math.ceil((scale - 1) / 2)
        weight = ctx.check_param(1, (channels, 1, kernel, kernel))
        attrs = {"kernel_shape": [kernel, kernel], "strides": [scale, scale], "pads": [pad] * 4,
                 "group": channels}
        return [ctx.op1("ConvTranspose", [ctx.value(0), weight], attrs)]
    if kind != "nearest":
        raise ctx.fail(f"unknown sample_type {kind!r}")
    count = ctx.attrs.int("num_args", ctx.num_inputs)
    if count == 1:
        return [_nearest(ctx, ctx.value(0), float(scale), None)]
    target = shape[2] * scale
    parts = []
    for i in range(count):
        h = ctx.in_shape(i)[2]
        if target % h:
            raise ctx.fail(f"input {i} height {h} does not divide the output height {target}")
        parts.append(_nearest(ctx, ctx.value(i), float(target // h), f"up{i}"))
    if ctx.attrs.str("multi_input_mode", "concat") == "sum":
        return [ctx.op1("Sum", parts)]
    return [ctx.op1("Concat", parts, {"axis": 1})]


@mxnet_op("_contrib_BilinearResize2D")
def bilinear_resize(ctx: NodeContext) -> list[ir.Value]:
    shape = ctx.in_shape(0)
    if len(shape) != 4:
        raise ctx.fail(f"input {shape} must be 4-D")
    mode = ctx.attrs.str("mode", "size")
    if mode != "size" or ctx.num_inputs > 1:
        raise ctx.fail(f"mode {mode!r} is not supported", hint="only mode 'size' is")
    scale_h, scale_w = ctx.attrs.opt_float("scale_height"), ctx.attrs.opt_float("scale_width")
    if scale_h is not None or scale_w is not None:
        raise ctx.fail("scale_height/scale_width are not supported", hint="give height and width")
    height, width = ctx.attrs.int("height", 1), ctx.attrs.int("width", 1)
    sizes = ctx.int64s("sizes", [shape[0], shape[1], height, width])
    align = ctx.attrs.bool("align_corners", True)
    attrs = {"mode": "linear", "coordinate_transformation_mode": "align_corners" if align else "half_pixel"}
    return [ctx.op1("Resize", [ctx.value(0), None, None, sizes], attrs)]
