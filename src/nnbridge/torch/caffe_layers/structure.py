"""Shape, reduction and resizing layers of ``CaffeLayer`` (data movement: autograd routes Caffe's diffs back):

Deconvolution (``conv_transpose2d``: Caffe's blob (C_in, num_output/group, kh, kw) is PyTorch's layout); Slice and
Split (several tops: ``CaffeLayer(..., num_out=n)`` returns a tuple); Reshape (Caffe's 0 / -1 codes,
``axis``/``num_axes``); Permute; Tile; Crop (second bottom: the reference shape, no gradient); ShuffleChannel;
Axpy (fork: ``a * x + y``); Reduction (SUM/ASUM/SUMSQ/MEAN from ``axis`` on, times ``coeff``; 0-D for axis 0);
ArgMax (indices as float or values; without ``axis``: (N, 1 or 2, top_k, [1 for 4-D+ bottoms]); no gradient);
Upsample (one bottom, nearest neighbour by ``scale``/``scale_h``/``scale_w``); Embed (indices checked); Interp
(DeepLab: crop, then bilinear with align-corners coordinates).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812

from nnbridge.caffe import single_layer
from nnbridge.torch.caffe_layers.elementwise import _fail
from nnbridge.torch.layers import TORCH_LAYERS, CaffeLayer

Result = torch.Tensor | tuple[torch.Tensor, ...]


def _axis(m: CaffeLayer, axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise _fail(m, f"axis {axis} is out of range for a {rank}-D bottom")
    return axis + rank if axis < 0 else axis


@TORCH_LAYERS.register("Deconvolution")
def _deconvolution(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    p, g = m.layer.convolution_param, single_layer.conv_geometry(m.layer)
    return F.conv_transpose2d(xs[0], m.blobs[0], m.blobs[1] if p.bias_term else None, g.stride, g.pad, 0,
                              int(p.group), g.dilation)


@TORCH_LAYERS.register("Split")
def _split(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> Result:
    return xs[0] if m.num_out == 1 else tuple(xs[0] for _ in range(m.num_out))


@TORCH_LAYERS.register("Slice")
def _slice(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> Result:
    p, x = m.layer.slice_param, xs[0]
    axis = _axis(m, int(p.slice_dim) if p.HasField("slice_dim") else int(p.axis), x.dim())
    points = [int(v) for v in p.slice_point]
    if points:
        if len(points) + 1 != m.num_out:
            raise _fail(m, f"{len(points)} slice_point(s) make {len(points) + 1} tops, but num_out={m.num_out}")
        sizes = [b - a for a, b in zip([0, *points], [*points, x.shape[axis]], strict=True)]
        if min(sizes) <= 0:
            raise _fail(m, f"slice_point {points} must be increasing and inside (0, {x.shape[axis]})")
    else:
        if x.shape[axis] % m.num_out:
            raise _fail(m, f"axis {axis} of size {x.shape[axis]} does not split into {m.num_out} equal parts")
        sizes = [x.shape[axis] // m.num_out] * m.num_out
    parts = tuple(torch.split(x, sizes, dim=axis))
    return parts if len(parts) > 1 else parts[0]


@TORCH_LAYERS.register("Reshape")
def _reshape(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    p, x = m.layer.reshape_param, xs[0]
    rank = x.dim()
    start = int(p.axis) + rank + 1 if p.axis < 0 else int(p.axis)
    end = rank if p.num_axes == -1 else start + int(p.num_axes)
    if not 0 <= start <= end <= rank:
        raise _fail(m, f"axis {p.axis} / num_axes {p.num_axes} do not fit a {rank}-D bottom")
    dims = [int(x.shape[start + i]) if d == 0 else int(d) for i, d in enumerate(p.shape.dim)]
    return x.reshape(*x.shape[:start], *dims, *x.shape[end:])


@TORCH_LAYERS.register("Permute")
def _permute(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    x = xs[0]
    order = [int(v) for v in m.layer.permute_param.order]
    order += [i for i in range(x.dim()) if i not in order]
    if sorted(order) != list(range(x.dim())):
        raise _fail(m, f"order {list(m.layer.permute_param.order)} is not a permutation of {x.dim()} axes")
    return x.permute(*order)


@TORCH_LAYERS.register("Tile")
def _tile(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    p, x = m.layer.tile_param, xs[0]
    if p.tiles < 1:
        raise _fail(m, f"tiles {p.tiles} must be >= 1")
    return torch.cat([x] * int(p.tiles), dim=_axis(m, int(p.axis), x.dim()))


@TORCH_LAYERS.register("Crop")
def _crop(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    p = m.layer.crop_param
    x, ref = xs[0], xs[1].detach()
    axis = _axis(m, int(p.axis), x.dim())
    count = x.dim() - axis
    offsets = [int(v) for v in p.offset]
    if len(offsets) not in (0, 1, count):
        raise _fail(m, f"{len(offsets)} offsets for {count} cropped axes")
    offsets = offsets if len(offsets) == count else (offsets or [0]) * count
    index = [slice(None)] * axis
    for i, off in enumerate(offsets):
        size = int(ref.shape[axis + i])
        if off + size > x.shape[axis + i]:
            raise _fail(m, f"offset {off} + size {size} exceeds axis {axis + i} of size {x.shape[axis + i]}")
        index.append(slice(off, off + size))
    return x[tuple(index)]


@TORCH_LAYERS.register("ShuffleChannel")
def _shuffle_channel(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    x, group = xs[0], int(m.layer.shuffle_channel_param.group)
    if group < 1 or x.shape[1] % group:
        raise _fail(m, f"group {group} must divide the {x.shape[1]} channels")
    n, c = int(x.shape[0]), int(x.shape[1])
    return x.reshape(n, group, c // group, -1).transpose(1, 2).reshape(x.shape)


@TORCH_LAYERS.register("Axpy")
def _axpy(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    if len(xs) != 3:
        raise _fail(m, f"{len(xs)} bottoms given, Axpy takes 3 (a, x, y)")
    a, x, y = xs
    return a * x + y


@TORCH_LAYERS.register("Reduction")
def _reduction(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    p, x = m.layer.reduction_param, xs[0]
    axis = _axis(m, int(p.axis), x.dim())
    view = x.reshape(*x.shape[:axis], -1)
    op = int(p.operation)
    if op not in (1, 2, 3, 4):
        raise _fail(m, f"unknown operation {op}")
    value = {1: view, 2: view.abs(), 3: view * view, 4: view}[op]
    total = value.sum(dim=axis)
    coeff = float(p.coeff) / (view.shape[-1] if op == 4 else 1)
    return total * float(torch.tensor(coeff, dtype=torch.float32)) if coeff != 1.0 else total


@TORCH_LAYERS.register("ArgMax")
def _argmax(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    p, x = m.layer.argmax_param, xs[0].detach()
    k = int(p.top_k)
    if p.HasField("axis"):
        values, indices = torch.topk(x, k, dim=_axis(m, int(p.axis), x.dim()))
        return values if p.out_max_val else indices.to(x.dtype)
    values, indices = torch.topk(x.reshape(x.shape[0], -1), k, dim=1)
    rows = [indices.to(x.dtype), values] if p.out_max_val else [indices.to(x.dtype)]
    out = torch.stack(rows, dim=1)
    return out.reshape(*out.shape, *([1] * (max(x.dim(), 3) - 3)))


@TORCH_LAYERS.register("Upsample")
def _upsample(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    p, x = m.layer.upsample_param, xs[0]
    if len(xs) != 1:
        raise _fail(m, "the two-bottom (SegNet max-unpooling) Upsample is not translated")
    factors = []
    for name in ("h", "w"):
        if p.HasField(f"upsample_{name}"):
            size = int(getattr(p, f"upsample_{name}"))
            base = int(x.shape[2 if name == "h" else 3])
            if size % base:
                raise _fail(m, f"upsample_{name} {size} is not a multiple of the input size {base}")
            factors.append(size // base)
        else:
            factors.append(int(getattr(p, f"scale_{name}")) if p.HasField(f"scale_{name}") else int(p.scale))
    if min(factors) < 1:
        raise _fail(m, f"scale factors {factors} must be positive integers")
    return x.repeat_interleave(factors[0], dim=2).repeat_interleave(factors[1], dim=3)




@TORCH_LAYERS.register("Embed")
def _embed(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    p, x = m.layer.embed_param, xs[0].detach()
    index = x.to(torch.int64)  # Caffe: static_cast<int>, and every index must be in [0, input_dim)
    if torch.any(index != x) or torch.any(index < 0) or torch.any(index >= int(p.input_dim)):
        raise _fail(m, f"the bottom must hold integer indices in [0, {p.input_dim})")
    out = F.embedding(index, m.blobs[0])
    return out + m.blobs[1] if p.bias_term else out


def _interp_size(m: CaffeLayer, xs: Sequence[torch.Tensor], h: int, w: int) -> tuple[int, int]:
    """DeepLab's Interp output size (interp_layer.cpp's order of precedence)."""
    p = m.layer.interp_param
    if len(xs) > 1:
        return int(xs[1].shape[2]), int(xs[1].shape[3])
    shrink = int(p.shrink_factor) if p.HasField("shrink_factor") else None
    zoom = int(p.zoom_factor) if p.HasField("zoom_factor") else None
    if (shrink is not None and shrink < 1) or (zoom is not None and zoom < 1):
        raise _fail(m, "shrink_factor and zoom_factor must be >= 1")
    if shrink is not None:
        h, w = (h - 1) // shrink + 1, (w - 1) // shrink + 1
    if zoom is not None:
        return h + (h - 1) * (zoom - 1), w + (w - 1) * (zoom - 1)
    if shrink is not None:
        return h, w
    if p.HasField("height") and p.HasField("width"):
        return int(p.height), int(p.width)
    raise _fail(m, "no output size: give zoom_factor, shrink_factor or height and width")


@TORCH_LAYERS.register("Interp")
def _interp(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    """DeepLab/PSPNet Interp: crop by ``pad_beg``/``pad_end`` (<= 0), then bilinear with align-corners
    coordinates (``caffe_cpu_interp2``'s ``h2 * (H_in - 1) / (H_out - 1)``)."""
    p, x = m.layer.interp_param, xs[0]
    beg, end = int(p.pad_beg), int(p.pad_end)
    if beg > 0 or end > 0:
        raise _fail(m, "positive pad_beg/pad_end (padding) are not supported by Caffe's Interp either")
    x = x[:, :, -beg:x.shape[2] + end, -beg:x.shape[3] + end]
    size = _interp_size(m, xs, int(x.shape[2]), int(x.shape[3]))
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)
