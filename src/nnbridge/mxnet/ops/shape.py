"""Shape operators; every output shape is resolved statically from the input shapes.

- Flatten: (N, prod(rest)). transpose ``axes`` (default: reversed). SwapAxis ``dim1``/``dim2`` (0, 0).
- Reshape ``shape`` with MXNet's codes, applied left to right while walking the input dims (``reverse``:
  both the input shape and ``shape`` are reversed first and the result reversed back):
  ``0`` copy this input dim; ``-1`` infer from the remaining size (one at most); ``-2`` copy all remaining
  input dims; ``-3`` merge the next two input dims; ``-4 a b`` split the next input dim into ``a * b`` (one of
  them may be -1); a positive value is taken as is and consumes one input dim.
- Concat ``dim`` 1; stack ``axis`` 0; SliceChannel / split ``num_outputs``, ``axis`` 1, ``squeeze_axis`` False.
- slice_axis ``axis``, ``begin``, ``end`` (None = the end; negatives count from the end).
- slice ``begin``, ``end``, ``step`` (None entries: 0 / dim for step > 0, dim - 1 / before 0 for step < 0).
- expand_dims ``axis`` (negative: ``axis + ndim + 1``); squeeze ``axis`` (None: all size-1 axes).
- Crop (legacy, NCHW): output (h, w) = ``h_w`` or the second input's H, W; ``offset`` (y, x) default (0, 0);
  ``center_crop``: ``offset = ((H - h) // 2, (W - w) // 2)``.
- Pad ``mode`` constant (``constant_value`` 0) / edge / reflect, ``pad_width`` (before, after) per axis = ONNX Pad.
"""

from __future__ import annotations

import math

import numpy as np
import onnx_ir as ir

from nnbridge.mxnet.importer import NodeContext, mxnet_op

INT64_MIN = -(2**63)


