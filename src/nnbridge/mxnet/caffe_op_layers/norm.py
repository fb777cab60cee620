"""Native ``CaffeOp`` translations of Caffe's normalisation, reduction and resizing layers:

- MVN ``(x - mean) / (sqrt(mean((x - mean)^2)) + eps)`` per (n, c) (per n with ``across_channels``), with
  Caffe's backward (all terms over ``std + eps``); without ``normalize_variance`` only the mean is subtracted;
- Normalize (SSD fork) ``x / sqrt(sum(x^2) + eps) * scale``, the sum over C, H, W (``across_spatial``) or over C
  per pixel; ``scale`` (1,) (Caffe's scalar blob, ``channel_shared``) or (C,); trainable; the bottom diff is
  Caffe's: the normalisation's gradient of the top diff, THEN times the scale (differs from the exact gradient
  for a per-channel scale, as in Caffe);
- Reduction SUM / ASUM / SUMSQ / MEAN over every axis from ``axis`` on, times ``coeff`` (``coeff / dim`` for
  MEAN); ``axis: 0`` gives (1,) where Caffe has a 0-D blob;
- ArgMax ``top_k`` indices (as float) or values (``out_max_val``) along ``axis``; without ``axis`` per sample
  over everything, top (N, 1 or 2, top_k): Caffe's shape for 2-D and 3-D bottoms (for 4-D ones Caffe appends an
  axis of 1, which a symbol built before the rank is known cannot; the values are the same); no gradient
  (Caffe has no backward);
- Upsample (one bottom, nearest neighbour): ``repeat`` by ``scale_h``/``scale_w`` (or ``scale``).
"""

from __future__ import annotations

from typing import Any

from nnbridge.mxnet.caffe_op_layers.activations import _out
from nnbridge.mxnet.caffe_op_layers.base import EXTRA_BLOBS, OpContext, translator

EXTRA_BLOBS["Normalize"] = lambda layer: 1
SUM, ASUM, SUMSQ, MEAN = 1, 2, 3, 4


@translator("MVN")
def _mvn(ctx: OpContext) -> list[Any]:
    sym, p, x = ctx.mx.sym, ctx.layer.mvn_param, ctx.data[0]
    view = sym.reshape(x, shape=(0, 1, -1) if p.across_channels else (0, 0, -1))
    centred = sym.broadcast_sub(view, sym.mean(view, axis=2, keepdims=True))
    if p.normalize_variance:
        std = sym.sqrt(sym.mean(sym.square(centred), axis=2, keepdims=True))
        # value std + eps; gradient of std scaled by std / (std + eps): Caffe's backward, which divides every term
        # by (std + eps) (the exact gradient of its forward would divide one term by std instead)
        fixed = sym.BlockGrad(std)
        denominator = fixed + float(p.eps) + (std - fixed) * sym.BlockGrad(std / (std + float(p.eps)))
        centred = sym.broadcast_div(centred, denominator)
    return [sym.reshape_like(centred, x, name=ctx.name)]


@translator("Normalize", notes="SSD fork layer")
def _normalize(ctx: OpContext) -> list[Any]:
    sym, p, x = ctx.mx.sym, ctx.layer.norm_param, ctx.data[0]
    view = ctx.channel_view(x)  # (N, C, H*W)
    axes = (1, 2) if p.across_spatial else (1,)

    def normalized(v: Any) -> Any:
        return sym.broadcast_div(v, sym.sqrt(sym.sum(sym.square(v), axis=axes, keepdims=True) + float(p.eps)))

    scale = ctx.spread(ctx.per_channel(ctx.weights[0], x, scalar=bool(p.channel_shared)), view)
    value = sym.elemwise_mul(normalized(sym.BlockGrad(view)), scale)  # forward, and the scale's gradient
    # Caffe's bottom diff multiplies the normalisation's input gradient by the scale AFTER it (SSD's rule; not
    # the exact gradient when the scale is per channel): the gradient-only path x' (x' = x forward, dx = s dx')
    frozen = sym.BlockGrad(scale)
    routed = sym.elemwise_sub(sym.elemwise_mul(view, frozen), sym.BlockGrad(sym.elemwise_mul(view, frozen) - view))
    grad_only = normalized(routed)
    out = sym.elemwise_add(value, sym.elemwise_sub(grad_only, sym.BlockGrad(grad_only)))
    return [sym.reshape_like(out, x, name=ctx.name)]


