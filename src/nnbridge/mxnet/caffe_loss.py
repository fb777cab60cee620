"""``CaffeLoss``: a Caffe loss layer inside an MXNet symbol, built from native MXNet operators.

``CaffeLoss(data=..., label=..., grad_scale=1, num_data=2, num_out=1, prototxt="layer{...}", name=...)`` as in
MXNet's old Caffe plugin: the forward output is the loss value Caffe's top blob holds (shape (1,)); the
backward ignores the head gradient and gives ``grad_scale`` times Caffe's bottom gradient (``loss_weight`` in
the prototxt overrides ``grad_scale``, as in the plugin). Built as ``MakeLoss(L, grad_scale=g)`` where ``L`` is
Caffe's loss formula in MXNet operators, so MXNet's autograd gives Caffe's gradient. The label never gets
a gradient (BlockGrad) except where Caffe computes one (EuclideanLoss's second bottom, ContrastiveLoss's
two feature bottoms). Inputs are Caffe's bottoms in order: ``data``, ``label``, then ``data_2``...

- SoftmaxWithLoss (softmax axis 1; ``ignore_label``; normalization FULL/VALID/BATCH_SIZE/NONE, default VALID,
  legacy ``normalize``): ``-sum(mask * log_softmax(x)[label]) / max(1, normalizer)``.
- SigmoidCrossEntropyLoss as the reference BVLC Caffe computes it: ``sum(relu(x) - x t + log(1 + exp(-|x|))) / N``
  (that Caffe ignores ``loss_param``, later ones honour ignore_label/normalization: a loss_param is refused).
- EuclideanLoss: ``sum((a - b)^2) / N / 2``; gradients to both bottoms.
- HingeLoss L1/L2: with ``s = 1 - 2 onehot(label)``: ``sum(relu(1 + s x)^p) / N``.
- ContrastiveLoss (``margin``, ``legacy_version``): Caffe's per-pair terms / 2N. The non-legacy backward of a
  dissimilar pair divides by ``dist + 1e-4`` in Caffe (not the exact derivative); that is reproduced exactly by
  a surrogate term whose gradient is Caffe's, added as ``BlockGrad(L - S) + S`` (forward equals ``L`` up to
  one float32 rounding).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nnbridge.caffe import single_layer
from nnbridge.caffe.proto import caffe_pb2
from nnbridge.errors import ConversionError
from nnbridge.mxnet.caffe_op import auto_name, mxnet_module
from nnbridge.registry import Registry

LossBuilder = Callable[[Any, Any, str, list[Any]], Any]
CAFFE_LOSSES: Registry[LossBuilder] = Registry("Caffe loss -> native MXNet (CaffeLoss)")
#: How many bottoms each loss takes.
BOTTOMS = {"SoftmaxWithLoss": 2, "SigmoidCrossEntropyLoss": 2, "EuclideanLoss": 2, "HingeLoss": 2,
           "ContrastiveLoss": 3}


def _normalizer(mx: Any, mode: str, x: Any, mask: Any | None) -> Any:
    """Caffe's ``get_normalizer`` for x of shape (outer, C, inner): FULL = outer * inner, VALID = #valid,
    BATCH_SIZE = outer, NONE = 1 (None); at least 1."""
    sym = mx.sym
    ones = sym.ones_like(sym.BlockGrad(x))
    if mode == "VALID" and mask is not None:
        count = sym.sum(mask)
    elif mode in ("FULL", "VALID"):
        count = sym.sum(sym.slice_axis(ones, axis=1, begin=0, end=1))
    elif mode == "BATCH_SIZE":
        count = sym.sum(sym.slice_axis(sym.reshape(ones, shape=(0, -1)), axis=1, begin=0, end=1))
    else:
        return None
    return sym.BlockGrad(sym.maximum(count, 1.0))


def _label_mask(mx: Any, label: Any, layer: Any) -> Any | None:
    ignore = single_layer.ignore_label(layer)
    return None if ignore is None else mx.sym.BlockGrad(mx.sym.trunc(label) != float(ignore))  # Caffe casts to int


@CAFFE_LOSSES.register("SoftmaxWithLoss")
def _softmax_loss(mx: Any, layer: Any, name: str, bottoms: list[Any]) -> Any:
    sym = mx.sym
    if layer.softmax_param.axis != 1:
        raise ConversionError(f"CaffeLoss {name!r} (SoftmaxWithLoss): only softmax axis 1 is translated "
                              '(use engine="caffe")')
    x = sym.reshape(bottoms[0], shape=(0, 0, -1))  # (N, C, inner)
    label = sym.BlockGrad(sym.reshape(bottoms[1], shape=(0, -1)))  # (N, inner)
    picked = sym.pick(sym.log_softmax(x, axis=1), label, axis=1, mode="clip")
    mask = _label_mask(mx, label, layer)
    if mask is not None:
        picked = picked * mask
    total = -sym.sum(picked)
    norm = _normalizer(mx, single_layer.loss_normalization(layer, "VALID"), x, mask)
    return total if norm is None else sym.broadcast_div(total, norm)


@CAFFE_LOSSES.register("SigmoidCrossEntropyLoss")
def _sigmoid_ce(mx: Any, layer: Any, name: str, bottoms: list[Any]) -> Any:
    sym = mx.sym
    if layer.loss_param.HasField("ignore_label") or layer.loss_param.HasField("normalization") or \
            layer.loss_param.HasField("normalize"):
        raise ConversionError(f"CaffeLoss {name!r} (SigmoidCrossEntropyLoss): loss_param is ignored by the "
                              "reference BVLC Caffe's SigmoidCrossEntropyLoss (sum / batch size) but honoured by "
                              "later versions; nnbridge will not guess which one you mean (remove loss_param, or "
                              'use engine="caffe" to run your Caffe)')
    x, t = bottoms[0], sym.BlockGrad(bottoms[1])
    terms = sym.relu(x) - x * sym.reshape_like(t, x) + sym.log1p(sym.exp(-sym.abs(x)))
    return sym.broadcast_div(sym.sum(terms), _batch(mx, x))


def _batch(mx: Any, x: Any) -> Any:
    """N (as a (1,) float tensor, no gradient) of a tensor whose first axis is the batch."""
    sym = mx.sym
    flat = sym.reshape(sym.ones_like(sym.BlockGrad(x)), shape=(0, -1))
    return sym.BlockGrad(sym.sum(sym.slice_axis(flat, axis=1, begin=0, end=1)))


@CAFFE_LOSSES.register("EuclideanLoss")
def _euclidean(mx: Any, layer: Any, name: str, bottoms: list[Any]) -> Any:
    sym = mx.sym
    diff = bottoms[0] - sym.reshape_like(bottoms[1], bottoms[0])
    return sym.broadcast_div(sym.sum(diff * diff), _batch(mx, bottoms[0]) * 2.0)


@CAFFE_LOSSES.register("HingeLoss")
def _hinge(mx: Any, layer: Any, name: str, bottoms: list[Any]) -> Any:
    sym = mx.sym
    x = sym.reshape(bottoms[0], shape=(0, -1))
    label = sym.BlockGrad(sym.reshape(bottoms[1], shape=(-1, 1)))
    onehot = sym.BlockGrad(sym.broadcast_equal(sym.contrib.arange_like(x, axis=1).reshape((1, -1)), label))
    margins = sym.relu(1.0 + x * (1.0 - 2.0 * onehot))
    norm = caffe_pb2.HingeLossParameter.Norm.Name(layer.hinge_loss_param.norm)
    total = sym.sum(margins) if norm == "L1" else sym.sum(margins * margins)
    return sym.broadcast_div(total, _batch(mx, x))


@CAFFE_LOSSES.register("ContrastiveLoss")
def _contrastive(mx: Any, layer: Any, name: str, bottoms: list[Any]) -> Any:
    sym = mx.sym
    p = layer.contrastive_loss_param
    a, b = sym.reshape(bottoms[0], shape=(0, -1)), sym.reshape(bottoms[1], shape=(0, -1))
    similar = sym.BlockGrad(sym.reshape(bottoms[2], shape=(-1,)))
    similar = sym.BlockGrad(sym.trunc(similar) != 0)  # Caffe: static_cast<int>(y) != 0
    diff = a - b
    dist_sq = sym.sum(diff * diff, axis=1)
    margin = float(p.margin)
    if p.legacy_version:
        dissimilar = sym.relu(margin - dist_sq)
        loss = sym.sum(similar * dist_sq + (1 - similar) * dissimilar)
        return sym.broadcast_div(loss, _batch(mx, a) * 2.0)
    dist = sym.sqrt(dist_sq)
    mdist = sym.relu(margin - dist)
    exact = sym.sum(similar * dist_sq + (1 - similar) * mdist * mdist)
    coeff = sym.BlockGrad(-mdist / (dist + 1e-4))  # Caffe's backward factor for dissimilar pairs
    surrogate = sym.sum(similar * dist_sq + (1 - similar) * coeff * dist_sq)
    loss = sym.BlockGrad(exact - surrogate) + surrogate
    return sym.broadcast_div(loss, _batch(mx, a) * 2.0)


def CaffeLoss(data: Any = None, label: Any = None, grad_scale: float = 1.0, num_data: int = 2, num_out: int = 1,  # noqa: N802
              prototxt: str = "layer{}", name: str | None = None, engine: str = "native", **more: Any) -> Any:
    """A Caffe loss layer as an MXNet loss symbol (see the module docstring)."""
    mx = mxnet_module()
    layer = single_layer.parse_single_layer(prototxt, what=f"CaffeLoss {name or ''} prototxt".replace("  ", " "))
    name = auto_name(mx, name, "caffeloss")
    kind = str(layer.type)
    given = [data, label] + [more.pop(f"data_{i}", None) for i in range(2, num_data)]
    if more:
        raise ConversionError(f"CaffeLoss {name!r}: unknown argument(s) {sorted(more)} (inputs are data, label, "
                              "data_2...)")
    default_names = ["data", "label"] + [f"data_{i}" for i in range(2, num_data)]
    bottoms = [s if s is not None else mx.sym.Variable(f"{name}_{n}")
               for s, n in zip(given, default_names, strict=True)]
    if len(layer.loss_weight):
        grad_scale = float(layer.loss_weight[0])
    if engine == "caffe":
        from nnbridge.mxnet.caffe_engine import caffe_custom_op

        return caffe_custom_op(mx, layer, name, bottoms, [], num_out, loss=True, grad_scale=grad_scale)
    if engine != "native":
        raise ConversionError(f"CaffeLoss {name!r}: engine must be 'native' or 'caffe', not {engine!r}")
    builder = CAFFE_LOSSES.get(kind)
    if builder is None:
        raise ConversionError(f"CaffeLoss {name!r}: no native translation of loss layer type {kind!r} (run it "
                              f'in real Caffe with engine="caffe"; translated: {", ".join(CAFFE_LOSSES.keys())})')
    if num_data != BOTTOMS[kind]:
        raise ConversionError(f"CaffeLoss {name!r} ({kind}): num_data={num_data}, but this loss takes "
                              f"{BOTTOMS[kind]} bottoms (pass num_data={BOTTOMS[kind]})")
    if num_out != 1:
        raise ConversionError(f"CaffeLoss {name!r} ({kind}): num_out={num_out}, but a loss has 1 top (pass num_out=1)")
    value = builder(mx, layer, name, bottoms)
    return mx.sym.MakeLoss(mx.sym.reshape(value, shape=(1,)), grad_scale=float(grad_scale), name=name)
