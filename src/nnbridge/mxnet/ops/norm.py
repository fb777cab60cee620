"""Normalisation operators.

BatchNorm(data, gamma, beta, moving_mean, moving_var) at inference (MXNet 1.9.1 defaults: ``eps`` 1e-3,
``fix_gamma`` True, ``use_global_stats`` False, ``axis`` 1): inference always uses the moving statistics,
``y = (x - mean) / sqrt(var + eps) * gamma + beta`` along ``axis``; with ``fix_gamma`` the stored gamma is
ignored and 1 is used. ``axis == 1`` -> ``BatchNormalization``; other axes -> the same formula with
constants shaped to broadcast along ``axis``. ``output_mean_var`` is refused.

InstanceNorm(data, gamma, beta), ``eps`` 1e-3 -> ``InstanceNormalization``.

L2Normalization(data), ``eps`` 1e-10, ``mode`` instance: ``y = x / sqrt(sum(x^2) + eps)``, the sum over all
axes but the batch (instance), over axis 1 (channel) or over axes 2.. (spatial).

LRN(data), ``alpha`` 1e-4, ``beta`` 0.75, ``knorm`` 2, ``nsize`` required:
``y = x / (knorm + alpha / nsize * sum_{window} x^2) ^ beta`` across channels = ONNX ``LRN``.

LayerNorm(data, gamma, beta), ``axis`` -1, ``eps`` 1e-5: ``LayerNormalization`` over the last axis only.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from nnbridge.mxnet.importer import NodeContext, mxnet_op


@mxnet_op("BatchNorm", "BatchNorm_v1", "CuDNNBatchNorm")
def batch_norm(ctx: NodeContext) -> list[ir.Value]:
    shape = ctx.in_shape(0)
    axis = ctx.attrs.int("axis", 1)
    axis = axis + len(shape) if axis < 0 else axis
    if not 0 <= axis < len(shape):
        raise ctx.fail(f"axis {axis} is out of range for input {shape}")
    if ctx.attrs.bool("output_mean_var", False):
        raise ctx.fail("output_mean_var is not supported at inference")
    eps = ctx.attrs.float("eps", 1e-3)
    channels = shape[axis]
    fix_gamma = ctx.attrs.bool("fix_gamma", True)
    if fix_gamma:
        if ctx.is_param(1):
            ctx.array(1, (channels,))  # checked, then ignored
        gamma = ctx.f32("gamma_fixed", np.ones(channels, np.float32))
    else:
        gamma = ctx.check_param(1, (channels,))
    beta, mean, var = (ctx.check_param(i, (channels,)) for i in (2, 3, 4))
    if axis == 1 and len(shape) >= 2:
        return [ctx.op1("BatchNormalization", [ctx.value(0), gamma, beta, mean, var], {"epsilon": eps})]
    view = [1] * len(shape)
    view[axis] = channels
    target = ctx.int64s("view", view)
    g, b, m, v = (ctx.op1("Reshape", [t, target], suffix=f"{s}_view")
                  for t, s in ((gamma, "gamma"), (beta, "beta"), (mean, "mean"), (var, "var")))
    std = ctx.op1("Sqrt", [ctx.op1("Add", [v, ctx.f32("eps", eps)], suffix="var_eps")], suffix="std")
    centred = ctx.op1("Sub", [ctx.value(0), m], suffix="centred")
    scaled = ctx.op1("Mul", [ctx.op1("Div", [centred, std], suffix="normalized"), g], suffix="scaled")
    return [ctx.op1("Add", [scaled, b])]


@mxnet_op("InstanceNorm")
def instance_norm(ctx: NodeContext) -> list[ir.Value]:
    channels = ctx.in_shape(0)[1]
    inputs = [ctx.value(0), ctx.check_param(1, (channels,)), ctx.check_param(2, (channels,))]
    return [ctx.op1("InstanceNormalization", inputs, {"epsilon": ctx.attrs.float("eps", 1e-3)})]


@mxnet_op("L2Normalization")
def l2_normalization(ctx: NodeContext) -> list[ir.Value]:
    shape = ctx.in_shape(0)
    mode = ctx.attrs.str("mode", "instance")
    if mode == "instance":
        axes = list(range(1, len(shape)))
    elif mode == "channel":
        axes = [1]
    elif mode == "spatial":
        axes = list(range(2, len(shape)))
    else:
        raise ctx.fail(f"unknown mode {mode!r}")
    if not axes or len(shape) < 2:
        raise ctx.fail(f"mode {mode} needs more axes than {shape}")
    sumsq = ctx.op1("ReduceSumSquare", [ctx.value(0)], {"axes": axes, "keepdims": 1}, suffix="sumsq")
    eps = ctx.f32("eps", ctx.attrs.float("eps", 1e-10))
    norm = ctx.op1("Sqrt", [ctx.op1("Add", [sumsq, eps], suffix="add_eps")], suffix="norm")
    return [ctx.op1("Div", [ctx.value(0), norm])]


@mxnet_op("LRN")
def lrn(ctx: NodeContext) -> list[ir.Value]:
    attrs = {"size": ctx.attrs.int("nsize"), "alpha": ctx.attrs.float("alpha", 1e-4),
             "beta": ctx.attrs.float("beta", 0.75), "bias": ctx.attrs.float("knorm", 2.0)}
    return [ctx.op1("LRN", [ctx.value(0)], attrs)]


@mxnet_op("LayerNorm")
def layer_norm(ctx: NodeContext) -> list[ir.Value]:
    shape = ctx.in_shape(0)
    axis = ctx.attrs.int("axis", -1)
    if axis not in (-1, len(shape) - 1):
        raise ctx.fail(f"only the last axis is supported, not {axis}")
    if ctx.attrs.bool("output_mean_var", False):
        raise ctx.fail("output_mean_var is not supported at inference")
    inputs = [ctx.value(0), ctx.check_param(1, (shape[-1],)), ctx.check_param(2, (shape[-1],))]
    return [ctx.op1("LayerNormalization", inputs, {"axis": -1, "epsilon": ctx.attrs.float("eps", 1e-5)})]
