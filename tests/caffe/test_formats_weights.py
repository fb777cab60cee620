"""Weight sources: shape checks with clear errors, Caffe's legacy-shape acceptance, random statistics."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from nnbridge.caffe.formats.caffemodel import parse_caffemodel
from nnbridge.caffe.weights import CaffemodelWeights, DictWeights, RandomWeights
from nnbridge.errors import FormatError


def _legacy_model() -> bytes:
    os.environ.setdefault("GLOG_minloglevel", "2")
    caffe = pytest.importorskip("caffe", reason="real BVLC Caffe (pycaffe) writes the reference bytes")
    pb = caffe.proto.caffe_pb2
    net = pb.NetParameter()
    layer = net.layer.add(name="ip", type="InnerProduct")
    layer.blobs.add(num=1, channels=1, height=4, width=6, data=list(range(24)))
    layer.blobs.add(shape=pb.BlobShape(dim=[4]), data=[1, 2, 3, 4])
    return net.SerializeToString()


def test_caffemodel_weights_shapes_and_errors() -> None:
    weights = CaffemodelWeights(parse_caffemodel(_legacy_model(), "m.caffemodel"))
    assert weights.count("ip") == 2 and weights.count("nope") == 0
    w = weights.get("ip", 0, (4, 6), "weight")  # legacy (1, 1, 4, 6) read as (4, 6), as Caffe does
    assert w.shape == (4, 6) and w[1, 0] == 6
    assert weights.get("ip", 0, (4, 6, 1, 1), "weight").shape == (4, 6, 1, 1)  # same count: reshaped
    with pytest.raises(FormatError, match=r"m\.caffemodel: layer 'ip' blob 1 \(bias\): the prototxt needs "
                                          r"shape \(5\) but the caffemodel has \(4\)"):
        weights.get("ip", 1, (5,), "bias")
    with pytest.raises(FormatError, match=r"blob 1 .*needs shape \(1, 4\)"):  # shaped blobs must match
        weights.get("ip", 1, (1, 4), "bias")
    with pytest.raises(FormatError, match="'conv9' has no blobs.*renamed"):
        weights.get("conv9", 0, (1,), "weight")
    with pytest.raises(FormatError, match="has 2 blobs in the caffemodel, blob 2"):
        weights.get("ip", 2, (1,), "x")


def test_dict_weights() -> None:
    weights = DictWeights({"a": [np.arange(6.0).reshape(2, 3)]})
    assert weights.get("a", 0, (2, 3), "weight").dtype == np.float32
    with pytest.raises(FormatError, match=r"expected shape \(3, 2\), found \(2, 3\)"):
        weights.get("a", 0, (3, 2), "weight")
    with pytest.raises(FormatError, match="no blob 1"):
        weights.get("a", 1, (3,), "bias")


def test_random_weights_deterministic_and_order_free() -> None:
    one, two = RandomWeights(seed=7), RandomWeights(seed=7)
    a = one.get("conv1", 0, (8, 3, 3, 3), "weight")
    one.get("conv1", 1, (8,), "bias")
    b = two.get("conv1", 1, (8,), "bias")
    np.testing.assert_array_equal(two.get("conv1", 0, (8, 3, 3, 3), "weight"), a)
    np.testing.assert_array_equal(one.served["conv1"][1], b)
    assert not np.array_equal(RandomWeights(seed=8).get("conv1", 0, (8, 3, 3, 3), "weight"), a)
    assert not np.array_equal(one.get("conv2", 0, (8, 3, 3, 3), "weight"), a)
    assert [x.shape for x in one.served["conv1"]] == [(8, 3, 3, 3), (8,)]


def test_random_weights_statistics() -> None:
    rng = RandomWeights(seed=1)
    w = rng.get("c", 0, (256, 64, 3, 3), "weight")
    assert abs(w.std() - np.sqrt(2 / (64 * 9))) < 0.01 * np.sqrt(2 / (64 * 9)) * 5
    var = rng.get("bn", 1, (1000,), "var")
    assert var.min() >= 0.5 and var.max() <= 1.5
    assert rng.get("bn", 2, (1,), "scale_factor").tolist() == [1.0]
    slope = rng.get("p", 0, (1000,), "slope")
    assert slope.min() >= 0.1 and slope.max() <= 0.4
    assert abs(rng.get("b", 1, (10000,), "bias").std() - 0.1) < 0.01
    assert all(x.dtype == np.float32 for xs in rng.served.values() for x in xs)


def test_shape_mismatch_from_load_caffe(tmp_path: Path) -> None:
    from nnbridge.caffe.formats.net import load_caffe, save_caffe

    prototxt = tmp_path / "n.prototxt"
    prototxt.write_text('input: "x" input_shape { dim: 1 dim: 6 }\n'
                        'layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" '
                        'inner_product_param { num_output: 4 } }\n')
    net = load_caffe(prototxt)
    save_caffe(net, {"ip": [np.zeros((3, 6), np.float32), np.zeros(3, np.float32)]},
               tmp_path / "o.prototxt", tmp_path / "o.caffemodel")
    loaded = load_caffe(prototxt, tmp_path / "o.caffemodel")
    assert loaded.weights is not None
    with pytest.raises(FormatError, match=r"o\.caffemodel: layer 'ip' blob 0 \(weight\).*\(4, 6\).*\(3, 6\)"):
        loaded.weights.get("ip", 0, (4, 6), "weight")
