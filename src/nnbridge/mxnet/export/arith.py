"""Binary and variadic arithmetic.

``Add Sub Mul Div`` of two computed tensors: ``elemwise_*`` when both shapes are equal, else
``broadcast_*`` (numpy broadcasting; the lower-rank operand is first reshaped to the full rank with
leading ones, the alignment ONNX defines). One constant operand: a scalar (size 1) becomes
``_plus_scalar _minus_scalar _rminus_scalar _mul_scalar _div_scalar _rdiv_scalar`` (MXNet parses the
scalar as a double and narrows it to float32; ``repr`` of the float32 value is exact); a tensor
becomes an ``arg`` parameter of full rank read by ``broadcast_*``.
``Sum`` of n equal shapes -> ``add_n``; ``Max``/``Min`` -> chained ``broadcast_maximum``/``_minimum``;
``Greater``/``Less``/``Equal`` -> ``broadcast_greater``... (MXNet returns 1.0/0.0 in the input type,
ONNX a bool: only their ``Cast`` to float is compared). ``Cast(to)`` -> ``Cast(dtype)``.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from nnbridge.mxnet.export.context import Entry, ExportContext, mxnet_exporter

BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div"}
SCALAR = {"Add": ("_plus_scalar", "_plus_scalar"), "Sub": ("_minus_scalar", "_rminus_scalar"),
          "Mul": ("_mul_scalar", "_mul_scalar"), "Div": ("_div_scalar", "_rdiv_scalar")}
COMPARE = {"Greater": "broadcast_greater", "Less": "broadcast_lesser", "Equal": "broadcast_equal",
           "GreaterOrEqual": "broadcast_greater_equal", "LessOrEqual": "broadcast_lesser_equal"}


def _operand(ctx: ExportContext, i: int, rank: int) -> Entry:
    """Input ``i`` as an entry of rank ``rank`` (constants reshaped, computed values via Reshape)."""
    array = ctx.const(i)
    if array is not None:
        full = array.reshape((1,) * (rank - array.ndim) + tuple(array.shape))
        return ctx.param(f"const{i}", np.ascontiguousarray(full))
    shape = ctx.shape(i)
    entry = ctx.x(i)
    if len(shape) < rank:
        entry = ctx.tmp("Reshape", [entry], {"shape": (1,) * (rank - len(shape)) + shape}, suffix=f"rank{i}")
    return entry


@mxnet_exporter(*BINARY)
def binary(ctx: ExportContext) -> None:
    op = ctx.node.op_type
    a, b = ctx.const(0), ctx.const(1)
    if a is not None and b is not None:
        raise ctx.fail("both operands are constants (constant folding should have removed this node)")
    for const, other, reverse in ((b, 0, False), (a, 1, True)):
        if const is not None and const.size == 1 and const.dtype.kind == "f":
            name = SCALAR[op][1 if reverse else 0]
            scalar = float(np.float32(const.reshape(-1)[0]))
            ctx.emit(name, [ctx.x(other)], {"scalar": scalar})
            return
    if op == "Div" and b is not None and b.dtype.kind != "f":
        raise ctx.fail("integer division is not exported")
    rank = max(len(ctx.shape(0)), len(ctx.shape(1)))
    if a is None and b is None and ctx.shape(0) == ctx.shape(1):
        ctx.emit(f"elemwise_{BINARY[op]}", [ctx.x(0), ctx.x(1)])
        return
    ctx.emit(f"broadcast_{BINARY[op]}", [_operand(ctx, 0, rank), _operand(ctx, 1, rank)])


def _chain(ctx: ExportContext, op: str) -> None:
    count = len(ctx.node.inputs)
    if count == 1:
        ctx.emit("_copy", [ctx.x(0)])
        return
    rank = max(len(ctx.shape(i)) for i in range(count))
    entry = _operand(ctx, 0, rank)
    for i in range(1, count):
        last = i == count - 1
        entry = ctx.emit(op, [entry, _operand(ctx, i, rank)], out=0 if last else None, suffix=f"{op}{i}")


@mxnet_exporter("Sum")
def sum_(ctx: ExportContext) -> None:
    shapes = {ctx.shape(i) for i in range(len(ctx.node.inputs))}
    if len(shapes) == 1 and all(ctx.const(i) is None for i in range(len(ctx.node.inputs))):
        ctx.emit("add_n", [ctx.x(i) for i in range(len(ctx.node.inputs))], {"num_args": len(ctx.node.inputs)})
        return
    _chain(ctx, "broadcast_add")


@mxnet_exporter("Max")
def maximum(ctx: ExportContext) -> None:
    _chain(ctx, "broadcast_maximum")


@mxnet_exporter("Min")
def minimum(ctx: ExportContext) -> None:
    _chain(ctx, "broadcast_minimum")


@mxnet_exporter(*COMPARE)
def compare(ctx: ExportContext) -> None:
    b = ctx.const(1)
    if b is not None and b.size == 1 and ctx.node.op_type in ("Greater", "Less"):
        name = "_greater_scalar" if ctx.node.op_type == "Greater" else "_lesser_scalar"
        ctx.emit(name, [ctx.x(0)], {"scalar": float(b.reshape(-1)[0])})
        return
    rank = max(len(ctx.shape(0)), len(ctx.shape(1)))
    ctx.emit(COMPARE[ctx.node.op_type], [_operand(ctx, 0, rank), _operand(ctx, 1, rank)])


DTYPES = {ir.DataType.FLOAT: "float32", ir.DataType.DOUBLE: "float64", ir.DataType.FLOAT16: "float16",
          ir.DataType.INT32: "int32", ir.DataType.INT64: "int64", ir.DataType.INT8: "int8",
          ir.DataType.UINT8: "uint8"}


@mxnet_exporter("Cast")
def cast(ctx: ExportContext) -> None:
    to = ir.DataType(int(ctx.attr("to")))
    if to not in DTYPES:
        raise ctx.fail(f"no MXNet dtype for {to.name}")
    ctx.emit("Cast", [ctx.x(0)], {"dtype": DTYPES[to]})


