"""nnbridge.torch.load_caffe: a whole Caffe net as a trainable nn.Module (hub -> torch interpreter), compared with
REAL Caffe blob by blob (real MTCNN weights, and a random-weight net with BN/Scale/Concat/Eltwise/AVE pooling),
plus the input gradient vs Caffe's backward and a few training steps."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from support.layer_check import assert_same, caffe_module, run_real_caffe

torch = pytest.importorskip("torch")
logger = logging.getLogger(__name__)
MTCNN = Path(__file__).resolve().parents[2].parent / "shared" / "models" / "caffe" / "mtcnn"

NET = """
name: "small"
input: "data"
input_shape { dim: 2 dim: 3 dim: 17 dim: 17 }
force_backward: true
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 8 kernel_size: 3 pad: 1 stride: 2 } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" }
layer { name: "sc1" type: "Scale" bottom: "conv1" top: "conv1" scale_param { bias_term: true } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "a" type: "Convolution" bottom: "conv1" top: "a" convolution_param { num_output: 4 kernel_size: 1 } }
layer { name: "b" type: "Convolution" bottom: "conv1" top: "b"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 group: 2 } }
layer { name: "cat" type: "Concat" bottom: "a" bottom: "b" top: "cat" }
layer { name: "sum" type: "Eltwise" bottom: "cat" bottom: "conv1" top: "sum" }
layer { name: "pool" type: "Pooling" bottom: "sum" top: "pool"
        pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "mpool" type: "Pooling" bottom: "pool" top: "mpool"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "drop" type: "Dropout" bottom: "mpool" top: "mpool" }
layer { name: "fc" type: "InnerProduct" bottom: "mpool" top: "fc" inner_product_param { num_output: 5 } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
"""


def _compare(prototxt: Path, caffemodel: Path, shape: tuple[int, ...], rtol: float = 1e-4) -> None:
    from nnbridge.torch import load_caffe

    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    ref = run_real_caffe(prototxt, caffemodel=caffemodel, inputs={"data": x})
    module = load_caffe(prototxt, caffemodel, input_shapes={"data": shape})
    with torch.no_grad():
        got = {k: v.numpy() for k, v in module.forward_all(torch.from_numpy(x)).items()}
    assert_same(ref.blobs, got, ref.outputs, rtol=rtol, atol=1e-6, what=f"{prototxt.name}: real Caffe vs PyTorch")


@pytest.mark.caffe
@pytest.mark.parametrize(("net", "shape"), [("det1", (1, 3, 30, 40)), ("det2", (2, 3, 24, 24)),
                                            ("det3", (1, 3, 48, 48))])
def test_mtcnn_real_weights_match_real_caffe(net: str, shape: tuple[int, ...]) -> None:
    caffe_module()
    if not (MTCNN / f"{net}.caffemodel").exists():
        pytest.skip(f"{MTCNN} is absent")
    _compare(MTCNN / f"{net}.prototxt", MTCNN / f"{net}.caffemodel", shape)


@pytest.fixture()
def small_net(tmp_path: Path) -> tuple[Path, Path]:
    from nnbridge.caffe.formats.net import save_caffe
    from nnbridge.caffe.formats.prototxt import parse_prototxt

    prototxt = tmp_path / "small.prototxt"
    prototxt.write_text(NET)
    ref = run_real_caffe(prototxt)  # realistic random blobs
    caffemodel = tmp_path / "small.caffemodel"
    save_caffe(parse_prototxt(NET), ref.weights, tmp_path / "saved.prototxt", caffemodel)
    return prototxt, caffemodel


@pytest.mark.caffe
def test_random_net_matches_real_caffe(small_net: tuple[Path, Path]) -> None:
    caffe_module()
    _compare(*small_net, (2, 3, 17, 17))


@pytest.mark.caffe
def test_input_gradient_matches_caffe_backward_and_trains(small_net: tuple[Path, Path]) -> None:
    caffe = caffe_module()
    from nnbridge.torch import CaffeLoss, load_caffe

    prototxt, caffemodel = small_net
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 17, 17)).astype(np.float32)
    top_diff = rng.standard_normal((2, 5)).astype(np.float32)
    net = caffe.Net(str(prototxt), str(caffemodel), caffe.TEST)
    net.blobs["data"].data[...] = x
    net.forward()
    net.blobs["prob"].diff[...] = top_diff
    net.backward()
    module = load_caffe(prototxt, caffemodel)
    data = torch.tensor(x, requires_grad=True)
    (module(data) * torch.from_numpy(top_diff)).sum().backward()
    assert_same({"data.diff": net.blobs["data"].diff.copy()}, {"data.diff": data.grad.numpy()}, ["data.diff"],
                rtol=1e-4, atol=1e-7, what="input gradient: real Caffe vs PyTorch")
    # trainable: the parameters are nn.Parameters; a few SGD steps on the logits lower a Caffe loss
    loss_fn = CaffeLoss('layer{type:"SoftmaxWithLoss"}')
    labels = torch.tensor([1.0, 3.0])
    optimizer = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=0.05)
    data = torch.from_numpy(x)
    losses = []
    for _ in range(10):
        optimizer.zero_grad()
        loss = loss_fn(module.forward_all(data)["fc"], labels)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    logger.info("training losses %s", losses)
    assert losses[-1] < 0.5 * losses[0], losses


def test_unsupported_hub_ops_are_listed_at_once() -> None:
    import onnx_ir as ir

    from nnbridge.errors import UnsupportedOpsError
    from nnbridge.hub.builder import GraphBuilder
    from nnbridge.torch import HubModule

    builder = GraphBuilder("g")
    x = builder.input("x", (1, 4))
    y = builder.op1("Hardmax", [x], name="h1")
    z = builder.op1("Hardmax", [y], name="h2")
    w = builder.op1("Erf", [z], name="e1")
    builder.output(w)
    model: ir.Model = builder.model({})
    with pytest.raises(UnsupportedOpsError) as info:
        HubModule(model)
    text = str(info.value)
    assert "Hardmax" in text and "Erf" in text and "h2" in text, text
