"""Resize (nearest, integer scale factors) -> Upsample (dialects that have the fork layer) or an exact Deconvolution;
bilinear with ``align_corners`` coordinates (any sizes) -> the DeepLab fork's ``Interp`` where the dialect has it.

Nearest upsampling by an integer factor ``s`` reads input pixel ``i // s`` for output ``i``. ONNX's
nearest Resize does that exactly for ``coordinate_transformation_mode`` ``half_pixel`` /
``pytorch_half_pixel`` (``x = (i + 1/2)/s - 1/2 = q + (r + 1/2)/s - 1/2`` with ``i = qs + r``; the
fraction lies strictly inside (-1/2, 1/2), so every rounding mode gives ``q``) and for ``asymmetric``
with ``nearest_mode=floor`` (``floor(i/s) = q``).

In BVLC Caffe the same map is a depthwise ``Deconvolution`` (group = C, kernel = stride = s, all
weights 1, no bias): output ``i`` receives exactly one product ``x[i // s] * 1``. ``tf_half_pixel_for_nn``
with ``nearest_mode=floor`` (TensorFlow's half-pixel nearest) reads ``floor((i + 1/2)/s) = q`` as well.

Bilinear (``mode=linear``, ``half_pixel``/``pytorch_half_pixel`` coordinates, integer factors ``s``; TensorFlow's
``ResizeBilinear(half_pixel_centers=True)``): output ``o`` reads ``c = (o + 1/2)/s - 1/2`` with weights
``max(0, 1 - |c - i|)`` on inputs ``i``, coordinates clamped to the edge. Per axis that is the transposed
convolution ``sum_i x[clamp(i)] w[o + p - s i]`` with the triangle kernel ``w[t] = max(0, 1 - |t - p - (s-1)/2| / s)``
of ``k = 2s`` taps and ``p = s/2`` (``s`` even) or ``k = 2s - 1``, ``p = (s-1)/2`` (``s`` odd), over the input
extended by one replicated edge row/column on each side (only ``i = -1`` and ``i = H`` are ever read outside,
since ``-1 < c < H``). Caffe: ``Slice`` + ``Concat`` replicate the edges (copies), then one depthwise
``Deconvolution`` (group = C, kernel = outer product of the two axes' ``w``, stride ``s``, pad ``p + s``, no
bias). The same function as TensorFlow's (which interpolates as ``a + (b - a) t``); the two differ only by
float32 rounding.
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
    if mode not in ("nearest", "linear"):
        raise ctx.fail(f"mode {mode!r} is not exported (only nearest and linear with integer factors)")
    if (mode == "linear" and ctx.attr("coordinate_transformation_mode", "half_pixel") == "align_corners"
            and ctx.dialect.allows("Interp")):
        # DeepLab's Interp maps output o to input o (H - 1) / (Ho - 1) (0 when Ho = 1): ONNX's align_corners
        return [ctx.layer("Interp", [ctx.x(0)], [ctx.y(0)], "interp_param",
                          {"height": int(out[2]), "width": int(out[3])})]
    if any(o % i for o, i in zip(out[2:], shape[2:], strict=False)):
        raise ctx.fail(f"non-integer scale {shape[2:]} -> {out[2:]}")
    sh, sw = (o // i for o, i in zip(out[2:], shape[2:], strict=False))
    ctm = ctx.attr("coordinate_transformation_mode", "half_pixel")
    if mode == "linear":
        if ctm not in ("half_pixel", "pytorch_half_pixel") or ctx.node.op_type == "Upsample":
            raise ctx.fail(f"linear resize with coordinate_transformation_mode {ctm!r} is not exported "
                           "(only half_pixel: TensorFlow's half_pixel_centers, PyTorch's align_corners=False; "
                           "align_corners needs the Interp layer: --caffe-dialect opencv)")
        return _bilinear(ctx, shape, sh, sw)
    nearest = ctx.attr("nearest_mode", "round_prefer_floor")
    exact = ctm in ("half_pixel", "pytorch_half_pixel") or (ctm in ("asymmetric", "tf_half_pixel_for_nn")
                                                            and nearest == "floor") \
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


def _triangle(s: int) -> tuple[np.ndarray, int]:
    """(kernel, pad) of half-pixel linear upsampling by ``s`` as a transposed convolution (module docstring)."""
    k, p = (2 * s, s // 2) if s % 2 == 0 else (2 * s - 1, (s - 1) // 2)
    t = np.arange(k, dtype=np.float64)
    return np.maximum(0.0, 1.0 - np.abs(t - p - (s - 1) / 2.0) / s), p


def _edge_pad(ctx: ExportContext, x: str, axis: int, size: int, tag: str) -> tuple[list[Layer], str]:
    """``x`` with its first and last slice along ``axis`` repeated once on either side (Slice + Concat)."""
    padded = ctx.tmp(f"edge_{tag}")
    if size == 1:
        return [ctx.layer("Concat", [x, x, x], [padded], "concat_param", {"axis": axis}, suffix=f"edge_{tag}")], padded
    first, last = ctx.tmp(f"first_{tag}"), ctx.tmp(f"last_{tag}")
    points = [1] if size == 2 else [1, size - 1]
    tops = [first, last] if size == 2 else [first, ctx.tmp(f"middle_{tag}"), last]
    layers = [ctx.layer("Slice", [x], tops, "slice_param", {"axis": axis, "slice_point": points},
                        suffix=f"slice_{tag}")]
    if size > 2:
        layers.append(ctx.layer("Silence", [tops[1]], [], suffix=f"silence_{tag}"))
    layers.append(ctx.layer("Concat", [first, x, last], [padded], "concat_param", {"axis": axis},
                            suffix=f"edge_{tag}"))
    return layers, padded


def _bilinear(ctx: ExportContext, shape: tuple[int, ...], sh: int, sw: int) -> list[Layer]:
    channels = shape[1]
    if sh == sw == 1:
        return [ctx.layer("Split", [ctx.x(0)], [ctx.y(0)])]
    rows, top = _edge_pad(ctx, ctx.x(0), 2, shape[2], "h")
    cols, top = _edge_pad(ctx, top, 3, shape[3], "w")
    (wh, ph), (ww, pw) = _triangle(sh), _triangle(sw)
    kernel = np.outer(wh, ww).astype(np.float32)
    weights = np.ascontiguousarray(np.broadcast_to(kernel, (channels, 1, *kernel.shape)))
    fields = {"num_output": channels, "group": channels, "bias_term": False, "kernel_h": kernel.shape[0],
              "kernel_w": kernel.shape[1], "stride_h": sh, "stride_w": sw, "pad_h": ph + sh, "pad_w": pw + sw}
    return [*rows, *cols, ctx.layer("Deconvolution", [top], [ctx.y(0)], "convolution_param", fields,
                                    blobs=[weights])]
