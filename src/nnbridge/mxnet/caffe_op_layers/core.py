"""Native ``CaffeOp`` translations of the layers of the first version: InnerProduct, Convolution, Pooling,
ReLU, TanH, Sigmoid, AbsVal, Dropout, Softmax, Flatten, Concat, Eltwise, BatchNorm, Scale (see
:mod:`nnbridge.mxnet.caffe_op` for the rules)."""

from __future__ import annotations

import logging
from typing import Any

from nnbridge.caffe import single_layer
from nnbridge.caffe.proto import caffe_pb2
from nnbridge.mxnet.caffe_op_layers.base import OpContext, arity, translator

logger = logging.getLogger(__name__)

arity("Concat", "Eltwise", bottoms=(2, None))


@translator("InnerProduct", notes="any axis >= 1, transpose")
def _inner_product(ctx: OpContext) -> list[Any]:
    sym, p, x = ctx.mx.sym, ctx.layer.inner_product_param, ctx.data[0]
    axis = int(p.axis)
    if axis < 1:
        raise ctx.fail(f"axis {axis}: only axis >= 1 is translated", hint='use engine="caffe"')
    weight = sym.transpose(ctx.weights[0], axes=(1, 0)) if p.transpose else ctx.weights[0]
    bias = ctx.weights[1] if p.bias_term else None
    flat = x
    for _ in range(axis - 1):  # merge the leading axes one by one: (N, C, ...) -> (N * C, ...)
        flat = sym.reshape(flat, shape=(-3, -2))
    out = sym.FullyConnected(flat, weight=weight, bias=bias, num_hidden=p.num_output, no_bias=not p.bias_term,
                             flatten=True, name=None if axis > 1 else ctx.name)
    if axis == 1:
        return [out]
    return [sym.reshape_like(out, x, lhs_begin=0, lhs_end=1, rhs_begin=0, rhs_end=axis, name=ctx.name)]


@translator("Convolution")
def _convolution(ctx: OpContext) -> list[Any]:
    p = ctx.layer.convolution_param
    g = single_layer.conv_geometry(ctx.layer)
    if p.axis != 1:
        raise ctx.fail("only axis: 1 is translated", hint='use engine="caffe"')
    bias = ctx.weights[1] if p.bias_term else None
    return [ctx.mx.sym.Convolution(ctx.data[0], weight=ctx.weights[0], bias=bias, num_filter=p.num_output,
                                   kernel=g.kernel, stride=g.stride, pad=g.pad, dilate=g.dilation,
                                   num_group=p.group, no_bias=not p.bias_term, name=ctx.name)]


def _caffe_clip(ctx: OpContext, pooled: Any, x: Any, g: single_layer.Geometry) -> Any:
    """Drop the last window on axes where Caffe would (it starts at or beyond H: inside the end padding)."""
    sym = ctx.mx.sym
    axes = [i for i in range(2) if g.pad[i] > 0 and g.pad[i] >= g.kernel[i] - g.stride[i]]
    if not axes:
        return pooled  # there ceil((H + p) / s) >= MXNet's ceil((H + 2p - k) / s) + 1: nothing to drop
    widths = (0, 0, 0, 0, 0, g.pad[0], 0, g.pad[1])
    padded = sym.Pad(sym.BlockGrad(x), mode="constant", pad_width=widths, constant_value=0.0)
    ref = sym.Pooling(padded, kernel=(1, 1), stride=g.stride, pool_type="max", pooling_convention="valid")
    return sym.slice_like(pooled, ref, axes=tuple(2 + i for i in axes))


@translator("Pooling")
def _pooling(ctx: OpContext) -> list[Any]:
    sym, p, x = ctx.mx.sym, ctx.layer.pooling_param, ctx.data[0]
    kinds = {caffe_pb2.PoolingParameter.MAX: "max", caffe_pb2.PoolingParameter.AVE: "avg"}
    if p.pool not in kinds:
        raise ctx.fail("STOCHASTIC pooling is random; it has no exact translation", hint='use engine="caffe"')
    method = kinds[p.pool]
    if p.global_pooling:
        if method == "max":
            return [sym.Pooling(x, global_pool=True, kernel=(1, 1), pool_type="max", name=ctx.name)]
        return [sym.mean(x, axis=(2, 3), keepdims=True, name=ctx.name)]
    g = single_layer.pool_geometry(ctx.layer)
    ceil = single_layer.pool_ceil(ctx.layer)
    conv = "full" if ceil else "valid"
    common = {"kernel": g.kernel, "stride": g.stride, "pooling_convention": conv}
    if method == "max":
        pooled = sym.Pooling(x, pad=g.pad, pool_type="max", **common)
    else:
        total = sym.Pooling(x, pad=g.pad, pool_type="sum", **common)
        widths = (0, 0, 0, 0, g.pad[0], g.pad[0], g.pad[1], g.pad[1])
        ones = sym.Pad(sym.ones_like(sym.BlockGrad(x)), mode="constant", pad_width=widths, constant_value=1.0)
        divisor = sym.BlockGrad(sym.Pooling(ones, pad=(0, 0), pool_type="sum", **common))
        pooled = total / divisor
    if ceil:
        pooled = _caffe_clip(ctx, pooled, x, g)
    return [sym.identity(pooled, name=ctx.name)]


@translator("ReLU")
def _relu(ctx: OpContext) -> list[Any]:
    slope = float(ctx.layer.relu_param.negative_slope)
    if slope == 0.0:
        return [ctx.mx.sym.Activation(ctx.data[0], act_type="relu", name=ctx.name)]
    # Caffe's own formula; MXNet's LeakyReLU loses precision in float64 (its slope is a float32 parameter)
    x = ctx.data[0]
    return [ctx.mx.sym.identity(ctx.mx.sym.relu(x) + slope * ctx.mx.sym.minimum(x, 0.0), name=ctx.name)]


