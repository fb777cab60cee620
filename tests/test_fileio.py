"""Zero-copy weights (nnbridge.fileio): file ranges of mapped arrays, kernel copies, and the writers using them.

Every writer's output through the file-to-file path must be byte-identical to the old write-from-memory path
(``fileio.fast_copy = False``) and still load in onnx/onnxruntime and our readers.
"""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest

from nnbridge import fileio
from nnbridge.caffe.formats.caffemodel import read_caffemodel, write_caffemodel
from nnbridge.caffe.proto import caffe_pb2
from nnbridge.errors import FormatError
from nnbridge.fileio import copy_range, file_range, map_readonly
from nnbridge.mxnet.formats.params import load_ndarrays, save_ndarrays
from nnbridge.onnx.writer import save_model_streaming

MODELS = Path(__file__).resolve().parents[1] / ".." / "shared" / "models"
RNG = np.random.default_rng(7)


def _weights(*shape: int) -> np.ndarray:
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
    return (RNG.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


@pytest.fixture
def mapped(tmp_path: Path) -> tuple[Path, bytes, fileio.MappedFile]:
    data = RNG.standard_normal(4096).astype("<f4").tobytes()
    path = tmp_path / "blob.bin"
    path.write_bytes(b"HEAD" + data)
    return path, data, map_readonly(path)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, int]]:
    """Every fast path use (copy_range call) is recorded; small arrays take it too."""
    calls: list[tuple[str, int, int]] = []
    original = fileio.copy_range

    def spy(dst, path, offset, nbytes):  # type: ignore[no-untyped-def]
        calls.append((path, offset, nbytes))
        original(dst, path, offset, nbytes)

    monkeypatch.setattr(fileio, "copy_range", spy)
    monkeypatch.setattr(fileio, "COPY_MIN_BYTES", 1)
    monkeypatch.setattr(fileio, "fast_copy", True)
    return calls


# ------------------------------------------------------------------------------------------------- file_range
def test_map_readonly_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(FormatError, match="nothing here"):
        map_readonly(tmp_path / "empty", empty="nothing here")
    with pytest.raises(FormatError, match="cannot open: No such file"):
        map_readonly(tmp_path / "missing", unreadable="cannot open: {strerror}")
    with pytest.raises(FormatError, match="the caffemodel is empty"):
        read_caffemodel(tmp_path / "empty")
    with pytest.raises(FormatError, match="empty file, not an MXNet NDArray file"):
        load_ndarrays(tmp_path / "empty")


def test_file_range_of_views(mapped: tuple[Path, bytes, fileio.MappedFile]) -> None:
    path, data, buf = mapped
    whole = np.frombuffer(buf, "<f4", count=4096, offset=4)
    assert file_range(whole) == (str(path), 4, len(data))
    assert file_range(whole.reshape(64, 64)[10:20]) == (str(path), 4 + 10 * 64 * 4, 10 * 64 * 4)
    assert file_range(whole[100:]) == (str(path), 404, len(data) - 400)
    assert file_range(whole.reshape(-1).view(np.uint8)[3:7]) == (str(path), 7, 4)
    assert file_range(np.asarray(whole, dtype="<f4", order="C")) is not None  # no conversion: still the view
    # not the file's bytes, or not one range of them
    assert file_range(whole[::2]) is None
    assert file_range(whole.reshape(64, 64).T) is None
    assert file_range(whole.reshape(64, 64)[:, :10]) is None
    assert file_range(whole.copy()) is None
    assert file_range(whole.astype(np.float64)) is None
    assert file_range(whole.astype(">f4")) is None
    assert file_range(whole.view(">f4")) is None  # the bytes would have to be swapped before writing
    assert file_range(whole[:0]) is None
    assert file_range(np.frombuffer(bytes(buf), "<f4", count=4096, offset=4)) is None  # bytes, not a map
    assert file_range(ir.Tensor(whole).numpy()) is not None  # onnx_ir hands back the array itself