@translator("Reduction")
def _reduction(ctx: OpContext) -> list[Any]:
    sym, p, x = ctx.mx.sym, ctx.layer.reduction_param, ctx.data[0]
    axis = int(p.axis)
    if axis < 0:
        raise ctx.fail(f"axis {axis}: only axis >= 0 is translated", hint='use engine="caffe"')
    if p.operation not in (SUM, ASUM, SUMSQ, MEAN):
        raise ctx.fail(f"unknown operation {p.operation}")
    view = sym.reshape(x, shape=(-1,)) if axis == 0 else sym.reshape(x, shape=(*[0] * axis, -1))
    value = {SUM: view, MEAN: view, ASUM: sym.abs(view), SUMSQ: sym.square(view)}[int(p.operation)]
    total = sym.sum(value, axis=axis, keepdims=axis == 0)
    coeff = float(p.coeff)
    if p.operation == MEAN:
        count = sym.BlockGrad(sym.sum(sym.ones_like(view), axis=axis, keepdims=axis == 0))
        return _out(ctx, total * coeff / count if coeff != 1.0 else total / count)
    return _out(ctx, total * coeff if coeff != 1.0 else total)


@translator("ArgMax", notes="no gradient (Caffe has no backward)")
def _argmax(ctx: OpContext) -> list[Any]:
    sym, p = ctx.mx.sym, ctx.layer.argmax_param
    x, k = sym.BlockGrad(ctx.data[0]), int(p.top_k)
    if k < 1:
        raise ctx.fail(f"top_k must be >= 1 (got {k})")
    if p.HasField("axis"):
        if p.axis < 0:
            raise ctx.fail(f"axis {p.axis}: only axis >= 0 is translated", hint='use engine="caffe"')
        kind = "value" if p.out_max_val else "indices"
        return _out(ctx, sym.topk(x, axis=int(p.axis), k=k, ret_typ=kind, dtype="float32"))
    flat = sym.reshape(x, shape=(0, -1))
    # the indices as numbers of the bottom's own type: taken from 0, 1, ... L-1 (arange_like keeps the type)
    indices = sym.take(sym.contrib.arange_like(flat, axis=1), sym.topk(flat, axis=1, k=k, ret_typ="indices"))
    if p.out_max_val:
        both = sym.stack(indices, sym.topk(flat, axis=1, k=k, ret_typ="value"), axis=1)
    else:
        both = sym.expand_dims(indices, axis=1)
    return _out(ctx, both)


@translator("Upsample", notes="fork layer: one bottom, nearest neighbour")
def _upsample(ctx: OpContext) -> list[Any]:
    sym, p, x = ctx.mx.sym, ctx.layer.upsample_param, ctx.data[0]
    factors = []
    for name in ("scale_h", "scale_w"):
        if p.HasField(f"upsample_{name[-1]}"):
            raise ctx.fail(f"upsample_{name[-1]} (an output size) is not translated: give scale",
                           hint='use engine="caffe"')
        factors.append(int(getattr(p, name)) if p.HasField(name) else int(p.scale))
    if min(factors) < 1:
        raise ctx.fail(f"scale factors {factors} must be positive integers")
    for axis, factor in zip((2, 3), factors, strict=True):
        if factor > 1:
            x = sym.repeat(x, repeats=factor, axis=axis)
    return _out(ctx, x)
