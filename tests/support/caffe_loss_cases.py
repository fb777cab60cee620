"""One-layer Caffe loss cases shared by the CaffeLoss tests of MXNet and PyTorch (each against real Caffe).

``CASES``: name -> (layer text, bottoms, options of the check). ``fd_scale`` is the factor between the framework's
gradient and the derivative of the loss value it reports: MXNet reports the unscaled loss and scales its gradient by
``loss_weight``; PyTorch's ``CaffeLoss`` returns ``loss_weight * loss`` (its checks drop the option).
"""

from __future__ import annotations

from typing import Any

import numpy as np

_rng = np.random.default_rng(11)
_x = _rng.standard_normal((6, 5, 2, 3)).astype(np.float32) * 2
_labels = _rng.integers(0, 5, (6, 1, 2, 3)).astype(np.float32)
_ignored = _labels.copy()
_ignored[0, 0, 0, :] = 255  # ignore_label
_fc = _rng.standard_normal((8, 6)).astype(np.float32) * 2
_fc_labels = _rng.integers(0, 6, (8,)).astype(np.float32)
_targets = (_rng.uniform(size=(4, 3, 2, 2)) > 0.5).astype(np.float32)
_a = _rng.standard_normal((6, 4, 1, 1)).astype(np.float32) * 0.4
_b = _rng.standard_normal((6, 4, 1, 1)).astype(np.float32) * 0.4
_similar = np.array([1, 0, 0, 1, 0, 0], np.float32).reshape(6, 1, 1, 1)


def _sm(extra: str = "") -> str:
    return 'layer{type:"SoftmaxWithLoss" ' + extra + "}"


CASES: dict[str, tuple[str, dict[str, np.ndarray], dict[str, Any]]] = {
    "softmax_fc": (_sm(), {"data": _fc, "label": _fc_labels}, {}),
    "softmax_spatial_valid": (_sm(), {"data": _x, "label": _labels}, {}),
    "softmax_ignore_valid": (_sm("loss_param{ignore_label: 255}"), {"data": _x, "label": _ignored}, {}),
    "softmax_ignore_full": (_sm("loss_param{ignore_label: 255 normalization: FULL}"),
                            {"data": _x, "label": _ignored}, {}),
    "softmax_batch_size": (_sm("loss_param{normalization: BATCH_SIZE}"), {"data": _x, "label": _labels}, {}),
    "softmax_none": (_sm("loss_param{normalization: NONE}"), {"data": _x, "label": _labels}, {}),
    "softmax_legacy_normalize_false": (_sm("loss_param{normalize: false}"), {"data": _x, "label": _labels}, {}),
    "softmax_loss_weight": (_sm("loss_weight: 0.25"), {"data": _fc, "label": _fc_labels}, {"fd_scale": 0.25}),
    "sigmoid_ce": ('layer{type:"SigmoidCrossEntropyLoss"}', {"data": _x[:4, :3, :2, :2].copy() * 3,
                                                             "label": _targets}, {}),
    "euclidean": ('layer{type:"EuclideanLoss"}', {"data": _fc, "label": _fc[::-1].copy() * 0.5}, {}),
    "hinge_l1": ('layer{type:"HingeLoss"}', {"data": _fc * 0.5, "label": _fc_labels}, {}),
    "hinge_l2": ('layer{type:"HingeLoss" hinge_loss_param{norm: L2}}', {"data": _fc * 0.5, "label": _fc_labels}, {}),
    "contrastive": ('layer{type:"ContrastiveLoss" contrastive_loss_param{margin: 1.5}}',
                    {"data": _a, "label": _b, "data_2": _similar}, {"fd_rtol": 5e-3}),  # Caffe: dist + 1e-4
    "contrastive_legacy": ('layer{type:"ContrastiveLoss" contrastive_loss_param{margin: 1.0 legacy_version: true}}',
                           {"data": _a, "label": _b, "data_2": _similar}, {}),
}