def test_file_range_refuses_a_replaced_file(mapped: tuple[Path, bytes, fileio.MappedFile]) -> None:
    path, data, buf = mapped
    whole = np.frombuffer(buf, "<f4", count=4096, offset=4)
    replacement = path.with_name("new.bin")
    replacement.write_bytes(b"HEAD" + bytes(len(data)))
    os.replace(replacement, path)
    assert file_range(whole) is None


# ------------------------------------------------------------------------------------------------- copy_range
def _copy_through(tmp_path: Path, src: Path, ranges: list[tuple[int, int]]) -> tuple[bytes, bytes]:
    """Interleave buffered writes and copies; returns (file bytes, expected bytes)."""
    source = src.read_bytes()
    expected = b""
    out = tmp_path / "out.bin"
    with open(out, "wb") as handle:
        for i, (offset, nbytes) in enumerate(ranges):
            head = bytes([i]) * (i + 3)
            handle.write(head)
            copy_range(handle, src, offset, nbytes)
            expected += head + source[offset:offset + nbytes]
            assert handle.tell() == len(expected)
        handle.write(b"tail")
        expected += b"tail"
        assert handle.tell() == len(expected)
    return out.read_bytes(), expected


RANGES = [(4, 16384), (0, 1), (5000, 7001), (4, 3), (100, 16000)]


def test_copy_range(tmp_path: Path, mapped: tuple[Path, bytes, fileio.MappedFile]) -> None:
    got, expected = _copy_through(tmp_path, mapped[0], RANGES)
    assert got == expected


