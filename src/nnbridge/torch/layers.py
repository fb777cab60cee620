"""``CaffeLayer``: one Caffe layer as a trainable PyTorch module (its blobs are ``nn.Parameter``s in Caffe's layouts).

``CaffeLayer(prototxt, weights=None)`` parses ``layer { ... }`` (exactly one layer) and computes Caffe's forward
with torch operators, so autograd gives Caffe's backward. ``layer.blobs`` lists the parameters in Caffe's
order and layouts: InnerProduct (num_output, K) (``transpose: true``: (K, num_output)); Convolution (O, I/group,
kh, kw); BatchNorm (mean*s, var*s, s (1,)) — frozen, Caffe gives them no gradient; Scale gamma (C,), beta (C,).
Without ``weights`` the blobs are created at the first forward (PyTorch's lazy-module mechanism: run one batch
before building the optimizer) and filled from the layer's ``weight_filler``/``bias_filler`` (gaussian, msra,
xavier, uniform, constant; He-normal when none is given) — Caffe's own default filler is constant 0 — and
BatchNorm's blobs with zeros as Caffe does.

Layers: InnerProduct, Convolution, Pooling (MAX/AVE with Caffe's CEIL rounding: ``ceil_mode=True`` in PyTorch
applies the same "last window starts inside image + pad" rule and AVE divides by the window clipped to
``[-pad, H + pad)``, as Caffe), ReLU, TanH, Sigmoid, AbsVal, Dropout, Softmax, Flatten, Concat, Eltwise,
BatchNorm (Caffe's rule: ``use_global_stats`` if given, else global statistics in ``eval()`` mode = Caffe's TEST
phase, and batch statistics with Caffe's in-place moving averages of the blobs in ``train()`` mode = TRAIN);
and, in :mod:`nnbridge.torch.caffe_layers`: Scale and Bias (any axis/num_axes, one bottom), PReLU, ELU, BNLL,
Power, Exp, Log, Threshold, Clip, ReLU6, Swish, LRN, MVN, Normalize, Deconvolution, Slice/Split (``num_out``
tops, returned as a tuple), Reshape, Permute, Tile, Crop, ShuffleChannel, Axpy, Reduction, ArgMax, Upsample.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin

from nnbridge.caffe import single_layer
from nnbridge.caffe.proto import caffe_pb2
from nnbridge.errors import ConversionError
from nnbridge.registry import Registry

Forward = Callable[["CaffeLayer", Sequence[torch.Tensor]], Any]
TORCH_LAYERS: Registry[Forward] = Registry("Caffe layer -> PyTorch (CaffeLayer)")
#: parameter blobs Caffe gives no gradient
FROZEN = {"BatchNorm"}
#: parameter blobs of the types nnbridge.caffe.single_layer.blob_count does not know
EXTRA_BLOBS: dict[str, Callable[[Any], int]] = {"Bias": lambda layer: 1, "Normalize": lambda layer: 1,
                                                "Embed": lambda layer: 2 if layer.embed_param.bias_term else 1}
#: layer types with several tops (``num_out``)
MULTI_TOP = {"Slice", "Split"}


def _fill(filler: Any, shape: tuple[int, ...], default: str, value: float = 0.0) -> torch.Tensor:
    kind = str(filler.type) if filler is not None and filler.ByteSize() else default
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else max(shape[0], 1)
    if kind == "constant":
        return torch.full(shape, float(filler.value) if filler is not None and filler.ByteSize() else value)
    if kind == "gaussian":
        return torch.randn(shape) * float(filler.std) + float(filler.mean)
    if kind == "uniform":
        return torch.rand(shape) * (float(filler.max) - float(filler.min)) + float(filler.min)
    if kind == "xavier":
        bound = math.sqrt(3.0 / fan_in)
        return (torch.rand(shape) * 2 - 1) * bound
    if kind in ("msra", "he"):
        return torch.randn(shape) * math.sqrt(2.0 / fan_in)
    raise ConversionError(f"filler type {kind!r} is not supported; give weights= explicitly")


class CaffeLayer(LazyModuleMixin, nn.Module):
    """One Caffe layer (see the module docstring); call it with the layer's bottoms, get its top."""

    def __init__(self, prototxt: str, weights: Sequence[Any] | None = None, num_out: int = 1) -> None:
        super().__init__()
        self.layer = single_layer.parse_single_layer(prototxt, what="CaffeLayer prototxt")
        self.kind = str(self.layer.type)
        if self.kind not in TORCH_LAYERS:
            raise ConversionError(f"CaffeLayer: no PyTorch translation for layer type {self.kind!r} "
                                  f"(translated: {', '.join(TORCH_LAYERS.keys())})")
        count = single_layer.blob_count(self.layer)
        extra = EXTRA_BLOBS.get(self.kind)
        self.num_blobs = (extra(self.layer) if extra else 0) if count is None else count
        if num_out < 1 or (num_out != 1 and self.kind not in MULTI_TOP):
            raise ConversionError(f"CaffeLayer ({self.kind}): num_out={num_out}; only {sorted(MULTI_TOP)} have "
                                  "several tops")
        self.num_out = num_out
        if weights is not None and len(weights) != self.num_blobs:
            raise ConversionError(f"CaffeLayer ({self.kind}): {len(weights)} weight blob(s) given, the layer has "
                                  f"{self.num_blobs}")
        frozen = self.kind in FROZEN
        for i in range(self.num_blobs):
            blob: Any
            if weights is not None:
                blob = nn.Parameter(torch.as_tensor(np.asarray(weights[i], dtype=np.float32)).clone(),
                                    requires_grad=not frozen)
            else:
                blob = nn.parameter.UninitializedParameter(requires_grad=not frozen)
            self.register_parameter(f"blob{i}", blob)

    @property
    def blobs(self) -> list[nn.Parameter]:
        return [getattr(self, f"blob{i}") for i in range(self.num_blobs)]

    def initialize_parameters(self, *inputs: torch.Tensor) -> None:  # LazyModuleMixin hook
        if not self.has_uninitialized_params():
            return
        x = inputs[0]
        with torch.no_grad():
            for blob, value in zip(self.blobs, self._initial(x), strict=True):
                blob.materialize(value.shape, dtype=x.dtype)  # type: ignore[attr-defined]
                blob.copy_(value)

    def _initial(self, x: torch.Tensor) -> list[torch.Tensor]:
        layer, channels = self.layer, int(x.shape[1])
        if self.kind == "InnerProduct":
            p = layer.inner_product_param
            k = int(np.prod(x.shape[p.axis:]))
            shape = (k, p.num_output) if p.transpose else (p.num_output, k)
            out = [_fill(p.weight_filler, shape, "msra")]
            return out + ([_fill(p.bias_filler, (p.num_output,), "constant")] if p.bias_term else [])
        if self.kind in ("Convolution", "Deconvolution"):
            p, g = layer.convolution_param, single_layer.conv_geometry(layer)
            shape = (p.num_output, channels // p.group, *g.kernel)
            if self.kind == "Deconvolution":
                shape = (channels, p.num_output // p.group, *g.kernel)
            out = [_fill(p.weight_filler, shape, "msra")]
            return out + ([_fill(p.bias_filler, (p.num_output,), "constant")] if p.bias_term else [])
        if self.kind == "BatchNorm":
            return [torch.zeros(channels), torch.zeros(channels), torch.zeros(1)]
        if self.kind in ("Scale", "Bias"):
            p = layer.scale_param if self.kind == "Scale" else layer.bias_param
            axis = int(p.axis) + x.dim() if p.axis < 0 else int(p.axis)
            dims = tuple(x.shape[axis:] if p.num_axes == -1 else x.shape[axis:axis + p.num_axes])
            if self.kind == "Bias":
                return [_fill(p.filler, dims, "constant")]
            out = [_fill(p.filler, dims, "constant", 1.0)]
            return out + ([_fill(p.bias_filler, dims, "constant")] if p.bias_term else [])
        if self.kind == "Embed":
            p = layer.embed_param
            out = [_fill(p.weight_filler, (p.input_dim, p.num_output), "msra")]
            return out + ([_fill(p.bias_filler, (p.num_output,), "constant")] if p.bias_term else [])
        if self.kind == "PReLU":
            p = layer.prelu_param
            slope = _fill(p.filler, (1,) if p.channel_shared else (channels,), "constant", 0.25)
            return [slope.reshape(()) if p.channel_shared else slope]  # Caffe: a 0-D blob when shared
        if self.kind == "Normalize":
            p = layer.norm_param
            scale = _fill(p.scale_filler, (1,) if p.channel_shared else (channels,), "constant", 1.0)
            return [scale.reshape(()) if p.channel_shared else scale]  # Caffe: a 0-D blob when shared
        raise ConversionError(f"CaffeLayer ({self.kind}): cannot create its blobs; give weights=")

    def forward(self, *bottoms: torch.Tensor) -> Any:  # a tuple of tops for Slice/Split with num_out > 1
        return TORCH_LAYERS.get(self.kind)(self, bottoms)  # type: ignore[misc]


def _channels(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A (C,) vector shaped to broadcast over axis 1 of x."""
    return v.reshape((1, -1) + (1,) * (x.dim() - 2))


@TORCH_LAYERS.register("InnerProduct")
def _inner_product(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    p = m.layer.inner_product_param
    x = xs[0].flatten(int(p.axis))
    w = m.blobs[0].t() if p.transpose else m.blobs[0]
    return F.linear(x, w, m.blobs[1] if p.bias_term else None)


@TORCH_LAYERS.register("Convolution")
def _convolution(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    p, g = m.layer.convolution_param, single_layer.conv_geometry(m.layer)
    conv = F.conv2d if len(g.kernel) == 2 else F.conv3d
    return conv(xs[0], m.blobs[0], m.blobs[1] if p.bias_term else None, g.stride, g.pad, g.dilation, int(p.group))


@TORCH_LAYERS.register("Pooling")
def _pooling(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    p, x = m.layer.pooling_param, xs[0]
    if p.pool not in (caffe_pb2.PoolingParameter.MAX, caffe_pb2.PoolingParameter.AVE):
        raise ConversionError("CaffeLayer (Pooling): STOCHASTIC pooling is random and not translated")
    is_max = p.pool == caffe_pb2.PoolingParameter.MAX
    if p.global_pooling:
        return x.amax(dim=(2, 3), keepdim=True) if is_max else x.mean(dim=(2, 3), keepdim=True)
    g, ceil = single_layer.pool_geometry(m.layer), single_layer.pool_ceil(m.layer)
    if any(2 * pad > k for pad, k in zip(g.pad, g.kernel, strict=True)):
        raise ConversionError(f"CaffeLayer (Pooling): pad {g.pad} > kernel/2 {g.kernel} is not translated")
    if is_max:
        return F.max_pool2d(x, g.kernel, g.stride, g.pad, ceil_mode=ceil)
    return F.avg_pool2d(x, g.kernel, g.stride, g.pad, ceil_mode=ceil, count_include_pad=True)


@TORCH_LAYERS.register("ReLU")
def _relu(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    slope = float(m.layer.relu_param.negative_slope)
    return F.relu(xs[0]) + slope * torch.clamp(xs[0], max=0.0) if slope else F.relu(xs[0])


@TORCH_LAYERS.register("TanH")
def _tanh(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.tanh(xs[0])


@TORCH_LAYERS.register("Sigmoid")
def _sigmoid(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.sigmoid(xs[0])


@TORCH_LAYERS.register("AbsVal")
def _abs(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.abs(xs[0])


@TORCH_LAYERS.register("Dropout")
def _dropout(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    return F.dropout(xs[0], float(m.layer.dropout_param.dropout_ratio), training=m.training)


@TORCH_LAYERS.register("Softmax")
def _softmax(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.softmax(xs[0], dim=int(m.layer.softmax_param.axis))


@TORCH_LAYERS.register("Flatten")
def _flatten(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    p = m.layer.flatten_param
    return xs[0].flatten(int(p.axis), int(p.end_axis))


@TORCH_LAYERS.register("Concat")
def _concat(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    p = m.layer.concat_param
    return torch.cat(list(xs), dim=int(p.concat_dim) if p.HasField("concat_dim") else int(p.axis))


@TORCH_LAYERS.register("Eltwise")
def _eltwise(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    p = m.layer.eltwise_param
    op = caffe_pb2.EltwiseParameter.EltwiseOp.Name(p.operation)
    coeff = list(p.coeff) or [1.0] * len(xs)
    if len(coeff) != len(xs) or (len(p.coeff) and op != "SUM"):
        raise ConversionError("CaffeLayer (Eltwise): coeff is only allowed for SUM, one per bottom")
    out = xs[0] * coeff[0] if len(p.coeff) else xs[0]
    for c, x in zip(coeff[1:], xs[1:], strict=True):
        out = out + c * x if op == "SUM" else (out * x if op == "PROD" else torch.maximum(out, x))
    return out


@TORCH_LAYERS.register("BatchNorm")
def _batch_norm(m: CaffeLayer, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    p, x = m.layer.batch_norm_param, xs[0]
    global_stats = bool(p.use_global_stats) if p.HasField("use_global_stats") else not m.training
    if not global_stats:
        return _batch_norm_train(m, x)
    mean, var, factor = (b.detach() for b in m.blobs)
    inverse = torch.where(factor == 0, torch.zeros_like(factor), 1.0 / factor)
    std = torch.sqrt(var * inverse + float(p.eps))
    return (x - _channels(mean * inverse, x)) / _channels(std, x)


def _batch_norm_train(m: CaffeLayer, x: torch.Tensor) -> torch.Tensor:
    """Caffe's TRAIN phase: batch statistics (biased variance), and the blobs updated in place as Caffe does:
    s = s * maf + 1, m = m * maf + mean, v = v * maf + var * n / (n - 1)."""
    p = m.layer.batch_norm_param
    dims = [0, *range(2, x.dim())]
    mean = x.mean(dim=dims)
    centred = x - _channels(mean, x)
    var = (centred * centred).mean(dim=dims)
    with torch.no_grad():
        maf, count = float(p.moving_average_fraction), x.numel() // x.shape[1]
        blob0, blob1, blob2 = m.blobs
        blob2.mul_(maf).add_(1.0)
        blob0.mul_(maf).add_(mean)
        blob1.mul_(maf).add_(var * (count / (count - 1) if count > 1 else 1.0))
    return centred / _channels(torch.sqrt(var + float(p.eps)), x)


# the other layers (package nnbridge.torch.caffe_layers) register themselves on import
from nnbridge.torch import caffe_layers  # noqa: E402,F401