def _axis(ctx: NodeContext, axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise ctx.fail(f"axis {axis} is out of range for {rank} axes")
    return axis % rank


def _reshape(ctx: NodeContext, x: ir.Value, shape: list[int] | tuple[int, ...], suffix: str | None = None) -> ir.Value:
    return ctx.op1("Reshape", [x, ctx.int64s(f"{suffix or 'shape'}_target", shape)], suffix=suffix)


@mxnet_op("Flatten", "flatten")
def flatten(ctx: NodeContext) -> list[ir.Value]:
    return [ctx.op1("Flatten", [ctx.value(0)], {"axis": 1})]


def mxnet_reshape(src: tuple[int, ...], spec: tuple[int, ...], reverse: bool = False) -> tuple[int, ...]:
    """MXNet's ``Reshape`` target shape (``InferReshapeShape``); raises ValueError when impossible."""
    if reverse:
        src, spec = src[::-1], spec[::-1]
    out: list[int] = []
    infer = -1
    i = j = 0
    while i < len(spec):
        code = spec[i]
        if code == 0:
            out.append(src[j])
            j += 1
        elif code == -1:
            if infer >= 0:
                raise ValueError("more than one -1")
            infer = len(out)
            out.append(1)
            j += 1
        elif code == -2:
            out.extend(src[j:])
            j = len(src)
        elif code == -3:
            out.append(src[j] * src[j + 1])
            j += 2
        elif code == -4:
            a, b = spec[i + 1], spec[i + 2]
            if a == -1:
                a = src[j] // b
            if b == -1:
                b = src[j] // a
            if a * b != src[j]:
                raise ValueError(f"-4 split {spec[i + 1]}, {spec[i + 2]} does not divide {src[j]}")
            out.extend([a, b])
            i += 2
            j += 1
        elif code > 0:
            out.append(code)
            j += 1
        else:
            raise ValueError(f"unknown code {code}")
        i += 1
    if infer >= 0:
        known = math.prod(out) // out[infer] if out[infer] else 0
        if known == 0 or math.prod(src) % known:
            raise ValueError("cannot infer the -1 dimension")
        out[infer] = math.prod(src) // known
    if math.prod(out) != math.prod(src):
        raise ValueError(f"{tuple(out)} does not hold {math.prod(src)} elements")
    return tuple(out[::-1]) if reverse else tuple(out)


@mxnet_op("Reshape", "reshape")
def reshape(ctx: NodeContext) -> list[ir.Value]:
    src = ctx.in_shape(0)
    spec = ctx.attrs.ints("shape", ())
    if not spec:
        target = ctx.attrs.ints("target_shape", ())
        if not target or ctx.attrs.bool("keep_highest", False):
            raise ctx.fail("needs `shape` (the legacy target_shape/keep_highest form is not supported)")
        spec = tuple(-1 if t == 0 else t for t in target)
    try:
        target = mxnet_reshape(src, spec, ctx.attrs.bool("reverse", False))
    except (ValueError, IndexError) as exc:
        raise ctx.fail(f"cannot reshape {src} with {spec}: {exc}") from exc
    return [_reshape(ctx, ctx.value(0), target)]


@mxnet_op("transpose")
def transpose(ctx: NodeContext) -> list[ir.Value]:
    rank = len(ctx.in_shape(0))
    axes = ctx.attrs.ints("axes", ()) or tuple(reversed(range(rank)))
    return [ctx.op1("Transpose", [ctx.value(0)], {"perm": [_axis(ctx, a, rank) for a in axes]})]


@mxnet_op("SwapAxis", "swapaxes")
def swap_axis(ctx: NodeContext) -> list[ir.Value]:
    rank = len(ctx.in_shape(0))
    perm = list(range(rank))
    a, b = _axis(ctx, ctx.attrs.int("dim1", 0), rank), _axis(ctx, ctx.attrs.int("dim2", 0), rank)
    perm[a], perm[b] = perm[b], perm[a]
    return [ctx.op1("Transpose", [ctx.value(0)], {"perm": perm})]


@mxnet_op("Concat", "concat")
def concat(ctx: NodeContext) -> list[ir.Value]:
    rank = len(ctx.in_shape(0))
    dim = _axis(ctx, ctx.attrs.int("dim", 1), rank)
    return [ctx.op1("Concat", [ctx.value(i) for i in range(ctx.num_inputs)], {"axis": dim})]


@mxnet_op("stack")
def stack(ctx: NodeContext) -> list[ir.Value]:
    rank = len(ctx.in_shape(0)) + 1
    axis = _axis(ctx, ctx.attrs.int("axis", 0), rank)
    axes = ctx.int64s("axes", [axis])
    parts = [ctx.op1("Unsqueeze", [ctx.value(i), axes], suffix=f"unsqueeze{i}") for i in range(ctx.num_inputs)]
    return [ctx.op1("Concat", parts, {"axis": axis})]


@mxnet_op("SliceChannel", "split")
def slice_channel(ctx: NodeContext) -> list[ir.Value]:
    shape = ctx.in_shape(0)
    count = ctx.attrs.int("num_outputs")
    axis = _axis(ctx, ctx.attrs.int("axis", 1), len(shape))
    if count < 1 or shape[axis] % count:
        raise ctx.fail(f"num_outputs {count} does not divide axis {axis} of {shape}")
    if count == 1:
        parts = [ctx.value(0)]
    else:
        sizes = ctx.int64s("split", [shape[axis] // count] * count)
        parts = ctx.op("Split", [ctx.value(0), sizes], {"axis": axis}, outputs=count,
                       suffix="split" if ctx.attrs.bool("squeeze_axis", False) else None)
    if ctx.attrs.bool("squeeze_axis", False):
        if shape[axis] != count:
            raise ctx.fail(f"squeeze_axis needs axis {axis} of {shape} to have size {count}")
        axes = ctx.int64s("axes", [axis])
        parts = [ctx.op1("Squeeze", [p, axes], suffix=f"squeeze{i}") for i, p in enumerate(parts)]
    return parts


def _slice(ctx: NodeContext, starts: list[int], ends: list[int], axes: list[int], steps: list[int]) -> ir.Value:
    inputs = [ctx.value(0), ctx.int64s("starts", starts), ctx.int64s("ends", ends), ctx.int64s("axes", axes),
              ctx.int64s("steps", steps)]
    return ctx.op1("Slice", inputs)


@mxnet_op("slice_axis")
def slice_axis(ctx: NodeContext) -> list[ir.Value]:
    shape = ctx.in_shape(0)
    axis = _axis(ctx, ctx.attrs.int("axis"), len(shape))
    dim = shape[axis]
    begin = ctx.attrs.int("begin")
    end = ctx.attrs.opt_int("end")
    begin = begin + dim if begin < 0 else begin
    end = dim if end is None else (end + dim if end < 0 else end)
    if not 0 <= begin < end <= dim:
        raise ctx.fail(f"begin {begin} / end {end} are not a non-empty range of axis {axis} (size {dim})")
    return [_slice(ctx, [begin], [end], [axis], [1])]


@mxnet_op("slice", "crop")
def slice_(ctx: NodeContext) -> list[ir.Value]:
    shape = ctx.in_shape(0)
    begin, end = ctx.attrs.opt_ints("begin"), ctx.attrs.opt_ints("end")
    step = ctx.attrs.opt_ints("step", ()) or (None,) * len(begin)
    if not len(begin) == len(end) == len(step) or len(begin) > len(shape):
        raise ctx.fail(f"begin {begin}, end {end} and step {step} must have equal lengths <= {len(shape)}")
    starts, ends, steps = [], [], []
    for axis, (b, e, s) in enumerate(zip(begin, end, step, strict=True)):
        dim = shape[axis]
        s = 1 if s is None else s
        if s == 0:
            raise ctx.fail("step must not be 0")
        if s > 0:
            b = 0 if b is None else (b + dim if b < 0 else b)
            e = dim if e is None else (e + dim if e < 0 else e)
            if not 0 <= b < e <= dim:
                raise ctx.fail(f"axis {axis}: empty or out-of-range slice [{b}:{e}:{s}] of size {dim}")
        else:
            b = dim - 1 if b is None else (b + dim if b < 0 else b)
            e = -1 if e is None else (e + dim if e < 0 else e)
            if not -1 <= e < b < dim:
                raise ctx.fail(f"axis {axis}: empty or out-of-range slice [{b}:{e}:{s}] of size {dim}")
            e = INT64_MIN if e == -1 else e
        starts.append(b)
        ends.append(e)
        steps.append(s)
    return [_slice(ctx, starts, ends, list(range(len(starts))), steps)]


@mxnet_op("expand_dims")
def expand_dims(ctx: NodeContext) -> list[ir.Value]:
    rank = len(ctx.in_shape(0)) + 1
    axis = _axis(ctx, ctx.attrs.int("axis"), rank)
    return [ctx.op1("Unsqueeze", [ctx.value(0), ctx.int64s("axes", [axis])])]


@mxnet_op("squeeze")
def squeeze(ctx: NodeContext) -> list[ir.Value]:
    shape = ctx.in_shape(0)
    axes = ctx.attrs.opt_ints("axis", None)
    chosen = [i for i, d in enumerate(shape) if d == 1] if not axes else [
        _axis(ctx, int(a), len(shape)) for a in axes if a is not None]
    if any(shape[a] != 1 for a in chosen):
        raise ctx.fail(f"cannot squeeze axes {chosen} of {shape}")
    if len(chosen) == len(shape):  # MXNet keeps one axis: (1, 1) -> (1,)
        return [_reshape(ctx, ctx.value(0), [1])]
    return [ctx.op1("Squeeze", [ctx.value(0), ctx.int64s("axes", chosen)])]


@mxnet_op("Crop")
def crop(ctx: NodeContext) -> list[ir.Value]:
    shape = ctx.in_shape(0)
    if len(shape) != 4:
        raise ctx.fail(f"input {shape} must be 4-D")
    if ctx.num_inputs >= 2:
        h, w = ctx.in_shape(1)[2:4]
    else:
        h, w = ctx.attrs.ints("h_w", (0, 0))
    if ctx.attrs.bool("center_crop", False):
        y, x = (shape[2] - h) // 2, (shape[3] - w) // 2
    else:
        y, x = ctx.attrs.ints("offset", (0, 0))
    if h <= 0 or w <= 0 or y < 0 or x < 0 or y + h > shape[2] or x + w > shape[3]:
        raise ctx.fail(f"crop of {h}x{w} at offset ({y}, {x}) does not fit in {shape}")
    return [_slice(ctx, [y, x], [y + h, x + w], [2, 3], [1, 1])]


@mxnet_op("Pad", "pad")
def pad(ctx: NodeContext) -> list[ir.Value]:
    shape = ctx.in_shape(0)
    mode = ctx.attrs.str("mode")
    widths = ctx.attrs.ints("pad_width")
    if mode not in ("constant", "edge", "reflect"):
        raise ctx.fail(f"unknown mode {mode!r}")
    if len(widths) != 2 * len(shape):
        raise ctx.fail(f"pad_width {widths} needs 2 values per axis of {shape}")
    pads = ctx.int64s("pads", list(widths[0::2]) + list(widths[1::2]))
    if mode == "constant":
        value = ctx.f32("value", np.asarray(ctx.attrs.float("constant_value", 0.0), np.float32))
        return [ctx.op1("Pad", [ctx.value(0), pads, value], {"mode": "constant"})]
    return [ctx.op1("Pad", [ctx.value(0), pads], {"mode": mode})]