def test_copy_range_partial_copies(tmp_path: Path, mapped: tuple[Path, bytes, fileio.MappedFile],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.copy_file_range
    sizes: list[int] = []

    def short(src, dst, count, offset_src=None, offset_dst=None):  # type: ignore[no-untyped-def]
        sizes.append(count)
        return real(src, dst, min(count, 1000), offset_src, offset_dst)

    monkeypatch.setattr(os, "copy_file_range", short)
    got, expected = _copy_through(tmp_path, mapped[0], RANGES)
    assert got == expected
    assert len(sizes) > len(RANGES)


def test_copy_range_rounds_start_at_64k_boundaries_of_the_source(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The bytes up to the source's next 64 KiB boundary go first, the rest in 64 KiB-aligned calls."""
    data = RNG.standard_normal(100_000).astype("<f4").tobytes()
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    real = os.copy_file_range
    steps: list[tuple[int, int]] = []

    def spy(in_fd, out_fd, count, offset_src=None, offset_dst=None):  # type: ignore[no-untyped-def]
        steps.append((offset_src, count))
        return real(in_fd, out_fd, count, offset_src, offset_dst)

    monkeypatch.setattr(os, "copy_file_range", spy)
    monkeypatch.setattr(fileio, "_CHUNK", 2 * fileio.COPY_ALIGN)
    got, expected = _copy_through(tmp_path, src, [(8632, 300_000), (2 * fileio.COPY_ALIGN, 70_000), (9, 50)])
    assert got == expected
    assert steps[0] == (8632, fileio.COPY_ALIGN - 8632)
    assert steps[1:3] == [(fileio.COPY_ALIGN, 2 * fileio.COPY_ALIGN),
                          (3 * fileio.COPY_ALIGN, 8632 + 300_000 - 3 * fileio.COPY_ALIGN)]
    assert steps[3:] == [(2 * fileio.COPY_ALIGN, 70_000), (9, 50)]  # aligned already; shorter than the head


@pytest.mark.parametrize("broken", [["copy_file_range"], ["copy_file_range", "sendfile"]])
def test_copy_range_fallbacks(tmp_path: Path, mapped: tuple[Path, bytes, fileio.MappedFile],
                              monkeypatch: pytest.MonkeyPatch, broken: list[str]) -> None:
    calls: list[str] = []
    for name in ("copy_file_range", "sendfile"):
        real = getattr(os, name)

        def wrapped(*args, _name=name, _real=real):  # type: ignore[no-untyped-def]
            calls.append(_name)
            if _name in broken:
                raise OSError(errno.EXDEV if _name == "copy_file_range" else errno.EINVAL, "refused")
            return _real(*args)

        monkeypatch.setattr(os, name, wrapped)
    got, expected = _copy_through(tmp_path, mapped[0], RANGES)
    assert got == expected
    assert set(calls) == {"copy_file_range", "sendfile"}


def test_copy_range_without_copy_file_range(tmp_path: Path, mapped: tuple[Path, bytes, fileio.MappedFile],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "copy_file_range")
    got, expected = _copy_through(tmp_path, mapped[0], RANGES)
    assert got == expected


def test_copy_range_other_errors_propagate(tmp_path: Path, mapped: tuple[Path, bytes, fileio.MappedFile],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*args):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "copy_file_range", full)
    with open(tmp_path / "out.bin", "wb") as handle, pytest.raises(OSError, match="No space"):
        copy_range(handle, mapped[0], 0, 100)


def test_copy_range_past_the_end(tmp_path: Path, mapped: tuple[Path, bytes, fileio.MappedFile]) -> None:
    with open(tmp_path / "out.bin", "wb") as handle, pytest.raises(FormatError, match="ended before"):
        copy_range(handle, mapped[0], 100, len(mapped[1]))


def test_write_array_to_a_non_file_handle(mapped: tuple[Path, bytes, fileio.MappedFile]) -> None:
    whole = np.frombuffer(mapped[2], "<f4", count=4096, offset=4)
    for array in (whole, whole.copy()):
        sink = io.BytesIO()  # no file descriptor: written from memory
        fileio.write_array(sink, array)
        assert sink.getvalue() == mapped[1]


# ------------------------------------------------------------------------------------------------ the writers
def _caffemodel(tmp_path: Path) -> Path:
    net = caffe_pb2.NetParameter(name="tiny")
    shapes = {"conv1": [(16, 3, 3, 3), (16,)], "fc1": [(300, 400), (300,)], "fc2": [(10, 300)]}
    for name in shapes:
        net.layer.add(name=name, type="InnerProduct" if name.startswith("fc") else "Convolution")
    blobs = {name: [_weights(*s) for s in layer] for name, layer in shapes.items()}
    path = tmp_path / "tiny.caffemodel"
    write_caffemodel(path, net, blobs)
    return path


def _both_ways(write, out: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[bytes, bytes]:  # type: ignore[no-untyped-def]
    """(fast output, old-path output) of ``write(path)``."""
    write(out)
    fast = out.read_bytes()
    monkeypatch.setattr(fileio, "fast_copy", False)
    write(out)
    monkeypatch.setattr(fileio, "fast_copy", True)
    return fast, out.read_bytes()


def test_caffemodel_writer(tmp_path: Path, counted: list, monkeypatch: pytest.MonkeyPatch) -> None:
    source = read_caffemodel(_caffemodel(tmp_path))
    out = tmp_path / "out.caffemodel"
    fast, slow = _both_ways(lambda p: write_caffemodel(p, source.net, source.blobs), out, monkeypatch)
    assert len(counted) == 5
    assert fast == slow == Path(source.path).read_bytes()
    again = read_caffemodel(out)
    for name, arrays in source.blobs.items():
        for a, b in zip(arrays, again.blobs[name], strict=True):
            np.testing.assert_array_equal(a, b)


def test_params_writer_from_params_and_caffemodel(tmp_path: Path, counted: list,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    source = read_caffemodel(_caffemodel(tmp_path))
    arrays = {f"arg:{name}_{i}": a for name, blobs in source.blobs.items() for i, a in enumerate(blobs)}
    arrays["arg:converted"] = _weights(8, 8).astype(np.float64)  # not a view: written from memory
    first = tmp_path / "a.params"
    fast, slow = _both_ways(lambda p: save_ndarrays(p, arrays), first, monkeypatch)
    assert fast == slow
    assert len(counted) == 5
    loaded = load_ndarrays(first)
    second = tmp_path / "b.params"  # .params -> .params: views of the first file
    fast2, slow2 = _both_ways(lambda p: save_ndarrays(p, loaded.as_dict()), second, monkeypatch)
    assert fast2 == slow2 == fast
    assert len(counted) == 11
    for name, value in load_ndarrays(second).as_dict().items():
        np.testing.assert_array_equal(value, arrays[name])


def _onnx_model(weights: dict[str, np.ndarray]) -> ir.Model:
    """y = relu(x @ fc1^T + b1) @ fc2^T, the weights as initializers (the arrays themselves)."""
    x = ir.Value(name="x", type=ir.TensorType(ir.DataType.FLOAT), shape=ir.Shape([2, 400]))
    inits = {name: ir.Value(name=name, const_value=ir.Tensor(a)) for name, a in weights.items()}
    for name, value in inits.items():
        value.type, value.shape = ir.TensorType(ir.DataType.FLOAT), ir.Shape(weights[name].shape)
    gemm = ir.node("Gemm", [x, inits["w1"], inits["b1"]], attributes={"transB": 1})
    relu = ir.node("Relu", gemm.outputs)
    out = ir.node("Gemm", [relu.outputs[0], inits["w2"]], attributes={"transB": 1})
    out.outputs[0].name = "y"
    for node, shape in ((gemm, [2, 300]), (relu, [2, 300]), (out, [2, 10])):
        node.outputs[0].type, node.outputs[0].shape = ir.TensorType(ir.DataType.FLOAT), ir.Shape(shape)
    graph = ir.Graph([x], out.outputs, nodes=[gemm, relu, out], initializers=list(inits.values()),
                     opset_imports={"": 17}, name="mlp")
    return ir.Model(graph, ir_version=8)


@pytest.mark.parametrize("external", [False, True])
def test_onnx_writer(tmp_path: Path, counted: list, monkeypatch: pytest.MonkeyPatch, external: bool) -> None:
    blobs = read_caffemodel(_caffemodel(tmp_path)).blobs
    weights = {"w1": blobs["fc1"][0], "b1": blobs["fc1"][1], "w2": blobs["fc2"][0]}
    assert all(file_range(ir.Tensor(a).numpy()) is not None for a in weights.values())
    out = tmp_path / "m.onnx"
    data = tmp_path / "m.onnx.data"
    fast_data = b""

    def write(path: Path) -> None:
        nonlocal fast_data
        save_model_streaming(_onnx_model(weights), path, external_data=external)
        if external and not fast_data:
            fast_data = data.read_bytes()

    fast, slow = _both_ways(write, out, monkeypatch)
    assert fast == slow
    assert len(counted) == 3
    if external:
        assert fast_data == data.read_bytes()
    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    x = RNG.standard_normal((2, 400)).astype(np.float32)
    (y,) = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    ref = np.maximum(x @ weights["w1"].T + weights["b1"], 0) @ weights["w2"].T
    assert np.abs(y - ref).max() / np.abs(ref).max() < 1e-5


def test_real_caffe_to_onnx_conversion(tmp_path: Path, counted: list, monkeypatch: pytest.MonkeyPatch) -> None:
    prototxt, caffemodel = MODELS / "caffe" / "mtcnn" / "det3.prototxt", MODELS / "caffe" / "mtcnn" / "det3.caffemodel"
    if not caffemodel.is_file() or not prototxt.is_file():
        pytest.skip(f"real MTCNN model not found in {MODELS}")
    from nnbridge.api import convert

    out = tmp_path / "det3.onnx"
    fast, slow = _both_ways(lambda p: convert(prototxt, p, weights=caffemodel, to="onnx"), out, monkeypatch)
    assert counted, "no weight went through the file-to-file copy"
    assert fast == slow
    onnx.checker.check_model(onnx.load(str(out)))
