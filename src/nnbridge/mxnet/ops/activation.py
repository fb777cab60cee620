"""Activations, element-wise unary functions and softmax variants.

- Activation ``act_type`` (required): relu, sigmoid, tanh, softrelu ``log(1 + exp(x))`` (-> ``Softplus``),
  softsign ``x / (1 + |x|)``.
- LeakyReLU ``act_type`` leaky (default, ``slope`` 0.25): ``x > 0 ? x : slope x``; prelu: the same with a learned
  ``gamma`` per channel (axis 1) or shared; elu: ``x > 0 ? x : slope (exp(x) - 1)``; selu with MXNet's
  constants (lambda 1.0507009873554805, alpha 1.6732632423543772); gelu (erf form) ``0.5 x (1 + erf(x / sqrt 2))``;
  rrelu at inference: leaky with ``slope = (lower_bound + upper_bound) / 2`` (defaults 0.125, 0.334).
- hard_sigmoid ``max(0, min(1, alpha x + beta))`` (alpha 0.2, beta 0.5) = ``HardSigmoid``; clip(a_min, a_max).
- softmax / log_softmax: ``axis`` -1, ``temperature`` T (None = 1): ``softmax(x / T)``; ``use_length`` refused.
- SoftmaxOutput (alias Softmax; the label input is ignored): ``multi_output`` -> softmax over axis 1; else over
  the last axis (``preserve_shape`` or not: MXNet 1.9.1's CPU kernel, measured on 4-D input, and its label shape
  ``data.shape[:-1]``, agree; older docs say "flattened"). SoftmaxActivation ``mode`` instance (default): the last
  axis as well (measured); channel: axis 1.
"""

from __future__ import annotations

import math

import numpy as np
import onnx_ir as ir

from nnbridge.mxnet.importer import NodeContext, mxnet_op

SELU_LAMBDA = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717

_UNARY = {
    "relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "exp": "Exp", "log": "Log", "sqrt": "Sqrt",
    "abs": "Abs", "negative": "Neg", "reciprocal": "Reciprocal", "erf": "Erf", "floor": "Floor", "ceil": "Ceil",
    "softsign": "Softsign", "sin": "Sin", "cos": "Cos",
}


def _activation(ctx: NodeContext, act: str) -> ir.Value:
    x = ctx.value(0)
    if act == "softrelu":
        return ctx.op1("Softplus", [x])
    if act == "square":
        return ctx.op1("Mul", [x, x])
    if act == "rsqrt":
        return ctx.op1("Reciprocal", [ctx.op1("Sqrt", [x], suffix="sqrt")])
    if act not in _UNARY:
        raise ctx.fail(f"unknown act_type {act!r}")
    return ctx.op1(_UNARY[act], [x])


@mxnet_op("Activation")
def activation(ctx: NodeContext) -> list[ir.Value]:
    act = ctx.attrs.str("act_type")
    if act not in ("relu", "sigmoid", "tanh", "softrelu", "softsign"):
        raise ctx.fail(f"unknown act_type {act!r}")
    return [_activation(ctx, act)]


def _unary(op_name: str) -> None:
    mxnet_op(op_name)(lambda ctx: [_activation(ctx, op_name)])


for _name in (*_UNARY, "square", "rsqrt"):
    _unary(_name)


