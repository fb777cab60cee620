"""``CaffeLoss``: a Caffe loss layer as a PyTorch module; ``loss.backward()`` gives Caffe's bottom diffs.

``CaffeLoss(prototxt)(data, label, ...)`` returns ``loss_weight * L`` (a 0-d tensor), where ``L`` is the value of
Caffe's top blob and ``loss_weight`` comes from the prototxt (default 1): the contribution Caffe's net adds
to its total loss, whose gradient is what Caffe's backward computes. Formulas as
:mod:`nnbridge.mxnet.caffe_loss` (SoftmaxWithLoss with ignore_label and FULL/VALID/BATCH_SIZE/NONE;
SigmoidCrossEntropyLoss as the reference BVLC Caffe, loss_param refused; EuclideanLoss; HingeLoss L1/L2;
ContrastiveLoss incl. legacy_version, with Caffe's ``dist + 1e-4`` backward reproduced by a detached surrogate).
Labels get no gradient (except EuclideanLoss's and ContrastiveLoss's second bottom, as in Caffe).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from nnbridge.caffe import single_layer
from nnbridge.caffe.proto import caffe_pb2
from nnbridge.errors import ConversionError
from nnbridge.registry import Registry

LossFn = Callable[[Any, Sequence[torch.Tensor]], torch.Tensor]
TORCH_LOSSES: Registry[LossFn] = Registry("Caffe loss -> PyTorch (CaffeLoss)")
BOTTOMS = {"SoftmaxWithLoss": 2, "SigmoidCrossEntropyLoss": 2, "EuclideanLoss": 2, "HingeLoss": 2,
           "ContrastiveLoss": 3}


class CaffeLoss(nn.Module):
    """A Caffe loss layer (see the module docstring)."""

    def __init__(self, prototxt: str) -> None:
        super().__init__()
        self.layer = single_layer.parse_single_layer(prototxt, what="CaffeLoss prototxt")
        self.kind = str(self.layer.type)
        if self.kind not in TORCH_LOSSES:
            raise ConversionError(f"CaffeLoss: no PyTorch translation for loss type {self.kind!r} "
                                  f"(translated: {', '.join(TORCH_LOSSES.keys())})")
        if self.kind == "SoftmaxWithLoss" and self.layer.softmax_param.axis != 1:
            raise ConversionError("CaffeLoss (SoftmaxWithLoss): only softmax axis 1 is translated")
        lp = self.layer.loss_param
        if self.kind == "SigmoidCrossEntropyLoss" and any(lp.HasField(f) for f in
                                                          ("ignore_label", "normalization", "normalize")):
            raise ConversionError("CaffeLoss (SigmoidCrossEntropyLoss): loss_param is ignored by the reference "
                                  "BVLC Caffe but honoured by later versions; remove it (nnbridge will not guess)")
        self.loss_weight = float(self.layer.loss_weight[0]) if len(self.layer.loss_weight) else 1.0

    def forward(self, *bottoms: torch.Tensor) -> torch.Tensor:
        if len(bottoms) != BOTTOMS[self.kind]:
            raise ConversionError(f"CaffeLoss ({self.kind}): {len(bottoms)} bottoms given, it takes "
                                  f"{BOTTOMS[self.kind]}")
        return self.loss_weight * TORCH_LOSSES.get(self.kind)(self.layer, bottoms)  # type: ignore[misc]


@TORCH_LOSSES.register("SoftmaxWithLoss")
def _softmax(layer: Any, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    x = xs[0].reshape(xs[0].shape[0], xs[0].shape[1], -1)  # (N, C, inner)
    label = xs[1].detach().reshape(x.shape[0], -1).trunc().long()
    ignore = single_layer.ignore_label(layer)
    mask = torch.ones_like(label, dtype=x.dtype) if ignore is None else (label != ignore).to(x.dtype)
    index = label.clamp(0, x.shape[1] - 1).unsqueeze(1)
    picked = torch.gather(F.log_softmax(x, dim=1), 1, index).squeeze(1)
    total = -(picked * mask).sum()
    mode = single_layer.loss_normalization(layer, "VALID")
    if mode == "NONE":
        return total
    norm = {"FULL": float(label.numel()), "BATCH_SIZE": float(label.shape[0])}.get(mode)
    count = mask.sum() if norm is None else torch.tensor(norm, dtype=x.dtype)
    return total / torch.clamp(count, min=1.0)


@TORCH_LOSSES.register("SigmoidCrossEntropyLoss")
def _sigmoid_ce(layer: Any, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    x, t = xs[0], xs[1].detach().reshape(xs[0].shape)
    return (F.relu(x) - x * t + torch.log1p(torch.exp(-x.abs()))).sum() / x.shape[0]


@TORCH_LOSSES.register("EuclideanLoss")
def _euclidean(layer: Any, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    diff = xs[0] - xs[1].reshape(xs[0].shape)
    return (diff * diff).sum() / xs[0].shape[0] / 2


@TORCH_LOSSES.register("HingeLoss")
def _hinge(layer: Any, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    x = xs[0].reshape(xs[0].shape[0], -1)
    label = xs[1].detach().reshape(-1).trunc().long()
    sign = 1.0 - 2.0 * F.one_hot(label, x.shape[1]).to(x.dtype)
    margins = F.relu(1.0 + x * sign)
    norm = caffe_pb2.HingeLossParameter.Norm.Name(layer.hinge_loss_param.norm)
    return (margins.sum() if norm == "L1" else (margins * margins).sum()) / x.shape[0]


@TORCH_LOSSES.register("ContrastiveLoss")
def _contrastive(layer: Any, xs: Sequence[torch.Tensor]) -> torch.Tensor:
    p = layer.contrastive_loss_param
    a, b = xs[0].reshape(xs[0].shape[0], -1), xs[1].reshape(xs[1].shape[0], -1)
    similar = (xs[2].detach().reshape(-1).trunc() != 0).to(a.dtype)
    diff = a - b
    dist_sq = (diff * diff).sum(dim=1)
    margin, n = float(p.margin), a.shape[0]
    if p.legacy_version:
        return (similar * dist_sq + (1 - similar) * F.relu(margin - dist_sq)).sum() / n / 2
    dist = torch.sqrt(dist_sq.detach())
    mdist = F.relu(margin - dist)
    exact = (similar * dist_sq + (1 - similar) * mdist * mdist).sum()
    coeff = -mdist / (dist + 1e-4)  # Caffe's backward factor for dissimilar pairs (detached)
    surrogate = (similar * dist_sq + (1 - similar) * coeff * dist_sq).sum()
    return ((exact - surrogate).detach() + surrogate) / n / 2