@translator("TanH", "Sigmoid")
def _activation(ctx: OpContext) -> list[Any]:
    act = {"TanH": "tanh", "Sigmoid": "sigmoid"}[str(ctx.layer.type)]
    return [ctx.mx.sym.Activation(ctx.data[0], act_type=act, name=ctx.name)]


@translator("AbsVal")
def _absval(ctx: OpContext) -> list[Any]:
    return [ctx.mx.sym.abs(ctx.data[0], name=ctx.name)]


@translator("Dropout")
def _dropout(ctx: OpContext) -> list[Any]:
    # Caffe scales kept units by 1/(1-p) at training time and is the identity at test time, like MXNet.
    return [ctx.mx.sym.Dropout(ctx.data[0], p=float(ctx.layer.dropout_param.dropout_ratio), name=ctx.name)]


@translator("Softmax")
def _softmax(ctx: OpContext) -> list[Any]:
    return [ctx.mx.sym.softmax(ctx.data[0], axis=int(ctx.layer.softmax_param.axis), name=ctx.name)]


@translator("Flatten")
def _flatten(ctx: OpContext) -> list[Any]:
    p = ctx.layer.flatten_param
    if p.axis != 1 or p.end_axis != -1:
        raise ctx.fail("only axis: 1, end_axis: -1 is translated", hint='use engine="caffe"')
    return [ctx.mx.sym.flatten(ctx.data[0], name=ctx.name)]


@translator("Concat")
def _concat(ctx: OpContext) -> list[Any]:
    p = ctx.layer.concat_param
    axis = int(p.concat_dim) if p.HasField("concat_dim") else int(p.axis)
    return [ctx.mx.sym.concat(*ctx.data, dim=axis, name=ctx.name)]


@translator("Eltwise")
def _eltwise(ctx: OpContext) -> list[Any]:
    sym, p = ctx.mx.sym, ctx.layer.eltwise_param
    op = caffe_pb2.EltwiseParameter.EltwiseOp.Name(p.operation)
    if len(p.coeff) and (op != "SUM" or len(p.coeff) != len(ctx.data)):
        raise ctx.fail("coeff is only allowed for SUM, one per bottom")
    out = ctx.data[0] * float(p.coeff[0]) if len(p.coeff) else ctx.data[0]
    for i, x in enumerate(ctx.data[1:], start=1):
        if op == "SUM":
            out = out + (x * float(p.coeff[i]) if len(p.coeff) else x)
        elif op == "PROD":
            out = out * x
        else:
            out = sym.maximum(out, x)
    return [sym.identity(out, name=ctx.name)]


@translator("BatchNorm")
def _batch_norm(ctx: OpContext) -> list[Any]:
    sym, p, x = ctx.mx.sym, ctx.layer.batch_norm_param, ctx.data[0]
    if p.HasField("use_global_stats") and not p.use_global_stats:
        raise ctx.fail("use_global_stats: false (batch statistics with Caffe's in-place moving averages) "
                       "has no exact native translation", hint='use engine="caffe", or mx.sym.BatchNorm')
    if not p.HasField("use_global_stats"):
        logger.warning("CaffeOp %r: BatchNorm without use_global_stats uses its stored statistics (Caffe's TEST "
                       "phase) also when MXNet trains; Caffe's TRAIN phase would use batch statistics "
                       '(engine="caffe" runs that)', ctx.name)
    var = ctx.per_channel(sym.BlockGrad(ctx.weights[1]), x)
    # tied to var's shape so that MXNet lists the arguments in blob order (0, 1, 2) as the plugin did
    mean = sym.elemwise_add(sym.BlockGrad(ctx.weights[0]), sym.BlockGrad(sym.zeros_like(var)))
    factor = ctx.per_channel(sym.BlockGrad(ctx.weights[2]), x, scalar=True)
    inverse = sym.where(factor == 0, sym.zeros_like(factor), 1.0 / factor)
    std = sym.sqrt(sym.broadcast_mul(var, inverse) + float(p.eps))
    view = ctx.channel_view(x)
    centred = sym.elemwise_sub(view, ctx.spread(sym.broadcast_mul(mean, inverse), view))
    return [sym.reshape_like(sym.elemwise_div(centred, ctx.spread(std, view)), x, name=ctx.name)]


@translator("Scale", notes="one bottom, any axis >= 0 / num_axes")
def _scale(ctx: OpContext) -> list[Any]:
    sym, p, x = ctx.mx.sym, ctx.layer.scale_param, ctx.data[0]
    if len(ctx.data) != 1 or p.axis < 0 or p.num_axes < -1 or p.num_axes == 0:
        raise ctx.fail("only one bottom (a learned scale) with axis >= 0 and num_axes != 0 is translated",
                       hint='use engine="caffe"')
    if p.axis == 1 and p.num_axes == 1:  # the common per-channel form
        view = ctx.channel_view(x)
        out = sym.elemwise_mul(view, ctx.spread(ctx.per_channel(ctx.weights[0], x), view))
        if p.bias_term:
            out = sym.elemwise_add(out, ctx.spread(ctx.per_channel(ctx.weights[1], x), view))
        return [sym.reshape_like(out, x, name=ctx.name)]
    view, gamma = ctx.axes_blob(ctx.weights[0], x, int(p.axis), int(p.num_axes))
    out = sym.broadcast_mul(view, gamma)
    if p.bias_term:
        out = sym.broadcast_add(out, ctx.axes_blob(ctx.weights[1], x, int(p.axis), int(p.num_axes))[1])
    return [sym.reshape_like(out, x, name=ctx.name)]
