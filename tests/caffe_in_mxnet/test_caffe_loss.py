"""nnbridge.mxnet.CaffeLoss (native translation) vs REAL Caffe: the loss value, the bottom gradients (the label's
must stay zero where Caffe gives none), grad_scale / loss_weight, and a float64 finite-difference check."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
from caffe_in_mxnet_check import Case, check_case, run_cases

from support.layer_check import caffe_module

logger = logging.getLogger(__name__)

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


@pytest.fixture(scope="module")
def results() -> tuple[dict[str, Case], dict[str, Any]]:
    caffe_module()
    cases = {key: Case(text, bottoms, loss=True, **extra) for key, (text, bottoms, extra) in CASES.items()}
    return cases, run_cases(cases)


@pytest.mark.caffe
@pytest.mark.parametrize("key", list(CASES))
def test_caffe_loss_matches_real_caffe(key: str, results: tuple[dict[str, Case], dict[str, Any]]) -> None:
    cases, got = results
    errors = check_case(cases[key], got[key])
    logger.info("%s: worst %s", key, max(errors.items(), key=lambda kv: kv[1]))


GRAD_SCALE_SCRIPT = r'''
from nnbridge.mxnet import CaffeLoss
for engine in args["engines"]:
    sym = CaffeLoss(data=mx.sym.Variable("data"), label=mx.sym.Variable("label"), grad_scale=0.5,
                    prototxt='layer{type:"SoftmaxWithLoss"}', name="L", engine=engine)
    ex = sym.simple_bind(mx.cpu(), data=arrays["data"].shape, label=arrays["label"].shape)
    ex.arg_dict["data"][:] = arrays["data"]
    ex.arg_dict["label"][:] = arrays["label"]
    ex.forward(is_train=True)
    ex.backward()
    result[engine] = {"top": ex.outputs[0], "data.diff": ex.grad_dict["data"]}
'''


@pytest.mark.caffe
def test_grad_scale_scales_the_gradient_not_the_loss() -> None:
    """The plugin's grad_scale: forward is Caffe's loss, backward grad_scale x Caffe's diff."""
    from support.caffe_grad import caffe_layer_grads
    from support.layer_check import assert_same
    from support.mxnet_env import run_mxnet

    caffe_module()
    feed = {"data": _fc, "label": _fc_labels}
    ref = caffe_layer_grads('layer{type:"SoftmaxWithLoss"}', feed)
    engines = ["native"]
    try:
        run_mxnet("import caffe")
        engines.append("caffe")
    except AssertionError:
        logger.info("pycaffe not in the MXNet environment: engine='caffe' not checked")
    got = run_mxnet(GRAD_SCALE_SCRIPT, feed, engines=engines)
    expected = {"top": ref["top"].reshape(1), "data.diff": ref["data.diff"] * 0.5}
    for engine in engines:
        assert_same(expected, got[engine], ["top", "data.diff"], rtol=1e-5, atol=1e-7,
                    what=f"grad_scale=0.5, engine={engine}")
