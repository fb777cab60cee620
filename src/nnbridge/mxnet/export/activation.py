"""Activations and element-wise math.

- ``Relu``/``Sigmoid``/``Tanh``/``Softplus`` -> ``Activation`` (``relu``/``sigmoid``/``tanh``/
  ``softrelu``; softrelu is ``log(1 + exp(x))``, ONNX Softplus).
- ``LeakyRelu(alpha)`` -> ``LeakyReLU(act_type=leaky, slope)``; ``Elu(alpha)`` ->
  ``LeakyReLU(act_type=elu, slope=alpha)`` (``alpha (exp(x) - 1)`` for ``x <= 0``).
- ``PRelu(x, slope)`` -> ``LeakyReLU(act_type=prelu, gamma)``: MXNet's gamma is ``(C,)`` applied along
  axis 1, or ``(1,)`` shared; other slope shapes are refused.
- ``Clip(min, max)``: both -> ``clip(a_min, a_max)`` (ReLU6 is ``clip(0, 6)``, exact); only ``min`` ->
  ``_maximum_scalar`` (``relu`` when 0); only ``max`` -> ``_minimum_scalar``.
- ``HardSigmoid(alpha, beta)`` -> ``hard_sigmoid`` (``max(0, min(1, alpha x + beta))``, same formula).
- ``Softmax(axis)`` / ``LogSoftmax(axis)`` (opset 13 semantics: one axis) -> ``softmax`` / ``log_softmax``.
- ``Exp Log Abs Sqrt Neg Reciprocal`` -> ``exp log abs sqrt negative reciprocal``; ``Pow(x, c)`` with a
  constant scalar ``c`` -> ``_power_scalar`` (``square`` for 2, ``sqrt`` for 0.5).
"""

from __future__ import annotations

import numpy as np

from nnbridge.hub.passes.graph import channel_vector
from nnbridge.mxnet.export.context import ExportContext, mxnet_exporter

ACTIVATIONS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Softplus": "softrelu", "Softsign": "softsign"}
UNARY = {"Exp": "exp", "Log": "log", "Abs": "abs", "Sqrt": "sqrt", "Neg": "negative", "Reciprocal": "reciprocal",
         "Floor": "floor", "Ceil": "ceil", "Erf": "erf"}


@mxnet_exporter(*ACTIVATIONS)
def activation(ctx: ExportContext) -> None:
    ctx.emit("Activation", [ctx.x(0)], {"act_type": ACTIVATIONS[ctx.node.op_type]})


@mxnet_exporter(*UNARY)
def unary(ctx: ExportContext) -> None:
    ctx.emit(UNARY[ctx.node.op_type], [ctx.x(0)])


@mxnet_exporter("LeakyRelu")
def leaky_relu(ctx: ExportContext) -> None:
    ctx.emit("LeakyReLU", [ctx.x(0)], {"act_type": "leaky", "slope": float(ctx.attr("alpha", 0.01))})


@mxnet_exporter("Elu")
def elu(ctx: ExportContext) -> None:
    ctx.emit("LeakyReLU", [ctx.x(0)], {"act_type": "elu", "slope": float(ctx.attr("alpha", 1.0))})


@mxnet_exporter("PRelu")
def prelu(ctx: ExportContext) -> None:
    shape = ctx.shape(0)
    slope = ctx.need_const(1, "the slope")
    if slope.size == 1:
        gamma = slope.reshape(1).astype(np.float32)
    else:
        vector = channel_vector(slope, len(shape), shape[1]) if len(shape) >= 2 else None
        if vector is None:
            raise ctx.fail(f"slope of shape {slope.shape} is neither per-channel nor shared")
        gamma = vector
    ctx.emit("LeakyReLU", [ctx.x(0), ctx.param("gamma", np.ascontiguousarray(gamma))], {"act_type": "prelu"})


def _scalar(ctx: ExportContext, i: int, name: str) -> float | None:
    if ctx.input(i) is not None:
        array = ctx.need_const(i, name)
        if array.size != 1:
            raise ctx.fail(f"{name} must be a scalar")
        return float(array.reshape(-1)[0])
    value = ctx.attr(name)
    return None if value is None else float(value)


@mxnet_exporter("Clip")
def clip(ctx: ExportContext) -> None:
    low, high = _scalar(ctx, 1, "min"), _scalar(ctx, 2, "max")
    x = ctx.x(0)
    if low is not None and high is not None:
        ctx.emit("clip", [x], {"a_min": low, "a_max": high})
    elif low is not None:
        if low == 0.0:
            ctx.emit("Activation", [x], {"act_type": "relu"})
        else:
            ctx.emit("_maximum_scalar", [x], {"scalar": low})
    elif high is not None:
        ctx.emit("_minimum_scalar", [x], {"scalar": high})
    else:
        ctx.emit("_copy", [x])


@mxnet_exporter("HardSigmoid")
def hard_sigmoid(ctx: ExportContext) -> None:
    ctx.emit("hard_sigmoid", [ctx.x(0)], {"alpha": float(ctx.attr("alpha", 0.2)), "beta": float(ctx.attr("beta", 0.5))})


@mxnet_exporter("Softmax", "LogSoftmax")
def softmax(ctx: ExportContext) -> None:
    rank = len(ctx.shape(0))
    axis = int(ctx.attr("axis", -1)) % rank
    op = "softmax" if ctx.node.op_type == "Softmax" else "log_softmax"
    ctx.emit(op, [ctx.x(0)], {"axis": axis})


@mxnet_exporter("Pow")
def power(ctx: ExportContext) -> None:
    exponent = ctx.const(1)
    if exponent is None or exponent.size != 1:
        raise ctx.fail("only a constant scalar exponent is exported")
    value = float(exponent.reshape(-1)[0])
    if value == 2.0:
        ctx.emit("square", [ctx.x(0)])
    elif value == 0.5:
        ctx.emit("sqrt", [ctx.x(0)])
    elif value == 1.0:
        ctx.emit("_copy", [ctx.x(0)])
    else:
        ctx.emit("_power_scalar", [ctx.x(0)], {"scalar": value})
