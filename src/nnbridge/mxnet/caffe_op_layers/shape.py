"""Native ``CaffeOp`` translations of Caffe's shape layers (pure data movement: the backward routes the top
diffs back, summed where Caffe sums them):

- Split -> ``num_out`` copies (stacked, then ``SliceChannel``: tops named ``{name}_output{i}`` as the plugin's);
- Slice -> ``SliceChannel`` (equal parts) or ``split_v2`` at ``slice_point`` along ``axis``/``slice_dim``;
- Reshape -> ``reshape`` with Caffe's 0 (copy) / -1 (infer) codes, for ``axis >= 0`` and ``num_axes`` -1 or
  equal to the number of new dims;
- Permute -> ``transpose`` (``order`` must name every axis up to the last one permuted);
- Tile -> ``concat`` of ``tiles`` copies along ``axis`` (Caffe repeats the whole block from ``axis`` on);
- Crop -> ``slice_axis`` at the offsets, then ``slice_like`` the reference (second) bottom, which gets no
  gradient as in Caffe; 4-D bottoms when fewer offsets than cropped axes are given.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nnbridge.mxnet.caffe_op_layers.base import OpContext, arity, translator

arity("Split", "Slice", multi_top=True)
arity("Crop", bottoms=(2, 2))


def _named(ctx: OpContext, outputs: Any, count: int) -> list[Any]:
    return [outputs[i] for i in range(count)] if count > 1 else [ctx.mx.sym.identity(outputs[0], name=ctx.name)]


@translator("Split", notes="num_out copies")
def _split(ctx: OpContext) -> list[Any]:
    sym, x, n = ctx.mx.sym, ctx.data[0], ctx.num_out
    if n == 1:
        return [sym.identity(x, name=ctx.name)]
    stacked = sym.stack(*([x] * n), axis=0)
    return _named(ctx, sym.SliceChannel(stacked, num_outputs=n, axis=0, squeeze_axis=True, name=ctx.name), n)


@translator("Slice", notes="num_out tops")
def _slice(ctx: OpContext) -> list[Any]:
    sym, p, x, n = ctx.mx.sym, ctx.layer.slice_param, ctx.data[0], ctx.num_out
    axis = int(p.slice_dim) if p.HasField("slice_dim") else int(p.axis)
    points = [int(v) for v in p.slice_point]
    if points:
        if len(points) + 1 != n:
            raise ctx.fail(f"{len(points)} slice_point(s) make {len(points) + 1} tops, but num_out={n}",
                           hint=f"pass num_out={len(points) + 1}")
        if points != sorted(set(points)) or points[0] <= 0:
            raise ctx.fail(f"slice_point {points} must be positive and increasing")
        parts = sym._internal._split_v2(x, indices=(0, *points), axis=axis, name=ctx.name)
        return _named(ctx, parts, n)
    if n == 1:
        return [sym.identity(x, name=ctx.name)]
    return _named(ctx, sym.SliceChannel(x, num_outputs=n, axis=axis, name=ctx.name), n)


@translator("Reshape")
def _reshape(ctx: OpContext) -> list[Any]:
    p = ctx.layer.reshape_param
    dims = [int(d) for d in p.shape.dim]
    axis, num_axes = int(p.axis), int(p.num_axes)
    if sum(d == -1 for d in dims) > 1 or any(d < -1 for d in dims):
        raise ctx.fail(f"shape {dims}: at most one -1 and no other negative value")
    x = ctx.data[0]
    if axis >= 0 and (num_axes == -1 or num_axes == len(dims)):
        shape = [0] * axis + dims + ([-2] if num_axes != -1 else [])
        return [ctx.mx.sym.reshape(x, shape=tuple(shape), name=ctx.name)]
    if axis < 0 or num_axes != 1 or 0 in dims or not dims:
        raise ctx.fail(f"axis {axis} / num_axes {num_axes} with new dims {dims}: translated are axis >= 0 with "
                       "num_axes -1 or equal to the number of new dims, or num_axes 1 without 0 codes",
                       hint='use engine="caffe"')
    for i, d in enumerate(dims[:-1]):  # split axis + i into (d, the rest) until every new dim is in place
        rest = int(np.prod(dims[i + 1:])) if d == -1 else -1
        x = ctx.mx.sym.reshape(x, shape=(*[0] * (axis + i), -4, d, rest, -2))
    return [ctx.mx.sym.identity(x, name=ctx.name)]


@translator("Permute")
def _permute(ctx: OpContext) -> list[Any]:
    order = [int(v) for v in ctx.layer.permute_param.order]
    if sorted(order) != list(range(len(order))) and len(set(order)) == len(order):
        order += [i for i in range(max(order) + 1) if i not in order]
    if sorted(order) != list(range(len(order))):
        raise ctx.fail(f"order {list(ctx.layer.permute_param.order)} is not a permutation of the axes")
    return [ctx.mx.sym.transpose(ctx.data[0], axes=tuple(order), name=ctx.name)]


@translator("Tile")
def _tile(ctx: OpContext) -> list[Any]:
    p = ctx.layer.tile_param
    if p.tiles < 1 or p.axis < 0:
        raise ctx.fail(f"tiles {p.tiles} must be >= 1 and axis {p.axis} >= 0")
    x = ctx.data[0]
    if p.tiles == 1:
        return [ctx.mx.sym.identity(x, name=ctx.name)]
    return [ctx.mx.sym.concat(*([x] * int(p.tiles)), dim=int(p.axis), name=ctx.name)]


@translator("Crop", notes="second bottom: the reference shape (no gradient)")
def _crop(ctx: OpContext) -> list[Any]:
    sym, p = ctx.mx.sym, ctx.layer.crop_param
    x, ref = ctx.data
    axis = int(p.axis)
    offsets = [int(v) for v in p.offset]
    count = len(offsets) if len(offsets) > 1 else 4 - axis
    if axis < 0 or count < 1:
        raise ctx.fail(f"axis {axis}: give axis >= 0 (and one offset per cropped axis for non-4-D bottoms)")
    offsets = offsets if len(offsets) > 1 else (offsets or [0]) * count
    for i, off in enumerate(offsets):
        if off:
            x = sym.slice_axis(x, axis=axis + i, begin=off, end=None)
    axes = tuple(range(axis, axis + count))
    return [sym.slice_like(x, sym.BlockGrad(ref), axes=axes, name=ctx.name)]
