"""Layers that only move data: Concat, Slice, Split, Flatten, Reshape, Crop, Permute, Tile, ShuffleChannel,
Silence. Every output shape is computed statically here exactly as the Caffe layer's ``Reshape()`` does.

- Concat: ``axis`` (negative counts from the end), or the legacy ``concat_dim`` when set -> ``Concat``.
- Slice: ``axis`` or the legacy ``slice_dim``; ``slice_point`` (one fewer than the tops, increasing) or,
  without it, equal parts (the axis must divide by the number of tops) -> ``Split`` with explicit sizes.
- Split: every top is a copy of the bottom -> one ``Identity`` per top.
- Flatten: ``axis`` .. ``end_axis`` (inclusive, default -1) collapse into one dimension -> ``Reshape``.
- Reshape (``reshape_layer.cpp``): the dims of ``shape`` replace the bottom dims ``[axis, axis + num_axes)``
  (``num_axes = -1``: to the end; negative ``axis`` counts from ``num_axes + 1``); a 0 copies the bottom dim
  at the same position, one -1 is inferred from the element count -> ``Reshape`` to the static shape.
- Crop (``crop_layer.cpp``): dims from ``axis`` on take the 2nd bottom's size, starting at ``offset``
  (none: 0; one value: every cropped axis; else one per cropped axis) -> ``Slice``.
- Permute (SSD): ``order`` lists the new axis order; axes not listed follow in increasing order ->
  ``Transpose``.
- Tile: ``axis``, ``tiles``: the block ``bottom[..., axis:]`` is repeated ``tiles`` times per outer index,
  i.e. ``np.tile`` along ``axis`` -> ``Tile``.
- ShuffleChannel (ShuffleNet fork): ``out[:, j * g + i] = in[:, i * (C / g) + j]`` ->
  ``Reshape (N, g, C/g, H, W)``, ``Transpose (0, 2, 1, 3, 4)``, ``Reshape (N, C, H, W)``.
- Silence: no tops; only consumes its bottoms (which therefore do not become graph outputs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

import onnx_ir as ir

from nnbridge.caffe.importer import LayerContext, caffe_layer


def canonical_axis(ctx: LayerContext, axis: int, rank: int, what: str = "axis") -> int:
    """Caffe's ``CanonicalAxisIndex``: ``-rank <= axis < rank``, negative counts from the end."""
    if not -rank <= axis < rank:
        raise ctx.fail(f"{what} {axis} is out of range for a {rank}-D bottom")
    return axis + rank if axis < 0 else axis


def reshape_to(ctx: LayerContext, value: ir.Value, shape: Sequence[int], suffix: str | None = None) -> ir.Value:
    return ctx.op1("Reshape", [value, ctx.int64s("shape" if suffix is None else f"{suffix}_shape", shape)],
                   suffix=suffix)


@caffe_layer("Concat")
def concat(ctx: LayerContext) -> list[ir.Value]:
    param = ctx.layer.concat_param
    shape = ctx.in_shape(0)
    if param.HasField("concat_dim"):
        axis = int(param.concat_dim)
        if axis >= len(shape):
            raise ctx.fail(f"concat_dim {axis} is out of range for a {len(shape)}-D bottom")
    else:
        axis = canonical_axis(ctx, int(param.axis), len(shape))
    for i in range(1, len(ctx.inputs)):
        other = ctx.in_shape(i)
        if len(other) != len(shape) or any(other[k] != shape[k] for k in range(len(shape)) if k != axis):
            raise ctx.fail(f"bottom {i} has shape {other}, incompatible with {shape} for a concat on axis {axis}")
    return [ctx.op1("Concat", ctx.inputs, {"axis": axis})]


