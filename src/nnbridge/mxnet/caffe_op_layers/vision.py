"""Native ``CaffeOp`` translations of Caffe's image layers:

- Deconvolution -> ``Deconvolution`` (Caffe's blob (C_in, num_output/group, kh, kw) is MXNet's layout; same
  output size ``stride * (H - 1) + dilation * (k - 1) + 1 - 2 * pad``);
- LRN ACROSS_CHANNELS ``x * (k + alpha / size * sum_window(x^2)) ^ -beta`` (the channel window summed by a
  ``sum`` pooling over a (N, 1, C, H*W) view, zero-padded as Caffe pads); WITHIN_CHANNEL
  ``x * (1 + alpha / size^2 * sum_window(x^2)) ^ -beta`` (Caffe's AVE pooling of the squares always divides by
  ``size^2`` there: stride 1, pad (size - 1) / 2);
- ShuffleChannel: (N, G*K, ...) -> (N, G, K, ...) -> swap G and K -> back;
- Axpy (fork layer; bottoms a (N, C, 1, 1), x, y): ``a * x + y``;
- Interp (DeepLab) with explicit ``height``/``width``: the ``pad_beg``/``pad_end`` crop, then
  ``BilinearResize2D(align_corners=True)`` (Caffe's ``h2 * (H - 1) / (H_out - 1)`` coordinates);
- Embed -> ``Embedding`` (+ the bias); the indices must be integers in [0, input_dim): MXNet clips others where
  Caffe aborts, so keep them valid.
"""

from __future__ import annotations

from typing import Any

from nnbridge.caffe import single_layer
from nnbridge.caffe.proto import caffe_pb2
from nnbridge.mxnet.caffe_op_layers.base import OpContext, arity, translator

arity("Axpy", bottoms=(3, 3))


@translator("Deconvolution")
def _deconvolution(ctx: OpContext) -> list[Any]:
    p = ctx.layer.convolution_param
    if p.axis != 1:
        raise ctx.fail("only axis: 1 is translated", hint='use engine="caffe"')
    g = single_layer.conv_geometry(ctx.layer)
    bias = ctx.weights[1] if p.bias_term else None
    return [ctx.mx.sym.Deconvolution(ctx.data[0], weight=ctx.weights[0], bias=bias, num_filter=p.num_output,
                                     kernel=g.kernel, stride=g.stride, pad=g.pad, dilate=g.dilation,
                                     num_group=p.group, no_bias=not p.bias_term, name=ctx.name)]


@translator("LRN", notes="ACROSS_CHANNELS and WITHIN_CHANNEL")
def _lrn(ctx: OpContext) -> list[Any]:
    sym, p, x = ctx.mx.sym, ctx.layer.lrn_param, ctx.data[0]
    size = int(p.local_size)
    if size % 2 == 0:
        raise ctx.fail(f"local_size {size} must be odd (Caffe refuses even sizes)")
    pad, alpha, beta = (size - 1) // 2, float(p.alpha), float(p.beta)
    square = sym.square(x)
    if p.norm_region == caffe_pb2.LRNParameter.ACROSS_CHANNELS:
        view = sym.reshape(sym.expand_dims(square, axis=1), shape=(0, 0, 0, -1))
        summed = sym.Pooling(view, kernel=(size, 1), stride=(1, 1), pad=(pad, 0), pool_type="sum",
                             pooling_convention="valid")
        scale = sym.reshape_like(summed, x) * (alpha / size) + float(p.k)
    else:
        summed = sym.Pooling(square, kernel=(size, size), stride=(1, 1), pad=(pad, pad), pool_type="sum",
                             pooling_convention="valid")
        scale = summed * (alpha / (size * size)) + 1.0
    return [sym.identity(x * scale ** -beta, name=ctx.name)]


@translator("ShuffleChannel")
def _shuffle_channel(ctx: OpContext) -> list[Any]:
    sym, group = ctx.mx.sym, int(ctx.layer.shuffle_channel_param.group)
    if group < 1:
        raise ctx.fail(f"group {group} must be >= 1")
    split = sym.reshape(ctx.data[0], shape=(0, -4, group, -1, -2))
    swapped = sym.swapaxes(split, dim1=1, dim2=2)
    return [sym.reshape(swapped, shape=(0, -3, -2), name=ctx.name)]


@translator("Axpy", notes="fork layer: a (N, C, 1, 1) * x + y")
def _axpy(ctx: OpContext) -> list[Any]:
    sym = ctx.mx.sym
    a, x, y = ctx.data
    return [sym.elemwise_add(sym.broadcast_mul(a, x), y, name=ctx.name)]


@translator("Embed", notes="integer-valued indices in [0, input_dim) (MXNet clips others; Caffe aborts)")
def _embed(ctx: OpContext) -> list[Any]:
    sym, p = ctx.mx.sym, ctx.layer.embed_param
    out = sym.Embedding(sym.BlockGrad(ctx.data[0]), weight=ctx.weights[0], input_dim=int(p.input_dim),
                        output_dim=int(p.num_output))
    if not p.bias_term:
        return [sym.identity(out, name=ctx.name)]
    flat = sym.reshape(out, shape=(-1, int(p.num_output)))
    bias = sym.elemwise_add(ctx.weights[1], sym.BlockGrad(sym.zeros_like(sym.sum(flat, axis=0))))
    return [sym.reshape_like(sym.broadcast_add(flat, sym.expand_dims(bias, axis=0)), out, name=ctx.name)]


@translator("Interp", notes="DeepLab fork layer: explicit height and width only")
def _interp(ctx: OpContext) -> list[Any]:
    sym, p, x = ctx.mx.sym, ctx.layer.interp_param, ctx.data[0]
    if p.HasField("zoom_factor") or p.HasField("shrink_factor") or not (p.HasField("height") and p.HasField("width")):
        raise ctx.fail("only explicit height and width are translated (the zoom/shrink sizes depend on the "
                       "input size, unknown when the symbol is built)", hint='use nnbridge.torch.CaffeLayer')
    beg, end = int(p.pad_beg), int(p.pad_end)
    if beg > 0 or end > 0:
        raise ctx.fail("positive pad_beg/pad_end (padding) are refused by Caffe's Interp too")
    for axis in (2, 3):
        if beg or end:
            x = sym.slice_axis(x, axis=axis, begin=-beg, end=end if end else None)
    return [sym.contrib.BilinearResize2D(x, height=int(p.height), width=int(p.width), align_corners=True,
                                         name=ctx.name)]
