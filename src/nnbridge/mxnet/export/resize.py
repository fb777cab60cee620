"""Resize -> UpSampling (nearest) / BilinearResize2D (linear, align_corners); SSD ops refused.

- Nearest with ``coordinate_transformation_mode="asymmetric"``, ``nearest_mode="floor"`` and one integer
  scale ``s`` on both spatial axes (output ``= s * input``): ``y[i, j] = x[floor(i / s), floor(j / s)]``,
  which is MXNet ``UpSampling(scale=s, sample_type="nearest")`` (each value repeated ``s x s`` times).
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
        if rest_h or rest_w or scale_h != scale_w or scale_h < 1:
            raise ctx.fail(f"nearest resize {shape[2:]} -> {out[2:]} is not one integer scale")
        if scale_h > 1 and (transform != "asymmetric" or ctx.attr("nearest_mode", "round_prefer_floor") != "floor"):
            raise ctx.fail(f"nearest resize with {transform}/{ctx.attr('nearest_mode')} is not UpSampling's "
                           "floor(i / s) rule")
        ctx.emit("UpSampling", [ctx.x(0)], {"scale": scale_h, "sample_type": "nearest", "num_args": 1})
        return
    if mode == "linear" and transform == "align_corners":
        ctx.emit("_contrib_BilinearResize2D", [ctx.x(0)],
                 {"height": int(out[2]), "width": int(out[3]), "align_corners": True})
        return
    raise ctx.fail(f"resize mode {mode!r} with {transform!r} coordinates is not exported")


@mxnet_exporter("ai.nnbridge::PriorBox", "ai.nnbridge::DetectionOutput")
def ssd(ctx: ExportContext) -> None:
    raise ctx.fail("SSD layers (PriorBox/DetectionOutput) are not exported to MXNet yet "
                   "(_contrib_MultiBoxPrior/_contrib_MultiBoxDetection differ in layout; a later step)")
