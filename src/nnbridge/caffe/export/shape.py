"""Shape and layout ops.

- ``Reshape``/``Squeeze``/``Unsqueeze``/``Flatten`` -> Caffe ``Reshape`` with the static output shape
  as explicit dims (``Flatten(axis=1)`` -> ``Flatten``, identical for Caffe's ``axis=1``).
- ``Concat(axis)`` -> ``Concat(axis)``.
- ``Transpose(perm)`` -> ``Permute(order=perm)`` (ssd/opencv dialects; BVLC has no permute layer).
- ``Split(axis, sizes)`` -> ``Slice(axis, slice_point = cumulative sizes)``.
- ``Slice`` on one axis with step 1 and static bounds -> ``Slice`` whose unused pieces go to a
  ``Silence`` layer.
"""

from __future__ import annotations

import numpy as np

from nnbridge.caffe.export.context import ExportContext, Layer, caffe_exporter


@caffe_exporter("Reshape", "Squeeze", "Unsqueeze", "Flatten")
def reshape(ctx: ExportContext) -> list[Layer]:
    shape, out = ctx.shape(0), ctx.out_shape(0)
    if ctx.node.op_type == "Flatten" and int(ctx.attr("axis", 1)) % max(len(shape), 1) == 1 and len(shape) >= 2:
        return [ctx.layer("Flatten", [ctx.x(0)], [ctx.y(0)])]
    return [ctx.layer("Reshape", [ctx.x(0)], [ctx.y(0)], "reshape_param", {"shape": {"dim": list(out)}})]


@caffe_exporter("Concat")
def concat(ctx: ExportContext) -> list[Layer]:
    rank = len(ctx.out_shape(0))
    bottoms = [ctx.x(i) for i in range(len(ctx.node.inputs))]
    return [ctx.layer("Concat", bottoms, [ctx.y(0)], "concat_param", {"axis": int(ctx.attr("axis")) % rank})]


@caffe_exporter("Transpose")
def transpose(ctx: ExportContext) -> list[Layer]:
    rank = len(ctx.shape(0))
    perm = [int(p) for p in ctx.attr("perm", list(reversed(range(rank))))]
    if perm == list(range(rank)):
        return [ctx.layer("Split", [ctx.x(0)], [ctx.y(0)])]
    ctx.require("Permute", "a Transpose needs Permute (ssd/opencv dialects)")
    return [ctx.layer("Permute", [ctx.x(0)], [ctx.y(0)], "permute_param", {"order": perm})]


@caffe_exporter("Split")
def split(ctx: ExportContext) -> list[Layer]:
    rank = len(ctx.shape(0))
    axis = int(ctx.attr("axis", 0)) % rank
    sizes = [ctx.out_shape(i)[axis] for i in range(len(ctx.node.outputs))]
    points = list(np.cumsum(sizes)[:-1].astype(int))
    tops = [ctx.y(i) for i in range(len(ctx.node.outputs))]
    return [ctx.layer("Slice", [ctx.x(0)], tops, "slice_param", {"axis": axis, "slice_point": points})]


@caffe_exporter("Slice")
def slice_(ctx: ExportContext) -> list[Layer]:
    shape = ctx.shape(0)
    rank = len(shape)
    starts, ends = ctx.need_const(1, "starts").reshape(-1), ctx.need_const(2, "ends").reshape(-1)
    axes = ctx.const(3).reshape(-1) if ctx.input(3) is not None else np.arange(len(starts))  # type: ignore[union-attr]
    steps = ctx.const(4).reshape(-1) if ctx.input(4) is not None else np.ones(len(starts))  # type: ignore[union-attr]
    cut = []
    for s, e, a, st in zip(starts, ends, axes, steps, strict=False):
        a = int(a) % rank
        if int(st) != 1:
            raise ctx.fail("only step 1 is exported")
        begin, end = slice(int(s), int(e)).indices(shape[a])[:2]
        if (begin, end) != (0, shape[a]):
            cut.append((a, begin, end))
    if len(cut) > 1:
        raise ctx.fail(f"slices along {len(cut)} axes; Caffe's Slice cuts one axis")
    if not cut:
        return [ctx.layer("Split", [ctx.x(0)], [ctx.y(0)])]
    axis, begin, end = cut[0]
    points = [p for p in (begin, end) if 0 < p < shape[axis]]
    tops, unused = [], []
    bounds = [0, *points, shape[axis]]
    for i in range(len(bounds) - 1):
        if (bounds[i], bounds[i + 1]) == (begin, end):
            tops.append(ctx.y(0))
        else:
            unused.append(ctx.tmp(f"unused{i}"))
            tops.append(unused[-1])
    layers = [ctx.layer("Slice", [ctx.x(0)], tops, "slice_param", {"axis": axis, "slice_point": points})]
    if unused:
        layers.append(ctx.layer("Silence", unused, [], suffix="silence"))
    return layers


@caffe_exporter("Tile")
def tile(ctx: ExportContext) -> list[Layer]:
    """``Tile(repeats)`` repeating one axis ``a`` = Caffe ``Tile(axis=a, tiles)`` (``np.tile`` along ``a``);
    several repeated axes become a chain of Tile layers. Where the dialect has no Tile layer (OpenCV), a
    Concat along ``a`` of ``tiles`` references to the same bottom computes the same copies."""
    repeats = [int(r) for r in ctx.need_const(1, "the repeats").reshape(-1)]
    axes = [(a, r) for a, r in enumerate(repeats) if r != 1]
    if not axes:
        return [ctx.layer("Split", [ctx.x(0)], [ctx.y(0)])]
    layers, bottom = [], ctx.x(0)
    for i, (axis, count) in enumerate(axes):
        top = ctx.y(0) if i == len(axes) - 1 else ctx.tmp(f"tile{axis}")
        suffix = None if i == len(axes) - 1 else f"tile{axis}"
        if ctx.dialect.allows("Tile"):
            layers.append(ctx.layer("Tile", [bottom], [top], "tile_param", {"axis": axis, "tiles": count},
                                    suffix=suffix))
        else:
            layers.append(ctx.layer("Concat", [bottom] * count, [top], "concat_param", {"axis": axis},
                                    suffix=suffix))
        bottom = top
    return layers
