"""One Caffe layer given as prototxt text, framework-neutral: what ``CaffeOp``/``CaffeLoss`` (MXNet) and
``CaffeLayer``/``CaffeLoss`` (PyTorch) need before they build anything.

- :func:`parse_single_layer` parses ``layer { ... }`` with nnbridge's own schema and insists on exactly one
  V2 layer (a name is optional; the caller's name wins);
- :func:`blob_count` is the number of parameter blobs Caffe's ``LayerSetUp`` creates for that layer, which
  the caller checks against the user's ``num_weight``;
- :func:`conv_geometry` / :func:`pool_geometry` read the kernel/stride/pad/dilation fields the way Caffe does
  (``kernel_size`` repeated or ``kernel_h``/``kernel_w``; one value means 2-D);
- :func:`loss_normalization` resolves ``loss_param`` (``normalization``, the legacy ``normalize`` bool and the
  per-layer default) to one of ``FULL VALID BATCH_SIZE NONE``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nnbridge.caffe.formats.prototxt import parse_prototxt
from nnbridge.caffe.proto import caffe_pb2
from nnbridge.errors import ConversionError, FormatError


def parse_single_layer(prototxt: str, *, what: str = "prototxt") -> Any:
    """The one ``layer { ... }`` of ``prototxt`` (a caffe_pb2.LayerParameter)."""
    if not isinstance(prototxt, str) or not prototxt.strip():
        raise FormatError(what, "empty prototxt", hint='give one layer, e.g. prototxt="layer{type:\\"TanH\\"}"')
    net = parse_prototxt(prototxt, what)
    if len(net.layers):
        raise FormatError(what, "a V1 'layers { }' block; only the V2 'layer { }' syntax is accepted here",
                          hint="write layer{type:\"InnerProduct\" ...} with the V2 type names")
    if len(net.layer) != 1:
        raise FormatError(what, f"expected exactly one layer {{ }} block, found {len(net.layer)}",
                          hint="CaffeOp/CaffeLayer wrap a single layer; use nnbridge.torch.load_caffe or "
                               "nnbridge.convert for whole nets")
    layer = net.layer[0]
    if not layer.type:
        raise FormatError(what, "the layer has no type", hint='add type: "InnerProduct" (or another layer type)')
    return layer


def blob_count(layer: Any) -> int | None:
    """How many parameter blobs Caffe gives this layer (None for types nnbridge does not know)."""
    kind = str(layer.type)
    if kind in ("InnerProduct",):
        return 2 if layer.inner_product_param.bias_term else 1
    if kind in ("Convolution", "Deconvolution"):
        return 2 if layer.convolution_param.bias_term else 1
    if kind == "BatchNorm":
        return 3
    if kind == "Scale":
        return 2 if layer.scale_param.bias_term else 1
    if kind == "PReLU":
        return 1
    if kind in ("ReLU", "TanH", "Sigmoid", "AbsVal", "Dropout", "Softmax", "Flatten", "Concat", "Eltwise",
                "Pooling", "LRN", "Power", "Split"):
        return 0
    return None


@dataclass(frozen=True)
class Geometry:
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    pad: tuple[int, ...]
    dilation: tuple[int, ...]


def _per_axis(values: Any, h: int | None, w: int | None, default: int, n: int, field: str, where: str) -> tuple:
    if h is not None or w is not None:
        if h is None or w is None:
            raise ConversionError(f"{where}: {field}_h and {field}_w must be given together")
        return (int(h), int(w))
    items = [int(v) for v in values]
    if not items:
        return (default,) * n
    if len(items) == 1:
        return (items[0],) * n
    if len(items) != n:
        raise ConversionError(f"{where}: {field} has {len(items)} values for {n} spatial axes")
    return tuple(items)


def conv_geometry(layer: Any) -> Geometry:
    """Kernel/stride/pad/dilation of a Convolution layer (2-D unless ``kernel_size`` has 3 values)."""
    p = layer.convolution_param
    where = f"layer {layer.name or '<unnamed>'!r} ({layer.type})"
    n = 3 if len(p.kernel_size) == 3 and not p.HasField("kernel_h") else 2
    if not len(p.kernel_size) and not p.HasField("kernel_h"):
        raise ConversionError(f"{where}: convolution_param has no kernel_size", )
    pick = (lambda f: getattr(p, f) if p.HasField(f) else None)  # noqa: E731
    kernel = _per_axis(p.kernel_size, pick("kernel_h"), pick("kernel_w"), 1, n, "kernel", where)
    stride = _per_axis(p.stride, pick("stride_h"), pick("stride_w"), 1, n, "stride", where)
    pad = _per_axis(p.pad, pick("pad_h"), pick("pad_w"), 0, n, "pad", where)
    dilation = _per_axis(p.dilation, None, None, 1, n, "dilation", where)
    return Geometry(kernel, stride, pad, dilation)


def pool_geometry(layer: Any) -> Geometry:
    """Kernel/stride/pad of a (non-global) Pooling layer."""
    p = layer.pooling_param
    where = f"layer {layer.name or '<unnamed>'!r} (Pooling)"
    if p.HasField("kernel_size"):
        kernel = (int(p.kernel_size),) * 2
    elif p.HasField("kernel_h") and p.HasField("kernel_w"):
        kernel = (int(p.kernel_h), int(p.kernel_w))
    else:
        raise ConversionError(f"{where}: pooling_param needs kernel_size or kernel_h + kernel_w "
                              "(or global_pooling: true)")
    stride = (int(p.stride_h), int(p.stride_w)) if p.HasField("stride_h") else (int(p.stride),) * 2
    pad = (int(p.pad_h), int(p.pad_w)) if p.HasField("pad_h") else (int(p.pad),) * 2
    return Geometry(kernel, stride, pad, (1, 1))


def pool_ceil(layer: Any) -> bool:
    """Caffe rounds pooled sizes up (CEIL, the BVLC behaviour) unless round_mode FLOOR / ceil_mode false."""
    p = layer.pooling_param
    if p.HasField("ceil_mode"):
        return bool(p.ceil_mode)
    return bool(p.round_mode == caffe_pb2.PoolingParameter.CEIL)


def loss_normalization(layer: Any, default: str = "VALID") -> str:
    """``FULL``/``VALID``/``BATCH_SIZE``/``NONE`` as Caffe's loss layers resolve it."""
    p = layer.loss_param
    if p.HasField("normalization"):
        return str(caffe_pb2.LossParameter.NormalizationMode.Name(p.normalization))
    if p.HasField("normalize"):
        return "VALID" if p.normalize else "BATCH_SIZE"
    return default


def ignore_label(layer: Any) -> int | None:
    p = layer.loss_param
    return int(p.ignore_label) if p.HasField("ignore_label") else None


def one_layer_net(layer: Any, bottoms: dict[str, tuple[int, ...]], tops: list[str]) -> Any:
    """A NetParameter running ``layer`` alone: ``force_backward``, one ``input`` per bottom (name -> shape),
    the layer reading ``bottoms`` and writing ``tops`` (its own bottom/top names are replaced)."""
    net = caffe_pb2.NetParameter()
    net.force_backward = True
    for name, shape in bottoms.items():
        net.input.append(name)
        net.input_shape.add().dim.extend(int(d) for d in shape)
    copy = net.layer.add()
    copy.CopyFrom(layer)
    copy.name = layer.name or "layer"
    del copy.bottom[:]
    del copy.top[:]
    copy.bottom.extend(bottoms)
    copy.top.extend(tops)
    return net
