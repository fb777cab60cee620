"""Caffemodel reader and writer against real Caffe: round trips both ways, MTCNN's trained weights,
zero-copy views, old encodings (legacy dims, double_data, unpacked floats, duplicate names), and
truncated/corrupt files failing with FormatError."""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from nnbridge.caffe.formats.caffemodel import read_caffemodel, write_caffemodel
from nnbridge.caffe.formats.net import load_caffe, load_caffemodel_only, save_caffe
from nnbridge.caffe.weights import CaffemodelWeights, RandomWeights
from nnbridge.errors import FormatError

NET = """
name: "small"
layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 6 kernel_size: 3 pad: 1 } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" }
layer { name: "scale1" type: "Scale" bottom: "conv1" top: "conv1" scale_param { bias_term: true } }
layer { name: "prelu1" type: "PReLU" bottom: "conv1" top: "conv1" }
layer { name: "ip1" type: "InnerProduct" bottom: "conv1" top: "ip1" inner_product_param { num_output: 7 } }
"""
KINDS = {"conv1": ["weight", "bias"], "bn1": ["mean", "var", "scale_factor"], "scale1": ["gamma", "beta"],
         "prelu1": ["slope"], "ip1": ["weight", "bias"]}


def _pycaffe():  # type: ignore[no-untyped-def]
    os.environ.setdefault("GLOG_minloglevel", "2")
    return pytest.importorskip("caffe", reason="real BVLC Caffe (pycaffe) is not installed")


@pytest.fixture
def small(tmp_path: Path) -> tuple[Path, Path, dict[str, list[np.ndarray]]]:
    """The small net written by us: prototxt, caffemodel and the blobs written."""
    caffe = _pycaffe()
    prototxt = tmp_path / "small.prototxt"
    prototxt.write_text(NET)
    shapes = {name: [b.data.shape for b in blobs] for name, blobs in caffe.Net(str(prototxt), caffe.TEST)
              .params.items()}
    random = RandomWeights(seed=3)
    for name, kinds in KINDS.items():
        for i, kind in enumerate(kinds):
            random.get(name, i, shapes[name][i], kind)
    net = load_caffe(prototxt)
    model = tmp_path / "small.caffemodel"
    save_caffe(net, random.served, tmp_path / "deploy.prototxt", model)
    return prototxt, model, random.served


def test_ours_written_loads_in_real_caffe(small: tuple[Path, Path, dict[str, list[np.ndarray]]]) -> None:
    caffe = _pycaffe()
    prototxt, model, blobs = small
    real = caffe.Net(str(prototxt), str(model), caffe.TEST)
    assert set(real.params) == set(blobs)
    for name, params in real.params.items():
        assert len(params) == len(blobs[name])
        for param, ours in zip(params, blobs[name], strict=True):
            np.testing.assert_array_equal(param.data, ours)
    deploy = caffe.Net(str(model.parent / "deploy.prototxt"), str(model), caffe.TEST)
    assert deploy.blobs["data"].data.shape == (1, 3, 8, 8)


def test_real_caffe_written_read_by_ours(small: tuple[Path, Path, dict[str, list[np.ndarray]]],
                                         tmp_path: Path) -> None:
    caffe = _pycaffe()
    prototxt, _, _ = small
    real = caffe.Net(str(prototxt), caffe.TEST)
    rng = np.random.default_rng(11)
    for params in real.params.values():
        for param in params:
            param.data[...] = rng.normal(0, 1, param.data.shape)
    saved = tmp_path / "by_caffe.caffemodel"
    real.save(str(saved))
    ours = read_caffemodel(saved)
    weights = CaffemodelWeights(ours)
    for name, params in real.params.items():
        assert weights.count(name) == len(params)
        for i, param in enumerate(params):
            np.testing.assert_array_equal(weights.get(name, i, param.data.shape, "x"), param.data)
    assert [layer.name for layer in ours.net.layer] == list(real._layer_names)
    assert all(not layer.blobs for layer in ours.net.layer)


@pytest.mark.parametrize("net", ["det1", "det2", "det3", "det4"])
def test_mtcnn_weights_equal_real_caffe(shared_models: Path, net: str) -> None:
    caffe = _pycaffe()
    prototxt, model = shared_models / f"caffe/mtcnn/{net}.prototxt", shared_models / f"caffe/mtcnn/{net}.caffemodel"
    real = caffe.Net(str(prototxt), str(model), caffe.TEST)
    ours = load_caffe(prototxt, model)
    assert ours.weights is not None
    for name, params in real.params.items():
        assert ours.weights.count(name) == len(params)
        for i, param in enumerate(params):
            np.testing.assert_array_equal(ours.weights.get(name, i, param.data.shape, "x"), param.data)
    only = load_caffemodel_only(model)
    assert {layer.name for layer in only.net.layer} >= set(real.params)


