"""Normalisation layers: BatchNorm, Scale, Bias, LRN, MVN.

BatchNorm (batch_norm_layer.cpp). Blobs: running mean ``m`` (C,), running variance ``v`` (C,) and a
scale factor ``f`` (1,). With global statistics (the TEST-phase default, or ``use_global_stats:
true``): ``c = 0 if f == 0 else 1/f``; ``mean = c*m``; ``var = c*v``;
``y = (x - mean) / sqrt(var + eps)`` per channel (axis 1; ``eps`` default 1e-5). There is no learned
affine part (that is the following Scale layer): ONNX ``BatchNormalization(scale=1, B=0)`` with the
folded mean/var. With ``use_global_stats: false`` Caffe normalises with the statistics of the batch:
``mean = E[x]``, ``var = E[(x - mean)^2]`` over (N, spatial) per channel (biased), composed with
ReduceMean/Sub/Mul/Add/Sqrt/Div.

Scale (scale_layer.cpp): ``y = x * g (+ b)``, where ``g`` is the learned blob 0 (one bottom; shape
``x.shape[axis:axis+num_axes]``, ``num_axes = -1`` meaning "to the end", ``0`` a scalar) or the second
bottom (its own shape, applied from ``axis``); it is broadcast over the axes before ``axis`` and after
``axis + g.ndim``. ``bias_term`` adds a Bias with the same shape (blob 1, or blob 0 in the two-bottom
form). Bias (bias_layer.cpp): ``y = x + b`` with the same broadcasting rules. Mul / Add with ``g``
viewed as ``g.shape + (1,) * trailing``.

LRN (lrn_layer.cpp), ``n = local_size`` (odd), ``pre_pad = (n - 1)/2``:
ACROSS_CHANNELS: ``y = x * (k + alpha/n * sum_{c' in [c - pre_pad, c + pre_pad]} x_{c'}^2)^(-beta)``,
identical to ONNX ``LRN(size=n, alpha, beta, bias=k)`` for odd ``n``.
WITHIN_CHANNEL: Caffe builds Power(2) -> Pooling(AVE, kernel n, pad pre_pad, stride 1) ->
Power(power=-beta, scale=alpha, shift=1) -> Eltwise PROD, i.e.
``y = x * (1 + alpha/n^2 * sum_{n x n window} x^2)^(-beta)`` (``k`` is ignored; the AVE divisor is
always ``n^2`` because every window lies within ``[-pre_pad, H + pre_pad)``). Composed the same way
with Mul / AveragePool(count_include_pad=1) / Mul / Add / Pow / Mul.

MVN (mvn_layer.cpp): per sample (``across_channels``) or per sample and channel, over the remaining
axes: ``y = x - mean``; with ``normalize_variance``: ``y /= sqrt(E[(x - mean)^2]) + eps``
(``eps`` added to the standard deviation, default 1e-9).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import onnx_ir as ir

from nnbridge.caffe.importer import LayerContext, caffe_layer

ACROSS_CHANNELS, WITHIN_CHANNEL = 0, 1


def _has(param: Any, field: str) -> bool:
    return field in param.DESCRIPTOR.fields_by_name and param.HasField(field)


def _scalar(ctx: LayerContext, suffix: str, value: float) -> ir.Value:
    return ctx.const(suffix, np.asarray(value, dtype=np.float32))


# -- BatchNorm ------------------------------------------------------------------------------------
@caffe_layer("BatchNorm")
def batch_norm(ctx: LayerContext) -> list[ir.Value]:
    p = ctx.layer.batch_norm_param
    shape = ctx.in_shape(0)
    if len(shape) < 2:
        raise ctx.fail(f"input of shape {shape} has no channel axis")
    if _has(p, "use_alpha_beta") and p.use_alpha_beta:
        raise ctx.fail("use_alpha_beta (a fork extension) is not supported")
    channels = shape[1]
    eps = float(p.eps)
    use_global = bool(p.use_global_stats) if p.HasField("use_global_stats") else True  # TEST phase
    x = ctx.inputs[0]
    if not use_global:
        return [_batch_statistics(ctx, x, shape, eps)]
    mean = ctx.blob_array(0, (channels,), "mean")
    var = ctx.blob_array(1, (channels,), "var")
    factor = np.float32(ctx.blob_array(2, (1,), "scale_factor")[0])
    c = np.float32(0.0) if factor == 0 else np.float32(1.0) / factor  # float32, as Caffe divides
    # Caffe multiplies in float32 (caffe_cpu_scale), so do we.
    mean_c = (mean.astype(np.float32) * c).astype(np.float32)
    var_c = (var.astype(np.float32) * c).astype(np.float32)
    ones = np.ones((channels,), np.float32)
    return [ctx.op1("BatchNormalization", [
        x, ctx.const("scale", ones), ctx.const("bias", np.zeros_like(ones)),
        ctx.const("mean", mean_c), ctx.const("var", var_c),
    ], {"epsilon": eps, "momentum": 0.9, "training_mode": 0})]


def _batch_statistics(ctx: LayerContext, x: ir.Value, shape: tuple[int, ...], eps: float) -> ir.Value:
    axes = {"axes": [0, *range(2, len(shape))], "keepdims": 1}  # opset 17: axes is an attribute
    mean = ctx.op1("ReduceMean", [x], axes, suffix="mean")
    centred = ctx.op1("Sub", [x, mean], suffix="centre")
    square = ctx.op1("Mul", [centred, centred], suffix="square")
    var = ctx.op1("ReduceMean", [square], axes, suffix="var")
    std = ctx.op1("Sqrt", [ctx.op1("Add", [var, _scalar(ctx, "eps", eps)], suffix="var_eps")], suffix="std")
    return ctx.op1("Div", [centred, std])


# -- Scale / Bias ---------------------------------------------------------------------------------
def _param_shape(ctx: LayerContext, shape: tuple[int, ...], axis: int, num_axes: int) -> tuple[int, int]:
    """Canonical (axis, num_axes) of a learned Scale/Bias parameter."""
    rank = len(shape)
    if not -rank <= axis < rank:
        raise ctx.fail(f"axis {axis} is out of range for an input of rank {rank}")
    axis %= rank
    if num_axes == -1:
        num_axes = rank - axis
    if num_axes < 0 or axis + num_axes > rank:
        raise ctx.fail(f"num_axes {num_axes} from axis {axis} extends past the input's rank {rank}")
    return axis, num_axes


def _broadcastable(ctx: LayerContext, value: ir.Value, own_shape: tuple[int, ...], axis: int, rank: int,
                   suffix: str) -> ir.Value:
    """View a parameter applied from ``axis`` as ``own_shape + (1,)*trailing`` (a Reshape if needed)."""
    trailing = rank - axis - len(own_shape)
    if trailing == 0 or len(own_shape) == 0:
        return value
    target = [*own_shape, *([1] * trailing)]
    return ctx.op1("Reshape", [value, ctx.int64s(f"{suffix}_shape", target)], {"allowzero": 0},
                   suffix=f"{suffix}_view")


def _learned(ctx: LayerContext, index: int, kind: str, shape: tuple[int, ...], axis: int,
             num_axes: int) -> ir.Value:
    own = shape[axis:axis + num_axes]
    if num_axes == 0:  # a scalar: Caffe's blob has shape (), pycaffe and most files show it as (1,)
        return ctx.blob(index, (1,), kind, reshape=())
    trailing = len(shape) - axis - num_axes
    view = None if trailing == 0 else (*own, *([1] * trailing))
    return ctx.blob(index, own, kind, reshape=view)


def _check_second_bottom(ctx: LayerContext, shape: tuple[int, ...], axis: int) -> tuple[int, tuple[int, ...]]:
    other = ctx.in_shape(1)
    rank = len(shape)
    if len(other) == 0:
        return 0, other
    if not -rank <= axis < rank:
        raise ctx.fail(f"axis {axis} is out of range for an input of rank {rank}")
    axis %= rank
    if tuple(shape[axis:axis + len(other)]) != tuple(other):
        raise ctx.fail(f"second bottom of shape {other} does not match input {shape} from axis {axis}")
    return axis, other


@caffe_layer("Scale")
def scale(ctx: LayerContext) -> list[ir.Value]:
    p = ctx.layer.scale_param
    shape = ctx.in_shape(0)
    x = ctx.inputs[0]
    if len(ctx.inputs) > 1:
        axis, own = _check_second_bottom(ctx, shape, int(p.axis))
        gamma = _broadcastable(ctx, ctx.inputs[1], own, axis, len(shape), "scale")
        num_axes = len(own)
        bias_index = 0
    else:
        axis, num_axes = _param_shape(ctx, shape, int(p.axis), int(p.num_axes))
        gamma = _learned(ctx, 0, "gamma", shape, axis, num_axes)
        bias_index = 1
    if not p.bias_term:
        return [ctx.op1("Mul", [x, gamma])]
    y = ctx.op1("Mul", [x, gamma], suffix="scale")
    beta = _learned(ctx, bias_index, "beta", shape, axis, num_axes)
    return [ctx.op1("Add", [y, beta])]


@caffe_layer("Bias")
def bias(ctx: LayerContext) -> list[ir.Value]:
    p = ctx.layer.bias_param
    shape = ctx.in_shape(0)
    if len(ctx.inputs) > 1:
        axis, own = _check_second_bottom(ctx, shape, int(p.axis))
        b = _broadcastable(ctx, ctx.inputs[1], own, axis, len(shape), "bias")
    else:
        axis, num_axes = _param_shape(ctx, shape, int(p.axis), int(p.num_axes))
        b = _learned(ctx, 0, "beta", shape, axis, num_axes)
    return [ctx.op1("Add", [ctx.inputs[0], b])]


# -- LRN -----------------------------------------------------------------------------------------
@caffe_layer("LRN")
def lrn(ctx: LayerContext) -> list[ir.Value]:
    p = ctx.layer.lrn_param
    shape = ctx.in_shape(0)
    if len(shape) != 4:
        raise ctx.fail(f"input must be 4-D (N, C, H, W), not {shape}")
    size = int(p.local_size)
    if size <= 0 or size % 2 == 0:
        raise ctx.fail(f"local_size must be odd and positive, not {size}")
    alpha, beta = float(p.alpha), float(p.beta)
    x = ctx.inputs[0]
    region = int(p.norm_region)
    if region == ACROSS_CHANNELS:
        return [ctx.op1("LRN", [x], {"size": size, "alpha": alpha, "beta": beta, "bias": float(p.k)})]
    if region != WITHIN_CHANNEL:
        raise ctx.fail(f"unknown norm_region {region}")
    pre_pad = (size - 1) // 2
    square = ctx.op1("Mul", [x, x], suffix="square")
    pooled = ctx.op1("AveragePool", [square], {
        "auto_pad": "NOTSET", "kernel_shape": [size, size], "strides": [1, 1],
        "pads": [pre_pad] * 4, "count_include_pad": 1, "ceil_mode": 0,
    }, suffix="pool")
    scaled = ctx.op1("Mul", [pooled, _scalar(ctx, "alpha", alpha)], suffix="alpha")
    shifted = ctx.op1("Add", [scaled, _scalar(ctx, "one", 1.0)], suffix="shift")
    power = ctx.op1("Pow", [shifted, _scalar(ctx, "neg_beta", -beta)], suffix="power")
    return [ctx.op1("Mul", [x, power])]


# -- MVN -----------------------------------------------------------------------------------------
@caffe_layer("MVN")
def mvn(ctx: LayerContext) -> list[ir.Value]:
    p = ctx.layer.mvn_param
    shape = ctx.in_shape(0)
    first = 1 if p.across_channels else 2
    if len(shape) < first or math.prod(shape[first:]) == 0:
        raise ctx.fail(f"input of shape {shape} has nothing to normalise")
    axes = {"axes": list(range(first, len(shape))), "keepdims": 1}  # opset 17: axes is an attribute
    x = ctx.inputs[0]
    mean = ctx.op1("ReduceMean", [x], axes, suffix="mean")
    if not p.normalize_variance:
        return [ctx.op1("Sub", [x, mean])]
    centred = ctx.op1("Sub", [x, mean], suffix="centre")
    square = ctx.op1("Mul", [centred, centred], suffix="square")
    var = ctx.op1("ReduceMean", [square], axes, suffix="var")
    std = ctx.op1("Sqrt", [var], suffix="std")
    denom = ctx.op1("Add", [std, _scalar(ctx, "eps", float(p.eps))], suffix="std_eps")
    return [ctx.op1("Div", [centred, denom])]
