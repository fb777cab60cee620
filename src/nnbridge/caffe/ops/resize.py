"""Spatial resizing fork layers: Upsample (nearest) and Interp (DeepLab/PSPNet bilinear).

Upsample (YOLOv3/brocolli forks, one bottom): nearest neighbour by integer factors,
``top[n, c, y, x] = bottom[n, c, y // s_h, x // s_w]`` with ``s_h = scale_h or scale``, ``s_w = scale_w or
scale`` (``upsample_h``/``upsample_w``, where the schema has them, must be exact multiples) ->
``Resize(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")`` with scales
``(1, 1, s_h, s_w)``, which computes ``floor(y / s_h)`` exactly. The two-bottom SegNet variant (max unpooling
with a mask) is refused.

Interp (``interp_layer.cpp`` of DeepLab v2; PSPNet uses the same code). With ``pad_beg, pad_end <= 0``
(cropping only), ``H_eff = H + pad_beg + pad_end`` (same for W) and the output size is, in this order of
precedence:

- ``shrink_factor`` s only: ``(H_eff - 1) // s + 1``;
- ``zoom_factor`` z only: ``H_eff + (H_eff - 1) * (z - 1)``;
- ``height`` and ``width``: as given;
- both factors: shrink first, then zoom;
- (fork variant) a second bottom: its H and W.

``caffe_cpu_interp2`` then resizes the crop ``bottom[..., -pad_beg : -pad_beg + H_eff, (same for W)]``
bilinearly with align-corners coordinates: ``h1r = h2 * (H_eff - 1) / (H_out - 1)`` (0 when ``H_out == 1``),
``h1 = floor(h1r)``, ``lambda = h1r - h1``, the next row clamped at the border. That is ONNX
``Resize(mode="linear", coordinate_transformation_mode="align_corners")`` after a ``Slice`` for the crop.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from nnbridge.caffe.importer import LayerContext, caffe_layer


def _field(param: object, name: str) -> int | None:
    """An optional field of a fork's schema: its value when the schema has it and it is set."""
    descriptor = getattr(param, "DESCRIPTOR", None)
    if descriptor is None or name not in descriptor.fields_by_name:
        return None
    return int(getattr(param, name)) if param.HasField(name) else None  # type: ignore[attr-defined]


@caffe_layer("Upsample", notes="fork layer: nearest-neighbour upsampling by integer factors")
def upsample(ctx: LayerContext) -> list[ir.Value]:
    if len(ctx.inputs) != 1:
        raise ctx.fail(f"{len(ctx.inputs)} bottoms: the SegNet-style Upsample (max unpooling with a mask) is "
                       "not supported", hint="only the one-bottom nearest-neighbour Upsample is")
    shape = ctx.in_shape(0)
    if len(shape) != 4:
        raise ctx.fail(f"expects a 4-D bottom, got {shape}")
    param = ctx.layer.upsample_param
    scale = _field(param, "scale")
    factors = []
    for axis, name in ((2, "h"), (3, "w")):
        factor = _field(param, f"scale_{name}") or scale
        size = _field(param, f"upsample_{name}")
        if size is not None:
            if size % shape[axis]:
                raise ctx.fail(f"upsample_{name} {size} is not a multiple of the input size {shape[axis]}")
            factor = size // shape[axis]
        if factor is None:
            factor = int(param.scale)  # the schema's default
        if factor < 1:
            raise ctx.fail(f"scale factor {factor} must be a positive integer")
        factors.append(factor)
    scales = ctx.const("scales", np.asarray([1.0, 1.0, factors[0], factors[1]], dtype=np.float32))
    return [ctx.op1("Resize", [ctx.inputs[0], None, scales],
                    {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"})]


def interp_output_size(ctx: LayerContext, h_eff: int, w_eff: int) -> tuple[int, int]:
    param = ctx.layer.interp_param
    shrink = int(param.shrink_factor) if param.HasField("shrink_factor") else None
    zoom = int(param.zoom_factor) if param.HasField("zoom_factor") else None
    if len(ctx.inputs) > 1:
        ref = ctx.in_shape(1)
        return ref[2], ref[3]
    if shrink is not None and shrink < 1 or zoom is not None and zoom < 1:
        raise ctx.fail("shrink_factor and zoom_factor must be >= 1")
    if shrink is not None and zoom is None:
        return (h_eff - 1) // shrink + 1, (w_eff - 1) // shrink + 1
    if zoom is not None and shrink is None:
        return h_eff + (h_eff - 1) * (zoom - 1), w_eff + (w_eff - 1) * (zoom - 1)
    if param.HasField("height") and param.HasField("width"):
        return int(param.height), int(param.width)
    if shrink is not None and zoom is not None:
        h, w = (h_eff - 1) // shrink + 1, (w_eff - 1) // shrink + 1
        return h + (h - 1) * (zoom - 1), w + (w - 1) * (zoom - 1)
    raise ctx.fail("no output size: give zoom_factor, shrink_factor or height and width")


@caffe_layer("Interp", notes="DeepLab/PSPNet fork layer: bilinear, align-corners coordinates")
def interp(ctx: LayerContext) -> list[ir.Value]:
    shape = ctx.in_shape(0)
    if len(shape) != 4:
        raise ctx.fail(f"expects a 4-D bottom, got {shape}")
    param = ctx.layer.interp_param
    pad_beg, pad_end = int(param.pad_beg), int(param.pad_end)
    if pad_beg > 0 or pad_end > 0:
        raise ctx.fail(f"pad_beg {pad_beg} / pad_end {pad_end}: only non-positive padding (cropping) exists")
    n, c, h, w = shape
    h_eff, w_eff = h + pad_beg + pad_end, w + pad_beg + pad_end
    if h_eff < 1 or w_eff < 1:
        raise ctx.fail(f"cropping {pad_beg}, {pad_end} leaves nothing of the {h}x{w} input")
    h_out, w_out = interp_output_size(ctx, h_eff, w_eff)
    if h_out < 1 or w_out < 1:
        raise ctx.fail(f"output size {h_out}x{w_out} must be positive")
    data = ctx.inputs[0]
    if (h_eff, w_eff) != (h, w):
        data = ctx.op1("Slice", [data, ctx.int64s("starts", [-pad_beg, -pad_beg]),
                                 ctx.int64s("ends", [-pad_beg + h_eff, -pad_beg + w_eff]),
                                 ctx.int64s("axes", [2, 3])], suffix="crop")
    sizes = ctx.int64s("sizes", [n, c, h_out, w_out])
    return [ctx.op1("Resize", [data, None, None, sizes],
                    {"mode": "linear", "coordinate_transformation_mode": "align_corners"})]
