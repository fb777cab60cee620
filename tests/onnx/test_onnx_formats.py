"""ONNX in/out: the streaming writer against onnx_ir's own save, and normalisation of foreign ONNX.

References are onnx.load/onnx.checker and onnxruntime running the *original* file.
"""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnx.helper as oh
import onnx_ir as ir
import onnxruntime as ort
import pytest
from onnx import TensorProto

from nnbridge import protowire
from nnbridge.errors import FormatError
from nnbridge.hub.builder import GraphBuilder
from nnbridge.onnx import normalize, writer
from nnbridge.onnx.formats import load_onnx, save_onnx


def _run(path, feeds):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)


def _conv_model(weight: np.ndarray) -> ir.Model:
    b = GraphBuilder("streamed")
    x = b.input("x", [1, 3, 8, 8])
    w = b.const("conv.weight", weight)
    bias = b.const("conv.bias", np.linspace(-1, 1, weight.shape[0], dtype=np.float32))
    y = b.op1("Conv", [x, w, bias], {"pads": [1, 1, 1, 1]}, name="conv")
    r = b.op1("Relu", [y], name="relu")
    z = b.op1("Reshape", [r, b.int64s("shape", [1, -1])], name="flat")
    b.output(z)
    return b.model({"nnbridge.test": "yes"})


def _assert_same_protos(ours: onnx.ModelProto, theirs: onnx.ModelProto) -> None:
    assert list(ours.graph.node) == list(theirs.graph.node)
    assert list(ours.graph.input) == list(theirs.graph.input)
    assert list(ours.graph.output) == list(theirs.graph.output)
    assert sorted(v.SerializeToString() for v in ours.graph.value_info) == sorted(
        v.SerializeToString() for v in theirs.graph.value_info)
    assert ours.opset_import == theirs.opset_import
    assert ours.metadata_props == theirs.metadata_props
    assert ours.ir_version == theirs.ir_version
    a = {t.name: onnx.numpy_helper.to_array(t) for t in ours.graph.initializer}
    b = {t.name: onnx.numpy_helper.to_array(t) for t in theirs.graph.initializer}
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape
        assert a[name].tobytes() == b[name].tobytes(), name


