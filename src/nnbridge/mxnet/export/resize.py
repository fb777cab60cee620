"""Resize -> UpSampling/repeat (nearest) / BilinearResize2D (linear: half_pixel, align_corners); SSD ops refused.

- Nearest with integer scales ``s`` (output ``= s * input``) whose coordinates read pixel ``floor(i / s)``:
  ``asymmetric`` or ``tf_half_pixel_for_nn`` (``floor((i + 1/2) / s)``) with ``nearest_mode="floor"``, or
  ``half_pixel``/``pytorch_half_pixel`` with any rounding (``(i + 1/2)/s - 1/2`` lies strictly within 1/2 of
  ``floor(i / s)``; see :mod:`nnbridge.caffe.export.resize`): ``y[i, j] = x[floor(i / s_h), floor(j / s_w)]``,
  which is MXNet ``UpSampling(scale=s, sample_type="nearest")`` for one scale (each value repeated ``s x s``
  times), else ``repeat(axis=2)`` then ``repeat(axis=3)`` (copies).
- Linear with ``half_pixel``/``pytorch_half_pixel`` coordinates (TensorFlow's ``half_pixel_centers``):
  ``_contrib_BilinearResize2D(align_corners=False)``, whose source coordinate is ``(o + 1/2) H/Ho - 1/2``
  clamped at 0, the upper neighbour clamped at ``H - 1`` (PyTorch's rule, the same function).
- Linear with ``coordinate_transformation_mode="align_corners"`` on 4-D NCHW:
  source coordinate ``i (H - 1) / (Ho - 1)``, bilinear weights; MXNet 1.9
  ``_contrib_BilinearResize2D(height, width, align_corners=True)`` uses the same ratio
  ``(H - 1)/(Ho - 1)`` (``area_pixel_compute_scale`` with align_corners).
- Custom-domain ``PriorBox``/``DetectionOutput`` are refused for now (SSD export is a later step).
"""

from __future__ import annotations

from nnbridge.mxnet.export.context import ExportContext, mxnet_exporter


@mxnet_exporter("Resize")
def resize(ctx: ExportContext) -> None:
    shape, out = ctx.shape(0), ctx.out_shape(0)
    if len(shape) != 4 or tuple(shape[:2]) != tuple(out[:2]):
        raise ctx.fail(f"only spatial resizing of 4-D NCHW tensors is exported ({shape} -> {out})")
    mode = ctx.attr("mode", "nearest")
    transform = ctx.attr("coordinate_transformation_mode", "half_pixel")
    if mode == "nearest":
        scale_h, rest_h = divmod(out[2], shape[2])
        scale_w, rest_w = divmod(out[3], shape[3])
        if rest_h or rest_w or scale_h < 1 or scale_w < 1:
            raise ctx.fail(f"nearest resize {shape[2:]} -> {out[2:]} is not by integer scales")
        floor = ctx.attr("nearest_mode", "round_prefer_floor") == "floor"
        if max(scale_h, scale_w) > 1 and not (transform in ("half_pixel", "pytorch_half_pixel") or
                                              (transform in ("asymmetric", "tf_half_pixel_for_nn") and floor)):
            raise ctx.fail(f"nearest resize with {transform}/{ctx.attr('nearest_mode')} is not the floor(i / s) rule")
        if scale_h == scale_w:
            ctx.emit("UpSampling", [ctx.x(0)], {"scale": scale_h, "sample_type": "nearest", "num_args": 1})
            return
        rows = ctx.tmp("repeat", [ctx.x(0)], {"repeats": scale_h, "axis": 2}, suffix="repeat_h")
        ctx.emit("repeat", [rows], {"repeats": scale_w, "axis": 3})
        return
    if mode == "linear" and transform in ("align_corners", "half_pixel", "pytorch_half_pixel"):
        ctx.emit("_contrib_BilinearResize2D", [ctx.x(0)],
                 {"height": int(out[2]), "width": int(out[3]), "align_corners": transform == "align_corners"})
        return
    raise ctx.fail(f"resize mode {mode!r} with {transform!r} coordinates is not exported")


@mxnet_exporter("ai.nnbridge::PriorBox", "ai.nnbridge::DetectionOutput")
def ssd(ctx: ExportContext) -> None:
    raise ctx.fail("SSD layers (PriorBox/DetectionOutput) are not exported to MXNet yet "
                   "(_contrib_MultiBoxPrior/_contrib_MultiBoxDetection differ in layout; a later step)")
