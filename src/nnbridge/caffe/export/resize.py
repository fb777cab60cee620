"""Resize (nearest, integer scale factors) -> Upsample (dialects that have the fork layer) or an exact Deconvolution.

Nearest upsampling by an integer factor ``s`` reads input pixel ``i // s`` for output ``i``. ONNX's
nearest Resize does that exactly for ``coordinate_transformation_mode`` ``half_pixel`` /
``pytorch_half_pixel`` (``x = (i + 1/2)/s - 1/2 = q + (r + 1/2)/s - 1/2`` with ``i = qs + r``; the
fraction lies strictly inside (-1/2, 1/2), so every rounding mode gives ``q``) and for ``asymmetric``
with ``nearest_mode=floor`` (``floor(i/s) = q``).

In BVLC Caffe the same map is a depthwise ``Deconvolution`` (group = C, kernel = stride = s, all
weights 1, no bias): output ``i`` receives exactly one product ``x[i // s] * 1``. Bilinear modes are
refused (not yet proven exact).
"""

from __future__ import annotations

import numpy as np

from nnbridge.caffe.export.context import ExportContext, Layer, caffe_exporter


@caffe_exporter("Resize", "Upsample")
def resize(ctx: ExportContext) -> list[Layer]:
    shape, out = ctx.shape(0), ctx.out_shape(0)
    if len(shape) != 4 or shape[:2] != out[:2]:
        raise ctx.fail(f"only spatial resizing of 4-D tensors is exported ({shape} -> {out})")
    mode = ctx.attr("mode", "nearest")
    if mode != "nearest":
        raise ctx.fail(f"mode {mode!r} is not exported (only nearest with integer factors)")
    if any(o % i for o, i in zip(out[2:], shape[2:], strict=False)):
        raise ctx.fail(f"non-integer scale {shape[2:]} -> {out[2:]}")
    sh, sw = (o // i for o, i in zip(out[2:], shape[2:], strict=False))
    ctm = ctx.attr("coordinate_transformation_mode", "half_pixel")
    nearest = ctx.attr("nearest_mode", "round_prefer_floor")
    exact = ctm in ("half_pixel", "pytorch_half_pixel") or (ctm == "asymmetric" and nearest == "floor") \
        or ctx.node.op_type == "Upsample"
    if not exact:
        raise ctx.fail(f"coordinate_transformation_mode {ctm!r} with nearest_mode {nearest!r} does not read "
                       "pixel i // s")
    if sh == sw and ctx.dialect.allows("Upsample"):
        return [ctx.layer("Upsample", [ctx.x(0)], [ctx.y(0)], "upsample_param", {"scale": sh})]
    channels = shape[1]
    fields = {"num_output": channels, "group": channels, "bias_term": False, "kernel_h": sh, "kernel_w": sw,
              "stride_h": sh, "stride_w": sw, "pad_h": 0, "pad_w": 0}
    return [ctx.layer("Deconvolution", [ctx.x(0)], [ctx.y(0)], "convolution_param", fields,
                      blobs=[np.ones((channels, 1, sh, sw), np.float32)])]