@pytest.mark.parametrize("external", [False, True])
def test_streaming_save_matches_ir_save(tmp_path, external):
    rng = np.random.default_rng(0)
    # the weights come from a memory-mapped file, like a caffemodel's blobs
    mapped = np.memmap(tmp_path / "weights.bin", dtype="<f4", mode="w+", shape=(8, 3, 3, 3))
    mapped[:] = rng.normal(0, 0.3, mapped.shape)
    mapped.flush()
    weight = np.memmap(tmp_path / "weights.bin", dtype="<f4", mode="r", shape=(8, 3, 3, 3))
    model = _conv_model(weight)
    ours, theirs = tmp_path / "ours.onnx", tmp_path / "theirs.onnx"
    save_onnx(model, ours, external_data=external)
    ir.save(model, theirs)
    assert (tmp_path / "ours.onnx.data").exists() == external
    loaded = onnx.load(str(ours))
    onnx.checker.check_model(str(ours), full_check=True)
    _assert_same_protos(loaded, onnx.load(str(theirs)))
    x = rng.normal(size=(1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(_run(ours, {"x": x})[0], _run(theirs, {"x": x})[0])
    assert not list(tmp_path.glob("*.partial"))


def test_streaming_save_of_loaded_model_and_dtypes(tmp_path):
    """Initializers that came from a file (TensorProto-backed) and non-float dtypes round-trip exactly."""
    b = GraphBuilder("dtypes")
    x = b.input("x", [2, 4])
    half = b.const("half", np.arange(8, dtype=np.float16).reshape(2, 4))
    idx = b.const("idx", np.array([3, 0, 1], dtype=np.int64))
    flag = b.const("flag", np.array([True, False, True, True]))
    y = b.op1("Add", [x, b.op1("Cast", [half], {"to": ir.DataType.FLOAT}, name="cast")], name="add")
    g = b.op1("Gather", [y, idx], {"axis": 1}, name="gather")
    w = b.op1("Where", [flag, y, x], name="where")
    b.output(g)
    b.output(w)
    first, second, ref = tmp_path / "a.onnx", tmp_path / "b.onnx", tmp_path / "ref.onnx"
    save_onnx(b.model(), first)
    reloaded = ir.load(str(first))
    save_onnx(reloaded, second)
    ir.save(reloaded, ref)
    _assert_same_protos(onnx.load(str(second)), onnx.load(str(ref)))
    feeds = {"x": np.ones((2, 4), np.float32)}
    for a, c in zip(_run(second, feeds), _run(ref, feeds), strict=True):
        np.testing.assert_array_equal(a, c)


def test_failed_save_leaves_nothing(tmp_path, monkeypatch):
    model = _conv_model(np.ones((8, 3, 3, 3), np.float32))

    def broken(handle, array):
        handle.write(b"xx")
        raise OSError("disk full")

    monkeypatch.setattr(writer, "_write_array", broken)
    with pytest.raises(OSError):
        save_onnx(model, tmp_path / "out.onnx")
    assert list(tmp_path.iterdir()) == []


def test_varint_matches_protobuf():
    from google.protobuf.internal import encoder

    for value in (0, 1, 127, 128, 300, 2**31 - 1, 2**35 + 7):
        assert protowire.encode_varint(value) == encoder._VarintBytes(value)


# -- foreign ONNX --------------------------------------------------------------------------------------
def _exporter_style_model(opset: int) -> onnx.ModelProto:
    """A dynamic-batch model with the shape-computing subgraph exporters emit before Reshape."""
    nodes = [
        oh.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        oh.make_node("Shape", ["c"], ["s"]),
        oh.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        oh.make_node("Unsqueeze", ["n", "zaxis"], ["n1"]),
        oh.make_node("Concat", ["n1", "minus1"], ["shp"], axis=0),
        oh.make_node("Reshape", ["c", "shp"], ["flat"]),
    ]
    inits = [
        onnx.numpy_helper.from_array(np.random.default_rng(1).normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32), "w"),
        onnx.numpy_helper.from_array(np.array(0, np.int64), "zero"),
        onnx.numpy_helper.from_array(np.array([0], np.int64), "zaxis"),
        onnx.numpy_helper.from_array(np.array([-1], np.int64), "minus1"),
    ]
    if opset >= 18:
        nodes.append(oh.make_node("ReduceMean", ["flat", "axes"], ["y"], keepdims=1))
        inits.append(onnx.numpy_helper.from_array(np.array([1], np.int64), "axes"))
    else:
        nodes.append(oh.make_node("ReduceMean", ["flat"], ["y"], axes=[1], keepdims=1))
    graph = oh.make_graph(
        nodes, "exported", [oh.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 6, 6])],
        [oh.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits,
    )
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)], ir_version=8)


