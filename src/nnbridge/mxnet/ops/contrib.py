"""MXNet's SSD operators -> custom-domain nodes whose exact maths (with numpy references) live in
:mod:`nnbridge.hub.ops.mxnet_ssd`: _contrib_MultiBoxPrior -> ``ai.nnbridge::MultiBoxPrior``,
_contrib_MultiBoxDetection -> ``ai.nnbridge::MultiBoxDetection``. Defaults are MXNet 1.9.1's: MultiBoxPrior
``sizes`` (1,), ``ratios`` (1,), ``clip`` False, ``steps`` (-1, -1), ``offsets`` (0.5, 0.5); MultiBoxDetection
``clip`` True, ``threshold`` 0.01, ``background_id`` 0, ``nms_threshold`` 0.5, ``force_suppress`` False,
``variances`` (0.1, 0.1, 0.2, 0.2), ``nms_topk`` -1.
"""

from __future__ import annotations

import onnx_ir as ir

from nnbridge.hub.custom import CUSTOM_DOMAIN
from nnbridge.mxnet.importer import NodeContext, mxnet_op


@mxnet_op("_contrib_MultiBoxPrior", "MultiBoxPrior")
def multibox_prior(ctx: NodeContext) -> list[ir.Value]:
    if len(ctx.in_shape(0)) != 4:
        raise ctx.fail(f"input {ctx.in_shape(0)} must be 4-D")
    sizes = list(ctx.attrs.floats("sizes", (1.0,)))
    ratios = list(ctx.attrs.floats("ratios", (1.0,)))
    steps = list(ctx.attrs.floats("steps", (-1.0, -1.0)))
    offsets = list(ctx.attrs.floats("offsets", (0.5, 0.5)))
    if not sizes or not ratios or len(steps) != 2 or len(offsets) != 2:
        raise ctx.fail("needs sizes and ratios, and 2 steps and 2 offsets")
    if any(s <= 0 for s in sizes) or any(r <= 0 for r in ratios):
        raise ctx.fail(f"sizes {sizes} and ratios {ratios} must be positive")
    attrs = {"sizes": sizes, "ratios": ratios, "clip": int(ctx.attrs.bool("clip", False)), "steps": steps,
             "offsets": offsets}
    return [ctx.op1("MultiBoxPrior", [ctx.value(0)], attrs, domain=CUSTOM_DOMAIN)]


@mxnet_op("_contrib_MultiBoxDetection", "MultiBoxDetection")
def multibox_detection(ctx: NodeContext) -> list[ir.Value]:
    cls, loc, anchor = ctx.in_shape(0), ctx.in_shape(1), ctx.in_shape(2)
    if len(cls) != 3 or len(loc) != 2 or len(anchor) != 3 or anchor[2] != 4:
        raise ctx.fail(f"expects cls_prob (B, K, A), loc_pred (B, A * 4), anchor (1, A, 4); got {cls}, {loc}, "
                       f"{anchor}")
    if loc[1] != cls[2] * 4 or anchor[1] != cls[2] or loc[0] != cls[0]:
        raise ctx.fail(f"cls_prob {cls}, loc_pred {loc} and anchor {anchor} disagree on the anchor count")
    variances = list(ctx.attrs.floats("variances", (0.1, 0.1, 0.2, 0.2)))
    if len(variances) != 4:
        raise ctx.fail(f"variances must have 4 values, got {variances}")
    if ctx.attrs.int("background_id", 0) != 0:
        ctx.notes.append(f"{ctx.name}: background_id is ignored by MXNet's kernel (class 0 is background)")
    attrs = {
        "clip": int(ctx.attrs.bool("clip", True)),
        "threshold": ctx.attrs.float("threshold", 0.01),
        "nms_threshold": ctx.attrs.float("nms_threshold", 0.5),
        "force_suppress": int(ctx.attrs.bool("force_suppress", False)),
        "variances": variances,
        "nms_topk": ctx.attrs.int("nms_topk", -1),
    }
    inputs = [ctx.value(0), ctx.value(1), ctx.value(2)]
    return [ctx.op1("MultiBoxDetection", inputs, attrs, domain=CUSTOM_DOMAIN)]
