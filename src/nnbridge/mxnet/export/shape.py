"""Shape, copy and reduction ops.

- ``Identity``/``Dropout`` (inference) -> ``_copy`` (kept, so the value's name exists in MXNet).
- ``Reshape``/``Flatten``/``Squeeze``/``Unsqueeze`` -> ``Reshape(shape=static output shape)``, the
  leading batch dimension written as ``0`` ("copy from the input") when it is unchanged;
  ``Flatten(axis=1)`` -> ``Flatten``.
- ``Transpose(perm)`` -> ``transpose(axes)``; ``Concat(axis)`` -> ``Concat(dim, num_args)``.
- ``Split`` -> one ``slice_axis`` per output (named like it); ``Slice`` with constant starts/ends/axes/
  steps -> ``slice_axis`` (one axis, step 1) or ``slice(begin, end, step)``, bounds clamped as ONNX does.
- ``Pad`` (constant/edge/reflect, 4-D/5-D, batch and channel unpadded) -> ``Pad``.
- ``ReduceMean/Sum/Max/Min/SumSquare(axes, keepdims)`` -> ``mean/sum/max/min`` (``sum(square)``);
  ``ArgMax/ArgMin(axis, keepdims)`` -> ``argmax``/``argmin`` (MXNet returns float32 indices, ONNX int64:
  only the ``Cast`` to float that follows in Caffe nets is compared).
- ``Tile(repeats)`` -> ``tile(reps)``; ``Expand`` -> ``broadcast_to(shape=output shape)``.
"""

from __future__ import annotations

import numpy as np

from nnbridge.mxnet.export.context import ExportContext, mxnet_exporter


@mxnet_exporter("Identity", "Dropout")
def copy(ctx: ExportContext) -> None:
    if len(ctx.node.outputs) > 1 and ctx.node.outputs[1].uses():
        raise ctx.fail("the Dropout mask output is not exported")
    ctx.emit("_copy", [ctx.x(0)])


def _reshape(ctx: ExportContext) -> None:
    shape, out = ctx.shape(0), ctx.out_shape(0)
    target = list(out)
    if shape and out and shape[0] == out[0] and len(out) > 1:
        target[0] = 0
    ctx.emit("Reshape", [ctx.x(0)], {"shape": tuple(target)})


@mxnet_exporter("Reshape", "Squeeze", "Unsqueeze")
def reshape(ctx: ExportContext) -> None:
    _reshape(ctx)


@mxnet_exporter("Flatten")
def flatten(ctx: ExportContext) -> None:
    if int(ctx.attr("axis", 1)) == 1 and len(ctx.shape(0)) >= 2:
        ctx.emit("Flatten", [ctx.x(0)])
    else:
        _reshape(ctx)


@mxnet_exporter("Transpose")
def transpose(ctx: ExportContext) -> None:
    rank = len(ctx.shape(0))
    perm = ctx.attr("perm", list(reversed(range(rank))))
    ctx.emit("transpose", [ctx.x(0)], {"axes": tuple(int(p) for p in perm)})


@mxnet_exporter("Concat")
def concat(ctx: ExportContext) -> None:
    rank = len(ctx.shape(0))
    inputs = [ctx.x(i) for i, v in enumerate(ctx.node.inputs) if v is not None]
    ctx.emit("Concat", inputs, {"dim": int(ctx.attr("axis")) % rank, "num_args": len(inputs)})


@mxnet_exporter("Split")
def split(ctx: ExportContext) -> None:
    shape = ctx.shape(0)
    axis = int(ctx.attr("axis", 0)) % len(shape)
    x = ctx.x(0)
    start = 0
    for i in range(len(ctx.node.outputs)):
        size = ctx.out_shape(i)[axis]
        ctx.emit("slice_axis", [x], {"axis": axis, "begin": start, "end": start + size}, out=i)
        start += size


@mxnet_exporter("Slice")
def slice_(ctx: ExportContext) -> None:
    shape = ctx.shape(0)
    rank = len(shape)
    starts = ctx.need_const(1, "starts").reshape(-1)
    ends = ctx.need_const(2, "ends").reshape(-1)
    axes = ctx.const(3).reshape(-1) if ctx.input(3) is not None else np.arange(len(starts))  # type: ignore[union-attr]
    steps = ctx.const(4).reshape(-1) if ctx.input(4) is not None else np.ones(len(starts), np.int64)  # type: ignore[union-attr]
    if axes is None or steps is None:
        raise ctx.fail("axes and steps must be constants")
    begin: list[int | None] = [None] * rank
    end: list[int | None] = [None] * rank
    step: list[int | None] = [None] * rank
    for s, e, a, st in zip(starts, ends, axes, steps, strict=True):
        a, st = int(a) % rank, int(st)
        dim = shape[a]
        if st <= 0:
            raise ctx.fail("non-positive slice steps are not exported")
        s, e = int(s), int(e)
        s = min(max(s + dim if s < 0 else s, 0), dim)
        e = min(max(e + dim if e < 0 else e, 0), dim)
        begin[a], end[a], step[a] = s, e, st
    touched = [a for a in range(rank) if begin[a] is not None]
    if len(touched) == 1 and step[touched[0]] == 1:
        a = touched[0]
        ctx.emit("slice_axis", [ctx.x(0)], {"axis": a, "begin": begin[a], "end": end[a]})
        return
    attrs: dict[str, object] = {"begin": tuple(begin), "end": tuple(end)}
    if any(st not in (None, 1) for st in step):
        attrs["step"] = tuple(step)
    ctx.emit("slice", [ctx.x(0)], attrs)


