"""Element-wise activation layers and Softmax / Dropout.

Caffe formulas (src/caffe/layers/*_layer.cpp) and their ONNX forms:

- ReLU:      ``max(x, 0) + negative_slope * min(x, 0)`` -> ``Relu`` (slope 0) or ``LeakyRelu(alpha=slope)``.
- ReLU6 (fork layer, relu6_layer.cpp): ``min(max(x, 0) + negative_slope * min(x, 0), threshold)``,
  threshold default 6 -> ``Clip(0, threshold)`` (slope 0) or ``LeakyRelu`` + ``Clip(max=threshold)``.
- PReLU:     ``max(x, 0) + a_c * min(x, 0)`` with ``a`` of shape (C,) on axis 1, or (1,) when
  ``channel_shared`` -> ``PRelu`` with the slope viewed as ``(C, 1, ..., 1)``.
- ELU:       ``x > 0 ? x : alpha * (exp(x) - 1)`` -> ``Elu(alpha)``.
- Sigmoid, TanH, AbsVal -> ``Sigmoid``, ``Tanh``, ``Abs``.
- BNLL:      ``x > 0 ? x + log(1 + exp(-x)) : log(1 + exp(x))`` = ``log(1 + exp(x))`` ->
  ``Softplus`` (onnxruntime evaluates it in the same overflow-safe form).
- Power:     ``(shift + scale * x) ^ power``; Caffe skips the multiply when scale == 1, the add when
  shift == 0 and the power when power == 1; when ``power * scale == 0`` the output is the constant
  ``1`` (power 0) or ``shift ^ power`` -> Mul / Add / Pow, or Expand of the constant.
- Exp:       ``base ^ (shift + scale * x)`` (base -1 = e), computed by Caffe as
  ``outer * exp(inner * x)`` with ``inner = ln(base) * scale`` and ``outer = base ^ shift`` ->
  Mul / Exp / Mul in that order.
- Log:       ``log_base(shift + scale * x)`` (base -1 = e), computed as
  ``ln(shift + scale * x) * (1 / ln(base))`` -> Mul / Add / Log / Mul.
- Threshold: ``x > threshold ? 1 : 0`` -> ``Greater`` + ``Cast``.
- Clip:      ``max(min, min(x, max))`` -> ``Clip(min, max)`` (refused when min > max).
- Swish:     ``x * sigmoid(beta * x)`` -> Mul / Sigmoid / Mul.
- Dropout:   identity at inference (Caffe scales at training time), except with the fork/legacy
  field ``scale_train: false``, where the TEST output is ``x * (1 - dropout_ratio)``.
- Softmax:   ``exp(x - max) / sum(exp(x - max))`` along ``axis`` (default 1) -> ``Softmax(axis)``
  (opset >= 13 normalises along that single axis, like Caffe).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import onnx_ir as ir

from nnbridge.caffe.importer import LayerContext, caffe_layer


def _has(param: Any, field: str) -> bool:
    return field in param.DESCRIPTOR.fields_by_name and param.HasField(field)


def _param(ctx: LayerContext, name: str) -> Any:
    if name not in ctx.layer.DESCRIPTOR.fields_by_name:
        raise ctx.fail(f"this Caffe schema has no {name}")
    return getattr(ctx.layer, name)


def _scalar(ctx: LayerContext, suffix: str, value: float) -> ir.Value:
    return ctx.const(suffix, np.asarray(value, dtype=np.float32))


@caffe_layer("ReLU")
def relu(ctx: LayerContext) -> list[ir.Value]:
    slope = float(ctx.layer.relu_param.negative_slope)
    if slope == 0.0:
        return [ctx.op1("Relu", [ctx.inputs[0]])]
    return [ctx.op1("LeakyRelu", [ctx.inputs[0]], {"alpha": slope})]


@caffe_layer("ReLU6")
def relu6(ctx: LayerContext) -> list[ir.Value]:
    slope, threshold = 0.0, 6.0
    if "relu6_param" in ctx.layer.DESCRIPTOR.fields_by_name:
        p = ctx.layer.relu6_param
        slope = float(p.negative_slope) if _has(p, "negative_slope") else 0.0
        threshold = float(p.threshold) if _has(p, "threshold") else 6.0
    top = _scalar(ctx, "max", threshold)
    if slope == 0.0 and threshold >= 0.0:
        return [ctx.op1("Clip", [ctx.inputs[0], _scalar(ctx, "min", 0.0), top])]
    leaky = ctx.op1("LeakyRelu", [ctx.inputs[0]], {"alpha": slope}, suffix="leaky")
    return [ctx.op1("Min", [leaky, top])]


@caffe_layer("PReLU")
def prelu(ctx: LayerContext) -> list[ir.Value]:
    shape = ctx.in_shape(0)
    shared = bool(ctx.layer.prelu_param.channel_shared)
    if shared:
        slope = ctx.blob(0, (1,), "slope")
    else:
        if len(shape) < 2:
            raise ctx.fail(f"input of shape {shape} has no channel axis", hint="use channel_shared: true")
        view = (shape[1], *([1] * (len(shape) - 2)))
        slope = ctx.blob(0, (shape[1],), "slope", reshape=view)
    return [ctx.op1("PRelu", [ctx.inputs[0], slope])]


@caffe_layer("ELU")
def elu(ctx: LayerContext) -> list[ir.Value]:
    return [ctx.op1("Elu", [ctx.inputs[0]], {"alpha": float(ctx.layer.elu_param.alpha)})]


@caffe_layer("Sigmoid")
def sigmoid(ctx: LayerContext) -> list[ir.Value]:
    return [ctx.op1("Sigmoid", [ctx.inputs[0]])]


@caffe_layer("TanH")
def tanh(ctx: LayerContext) -> list[ir.Value]:
    return [ctx.op1("Tanh", [ctx.inputs[0]])]


@caffe_layer("AbsVal")
def absval(ctx: LayerContext) -> list[ir.Value]:
    return [ctx.op1("Abs", [ctx.inputs[0]])]


@caffe_layer("BNLL")
def bnll(ctx: LayerContext) -> list[ir.Value]:
    return [ctx.op1("Softplus", [ctx.inputs[0]])]


def _affine(ctx: LayerContext, x: ir.Value, scale: float, shift: float, last: bool) -> ir.Value:
    """``shift + scale * x`` the way Caffe computes it (skipping the identity steps)."""
    if scale != 1.0:
        x = ctx.op1("Mul", [x, _scalar(ctx, "scale", scale)], suffix=None if last and shift == 0 else "scale")
    if shift != 0.0:
        x = ctx.op1("Add", [x, _scalar(ctx, "shift", shift)], suffix=None if last else "shift")
    return x


@caffe_layer("Power")
def power(ctx: LayerContext) -> list[ir.Value]:
    p = ctx.layer.power_param
    pw, scale, shift = float(p.power), float(p.scale), float(p.shift)
    x = ctx.inputs[0]
    if np.float32(pw) * np.float32(scale) == 0:
        value = np.float32(1.0) if pw == 0 else np.float32(shift) ** np.float32(pw)
        shape = ctx.int64s("shape", ctx.in_shape(0))
        return [ctx.op1("Expand", [_scalar(ctx, "value", float(value)), shape])]
    if pw == 1.0:
        if scale == 1.0 and shift == 0.0:
            return [ctx.op1("Identity", [x])]
        return [_affine(ctx, x, scale, shift, last=True)]
    base = _affine(ctx, x, scale, shift, last=False)
    return [ctx.op1("Pow", [base, _scalar(ctx, "power", pw)])]


def _ln(value: float) -> np.float32:
    return np.float32(np.log(np.float32(value)))


@caffe_layer("Exp")
def exp(ctx: LayerContext) -> list[ir.Value]:
    p = ctx.layer.exp_param
    base, scale, shift = float(p.base), float(p.scale), float(p.shift)
    if base != -1.0 and not base > 0:
        raise ctx.fail(f"base must be positive or -1 (e), not {base}")
    log_base = np.float32(1.0) if base == -1.0 else _ln(base)
    inner = float(log_base * np.float32(scale))
    if shift == 0.0:
        outer = 1.0
    else:
        outer = float(np.exp(np.float32(shift)) if base == -1.0 else np.float32(base) ** np.float32(shift))
    x = ctx.inputs[0]
    if inner != 1.0:
        x = ctx.op1("Mul", [x, _scalar(ctx, "inner_scale", inner)], suffix="scale")
    if outer == 1.0:
        return [ctx.op1("Exp", [x])]
    y = ctx.op1("Exp", [x], suffix="exp")
    return [ctx.op1("Mul", [y, _scalar(ctx, "outer_scale", outer)])]


@caffe_layer("Log")
def log(ctx: LayerContext) -> list[ir.Value]:
    p = ctx.layer.log_param
    base, scale, shift = float(p.base), float(p.scale), float(p.shift)
    if base != -1.0 and not (base > 0 and base != 1):
        raise ctx.fail(f"base must be positive and not 1, or -1 (e), not {base}")
    base_scale = 1.0 if base == -1.0 else float(np.float32(1.0) / _ln(base))
    x = _affine(ctx, ctx.inputs[0], scale, shift, last=False)
    if base_scale == 1.0:
        return [ctx.op1("Log", [x])]
    y = ctx.op1("Log", [x], suffix="log")
    return [ctx.op1("Mul", [y, _scalar(ctx, "base_scale", base_scale)])]


@caffe_layer("Threshold")
def threshold(ctx: LayerContext) -> list[ir.Value]:
    t = float(ctx.layer.threshold_param.threshold)
    mask = ctx.op1("Greater", [ctx.inputs[0], _scalar(ctx, "threshold", t)], suffix="greater")
    return [ctx.op1("Cast", [mask], {"to": ir.DataType.FLOAT})]


@caffe_layer("Clip")
def clip(ctx: LayerContext) -> list[ir.Value]:
    p = _param(ctx, "clip_param")
    lo, hi = float(p.min), float(p.max)
    if math.isnan(lo) or math.isnan(hi) or lo > hi:
        raise ctx.fail(f"min {lo} must not exceed max {hi}")
    return [ctx.op1("Clip", [ctx.inputs[0], _scalar(ctx, "min", lo), _scalar(ctx, "max", hi)])]


@caffe_layer("Swish")
def swish(ctx: LayerContext) -> list[ir.Value]:
    beta = float(_param(ctx, "swish_param").beta)
    x = ctx.inputs[0]
    z = x if beta == 1.0 else ctx.op1("Mul", [x, _scalar(ctx, "beta", beta)], suffix="beta")
    return [ctx.op1("Mul", [x, ctx.op1("Sigmoid", [z], suffix="sigmoid")])]


@caffe_layer("Dropout")
def dropout(ctx: LayerContext) -> list[ir.Value]:
    p = ctx.layer.dropout_param
    if _has(p, "scale_train") and not p.scale_train:
        keep = float(np.float32(1.0) - np.float32(p.dropout_ratio))
        return [ctx.op1("Mul", [ctx.inputs[0], _scalar(ctx, "keep", keep)])]
    return [ctx.op1("Identity", [ctx.inputs[0]])]


@caffe_layer("Softmax")
def softmax(ctx: LayerContext) -> list[ir.Value]:
    rank = len(ctx.in_shape(0))
    axis = int(ctx.layer.softmax_param.axis)
    if not -rank <= axis < rank:
        raise ctx.fail(f"axis {axis} is out of range for an input of rank {rank}")
    return [ctx.op1("Softmax", [ctx.inputs[0]], {"axis": axis % rank})]
