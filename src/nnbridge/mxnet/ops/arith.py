"""Element-wise, broadcast and scalar arithmetic; reductions.

- elemwise_add/sub/mul/div (legacy ``_Plus``, ``_Minus``, ``_Mul``, ``_Div``, ``_plus``...), ``_maximum``,
  ``_minimum``, ``_power``: same-shape operands -> Add, Sub, Mul, Div, Max, Min, Pow.
- broadcast_add/sub/mul/div/maximum/minimum/power (``broadcast_plus``, ``broadcast_minus``): MXNet broadcasts
  right-aligned size-1 axes like numpy (the SE block's ``broadcast_mul`` of (N, C, H, W) by (N, C, 1, 1)).
  Comparisons (``broadcast_equal``, ``_greater``... and the same-shape ``_equal``...) return 1.0 / 0.0 in the
  input's type -> the ONNX comparison + ``Cast``.
- ``add_n`` / ``ElementWiseSum`` -> Sum.
- scalar ops with ``scalar`` s (float32): ``_plus_scalar`` x + s, ``_minus_scalar`` x - s, ``_rminus_scalar``
  s - x, ``_mul_scalar``, ``_div_scalar`` x / s, ``_rdiv_scalar`` s / x, ``_power_scalar`` x ^ s,
  ``_rpower_scalar`` s ^ x, ``_maximum_scalar``, ``_minimum_scalar``, comparisons ``_equal_scalar``...
- sum / mean / max / min / prod: ``axis`` (None: all), ``keepdims`` False, ``exclude`` False (reduce over the
  axes *not* listed). MXNet returns shape (1,) when every axis is reduced without keepdims.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from nnbridge.mxnet.importer import NodeContext, mxnet_op

_BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "maximum": "Max", "minimum": "Min",
           "power": "Pow"}
_COMPARE = {"equal": ("Equal", False), "not_equal": ("Equal", True), "greater": ("Greater", False),
            "greater_equal": ("GreaterOrEqual", False), "lesser": ("Less", False),
            "lesser_equal": ("LessOrEqual", False)}
_ALIASES = {
    "add": ["elemwise_add", "_Plus", "_plus", "_add", "broadcast_add", "broadcast_plus"],
    "sub": ["elemwise_sub", "_Minus", "_minus", "_sub", "broadcast_sub", "broadcast_minus"],
    "mul": ["elemwise_mul", "_Mul", "_mul", "broadcast_mul"],
    "div": ["elemwise_div", "_Div", "_div", "broadcast_div"],
    "maximum": ["_maximum", "_Maximum", "broadcast_maximum"],
    "minimum": ["_minimum", "_Minimum", "broadcast_minimum"],
    "power": ["_power", "_Power", "broadcast_power"],
}


def _binary(onnx_op: str, names: list[str]) -> None:
    def importer(ctx: NodeContext) -> list[ir.Value]:
        return [ctx.op1(onnx_op, [ctx.value(0), ctx.value(1)])]

    mxnet_op(*names)(importer)


for _key, _names in _ALIASES.items():
    _binary(_BINARY[_key], _names)


def _compare(ctx: NodeContext, a: ir.Value, b: ir.Value, key: str) -> ir.Value:
    onnx_op, negate = _COMPARE[key]
    result = ctx.op1(onnx_op, [a, b], suffix="compare")
    if negate:
        result = ctx.op1("Not", [result], suffix="not")
    dtype = a.dtype or ir.DataType.FLOAT
    return ctx.op1("Cast", [result], {"to": dtype})


def _comparison(key: str) -> None:
    def importer(ctx: NodeContext) -> list[ir.Value]:
        return [_compare(ctx, ctx.value(0), ctx.value(1), key)]

    def scalar_importer(ctx: NodeContext) -> list[ir.Value]:
        return [_compare(ctx, ctx.value(0), _scalar(ctx), key)]

    mxnet_op(f"broadcast_{key}", f"_{key}")(importer)
    mxnet_op(f"_{key}_scalar")(scalar_importer)


for _key in _COMPARE:
    _comparison(_key)


@mxnet_op("add_n", "ElementWiseSum")
def add_n(ctx: NodeContext) -> list[ir.Value]:
    return [ctx.op1("Sum", [ctx.value(i) for i in range(ctx.num_inputs)])]


def _scalar(ctx: NodeContext) -> ir.Value:
    dtype = (ctx.value(0).dtype or ir.DataType.FLOAT).numpy()
    return ctx.const("scalar", np.asarray(ctx.attrs.float("scalar", 1.0), dtype=dtype))


_SCALAR = {
    "_plus_scalar": ("Add", False), "_PlusScalar": ("Add", False),
    "_minus_scalar": ("Sub", False), "_MinusScalar": ("Sub", False),
    "_rminus_scalar": ("Sub", True), "_RMinusScalar": ("Sub", True),
    "_mul_scalar": ("Mul", False), "_MulScalar": ("Mul", False),
    "_div_scalar": ("Div", False), "_DivScalar": ("Div", False),
    "_rdiv_scalar": ("Div", True), "_RDivScalar": ("Div", True),
    "_power_scalar": ("Pow", False), "_PowerScalar": ("Pow", False),
    "_rpower_scalar": ("Pow", True), "_RPowerScalar": ("Pow", True),
    "_maximum_scalar": ("Max", False), "_MaximumScalar": ("Max", False),
    "_minimum_scalar": ("Min", False), "_MinimumScalar": ("Min", False),
}


def _scalar_op(name: str, onnx_op: str, reverse: bool) -> None:
    def importer(ctx: NodeContext) -> list[ir.Value]:
        operands = [_scalar(ctx), ctx.value(0)] if reverse else [ctx.value(0), _scalar(ctx)]
        return [ctx.op1(onnx_op, operands)]

    mxnet_op(name)(importer)


for _name, (_op, _reverse) in _SCALAR.items():
    _scalar_op(_name, _op, _reverse)


_REDUCE = {"sum": "ReduceSum", "mean": "ReduceMean", "max": "ReduceMax", "min": "ReduceMin", "prod": "ReduceProd"}


def _reduction(name: str, onnx_op: str) -> None:
    def importer(ctx: NodeContext) -> list[ir.Value]:
        shape = ctx.in_shape(0)
        rank = len(shape)
        listed = ctx.attrs.opt_ints("axis", None)
        chosen = sorted({a % rank for a in listed if a is not None}) if listed else list(range(rank))  # type: ignore[operator]
        if ctx.attrs.bool("exclude", False):
            chosen = [a for a in range(rank) if a not in chosen]
        keep = ctx.attrs.bool("keepdims", False)
        if not chosen:
            return [ctx.op1("Identity", [ctx.value(0)])]
        attrs = {"keepdims": int(keep)}
        if onnx_op == "ReduceSum":
            y = ctx.op1(onnx_op, [ctx.value(0), ctx.int64s("axes", chosen)], attrs, suffix="reduce")
        else:
            y = ctx.op1(onnx_op, [ctx.value(0)], {**attrs, "axes": chosen}, suffix="reduce")
        if not keep and len(chosen) == rank:
            return [ctx.op1("Reshape", [y, ctx.int64s("shape", [1])])]
        return [ctx.op1("Identity", [y])]

    mxnet_op(name, f"{name}_axis")(importer)


for _name, _op in _REDUCE.items():
    _reduction(_name, _op)