@mxnet_exporter("Pad")
def pad(ctx: ExportContext) -> None:
    shape = ctx.shape(0)
    mode = ctx.attr("mode", "constant")
    if mode not in ("constant", "edge", "reflect"):
        raise ctx.fail(f"pad mode {mode!r} has no MXNet equivalent")
    if len(shape) not in (4, 5):
        raise ctx.fail(f"MXNet Pad needs a 4-D or 5-D input, not {len(shape)}-D")
    if ctx.input(3) is not None:
        raise ctx.fail("the axes input is not exported")
    pads = [int(p) for p in ctx.need_const(1, "pads").reshape(-1)]
    rank = len(shape)
    begin, end = pads[:rank], pads[rank:]
    if any(begin[:2]) or any(end[:2]) or min(pads) < 0:
        raise ctx.fail(f"pads {pads}: MXNet pads spatial axes only, by non-negative amounts")
    value = 0.0
    if ctx.input(2) is not None:
        value = float(ctx.need_const(2, "constant_value").reshape(-1)[0])
    width = tuple(v for b, e in zip(begin, end, strict=True) for v in (b, e))
    attrs: dict[str, object] = {"mode": mode, "pad_width": width}
    if mode == "constant":
        attrs["constant_value"] = value
    ctx.emit("Pad", [ctx.x(0)], attrs)


REDUCE = {"ReduceMean": "mean", "ReduceSum": "sum", "ReduceMax": "max", "ReduceMin": "min",
          "ReduceSumSquare": "sum", "ReduceProd": "prod"}


@mxnet_exporter(*REDUCE)
def reduce(ctx: ExportContext) -> None:
    rank = len(ctx.shape(0))
    axes = ctx.attr("axes")
    if axes is None and ctx.input(1) is not None:
        axes = [int(a) for a in ctx.need_const(1, "axes").reshape(-1)]
    keep = bool(int(ctx.attr("keepdims", 1)))
    x = ctx.x(0)
    if ctx.node.op_type == "ReduceSumSquare":
        x = ctx.tmp("square", [x], suffix="square")
    attrs: dict[str, object] = {"keepdims": keep}
    if axes:
        attrs["axis"] = tuple(sorted(int(a) % rank for a in axes))
    elif int(ctx.attr("noop_with_empty_axes", 0)):
        ctx.emit("_copy", [x])
        return
    ctx.emit(REDUCE[ctx.node.op_type], [x], attrs)


@mxnet_exporter("ArgMax", "ArgMin")
def argmax(ctx: ExportContext) -> None:
    if int(ctx.attr("select_last_index", 0)):
        raise ctx.fail("select_last_index=1 is not exported")
    rank = len(ctx.shape(0))
    op = "argmax" if ctx.node.op_type == "ArgMax" else "argmin"
    ctx.emit(op, [ctx.x(0)], {"axis": int(ctx.attr("axis", 0)) % rank,
                              "keepdims": bool(int(ctx.attr("keepdims", 1)))})


@mxnet_exporter("Tile")
def tile(ctx: ExportContext) -> None:
    reps = ctx.need_const(1, "repeats").reshape(-1)
    ctx.emit("tile", [ctx.x(0)], {"reps": tuple(int(r) for r in reps)})


@mxnet_exporter("Expand")
def expand(ctx: ExportContext) -> None:
    shape, out = ctx.shape(0), ctx.out_shape(0)
    x = ctx.x(0)
    if len(shape) < len(out):
        x = ctx.tmp("Reshape", [x], {"shape": (1,) * (len(out) - len(shape)) + shape}, suffix="rank")
    ctx.emit("broadcast_to", [x], {"shape": tuple(out)})


@mxnet_exporter("TopK")
def topk(ctx: ExportContext) -> None:
    """``TopK(x, k)`` -> ``topk(ret_typ="value")`` / ``topk(ret_typ="indices")`` for the used outputs
    (MXNet indices are float32; ONNX's are int64 and only compared after their Cast)."""
    rank = len(ctx.shape(0))
    k = int(ctx.need_const(1, "k").reshape(-1)[0])
    attrs = {"axis": int(ctx.attr("axis", -1)) % rank, "k": k, "is_ascend": not int(ctx.attr("largest", 1))}
    x = ctx.x(0)
    for i, kind in enumerate(("value", "indices")):
        value = ctx.node.outputs[i]
        if value.uses() or value.is_graph_output():
            ctx.emit("topk", [x], {**attrs, "ret_typ": kind}, out=i)
