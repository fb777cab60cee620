"""SSD layers (weiliu89/caffe): Normalize as standard ops; PriorBox and DetectionOutput as custom-domain nodes.

Normalize (``normalize_layer.cpp``), bottom x (N, C, ...), scale blob ``s`` of shape (1,) when
``channel_shared`` else (C,):

- ``across_spatial`` (default): per sample ``norm = sqrt(sum(x[n]^2) + eps)``, ``top = x * (1 / norm)``;
- otherwise per sample and position ``norm = sqrt(sum_c(x[n, :, p]^2) + eps)``, ``top = x / norm``;
- then ``top *= s`` (broadcast over C when not channel-shared). ``eps`` defaults to 1e-10.

-> ``ReduceSumSquare`` (keepdims), ``Add`` eps, ``Sqrt``, then ``Reciprocal`` + ``Mul`` (across spatial) or
``Div``, then ``Mul`` by the scale.

PriorBox and DetectionOutput have no ONNX equivalent: they become nodes of the custom domain whose maths and
attributes are documented (with a numpy reference) in :mod:`nnbridge.hub.ops.ssd`. PriorBox keeps both
bottoms (only their shapes matter); DetectionOutput takes loc, conf and priors.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx_ir as ir

from nnbridge.caffe.importer import LayerContext, caffe_layer
from nnbridge.hub.custom import CUSTOM_DOMAIN
from nnbridge.hub.ops.ssd import num_priors


@caffe_layer("Normalize", notes="SSD fork layer: L2 normalisation with a learned scale")
def normalize(ctx: LayerContext) -> list[ir.Value]:
    param = ctx.layer.norm_param
    shape = ctx.in_shape(0)
    if len(shape) < 2:
        raise ctx.fail(f"expects at least 2 axes, got {shape}")
    channels = shape[1]
    shared = bool(param.channel_shared)
    axes = list(range(1, len(shape))) if param.across_spatial else [1]
    x = ctx.inputs[0]
    sumsq = ctx.op1("ReduceSumSquare", [x], {"axes": axes, "keepdims": 1}, suffix="sumsq")
    eps = ctx.const("eps", np.asarray(param.eps, dtype=np.float32))
    norm = ctx.op1("Sqrt", [ctx.op1("Add", [sumsq, eps], suffix="add_eps")], suffix="norm")
    if param.across_spatial:
        normalized = ctx.op1("Mul", [x, ctx.op1("Reciprocal", [norm], suffix="inv_norm")], suffix="normalized")
    else:
        normalized = ctx.op1("Div", [x, norm], suffix="normalized")
    if shared:
        scale = ctx.blob(0, (1,), "gamma")
    else:
        scale = ctx.blob(0, (channels,), "gamma", reshape=(channels, *[1] * (len(shape) - 2)))
    return [ctx.op1("Mul", [normalized, scale])]


def _floats(values: Any) -> list[float]:
    return [float(v) for v in values]


@caffe_layer("PriorBox", notes="SSD fork layer -> custom op ai.nnbridge::PriorBox")
def prior_box(ctx: LayerContext) -> list[ir.Value]:
    param = ctx.layer.prior_box_param
    if len(ctx.inputs) != 2:
        raise ctx.fail(f"needs 2 bottoms (feature map, image), got {len(ctx.inputs)}")
    if len(ctx.in_shape(0)) != 4 or len(ctx.in_shape(1)) != 4:
        raise ctx.fail(f"bottoms must be 4-D, got {ctx.in_shape(0)} and {ctx.in_shape(1)}")
    min_sizes, max_sizes = _floats(param.min_size), _floats(param.max_size)
    if not min_sizes or any(m <= 0 for m in min_sizes):
        raise ctx.fail("min_size must be given and positive")
    if max_sizes and (len(max_sizes) != len(min_sizes) or any(int(M) <= int(m) for m, M in
                                                                 zip(min_sizes, max_sizes, strict=True))):
        raise ctx.fail("max_size needs one value per min_size, each larger than it")
    variance = _floats(param.variance)
    if len(variance) not in (0, 1, 4) or any(v <= 0 for v in variance):
        raise ctx.fail(f"variance must be 1 or 4 positive values, got {variance}")
    if (param.HasField("img_h") or param.HasField("img_w")) and param.HasField("img_size"):
        raise ctx.fail("give either img_size or img_h/img_w, not both")
    if (param.HasField("step_h") or param.HasField("step_w")) and param.HasField("step"):
        raise ctx.fail("give either step or step_h/step_w, not both")
    img_h = int(param.img_h) if param.HasField("img_h") or param.HasField("img_w") else int(param.img_size)
    img_w = int(param.img_w) if param.HasField("img_h") or param.HasField("img_w") else int(param.img_size)
    step_h = float(param.step_h) if param.HasField("step_h") or param.HasField("step_w") else float(param.step)
    step_w = float(param.step_w) if param.HasField("step_h") or param.HasField("step_w") else float(param.step)
    attrs: dict[str, Any] = {
        "min_size": min_sizes,
        "max_size": max_sizes or None,
        "aspect_ratio": _floats(param.aspect_ratio) or None,
        "flip": int(param.flip),
        "clip": int(param.clip),
        "variance": variance or [0.1],
        "img_h": img_h,
        "img_w": img_w,
        "step_h": step_h,
        "step_w": step_w,
        "offset": float(param.offset),
    }
    if num_priors({k: v for k, v in attrs.items() if v is not None}) < 1:
        raise ctx.fail("no prior boxes")
    return [ctx.op1("PriorBox", ctx.inputs, attrs, domain=CUSTOM_DOMAIN)]


@caffe_layer("DetectionOutput", notes="SSD fork layer -> custom op ai.nnbridge::DetectionOutput")
def detection_output(ctx: LayerContext) -> list[ir.Value]:
    param = ctx.layer.detection_output_param
    if len(ctx.inputs) != 3:
        raise ctx.fail(f"needs 3 bottoms (loc, conf, priors), got {len(ctx.inputs)}",
                       hint="the 4-bottom ARM variant (RefineDet) is not supported")
    if not param.HasField("num_classes"):
        raise ctx.fail("num_classes must be given")
    num_classes = int(param.num_classes)
    share = bool(param.share_location)
    loc, conf, prior = ctx.in_shape(0), ctx.in_shape(1), ctx.in_shape(2)
    if len(prior) < 3 or prior[2] % 4:
        raise ctx.fail(f"priors must be (1, 2, P * 4), got {prior}")
    count = prior[2] // 4
    per_loc = 1 if share else num_classes
    if int(np.prod(loc[1:])) != count * per_loc * 4 or int(np.prod(conf[1:])) != count * num_classes:
        raise ctx.fail(f"loc {loc} / conf {conf} do not match {count} priors and {num_classes} classes")
    nms = param.nms_param
    eta = float(nms.eta)
    if float(nms.nms_threshold) < 0 or not 0 < eta <= 1:
        raise ctx.fail("nms_threshold must be >= 0 and eta in (0, 1]")
    if param.save_output_param.output_directory:
        ctx.notes.append(f"DetectionOutput {ctx.name!r}: save_output_param is ignored (no files are written)")
    attrs: dict[str, Any] = {
        "num_classes": num_classes,
        "share_location": int(share),
        "background_label_id": int(param.background_label_id),
        "code_type": int(param.code_type),
        "variance_encoded_in_target": int(param.variance_encoded_in_target),
        "keep_top_k": int(param.keep_top_k),
        "confidence_threshold": float(param.confidence_threshold) if param.HasField("confidence_threshold")
        else -float(np.finfo(np.float32).max),
        "nms_threshold": float(nms.nms_threshold),
        "top_k": int(nms.top_k) if nms.HasField("top_k") else -1,
        "eta": eta,
    }
    return [ctx.op1("DetectionOutput", ctx.inputs, attrs, domain=CUSTOM_DOMAIN)]
