"""engine="caffe": the layer runs in REAL pycaffe inside MXNet (a CustomOp). Compared with real Caffe run directly,
and with the native translation of the same layer (forward and backward); plus layers with no native
translation (ELU, PReLU with its weight, LRN) that only the Caffe engine runs."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
from caffe_in_mxnet_check import Case, check_case, run_cases

from support.layer_check import caffe_module
from support.mxnet_env import run_mxnet

logger = logging.getLogger(__name__)

_rng = np.random.default_rng(5)
LAYERS = {
    "ip": ('layer{type:"InnerProduct" inner_product_param{num_output: 7}}', [(4, 3, 2, 2)], 2, True),
    "conv": ('layer{type:"Convolution" convolution_param{num_output: 4 kernel_size: 3 stride: 2 pad: 1}}',
             [(2, 3, 9, 9)], 2, True),
    "pool_ave_pad_clip": ('layer{type:"Pooling" pooling_param{pool: AVE kernel_size: 2 stride: 2 pad: 1}}',
                          [(2, 3, 5, 6)], 0, True),
    "tanh": ('layer{type:"TanH"}', [(2, 3, 4, 5)], 0, True),
    "elu": ('layer{type:"ELU" elu_param{alpha: 0.7}}', [(2, 3, 4, 5)], 0, False),
    "prelu": ('layer{type:"PReLU"}', [(2, 3, 4, 5)], 1, False),
    "lrn": ('layer{type:"LRN" lrn_param{local_size: 3 alpha: 0.5 beta: 0.75}}', [(2, 5, 4, 4)], 0, False),
}
LOSS = ('layer{type:"SoftmaxWithLoss" loss_param{ignore_label: 2}}',
        {"data": _rng.standard_normal((6, 4)).astype(np.float32),
         "label": _rng.integers(0, 4, (6,)).astype(np.float32)})


@pytest.fixture(scope="module")
def results() -> tuple[dict[str, Case], dict[str, Any]]:
    caffe_module()
    if not _has_caffe():
        pytest.skip("pycaffe is not importable in the MXNet environment (see the reference-caffe install script)")
    cases: dict[str, Case] = {}
    for key, (text, shapes, num_weight, native) in LAYERS.items():
        rng = np.random.default_rng(7)
        bottoms = {f"data_{i}": rng.standard_normal(s).astype(np.float32) for i, s in enumerate(shapes)}
        cases[f"{key}@caffe"] = Case(text, bottoms, num_weight=num_weight, engine="caffe")
        if native:
            cases[f"{key}@native"] = Case(text, bottoms, num_weight=num_weight)
    cases["softmax_loss@caffe"] = Case(LOSS[0], LOSS[1], loss=True, engine="caffe")
    cases["softmax_loss@native"] = Case(LOSS[0], LOSS[1], loss=True)
    return cases, run_cases(cases)


def _has_caffe() -> bool:
    try:
        run_mxnet("import caffe")
    except AssertionError:
        return False
    return True


@pytest.mark.caffe
@pytest.mark.parametrize("key", [*LAYERS, "softmax_loss"])
def test_caffe_engine_matches_real_caffe_and_native(key: str, results: tuple[dict[str, Case], dict[str, Any]]) -> None:
    cases, got = results
    errors = check_case(cases[f"{key}@caffe"], got[f"{key}@caffe"])
    logger.info("%s (caffe engine): worst %s", key, max(errors.items(), key=lambda kv: kv[1]))
    if f"{key}@native" not in cases:
        return
    native, engine = got[f"{key}@native"], got[f"{key}@caffe"]
    assert "error" not in native, native.get("error")
    names = [k for k in engine if k == "top" or k.endswith(".diff")]
    assert names
    for name in names:
        a, b = np.asarray(engine[name], np.float64), np.asarray(native[name], np.float64)
        scale = max(float(np.abs(a).max(initial=0.0)), 1e-12)
        assert a.shape == b.shape and float(np.abs(a - b).max(initial=0.0)) / scale <= 1e-4, name


BN_SCRIPT = r'''
from nnbridge.mxnet import CaffeOp
sym = CaffeOp(mx.sym.Variable("data_0"), num_weight=3, prototxt=args["prototxt"], name="bn", engine=args["engine"])
ex = sym.simple_bind(mx.cpu(), data_0=arrays["data_0"].shape)
ex.arg_dict["data_0"][:] = arrays["data_0"]
for i, name in enumerate(["bn_0_weight", "bn_1_bias", "bn_2_bias"]):
    ex.arg_dict[name][:] = arrays["blob%d" % i]
ex.forward(is_train=args["train"])
result["top"] = ex.outputs[0]
for i, name in enumerate(["bn_0_weight", "bn_1_bias", "bn_2_bias"]):
    result["blob%d.after" % i] = ex.arg_dict[name]
'''


@pytest.mark.caffe
@pytest.mark.parametrize("train", [True, False], ids=["TRAIN", "TEST"])
def test_caffe_engine_batchnorm_phases(train: bool) -> None:
    """is_train=True runs Caffe's TRAIN phase: batch statistics, and the blobs' moving averages written back
    into MXNet's arguments; is_train=False the TEST phase (= the native translation)."""
    from support.caffe_grad import caffe_layer_grads
    from support.layer_check import assert_same

    caffe_module()
    if not _has_caffe():
        pytest.skip("pycaffe is not importable in the MXNet environment")
    text = 'layer{type:"BatchNorm" batch_norm_param{moving_average_fraction: 0.9}}'
    x = np.random.default_rng(2).standard_normal((3, 4, 5, 2)).astype(np.float32) * 2 + 0.5
    ref = caffe_layer_grads(text, {"data_0": x}, phase="TRAIN" if train else "TEST")
    feed = {"data_0": x, **{f"blob{i}": ref[f"blob{i}"] for i in range(3)}}
    names = ["top", "blob0.after", "blob1.after", "blob2.after"]
    for engine in ("caffe",) if train else ("caffe", "native"):
        got = run_mxnet(BN_SCRIPT, feed, prototxt=text, train=train, engine=engine)
        assert_same({k: ref[k] for k in names}, got, names, rtol=1e-4, atol=1e-6,
                    what=f"real Caffe vs MXNet engine={engine} ({'TRAIN' if train else 'TEST'})")