@mxnet_op("LeakyReLU")
def leaky_relu(ctx: NodeContext) -> list[ir.Value]:
    act = ctx.attrs.str("act_type", "leaky")
    slope = ctx.attrs.float("slope", 0.25)
    x = ctx.value(0)
    if act == "leaky":
        return [ctx.op1("LeakyRelu", [x], {"alpha": slope})]
    if act == "rrelu":
        lower, upper = ctx.attrs.float("lower_bound", 0.125), ctx.attrs.float("upper_bound", 0.334)
        return [ctx.op1("LeakyRelu", [x], {"alpha": (lower + upper) / 2})]
    if act == "elu":
        return [ctx.op1("Elu", [x], {"alpha": slope})]
    if act == "selu":
        return [ctx.op1("Selu", [x], {"alpha": SELU_ALPHA, "gamma": SELU_LAMBDA})]
    if act == "gelu":
        scaled = ctx.op1("Div", [x, ctx.f32("sqrt2", math.sqrt(2.0))], suffix="scaled")
        erf = ctx.op1("Erf", [scaled], suffix="erf")
        one_plus = ctx.op1("Add", [erf, ctx.f32("one", 1.0)], suffix="one_plus")
        half_x = ctx.op1("Mul", [x, ctx.f32("half", 0.5)], suffix="half_x")
        return [ctx.op1("Mul", [half_x, one_plus])]
    if act == "prelu":
        shape = ctx.in_shape(0)
        gamma = ctx.array(1)
        if gamma.size == 1:
            slope_value = ctx.const("slope", np.asarray(gamma, np.float32).reshape(()))
        elif len(shape) >= 2 and gamma.size == shape[1]:
            slope_value = ctx.const("slope", np.asarray(gamma, np.float32).reshape(shape[1], *[1] * (len(shape) - 2)))
        else:
            raise ctx.fail(f"prelu gamma {gamma.shape} matches neither 1 nor the {shape[1]} channels")
        return [ctx.op1("PRelu", [x, slope_value])]
    raise ctx.fail(f"unknown act_type {act!r}")


@mxnet_op("hard_sigmoid")
def hard_sigmoid(ctx: NodeContext) -> list[ir.Value]:
    attrs = {"alpha": ctx.attrs.float("alpha", 0.2), "beta": ctx.attrs.float("beta", 0.5)}
    return [ctx.op1("HardSigmoid", [ctx.value(0)], attrs)]


@mxnet_op("clip")
def clip(ctx: NodeContext) -> list[ir.Value]:
    low, high = ctx.attrs.float("a_min"), ctx.attrs.float("a_max")
    return [ctx.op1("Clip", [ctx.value(0), ctx.f32("min", low), ctx.f32("max", high)])]


def _softmax(ctx: NodeContext, op_type: str) -> list[ir.Value]:
    if ctx.attrs.bool("use_length", False):
        raise ctx.fail("use_length is not supported")
    rank = len(ctx.in_shape(0))
    axis = ctx.attrs.int("axis", -1)
    if not -rank <= axis < rank:
        raise ctx.fail(f"axis {axis} is out of range for {rank} axes")
    x = ctx.value(0)
    temperature = ctx.attrs.opt_float("temperature")
    if temperature is not None and temperature != 1.0:
        x = ctx.op1("Div", [x, ctx.f32("temperature", temperature)], suffix="temperature")
    return [ctx.op1(op_type, [x], {"axis": axis})]


@mxnet_op("softmax")
def softmax(ctx: NodeContext) -> list[ir.Value]:
    return _softmax(ctx, "Softmax")


@mxnet_op("log_softmax")
def log_softmax(ctx: NodeContext) -> list[ir.Value]:
    return _softmax(ctx, "LogSoftmax")


def _instance_softmax(ctx: NodeContext) -> ir.Value:
    return ctx.op1("Softmax", [ctx.value(0)], {"axis": -1})


@mxnet_op("SoftmaxOutput", "Softmax")
def softmax_output(ctx: NodeContext) -> list[ir.Value]:
    if ctx.attrs.bool("multi_output", False):
        return [ctx.op1("Softmax", [ctx.value(0)], {"axis": 1})]
    if ctx.attrs.bool("preserve_shape", False):
        return [ctx.op1("Softmax", [ctx.value(0)], {"axis": -1})]
    return [_instance_softmax(ctx)]


@mxnet_op("SoftmaxActivation")
def softmax_activation(ctx: NodeContext) -> list[ir.Value]:
    mode = ctx.attrs.str("mode", "instance")
    if mode == "channel":
        return [ctx.op1("Softmax", [ctx.value(0)], {"axis": 1})]
    if mode != "instance":
        raise ctx.fail(f"unknown mode {mode!r}")
    return [_instance_softmax(ctx)]