def test_blobs_are_zero_copy_views_of_the_map(small: tuple[Path, Path, dict[str, list[np.ndarray]]]) -> None:
    _, model, _ = small
    file = read_caffemodel(model)
    assert isinstance(file.buffer, mmap.mmap)
    for arrays in file.blobs.values():
        for array in arrays:
            assert not array.flags.owndata and not array.flags.writeable
            base: object = array
            while isinstance(base, np.ndarray):
                base = base.base
            if isinstance(base, memoryview):  # numpy 2 keeps a memoryview of the buffer
                base = base.obj
            assert base is file.buffer


def _layer(pb, name: str, kind: str, blobs: list) -> object:  # type: ignore[no-untyped-def]
    layer = pb.LayerParameter(name=name, type=kind, bottom=["data"], top=[name])
    layer.blobs.extend(blobs)
    return layer


def test_old_encodings_read_like_real_caffe(tmp_path: Path) -> None:
    """Legacy 4-D dims, double_data, unpacked floats and a duplicated layer name, checked against Caffe."""
    caffe = _pycaffe()
    pb = caffe.proto.caffe_pb2
    rng = np.random.default_rng(5)
    w, b, w2 = rng.normal(size=(4, 6)), rng.normal(size=4), rng.normal(size=(4, 6)).astype(np.float32)
    legacy_w = pb.BlobProto(num=1, channels=1, height=4, width=6, double_data=w.ravel().tolist())
    legacy_b = pb.BlobProto(num=1, channels=1, height=1, width=4, data=b.ravel().tolist())
    dup_w = pb.BlobProto(shape=pb.BlobShape(dim=[4, 6]), data=[1.0] * 24)
    dup_b = pb.BlobProto(shape=pb.BlobShape(dim=[4]), data=[0.5] * 4)
    net = pb.NetParameter(name="old")
    net.layer.extend([_layer(pb, "ip", "InnerProduct", [legacy_w, legacy_b]),
                      _layer(pb, "ip2", "InnerProduct", [dup_w, dup_b])])
    data = bytearray(net.SerializeToString())
    # an extra, later layer named ip2 whose weight is stored as unpacked floats (key 0x2d per value)
    unpacked = b"".join(b"\x2d" + struct.pack("<f", v) for v in w2.ravel())
    shape = b"\x08\x04\x08\x06"  # BlobShape with dim: 4, dim: 6 unpacked
    blob = b"\x3a" + bytes([len(shape)]) + shape + unpacked
    bias = pb.BlobProto(shape=pb.BlobShape(dim=[4]), data=[0.25] * 4).SerializeToString()
    head = pb.LayerParameter(name="ip2", type="InnerProduct", bottom=["data"], top=["ip2"]).SerializeToString()
    body = head + b"\x3a" + _varint(len(blob)) + blob + b"\x3a" + _varint(len(bias)) + bias
    data += b"\xa2\x06" + _varint(len(body)) + body
    model = tmp_path / "old.caffemodel"
    model.write_bytes(bytes(data))
    prototxt = tmp_path / "old.prototxt"
    prototxt.write_text('input: "data" input_shape { dim: 2 dim: 6 }\n'
                        'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
                        'inner_product_param { num_output: 4 } }\n'
                        'layer { name: "ip2" type: "InnerProduct" bottom: "data" top: "ip2" '
                        'inner_product_param { num_output: 4 } }\n')
    real = caffe.Net(str(prototxt), str(model), caffe.TEST)
    ours = load_caffe(prototxt, model).weights
    assert ours is not None
    for name in ("ip", "ip2"):
        for i, param in enumerate(real.params[name]):
            np.testing.assert_array_equal(ours.get(name, i, param.data.shape, "x"), param.data)
    np.testing.assert_array_equal(real.params["ip2"][0].data, w2)  # the last layer named ip2 won


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def test_truncated_files_raise_format_error(small: tuple[Path, Path, dict[str, list[np.ndarray]]],
                                            tmp_path: Path) -> None:
    _, model, blobs = small
    data = model.read_bytes()
    conv_w = blobs["conv1"][0].astype("<f4").tobytes()
    inside_conv_w = data.index(conv_w) + len(conv_w) // 2
    cut_path = tmp_path / "cut.caffemodel"
    for cut in (1, 7, 30, 60, inside_conv_w, len(data) // 2, len(data) - 20, len(data) - 1):
        cut_path.write_bytes(data[:cut])
        with pytest.raises(FormatError) as info:
            read_caffemodel(cut_path)
        assert str(cut_path) in str(info.value), (cut, str(info.value))
        if cut == inside_conv_w:
            assert "truncated inside layer 'conv1' blob 0" in str(info.value)
            assert f"at byte {cut}" in str(info.value)
    cut_path.write_bytes(b"")
    with pytest.raises(FormatError, match="empty"):
        read_caffemodel(cut_path)


def test_corrupt_files_raise_format_error(small: tuple[Path, Path, dict[str, list[np.ndarray]]],
                                          tmp_path: Path) -> None:
    _, model, _ = small
    data = model.read_bytes()
    bad = tmp_path / "bad.caffemodel"
    bad.write_bytes(b"\xff" * 64)
    with pytest.raises(FormatError, match="bad.caffemodel"):
        read_caffemodel(bad)
    bad.write_bytes(b"\x0f\x00\x00\x00")  # wire type 7
    with pytest.raises(FormatError, match="invalid wire type"):
        read_caffemodel(bad)
    rng = np.random.default_rng(0)
    header_end = data.index(b"conv1") + 200  # mutate the structure, not only float payloads
    for _ in range(300):
        mutated = bytearray(data)
        for pos in rng.integers(0, header_end, size=3):
            mutated[pos] = int(rng.integers(0, 256))
        bad.write_bytes(bytes(mutated))
        try:
            read_caffemodel(bad)
        except FormatError as error:
            assert "bad.caffemodel" in str(error)


def test_write_refuses_unknown_layers(tmp_path: Path) -> None:
    from nnbridge.caffe.formats.prototxt import parse_prototxt

    net = parse_prototxt('layer { name: "a" type: "ReLU" bottom: "x" top: "y" }')
    with pytest.raises(ValueError, match="not in the net: b"):
        write_caffemodel(tmp_path / "x.caffemodel", net, {"b": [np.zeros(2, np.float32)]})
    assert not list(tmp_path.iterdir())  # nothing half-written left behind


@pytest.mark.parametrize("version", ["V1", "V0"])
def test_old_layer_versions_read_like_real_caffe(tmp_path: Path, version: str) -> None:
    """Caffemodels stored as V1 ``layers`` (blobs = 6) or V0-in-V1 (blobs = 50) give Caffe's weights."""
    caffe = _pycaffe()
    pb = caffe.proto.caffe_pb2
    rng = np.random.default_rng(9)
    values = {"conv1": [rng.normal(size=(2, 3, 3, 3)), rng.normal(size=2)],
              "ip1": [rng.normal(size=(4, 72)), rng.normal(size=4)]}

    def blob(array: np.ndarray) -> object:
        return pb.BlobProto(shape=pb.BlobShape(dim=array.shape), data=array.ravel().tolist())

    net = pb.NetParameter(name="old", input=["data"])
    for name, v1_type, v0_type, top, bottom in (("conv1", "CONVOLUTION", "conv", "conv1", "data"),
                                                ("ip1", "INNER_PRODUCT", "innerproduct", "ip1", "conv1")):
        layer = net.layers.add(bottom=[bottom], top=[top])
        if version == "V1":
            layer.name, layer.type = name, pb.V1LayerParameter.LayerType.Value(v1_type)
            layer.blobs.extend(blob(a) for a in values[name])
        else:
            layer.layer.name, layer.layer.type = name, v0_type
            layer.layer.blobs.extend(blob(a) for a in values[name])
    model = tmp_path / "old.caffemodel"
    model.write_bytes(net.SerializeToString())
    prototxt = tmp_path / "new.prototxt"
    prototxt.write_text('layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 '
                        'dim: 8 dim: 8 } } }\n'
                        'layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" '
                        'convolution_param { num_output: 2 kernel_size: 3 } }\n'
                        'layer { name: "ip1" type: "InnerProduct" bottom: "conv1" top: "ip1" '
                        'inner_product_param { num_output: 4 } }\n')
    real = caffe.Net(str(prototxt), str(model), caffe.TEST)
    file = read_caffemodel(model)
    assert [layer.type for layer in file.net.layer] == ["Convolution", "InnerProduct"] and not file.net.layers
    weights = CaffemodelWeights(file)
    for name, params in real.params.items():
        for i, param in enumerate(params):
            np.testing.assert_array_equal(weights.get(name, i, param.data.shape, "x"), param.data)
