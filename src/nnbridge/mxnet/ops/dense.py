"""FullyConnected and Embedding.

FullyConnected(data, weight (F, K), [bias (F,)]), ``num_hidden`` F required, ``no_bias`` False, ``flatten`` True:

- ``flatten``: ``x`` is viewed as (N, K) with ``K = prod(shape[1:])``; ``y = x W^T + b`` -> ``Flatten`` + ``Gemm``
  (``transB = 1``);
- not ``flatten``: the last axis is contracted, ``y[..., f] = sum_k x[..., k] W[f, k] + b[f]`` -> ``MatMul``
  with ``Transpose(W)`` + ``Add``.

Embedding(data, weight (input_dim, output_dim)): ``out = weight[clip(int(data), 0, input_dim - 1)]``; MXNet
truncates float indices towards zero and clips them into range -> ``Cast`` int64, ``Clip``, ``Gather``.
"""

from __future__ import annotations

import math

import numpy as np
import onnx_ir as ir

from nnbridge.mxnet.importer import NodeContext, mxnet_op


@mxnet_op("FullyConnected")
def fully_connected(ctx: NodeContext) -> list[ir.Value]:
    shape = ctx.in_shape(0)
    hidden = ctx.attrs.int("num_hidden")
    flatten = ctx.attrs.bool("flatten", True)
    no_bias = ctx.attrs.bool("no_bias", False)
    if len(shape) < 1:
        raise ctx.fail("input must have at least one axis")
    if flatten:
        k = math.prod(shape[1:]) if len(shape) > 1 else 1
        weight = ctx.check_param(1, (hidden, k))
        x = ctx.value(0)
        if len(shape) != 2:
            x = ctx.op1("Flatten", [x], {"axis": 1}, suffix="flatten")
        inputs = [x, weight] + ([] if no_bias else [ctx.check_param(2, (hidden,))])
        return [ctx.op1("Gemm", inputs, {"transB": 1})]
    weight = ctx.check_param(1, (hidden, shape[-1]))
    wt = ctx.op1("Transpose", [weight], {"perm": [1, 0]}, suffix="weight_t")
    if no_bias:
        return [ctx.op1("MatMul", [ctx.value(0), wt])]
    y = ctx.op1("MatMul", [ctx.value(0), wt], suffix="matmul")
    return [ctx.op1("Add", [y, ctx.check_param(2, (hidden,))])]


@mxnet_op("Embedding")
def embedding(ctx: NodeContext) -> list[ir.Value]:
    input_dim = ctx.attrs.int("input_dim")
    output_dim = ctx.attrs.int("output_dim")
    weight = ctx.check_param(1, (input_dim, output_dim))
    index = ctx.op1("Cast", [ctx.value(0)], {"to": ir.DataType.INT64}, suffix="index")
    index = ctx.op1("Clip", [index, ctx.const("low", np.asarray(0, np.int64)),
                             ctx.const("high", np.asarray(input_dim - 1, np.int64))], suffix="clip")
    return [ctx.op1("Gather", [weight, index], {"axis": 0})]
