"""Torch implementations of the hub (ONNX opset 17) ops the Caffe importer emits, for :class:`HubModule`.

One function per op: ``(node, inputs) -> outputs`` with ONNX semantics (explicit, possibly asymmetric pads;
``ceil_mode`` 0 as the Caffe importer writes pooling; inference-mode BatchNormalization).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx_ir as ir
import torch
import torch.nn.functional as F  # noqa: N812

from nnbridge.hub.passes.graph import attr

OpFn = Callable[[ir.Node, list[Any]], list[torch.Tensor]]
TORCH_OPS: dict[str, OpFn] = {}


def op(*names: str) -> Callable[[OpFn], OpFn]:
    def register(fn: OpFn) -> OpFn:
        for name in names:
            if name in TORCH_OPS:
                raise ValueError(f"hub op {name} registered twice")
            TORCH_OPS[name] = fn
        return fn
    return register


def _ints(t: torch.Tensor) -> list[int]:
    return [int(v) for v in t.reshape(-1).tolist()]


def _unary(fn: Callable[[torch.Tensor], torch.Tensor]) -> OpFn:
    return lambda node, xs: [fn(xs[0])]


_UNARY: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "Relu": torch.relu, "Tanh": torch.tanh, "Sigmoid": torch.sigmoid, "Abs": torch.abs, "Exp": torch.exp,
    "Log": torch.log, "Sqrt": torch.sqrt, "Neg": torch.neg, "Reciprocal": torch.reciprocal, "Softplus": F.softplus,
    "Identity": lambda x: x}
_BINARY: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div, "Pow": torch.pow, "Greater": torch.gt}


def _binary(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> OpFn:
    return lambda node, xs: [fn(xs[0], xs[1])]


TORCH_OPS.update({name: _unary(fn) for name, fn in _UNARY.items()})
TORCH_OPS.update({name: _binary(fn) for name, fn in _BINARY.items()})


@op("Max", "Min")
def _max_min(node: ir.Node, xs: list[Any]) -> list[torch.Tensor]:
    out = xs[0]
    for x in xs[1:]:
        out = torch.maximum(out, x) if node.op_type == "Max" else torch.minimum(out, x)
    return [out]


@op("Dropout")
def _dropout(node: ir.Node, xs: list[Any]) -> list[torch.Tensor]:
    return [xs[0]] + ([torch.ones_like(xs[0], dtype=torch.bool)] if len(node.outputs) > 1 else [])


@op("LeakyRelu")
def _leaky(node: ir.Node, xs: list[Any]) -> list[torch.Tensor]:
    return [F.leaky_relu(xs[0], float(attr(node, "alpha", 0.01)))]


@op("Elu")
def _elu(node: ir.Node, xs: list[Any]) -> list[torch.Tensor]:
    return [F.elu(xs[0], float(attr(node, "alpha", 1.0)))]


@op("PRelu")
def _prelu(node: ir.Node, xs: list[Any]) -> list[torch.Tensor]:
    x, slope = xs
    return [torch.where(x >= 0, x, x * slope)]


@op("Clip")
def _clip(node: ir.Node, xs: list[Any]) -> list[torch.Tensor]:
    lo = xs[1] if len(xs) > 1 and xs[1] is not None else None
    hi = xs[2] if len(xs) > 2 and xs[2] is not None else None
    return [torch.clamp(xs[0], lo, hi)]


@op("Cast")
def _cast(node: ir.Node, xs: list[Any]) -> list[torch.Tensor]:
    dtype = ir.DataType(int(attr(node, "to"))).numpy()
    return [xs[0].to(torch.from_numpy(np.zeros(0, dtype)).dtype)]


def _pads(node: ir.Node, n: int) -> tuple[list[int], list[int]]:
    if attr(node, "auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        raise NotImplementedError(f"{node.name}: auto_pad {attr(node, 'auto_pad')}")
    pads = [int(p) for p in attr(node, "pads", [0] * (2 * n))]
    return pads[:n], pads[n:]


def _torch_pad(begin: list[int], end: list[int]) -> list[int]:
    out: list[int] = []
    for b, e in zip(reversed(begin), reversed(end), strict=True):
        out += [b, e]
    return out


@op("Conv")
def _conv(node: ir.Node, xs: list[Any]) -> list[torch.Tensor]:
    x, w = xs[0], xs[1]
    bias = xs[2] if len(xs) > 2 else None
    n = w.dim() - 2
    begin, end = _pads(node, n)
    if begin != end:
        x, begin = F.pad(x, _torch_pad(begin, end)), [0] * n
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[n]
    return [conv(x, w, bias, [int(s) for s in attr(node, "strides", [1] * n)], begin,
                 [int(d) for d in attr(node, "dilations", [1] * n)], int(attr(node, "group", 1)))]


@op("ConvTranspose")
def _deconv(node: ir.Node, xs: list[Any]) -> list[torch.Tensor]:
    x, w = xs[0], xs[1]
    bias = xs[2] if len(xs) > 2 else None
    n = w.dim() - 2
    begin, end = _pads(node, n)
    out_pad = [int(p) for p in attr(node, "output_padding", [0] * n)]
    y = F.conv_transpose2d(x, w, bias, [int(s) for s in attr(node, "strides", [1] * n)], 0, out_pad,
                           int(attr(node, "group", 1)), [int(d) for d in attr(node, "dilations", [1] * n)])
    crops = [slice(b, y.shape[2 + i] - e) for i, (b, e) in enumerate(zip(begin, end, strict=True))]
    index = [slice(None), slice(None), *crops]
    return [y[tuple(index)]]


@op("MaxPool", "AveragePool")
def _pool(node: ir.Node, xs: list[Any]) -> list[torch.Tensor]:
    x = xs[0]
    kernel = [int(k) for k in attr(node, "kernel_shape")]
    n = len(kernel)
    stride = [int(s) for s in attr(node, "strides", [1] * n)]
    begin, end = _pads(node, n)
    ceil = bool(attr(node, "ceil_mode", 0))
    if node.op_type == "MaxPool":
        padded = F.pad(x, _torch_pad(begin, end), value=float("-inf"))
        return [F.max_pool2d(padded, kernel, stride, ceil_mode=ceil)]
    padded = F.pad(x, _torch_pad(begin, end))
    y = F.avg_pool2d(padded, kernel, stride, ceil_mode=ceil, count_include_pad=True)
    if not int(attr(node, "count_include_pad", 0)) and (any(begin) or any(end)):
        ones = F.pad(torch.ones_like(x[:1, :1]), _torch_pad(begin, end))
        y = y / F.avg_pool2d(ones, kernel, stride, ceil_mode=ceil, count_include_pad=True)
    return [y]


@op("GlobalMaxPool", "GlobalAveragePool")
def _global_pool(node: ir.Node, xs: list[Any]) -> list[torch.Tensor]:
    dims = tuple(range(2, xs[0].dim()))
    return [xs[0].amax(dim=dims, keepdim=True) if node.op_type == "GlobalMaxPool"
            else xs[0].mean(dim=dims, keepdim=True)]


@op("BatchNormalization")
def _batch_norm(node: ir.Node, xs: list[Any]) -> list[torch.Tensor]:
    x, scale, bias, mean, var = xs[:5]
    shape = (1, -1) + (1,) * (x.dim() - 2)
    std = torch.sqrt(var + float(attr(node, "epsilon", 1e-5)))
    return [(x - mean.reshape(shape)) / std.reshape(shape) * scale.reshape(shape) + bias.reshape(shape)]


@op("Gemm")
def _gemm(node: ir.Node, xs: list[Any]) -> list[torch.Tensor]:
    a = xs[0].t() if int(attr(node, "transA", 0)) else xs[0]
    b = xs[1].t() if int(attr(node, "transB", 0)) else xs[1]
    y = float(attr(node, "alpha", 1.0)) * (a @ b)
    if len(xs) > 2 and xs[2] is not None:
        y = y + float(attr(node, "beta", 1.0)) * xs[2]
    return [y]


@op("MatMul")
def _matmul(node: ir.Node, xs: list[Any]) -> list[torch.Tensor]:
    return [xs[0] @ xs[1]]


@op("LRN")
def _lrn(node: ir.Node, xs: list[Any]) -> list[torch.Tensor]:
    return [F.local_response_norm(xs[0], int(attr(node, "size")), float(attr(node, "alpha", 1e-4)),
                                  float(attr(node, "beta", 0.75)), float(attr(node, "bias", 1.0)))]


@op("Softmax")
def _softmax(node: ir.Node, xs: list[Any]) -> list[torch.Tensor]:
    return [torch.softmax(xs[0], dim=int(attr(node, "axis", -1)))]


@op("Flatten")
def _flatten(node: ir.Node, xs: list[Any]) -> list[torch.Tensor]:
    axis = int(attr(node, "axis", 1)) % max(xs[0].dim(), 1)
    return [xs[0].reshape(int(np.prod(xs[0].shape[:axis])), -1)]


@op("Reshape")
def _reshape(node: ir.Node, xs: list[Any]) -> list[torch.Tensor]:
    shape = _ints(xs[1])
    if not int(attr(node, "allowzero", 0)):
        shape = [xs[0].shape[i] if d == 0 else d for i, d in enumerate(shape)]
    return [xs[0].reshape(shape)]


@op("Transpose")
def _transpose(node: ir.Node, xs: list[Any]) -> list[torch.Tensor]:
    perm = attr(node, "perm") or list(reversed(range(xs[0].dim())))
    return [xs[0].permute(*[int(p) for p in perm])]


@op("Concat")
def _concat(node: ir.Node, xs: list[Any]) -> list[torch.Tensor]:
    return [torch.cat(xs, dim=int(attr(node, "axis")))]


@op("Split")
def _split(node: ir.Node, xs: list[Any]) -> list[torch.Tensor]:
    axis = int(attr(node, "axis", 0))
    if len(xs) > 1 and xs[1] is not None:
        return list(torch.split(xs[0], _ints(xs[1]), dim=axis))
    return list(torch.chunk(xs[0], len(node.outputs), dim=axis))


@op("Slice")
def _slice(node: ir.Node, xs: list[Any]) -> list[torch.Tensor]:
    x, starts, ends = xs[0], _ints(xs[1]), _ints(xs[2])
    axes = _ints(xs[3]) if len(xs) > 3 and xs[3] is not None else list(range(len(starts)))
    steps = _ints(xs[4]) if len(xs) > 4 and xs[4] is not None else [1] * len(starts)
    index = [slice(None)] * x.dim()
    for s, e, a, st in zip(starts, ends, axes, steps, strict=True):
        size = x.shape[a]
        index[a] = slice(max(min(s, size), -size), max(min(e, size), -size - 1), st)
    if any(st < 0 for st in steps):
        raise NotImplementedError("Slice with negative steps")
    return [x[tuple(index)]]


@op("Pad")
def _pad(node: ir.Node, xs: list[Any]) -> list[torch.Tensor]:
    pads = _ints(xs[1])
    n = len(pads) // 2
    value = float(xs[2].reshape(-1)[0]) if len(xs) > 2 and xs[2] is not None else 0.0
    mode = str(attr(node, "mode", "constant"))
    widths = _torch_pad(pads[:n], pads[n:])
    if mode == "constant":
        return [F.pad(xs[0], widths, value=value)]
    return [F.pad(xs[0], widths[:2 * (n - 2)], mode={"edge": "replicate"}.get(mode, mode))]


@op("ReduceMean", "ReduceSumSquare")
def _reduce(node: ir.Node, xs: list[Any]) -> list[torch.Tensor]:
    axes = attr(node, "axes")
    if axes is None and len(xs) > 1 and xs[1] is not None:
        axes = _ints(xs[1])
    dims = tuple(int(a) for a in axes) if axes else tuple(range(xs[0].dim()))
    keep = bool(int(attr(node, "keepdims", 1)))
    if node.op_type == "ReduceMean":
        return [xs[0].mean(dim=dims, keepdim=keep)]
    return [(xs[0] * xs[0]).sum(dim=dims, keepdim=keep)]


@op("Expand")
def _expand(node: ir.Node, xs: list[Any]) -> list[torch.Tensor]:
    shape = torch.broadcast_shapes(tuple(xs[0].shape), tuple(_ints(xs[1])))
    return [xs[0].expand(shape)]


@op("Tile")
def _tile(node: ir.Node, xs: list[Any]) -> list[torch.Tensor]:
    return [xs[0].repeat(*_ints(xs[1]))]


@op("Constant")
def _constant(node: ir.Node, xs: list[Any]) -> list[torch.Tensor]:
    value = node.attributes["value"].value
    return [torch.from_numpy(np.array(value.numpy()))]
