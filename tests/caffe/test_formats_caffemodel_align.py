"""Caffemodel writer alignment: blobs copied file to file from a mapped source (here an MXNet .params file)
start at their source offset modulo 64 KiB, behind a padding field that protobuf, real Caffe and OpenCV skip.

``PAD_MIN_BYTES`` is lowered so that blobs of ~100 KB (instead of >= 4 MiB) get padded.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pytest

from nnbridge import fileio
from nnbridge.caffe.formats import caffemodel as cm
from nnbridge.caffe.formats.caffemodel import read_caffemodel, write_caffemodel
from nnbridge.caffe.formats.net import load_caffe, save_caffe
from nnbridge.caffe.formats.wire import Walker
from nnbridge.caffe.proto import caffe_pb2
from nnbridge.fileio import COPY_ALIGN, file_range
from nnbridge.mxnet.formats.params import load_ndarrays, save_ndarrays

RNG = np.random.default_rng(11)
NET = """
name: "mlp"
layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 2 dim: 64 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1" inner_product_param { num_output: 300 } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2" inner_product_param { num_output: 100 } }
"""


def _he(*shape: int) -> np.ndarray:
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 100
    return (RNG.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


@pytest.fixture(autouse=True)
def _small_pad_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cm, "PAD_MIN_BYTES", 64 * 1024)
    monkeypatch.setattr(fileio, "fast_copy", True)


def _mapped_blobs(tmp_path: Path, shapes: dict[str, list[tuple[int, ...]]]) -> dict[str, list[np.ndarray]]:
    """The blobs, written to a .params file (a small header first, so offsets are not round) and read back as
    views of its memory map."""
    arrays = {"arg:lead": _he(37)}
    arrays.update({f"arg:{layer}_{i}": _he(*shape) for layer, blob_shapes in shapes.items()
                   for i, shape in enumerate(blob_shapes)})
    save_ndarrays(tmp_path / "src.params", arrays)
    views = load_ndarrays(tmp_path / "src.params").as_dict()
    blobs = {layer: [views[f"arg:{layer}_{i}"] for i in range(len(s))] for layer, s in shapes.items()}
    assert all(file_range(a) is not None for arrays_ in blobs.values() for a in arrays_)
    return blobs


def _blob_fields(path: Path) -> dict[str, list[list[int]]]:
    """Field numbers of each BlobProto in the file, per layer name (V2 layers)."""
    data = path.read_bytes()
    walker = Walker(str(path), data)
    out: dict[str, list[list[int]]] = {}
    for f in walker.fields(0, len(data)):
        if f.number != cm.NET_LAYER:
            continue
        layer = caffe_pb2.LayerParameter()
        rest = bytearray()
        numbers = []
        for g in walker.fields(f.start, f.end):
            if g.number == cm.V2_BLOBS:
                numbers.append([h.number for h in walker.fields(g.start, g.end)])
            else:
                rest += data[g.tag:g.end]
        layer.ParseFromString(bytes(rest))
        out[layer.name] = numbers
    return out


def test_copied_blobs_keep_their_source_phase(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shapes = {"ip1": [(300, 64), (300,)], "ip2": [(100, 300), (100,)], "ip3": [(50, 700)]}
    blobs = _mapped_blobs(tmp_path, shapes)
    net = caffe_pb2.NetParameter(name="t")
    for name in shapes:
        net.layer.add(name=name, type="InnerProduct")
    out = tmp_path / "out.caffemodel"
    write_caffemodel(out, net, blobs)

    back = read_caffemodel(out)
    padded = 0
    fields = _blob_fields(out)
    for layer, arrays in blobs.items():
        for i, (src, got) in enumerate(zip(arrays, back.blobs[layer], strict=True)):
            np.testing.assert_array_equal(src, got)
            large = src.nbytes >= cm.PAD_MIN_BYTES
            if large:  # data at the same offset modulo 64 KiB as in the .params file
                assert file_range(got).offset % COPY_ALIGN == file_range(src).offset % COPY_ALIGN  # type: ignore[union-attr]
            has_pad = cm.PAD_FIELD in fields[layer][i]
            padded += has_pad
            assert has_pad <= large  # small blobs are never padded (a large one may already sit right)
    assert padded >= 2
    assert out.stat().st_size - sum(a.nbytes for v in blobs.values() for a in v) < 3 * (COPY_ALIGN + 64) + 200

    parsed = caffe_pb2.NetParameter.FromString(out.read_bytes())  # protobuf skips the padding field
    for layer in parsed.layer:
        for blob, src in zip(layer.blobs, blobs[layer.name], strict=True):
            assert tuple(blob.shape.dim) == src.shape
            np.testing.assert_array_equal(np.asarray(blob.data, np.float32).reshape(src.shape), src)

    monkeypatch.setattr(fileio, "fast_copy", False)  # written from memory: the same bytes
    slow = tmp_path / "slow.caffemodel"
    write_caffemodel(slow, net, blobs)
    assert slow.read_bytes() == out.read_bytes()

    copies = {layer: [np.array(a) for a in arrays] for layer, arrays in blobs.items()}  # not views: no padding
    plain = tmp_path / "plain.caffemodel"
    write_caffemodel(plain, net, copies)
    assert all(cm.PAD_FIELD not in numbers for blob in _blob_fields(plain).values() for numbers in blob)
    assert plain.stat().st_size < out.stat().st_size


def test_pad_field_sizes() -> None:
    edges = [e for width in (1, 2) for e in range(2 ** (7 * width) - 8, 2 ** (7 * width) + 12)]
    sizes = {size: cm._pad_field(size) for size in [*range(300), *edges, COPY_ALIGN - 1, COPY_ALIGN]}
    assert all(field is None or len(field) == size for size, field in sizes.items())
    missing = [size for size, field in sizes.items() if field is None]
    assert missing[: len(cm._PAD_KEY) + 1] == list(range(len(cm._PAD_KEY) + 1))  # too small for key + length
    assert len(missing) == len(cm._PAD_KEY) + 3  # and one size at each of the two length-width steps
    assert all(cm._pad_field(size + COPY_ALIGN) is not None for size in missing)  # the writer's fallback


def test_padded_caffemodel_runs_in_real_caffe_and_opencv(tmp_path: Path) -> None:
    os.environ.setdefault("GLOG_minloglevel", "2")
    caffe = pytest.importorskip("caffe", reason="real BVLC Caffe (pycaffe) is not installed")
    cv2 = pytest.importorskip("cv2", reason="OpenCV is not installed")
    prototxt = tmp_path / "mlp.prototxt"
    prototxt.write_text(NET)
    blobs = _mapped_blobs(tmp_path, {"ip1": [(300, 64), (300,)], "ip2": [(100, 300), (100,)]})
    deploy, model = tmp_path / "deploy.prototxt", tmp_path / "mlp.caffemodel"
    save_caffe(load_caffe(prototxt), blobs, deploy, model)
    assert any(cm.PAD_FIELD in numbers for blob in _blob_fields(model).values() for numbers in blob)

    x = RNG.standard_normal((2, 64)).astype(np.float32)
    (w1, b1), (w2, b2) = blobs["ip1"], blobs["ip2"]
    expected = np.maximum(x @ w1.T + b1, 0) @ w2.T + b2
    real = caffe.Net(str(deploy), str(model), caffe.TEST)
    for layer, arrays in blobs.items():
        for param, ours in zip(real.params[layer], arrays, strict=True):
            np.testing.assert_array_equal(param.data, ours)
    real.blobs["data"].data[...] = x
    got_caffe = real.forward()["ip2"]
    opencv = cv2.dnn.readNetFromCaffe(str(deploy), str(model))
    opencv.setInput(x)
    got_cv = opencv.forward("ip2")
    for got in (got_caffe, got_cv):
        assert float(np.abs(got - expected).max() / np.abs(expected).max()) < 1e-5


def test_no_padding_near_protobufs_2_gib_limit_nor_for_lazy_mappings() -> None:
    small = {"ip1": [np.zeros(10, np.float32)]}
    huge = {"ip1": [np.broadcast_to(np.float32(0), (2**29 - 2**20,))]}  # 2 GiB - 4 MiB, no memory behind it
    assert cm._start_if_padding(io.BytesIO(b"x"), small) == 0
    assert cm._start_if_padding(io.BytesIO(), huge) is None  # padding could push it past 2 GiB
    assert cm._start_if_padding(io.BytesIO(), MappingProxyType(small)) is None  # arrays maybe built on access


def test_layouts_settle_for_random_sizes_and_phases(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sizes around 2 MiB make a layer's length varint change width as padding grows: every large blob must
    still end at its phase, in a file our reader and protobuf read back."""
    rng = np.random.default_rng(5)
    phases: dict[int, int] = {}
    monkeypatch.setattr(cm, "copy_phase", lambda array: phases.get(id(array)))
    for case in range(25):
        phases.clear()  # ids of the last case's (freed) arrays may come back
        net = caffe_pb2.NetParameter(name=f"case{case}")
        blobs: dict[str, list[np.ndarray]] = {}
        for layer in range(int(rng.integers(1, 4))):
            net.layer.add(name=f"l{layer}", type="InnerProduct")
            blobs[f"l{layer}"] = []
            for _ in range(int(rng.integers(1, 4))):
                count = int(rng.choice([rng.integers(10, 3000), rng.integers(2**19 - 40_000, 2**19 + 40_000)]))
                array = np.full(count, case, np.float32)
                if array.nbytes >= cm.PAD_MIN_BYTES:
                    phases[id(array)] = int(rng.integers(0, COPY_ALIGN))
                blobs[f"l{layer}"].append(array)
        sink = io.BytesIO()
        cm.stream_caffemodel(sink, net, blobs)
        data = sink.getvalue()
        base = np.frombuffer(data, np.uint8).ctypes.data
        back = cm.parse_caffemodel(data, "<memory>")
        parsed = caffe_pb2.NetParameter.FromString(data)
        for layer, proto in zip(net.layer, parsed.layer, strict=True):
            for array, got, blob in zip(blobs[layer.name], back.blobs[layer.name], proto.blobs, strict=True):
                assert got.shape == array.shape and len(blob.data) == array.size
                if id(array) in phases:
                    assert (got.ctypes.data - base) % COPY_ALIGN == phases[id(array)]