@pytest.mark.parametrize("opset", [13, 18, 20])
@pytest.mark.parametrize("tools", ["installed", "basic"])
def test_load_onnx_normalises(tmp_path, monkeypatch, opset, tools):
    if tools == "basic":
        monkeypatch.setattr(normalize, "_available", lambda module: False)
    elif not normalize._available("onnxscript"):
        pytest.skip("onnxscript is not installed")
    path = tmp_path / f"m{opset}.onnx"
    onnx.save(_exporter_style_model(opset), str(path))
    model = load_onnx(path, input_shapes={"x": [2, 3, 6, 6]})
    assert model.opset_imports[""] == 17
    assert [n.op_type for n in model.graph] == ["Conv", "Reshape", "ReduceMean"]
    assert normalize.has_static_shapes(model)
    assert model.graph.outputs[0].shape == ir.Shape([2, 1])
    out = tmp_path / "normalised.onnx"
    save_onnx(model, out)
    x = np.random.default_rng(2).normal(size=(2, 3, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(_run(out, {"x": x})[0], _run(path, {"x": x})[0], rtol=1e-6, atol=1e-7)


def test_load_onnx_inlines_functions(tmp_path):
    """Dynamo-exported models call model-local functions; they are inlined."""
    func = oh.make_function("pkg.local", "Block", ["a"], ["b"], [oh.make_node("Relu", ["a"], ["b"])],
                            [oh.make_opsetid("", 18)])
    graph = oh.make_graph([oh.make_node("Block", ["x"], ["y"], domain="pkg.local")], "g",
                          [oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [oh.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    proto = oh.make_model(graph, functions=[func], ir_version=8,
                          opset_imports=[oh.make_opsetid("", 18), oh.make_opsetid("pkg.local", 1)])
    onnx.save(proto, str(tmp_path / "f.onnx"))
    model = load_onnx(tmp_path / "f.onnx")
    assert [(n.domain, n.op_type) for n in model.graph] == [("", "Relu")]
    assert model.opset_imports[""] == 17


def test_load_onnx_errors(tmp_path):
    with pytest.raises(FormatError, match="no such file"):
        load_onnx(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\xff\xff\xff not protobuf at all")
    with pytest.raises(FormatError, match="bad.onnx"):
        load_onnx(bad)
    good = tmp_path / "m.onnx"
    onnx.save(_exporter_style_model(13), str(good))
    with pytest.raises(FormatError, match="unknown inputs nope.*inputs are x"):
        load_onnx(good, input_shapes={"nope": [1, 3, 6, 6]})
    with pytest.raises(FormatError, match="rank 4"):
        load_onnx(good, input_shapes={"x": [1, 3]})


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_pytorch_exported_onnx(tmp_path, dynamo):
    torch = pytest.importorskip("torch", reason="torch is not installed (pip install 'nnbridge[torch]')")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.bn = torch.nn.BatchNorm2d(8)
            self.fc = torch.nn.Linear(8 * 4 * 4, 5)

        def forward(self, x):
            y = torch.nn.functional.max_pool2d(torch.relu(self.bn(self.conv(x))), 2)
            return torch.softmax(self.fc(y.reshape(y.shape[0], -1)), dim=1)

    net = Net().eval()
    path = tmp_path / "torch.onnx"
    x = torch.randn(1, 3, 8, 8)
    if dynamo:
        pytest.importorskip("onnxscript", reason="the dynamo exporter needs onnxscript")
        batch = torch.export.Dim("N", min=1, max=64)
        torch.onnx.export(net, (x,), str(path), input_names=["x"], output_names=["y"],
                          dynamic_shapes={"x": {0: batch}}, dynamo=True, optimize=False)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(net, (x,), str(path), input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "N"}}, dynamo=False)
    model = load_onnx(path, input_shapes={"x": [1, 3, 8, 8]})
    assert model.opset_imports[""] == 17 and normalize.has_static_shapes(model)
    assert "Shape" not in {n.op_type for n in model.graph}
    out = tmp_path / "hub.onnx"
    save_onnx(model, out)
    feeds = {"x": x.numpy()}
    np.testing.assert_allclose(_run(out, feeds)[0], _run(path, feeds)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("opset", [18, 19])
def test_pad_down_converted_to_opset_17(opset: int) -> None:
    """onnx's version converter has no Pad 18 -> 17 adapter (PyTorch's dynamo exporter writes opset 18): a Pad
    without ``axes`` means the same in opset 13, so it is carried over unchanged; the numbers are onnxruntime's."""
    graph = oh.make_graph(
        [oh.make_node("Pad", ["x", "p", "v"], ["y"], mode="constant"), oh.make_node("Relu", ["y"], ["z"])], "g",
        [oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 3])],
        [oh.make_tensor_value_info("z", TensorProto.FLOAT, None)],
        [oh.make_tensor("p", TensorProto.INT64, [8], [0, 0, 1, 0, 0, 0, 0, 2]),
         oh.make_tensor("v", TensorProto.FLOAT, [], [-0.5])])
    source = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])
    hub = normalize.convert_opset(ir.serde.deserialize_model(source))
    converted = ir.serde.serialize_model(hub)
    assert [(o.domain, o.version) for o in converted.opset_import] == [("", 17)]
    assert [n.domain for n in converted.graph.node] == ["", ""]
    x = np.random.default_rng(0).normal(size=(1, 2, 3, 3)).astype(np.float32)
    want = ort.InferenceSession(source.SerializeToString()).run(None, {"x": x})[0]
    got = ort.InferenceSession(converted.SerializeToString()).run(None, {"x": x})[0]
    assert got.shape == (1, 2, 4, 5)
    np.testing.assert_array_equal(got, want)