@caffe_layer("Slice")
def slice_(ctx: LayerContext) -> list[ir.Value]:
    param = ctx.layer.slice_param
    shape = ctx.in_shape(0)
    axis = int(param.slice_dim) if param.HasField("slice_dim") else canonical_axis(ctx, int(param.axis), len(shape))
    if axis >= len(shape):
        raise ctx.fail(f"slice axis {axis} is out of range for a {len(shape)}-D bottom")
    dim, count = shape[axis], len(ctx.layer.top)
    points = [int(p) for p in param.slice_point]
    if points:
        if len(points) != count - 1:
            raise ctx.fail(f"{len(points)} slice_point values for {count} tops", hint="give tops - 1 points")
        bounds = [0, *points, dim]
        if any(b <= a for a, b in pairwise(bounds)):
            raise ctx.fail(f"slice_point {points} must increase strictly within (0, {dim})")
        sizes = [b - a for a, b in pairwise(bounds)]
    else:
        if dim % count:
            raise ctx.fail(f"axis {axis} of size {dim} cannot be split into {count} equal parts")
        sizes = [dim // count] * count
    return ctx.op("Split", [ctx.inputs[0], ctx.int64s("split", sizes)], {"axis": axis}, outputs=count)


@caffe_layer("Split")
def split(ctx: LayerContext) -> list[ir.Value]:
    return [ctx.op1("Identity", [ctx.inputs[0]], suffix=None if len(ctx.layer.top) == 1 else str(top))
            for top in ctx.layer.top]


@caffe_layer("Flatten")
def flatten(ctx: LayerContext) -> list[ir.Value]:
    param = ctx.layer.flatten_param
    shape = ctx.in_shape(0)
    start = canonical_axis(ctx, int(param.axis), len(shape), "axis")
    end = canonical_axis(ctx, int(param.end_axis), len(shape), "end_axis")
    if end < start:
        raise ctx.fail(f"end_axis {end} is before axis {start}")
    out = [*shape[:start], math.prod(shape[start:end + 1]), *shape[end + 1:]]
    return [reshape_to(ctx, ctx.inputs[0], out)]


def caffe_reshape_shape(ctx: LayerContext, bottom: Sequence[int], dims: Sequence[int], axis: int,
                        num_axes: int) -> list[int]:
    """The top shape of Caffe's Reshape layer, computed as ``ReshapeLayer::Reshape`` does."""
    rank = len(bottom)
    start = axis if axis >= 0 else rank + axis + 1
    if not 0 <= start <= rank:
        raise ctx.fail(f"axis {axis} is out of range for a {rank}-D bottom")
    if num_axes < -1:
        raise ctx.fail(f"num_axes must be >= 0, or -1 for all (got {num_axes})")
    end = rank if num_axes == -1 else start + num_axes
    if end > rank:
        raise ctx.fail(f"axis {axis} + num_axes {num_axes} goes beyond the {rank}-D bottom")
    if sum(1 for d in dims if d == -1) > 1:
        raise ctx.fail(f"shape {list(dims)} has more than one -1")
    if any(d < -1 for d in dims):
        raise ctx.fail(f"shape {list(dims)} has a negative dimension other than -1")
    top = [*bottom[:start], *dims, *bottom[end:]]
    for i, d in enumerate(dims):
        if d == 0:
            if start + i >= rank:
                raise ctx.fail(f"shape dim {i} is 0 (copy) but the bottom has no axis {start + i}")
            top[start + i] = bottom[start + i]
    total = math.prod(bottom)
    if -1 in dims:
        known = math.prod(d for d in top if d != -1)
        if known == 0 or total % known:
            raise ctx.fail(f"cannot infer the -1 of shape {list(dims)} for a bottom of shape {list(bottom)}")
        top[start + list(dims).index(-1)] = total // known
    if math.prod(top) != total:
        raise ctx.fail(f"shape {top} has {math.prod(top)} elements, the bottom {list(bottom)} has {total}")
    return top


@caffe_layer("Reshape")
def reshape(ctx: LayerContext) -> list[ir.Value]:
    param = ctx.layer.reshape_param
    top = caffe_reshape_shape(ctx, ctx.in_shape(0), [int(d) for d in param.shape.dim], int(param.axis),
                              int(param.num_axes))
    return [reshape_to(ctx, ctx.inputs[0], top)]


@caffe_layer("Crop")
def crop(ctx: LayerContext) -> list[ir.Value]:
    if len(ctx.inputs) != 2:
        raise ctx.fail(f"needs 2 bottoms (data, reference shape), got {len(ctx.inputs)}")
    param = ctx.layer.crop_param
    shape, target = ctx.in_shape(0), ctx.in_shape(1)
    if len(shape) != len(target):
        raise ctx.fail(f"bottoms have different ranks: {shape} and {target}")
    start = canonical_axis(ctx, int(param.axis), len(shape))
    offsets = [int(o) for o in param.offset]
    if len(offsets) > 1 and len(offsets) != len(shape) - start:
        raise ctx.fail(f"{len(offsets)} offsets for {len(shape) - start} cropped axes",
                       hint="give one offset for all axes or one per axis from `axis` on")
    axes, begins, ends = [], [], []
    for i in range(start, len(shape)):
        offset = 0 if not offsets else offsets[0] if len(offsets) == 1 else offsets[i - start]
        if offset < 0 or offset + target[i] > shape[i]:
            raise ctx.fail(f"axis {i}: offset {offset} + size {target[i]} exceeds the bottom size {shape[i]}")
        axes.append(i)
        begins.append(offset)
        ends.append(offset + target[i])
    return [ctx.op1("Slice", [ctx.inputs[0], ctx.int64s("starts", begins), ctx.int64s("ends", ends),
                              ctx.int64s("axes", axes)])]


@caffe_layer("Permute", notes="SSD fork layer")
def permute(ctx: LayerContext) -> list[ir.Value]:
    rank = len(ctx.in_shape(0))
    order: list[int] = []
    for axis in ctx.layer.permute_param.order:
        axis = int(axis)
        if not 0 <= axis < rank:
            raise ctx.fail(f"order value {axis} is out of range for a {rank}-D bottom")
        if axis in order:
            raise ctx.fail(f"order has axis {axis} twice")
        order.append(axis)
    order += [axis for axis in range(rank) if axis not in order]
    return [ctx.op1("Transpose", [ctx.inputs[0]], {"perm": order})]


@caffe_layer("Tile")
def tile(ctx: LayerContext) -> list[ir.Value]:
    param = ctx.layer.tile_param
    shape = ctx.in_shape(0)
    axis = canonical_axis(ctx, int(param.axis), len(shape))
    if not param.HasField("tiles") or int(param.tiles) < 1:
        raise ctx.fail("tile_param.tiles must be given and positive")
    repeats = [1] * len(shape)
    repeats[axis] = int(param.tiles)
    return [ctx.op1("Tile", [ctx.inputs[0], ctx.int64s("repeats", repeats)])]


@caffe_layer("ShuffleChannel", notes="ShuffleNet fork layer")
def shuffle_channel(ctx: LayerContext) -> list[ir.Value]:
    shape = ctx.in_shape(0)
    group = int(ctx.layer.shuffle_channel_param.group)
    if len(shape) < 2 or group < 1 or shape[1] % group:
        raise ctx.fail(f"channels of {shape} cannot be split into {group} groups")
    n, c, rest = shape[0], shape[1], list(shape[2:])
    grouped = reshape_to(ctx, ctx.inputs[0], [n, group, c // group, *rest], suffix="group")
    perm = [0, 2, 1, *range(3, 3 + len(rest))]
    swapped = ctx.op1("Transpose", [grouped], {"perm": perm}, suffix="transpose")
    return [reshape_to(ctx, swapped, list(shape))]


@caffe_layer("Silence")
def silence(ctx: LayerContext) -> list[ir.Value]:
    if len(ctx.layer.top):
        raise ctx.fail("Silence has no tops")
    return []
