"""GluonCV model zoo -> Caffe through nnbridge, in REAL Caffe against REAL MXNet 1.9.1, and back to REAL MXNet.

For each model (``pretrained=False``, realistic random weights, see :mod:`support.gluon_zoo`), in the MXNet
environment: forward the live hybridized block, ``export`` it and record every internal output of the exported
symbol. In the main environment: nnbridge reads the files (``load_mxnet``), imports them (``import_mxnet``),
exports Caffe (``export_caffe`` + ``save_caffe``); real Caffe (pycaffe, with the written caffemodel) must match
MXNet on the outputs and on every blob both sides have (hub value names = MXNet output names without
``_output`` = Caffe blob names). The hub model is then exported back to MXNet (``export_mxnet`` + ``save_mxnet``)
and run in real MXNet (Module, every internal output; and SymbolBlock), compared with the original internals.
The deployment rewrites of :mod:`nnbridge.gluon` (``merge_bn`` + ``to_bgr``) are checked on every model too: fewer
BatchNorm layers, and real Caffe on the BGR image matches MXNet on the RGB image on every shared blob.

Tolerance: per blob, max|a - b| <= 1e-4 * max|reference| (+ 1e-6): float32 with a different summation order
(MobileNet v2: 3e-4, see ``RTOL_OF``).
Batch 1; input 112x112 where the architecture allows it (resnets, MobileNets, VGG), 224 for SqueezeNet and
DenseNet (their final pooling windows need 224), 299 for Inception v3.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from support.gluon_zoo import EXPORT
from support.layer_check import assert_same, caffe_module, run_real_caffe
from support.mxnet_env import mxnet_python, run_mxnet
from support.mxnet_export_check import SCRIPT as MXNET_RUN

RTOL, ATOL = 1e-4, 1e-6
#: MobileNet v2 only: with these random weights its activations grow through the 17 blocks (BatchNorm outputs reach
#: ~30) and float32 drift grows with them, to ~3e-5 of each BatchNorm output's max (passes 1e-4). ReLU6 carries that
#: same absolute error (it is exact: its error equals its input's) but clamps the reference max to 6, so relative to
#: the clipped blob it reads up to 1.4e-4 (2.4e-4 with merge_bn, whose folded weights are rounded once more).
RTOL_OF = {"mobilenetv2_1.0": 3e-4}

#: name -> (constructor kwargs, input shape, slow)
MODELS: dict[str, tuple[dict[str, Any], tuple[int, ...], bool]] = {
    "resnet18_v1": ({}, (1, 3, 112, 112), False),
    "mobilenet1.0": ({}, (1, 3, 112, 112), False),
    "mobilenetv2_1.0": ({}, (1, 3, 112, 112), False),
    "squeezenet1.1": ({}, (1, 3, 224, 224), False),
    "resnet50_v1b": ({"pretrained_base": False}, (1, 3, 112, 112), True),
    "vgg16": ({}, (1, 3, 112, 112), True),
    "densenet121": ({}, (1, 3, 224, 224), True),
    "inceptionv3": ({}, (1, 3, 299, 299), True),
}


def _params(name: str) -> Any:
    return pytest.param(name, marks=[pytest.mark.slow] if MODELS[name][2] else [], id=name)


@pytest.mark.parametrize("name", [_params(n) for n in MODELS])
def test_gluoncv_model_to_caffe_and_back(name: str, tmp_path: Path) -> None:
    from nnbridge.caffe.exporter import export_caffe
    from nnbridge.caffe.formats.net import save_caffe
    from nnbridge.gluon import convert_hub
    from nnbridge.mxnet.exporter import export_mxnet, save_mxnet
    from nnbridge.mxnet.formats.checkpoint import load_mxnet
    from nnbridge.mxnet.importer import import_mxnet

    mxnet_python()
    caffe_module()
    kwargs, shape, _ = MODELS[name]
    rtol = RTOL_OF.get(name, RTOL)
    data = np.random.default_rng(7).uniform(-1.0, 1.0, shape).astype(np.float32)
    prefix = tmp_path / "gluon"
    ref = run_mxnet(EXPORT, arrays={"data": data}, model=name, kwargs=kwargs, seed=3, prefix=str(prefix))
    internals, heads = ref["internals"], ref["heads"]
    assert isinstance(internals, dict) and isinstance(heads, list)
    # the exported symbol computes what the live block computed
    assert_same({heads[0]: ref["live"]}, internals, [heads[0]], rtol=RTOL, atol=ATOL, what=f"{name}: live vs export")
    assert float(np.abs(internals[heads[0]]).max()) > 1e-3, "activations vanished: weights are not realistic"

    loaded = load_mxnet(f"{prefix}-symbol.json", f"{prefix}-0000.params")
    model = import_mxnet(loaded.graph, loaded.params, {"data": shape}, source=str(prefix))
    exported = export_caffe(model)
    proto, caffemodel = tmp_path / "net.prototxt", tmp_path / "net.caffemodel"
    save_caffe(exported.net, exported.blobs, proto, caffemodel)
    got = run_real_caffe(proto, caffemodel=caffemodel, inputs={"data": data})
    assert got.outputs == heads
    shared = [k for k in internals if k in got.blobs]
    assert len(shared) > 10, f"only {shared} are shared between MXNet and Caffe"
    assert_same(internals, got.blobs, heads, rtol=rtol, atol=ATOL, what=f"{name}: real MXNet vs real Caffe")

    # the deployment rewrites of nnbridge.gluon (merge_bn + to_bgr) on the same model: Caffe on BGR == MXNet on RGB
    deploy_net, deploy_weights = convert_hub(model.clone(), merge_bn=True, to_bgr=True, softmax=False)
    bn_before, bn_after = (sum(layer.type == "BatchNorm" for layer in net.layer) for net in (exported.net, deploy_net))
    assert bn_after < bn_before or bn_before == 0  # DenseNet keeps its pre-activation BatchNorms (no Conv before)
    save_caffe(deploy_net, deploy_weights.blobs, tmp_path / "deploy.prototxt", tmp_path / "deploy.caffemodel")
    bgr = run_real_caffe(tmp_path / "deploy.prototxt", caffemodel=tmp_path / "deploy.caffemodel",
                         inputs={"data": np.ascontiguousarray(data[:, ::-1])})
    assert_same(internals, bgr.blobs, heads, rtol=rtol, atol=ATOL, what=f"{name}: MXNet (RGB) vs merged Caffe (BGR)")

    back = export_mxnet(model)
    out_prefix = tmp_path / "back"
    save_mxnet(back, out_prefix)
    again = run_mxnet(MXNET_RUN, arrays={"data": data}, prefix=str(out_prefix), inputs=["data"], gluon=True)
    assert_same(internals, again["internals"], heads, rtol=RTOL, atol=ATOL,
                what=f"{name}: real MXNet vs the round trip in real MXNet (internals)")
    for label in ("outputs", "gluon"):
        outs = again[label]
        assert len(outs) == len(heads)
        assert_same(internals, dict(zip(heads, outs, strict=True)), heads, rtol=rtol, atol=ATOL,
                    what=f"{name}: real MXNet vs the round trip ({label})")
