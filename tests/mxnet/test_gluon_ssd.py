"""GluonCV ``ssd_512_mobilenet1.0_voc`` (random realistic weights, 256x256 input) -> Caffe SSD, run in real Caffe.

Checked against real MXNet 1.9.1 + GluonCV: backbone/head blobs per blob, priors against GluonCV's anchors
(normalized corners), detections against GluonCV's (ids + 1 = Caffe labels, pixels / 256 = Caffe coordinates).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from nnbridge.errors import ConversionError
from nnbridge.mxnet.formats.checkpoint import load_mxnet
from nnbridge.mxnet.formats.symbol import parse_symbol_json
from nnbridge.mxnet.ssd import convert_ssd_symbol, find_ssd
from support.mxnet_env import run_mxnet

SIZE = 256

_BUILD = r'''
from gluoncv import model_zoo
size = args["size"]
rng = np.random.RandomState(0)
net = model_zoo.get_model("ssd_512_mobilenet1.0_voc", pretrained=False, pretrained_base=False)
net.initialize()
x = mx.nd.array(rng.uniform(-1, 1, (1, 3, size, size)).astype(np.float32))
net(x)
for name, p in net.collect_params().items():
    if name.endswith(("gamma", "running_var", "moving_var")):
        p.set_data(mx.nd.array(rng.uniform(0.5, 1.5, p.shape)))
    elif name.endswith("weight"):
        p.set_data(mx.nd.array(rng.normal(0, np.sqrt(2.0 / np.prod(p.shape[1:])), p.shape)))
    elif name.endswith(("beta", "running_mean", "moving_mean", "bias")):
        p.set_data(mx.nd.array(rng.uniform(-0.1, 0.1, p.shape)))
net.hybridize()
ids, scores, boxes = net(x)
prefix = os.path.join(args["out"], "ssd")
net.export(prefix, epoch=0)
internals = mx.sym.load(prefix + "-symbol.json").get_internals()
want = args["blobs"]
blk = mx.gluon.SymbolBlock(mx.sym.Group([internals[n + "_output"] for n in want]), mx.sym.var("data"))
blk.collect_params().load(prefix + "-0000.params", ignore_extra=True)
result.update(zip(want, blk(x)))
result.update(ids=ids, scores=scores, bboxes=boxes, data=x)
'''

BLOBS = ["ssd0_concat0", "ssd0_concat1", "ssd0_softmax0", "ssd0_reshape8", "ssd0_mobilenet0_relu22_fwd",
         "ssd0_expand_relu3"]


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(a)))


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, object, Path]:
    out = tmp_path_factory.mktemp("gluon_ssd")
    ref = run_mxnet(_BUILD, out=str(out), size=SIZE, blobs=BLOBS)
    loaded = load_mxnet(out / "ssd-symbol.json", out / "ssd-0000.params")
    return ref, convert_ssd_symbol(loaded.graph, loaded.params, (1, 3, SIZE, SIZE)), out


@pytest.fixture(scope="module")
def caffe_blobs(converted: tuple[dict, object, Path]) -> dict[str, np.ndarray]:
    os.environ.setdefault("GLOG_minloglevel", "2")
    caffe = pytest.importorskip("caffe")
    from nnbridge.caffe.formats.net import save_caffe
    ref, result, out = converted
    save_caffe(result.net, result.blobs, out / "ssd.prototxt", out / "ssd.caffemodel")
    net = caffe.Net(str(out / "ssd.prototxt"), str(out / "ssd.caffemodel"), caffe.TEST)
    net.blobs["data"].data[...] = ref["data"]
    net.forward()
    return {name: np.array(blob.data) for name, blob in net.blobs.items()}


def test_backbone_and_heads_match_mxnet(converted, caffe_blobs) -> None:
    ref = converted[0]
    for name in ["ssd0_concat0", "ssd0_concat1", "ssd0_mobilenet0_relu22_fwd", "ssd0_expand_relu3"]:
        assert _rel(ref[name].reshape(-1), caffe_blobs[name].reshape(-1)) < 1e-4, name
    assert _rel(ref["ssd0_softmax0"].reshape(-1), caffe_blobs["mbox_conf_softmax"].reshape(-1)) < 1e-4


def test_priors_equal_gluoncv_anchors(converted, caffe_blobs) -> None:
    anchors = converted[0]["ssd0_reshape8"][0].astype(np.float64)  # (cx, cy, w, h) in pixels
    corners = np.concatenate([anchors[:, :2] - anchors[:, 2:] / 2, anchors[:, :2] + anchors[:, 2:] / 2], 1) / SIZE
    priors = caffe_blobs["mbox_priorbox"][0]
    assert priors[0].reshape(-1, 4).shape == corners.shape
    assert np.max(np.abs(priors[0].reshape(-1, 4) - corners)) <= 2.4e-7  # float32 rounding of the corners
    variances = np.tile(np.float32([0.1, 0.1, 0.2, 0.2]), (len(corners), 1))
    np.testing.assert_array_equal(priors[1].reshape(-1, 4), variances)


def test_detections_match_gluoncv(converted, caffe_blobs) -> None:
    ref = converted[0]
    ids, scores, boxes = ref["ids"][0, :, 0], ref["scores"][0, :, 0], ref["bboxes"][0]
    valid = ids >= 0
    det = caffe_blobs["detection_out"][0, 0]
    det = det[np.argsort(-det[:, 2], kind="stable")]
    n = int(valid.sum())
    assert n > 0 and len(det) >= n
    # Caffe's detections by decreasing score start with GluonCV's valid ones (see nnbridge.hub.passes.mxnet_ssd).
    np.testing.assert_array_equal(det[:n, 1], ids[valid] + 1)
    np.testing.assert_allclose(det[:n, 2], scores[valid], rtol=1e-5, atol=1e-6)
    scale = np.max(np.abs(boxes[valid] / SIZE))
    np.testing.assert_allclose(det[:n, 3:7], boxes[valid] / SIZE, rtol=0, atol=1e-5 * scale)
    if n == len(ids):
        assert len(det) == n


def test_not_an_ssd_graph_is_refused() -> None:
    graph = parse_symbol_json('{"nodes": [{"op": "null", "name": "data", "inputs": []}, '
                              '{"op": "relu", "name": "r", "inputs": [[0, 0, 0]]}], "heads": [[1, 0, 0]]}')
    with pytest.raises(ConversionError, match="not a GluonCV SSD graph"):
        find_ssd(graph)
