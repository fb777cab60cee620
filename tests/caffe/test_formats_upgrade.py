"""V0 and V1 nets upgrade to the same V2 structure as real Caffe's upgrade_proto.cpp produces.

Real Caffe is the reference: it loads the old prototxt, upgrades it, and ``net.save()`` writes the
upgraded V2 layers into a caffemodel, which we read back and compare with our own upgrade.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nnbridge.caffe.formats.caffemodel import read_caffemodel
from nnbridge.caffe.formats.net import load_caffe
from nnbridge.caffe.formats.prototxt import parse_prototxt
from nnbridge.caffe.formats.upgrade import upgrade_net
from nnbridge.caffe.proto import caffe_pb2

V1_NET = """
name: "v1net"
input: "data"
input_dim: 1 input_dim: 3 input_dim: 12 input_dim: 12
layers { name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1" blobs_lr: 1 blobs_lr: 2
         weight_decay: 1 weight_decay: 0
         convolution_param { num_output: 4 kernel_size: 3 pad: 1 stride: 1
                             weight_filler { type: "gaussian" std: 0.01 } } }
layers { name: "relu1" type: RELU bottom: "conv1" top: "conv1" relu_param { negative_slope: 0.1 } }
layers { name: "pool1" type: POOLING bottom: "conv1" top: "pool1"
         pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layers { name: "ip1" type: INNER_PRODUCT bottom: "pool1" top: "ip1" blobs_lr: 1 blobs_lr: 2
         inner_product_param { num_output: 5 } }
layers { name: "prob" type: SOFTMAX bottom: "ip1" top: "prob" }
"""

V2_NET = """
name: "v1net"
layer { name: "input" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 12 dim: 12 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 stride: 1
                            weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" relu_param { negative_slope: 0.1 } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool1" top: "ip1" param { lr_mult: 1 } param { lr_mult: 2 }
        inner_product_param { num_output: 5 } }
layer { name: "prob" type: "Softmax" bottom: "ip1" top: "prob" }
"""

V0_NET = """
name: "v0net"
input: "data"
input_dim: 1 input_dim: 3 input_dim: 10 input_dim: 10
layers { layer { name: "pad1" type: "padding" pad: 2 } bottom: "data" top: "pad1" }
layers { layer { name: "conv1" type: "conv" num_output: 4 kernelsize: 3 stride: 2 biasterm: true
                 blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0 }
         bottom: "pad1" top: "conv1" }
layers { layer { name: "relu1" type: "relu" } bottom: "conv1" top: "conv1" }
layers { layer { name: "pool1" type: "pool" pool: AVE kernelsize: 2 stride: 1 } bottom: "conv1" top: "pool1" }
layers { layer { name: "norm1" type: "lrn" local_size: 3 alpha: 0.001 beta: 0.75 } bottom: "pool1" top: "norm1" }
layers { layer { name: "ip1" type: "innerproduct" num_output: 6 } bottom: "norm1" top: "ip1" }
layers { layer { name: "drop" type: "dropout" dropout_ratio: 0.3 } bottom: "ip1" top: "ip1" }
layers { layer { name: "prob" type: "softmax" } bottom: "ip1" top: "prob" }
"""


def _pycaffe():  # type: ignore[no-untyped-def]
    os.environ.setdefault("GLOG_minloglevel", "2")
    return pytest.importorskip("caffe", reason="real BVLC Caffe (pycaffe) is not installed")


def _caffe_upgraded(tmp_path: Path, text: str) -> caffe_pb2.NetParameter:
    """The V2 net real Caffe builds from ``text`` (read back from the caffemodel it saves)."""
    caffe = _pycaffe()
    prototxt = tmp_path / "old.prototxt"
    prototxt.write_text(text)
    model = tmp_path / "saved.caffemodel"
    caffe.Net(str(prototxt), caffe.TEST).save(str(model))
    net = read_caffemodel(model).net
    for layer in net.layer:
        layer.ClearField("phase")  # Caffe stamps the phase on every layer at Net::Init
    kept = [layer for layer in net.layer if layer.type != "Split"]
    del net.layer[:]
    net.layer.extend(kept)
    return net


def test_v1_net_upgrades_like_its_v2_form() -> None:
    ours = upgrade_net(parse_prototxt(V1_NET))
    assert ours == upgrade_net(parse_prototxt(V2_NET))
    assert not ours.layers and [layer.type for layer in ours.layer] == \
        ["Input", "Convolution", "ReLU", "Pooling", "InnerProduct", "Softmax"]


def test_v1_net_upgrades_like_real_caffe(tmp_path: Path) -> None:
    assert upgrade_net(parse_prototxt(V1_NET)) == _caffe_upgraded(tmp_path, V1_NET)


def test_v0_net_folds_padding_like_real_caffe(tmp_path: Path) -> None:
    ours = upgrade_net(parse_prototxt(V0_NET))
    conv = next(layer for layer in ours.layer if layer.name == "conv1")
    assert list(conv.convolution_param.pad) == [2] and list(conv.bottom) == ["data"]
    assert "pad1" not in [layer.name for layer in ours.layer]
    assert [p.lr_mult for p in conv.param] == [1, 2] and [p.decay_mult for p in conv.param] == [1, 0]
    pool = next(layer for layer in ours.layer if layer.name == "pool1")
    assert pool.pooling_param.pool == caffe_pb2.PoolingParameter.AVE
    assert ours == _caffe_upgraded(tmp_path, V0_NET)


def test_v1_and_v0_load_as_v2(tmp_path: Path) -> None:
    for text in (V1_NET, V0_NET):
        path = tmp_path / "old.prototxt"
        path.write_text(text)
        net = load_caffe(path)
        assert net.inputs[0].name == "data" and not net.net.layers
        assert all(layer.type and layer.type[0].isupper() for layer in net.net.layer)


def test_v1_data_layer_transform_and_concat_dim() -> None:
    net = upgrade_net(parse_prototxt("""
        layers { name: "data" type: DATA top: "data" top: "label"
                 data_param { source: "db" batch_size: 4 scale: 0.5 mean_file: "m.binaryproto" crop_size: 3
                              mirror: true } }
        layers { name: "cat" type: CONCAT bottom: "data" bottom: "data" top: "cat" concat_param { concat_dim: 0 } }
        layers { name: "bn" type: RELU bottom: "cat" top: "cat" }
    """))
    data, cat = net.layer[0], net.layer[1]
    assert data.type == "Data" and data.transform_param.scale == 0.5 and data.transform_param.crop_size == 3
    assert data.transform_param.mirror and data.transform_param.mean_file == "m.binaryproto"
    assert not data.data_param.HasField("scale") and data.data_param.batch_size == 4
    assert cat.concat_param.axis == 0 and not cat.concat_param.HasField("concat_dim")


def test_batch_norm_param_upgrade() -> None:
    net = upgrade_net(parse_prototxt("""
        layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x"
                param { lr_mult: 1 } param { lr_mult: 1 } param { lr_mult: 1 decay_mult: 3 } }
    """))
    assert [(p.lr_mult, p.decay_mult) for p in net.layer[0].param] == [(0, 0)] * 3
