"""Runtimes against each other: pycaffe vs OpenCV on a small Caffe net; onnxruntime with a custom node."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx_ir as ir
import pytest

from nnbridge.errors import NNBridgeError
from nnbridge.hub.custom import CUSTOM_DOMAIN, custom_op, get_custom_op
from nnbridge.verify.compare import compare
from nnbridge.verify.runtimes import onnxruntime_rt
from nnbridge.verify.worker import available_runtimes, run_in_worker

TINY_NET = """
name: "tiny"
input: "data"
input_shape { dim: 2 dim: 3 dim: 12 dim: 12 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" batch_norm_param { use_global_stats: true } }
layer { name: "scale1" type: "Scale" bottom: "conv1" top: "conv1" scale_param { bias_term: true } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: AVE kernel_size: 3 stride: 2 } }
layer { name: "slice1" type: "Slice" bottom: "pool1" top: "sa" top: "sb" slice_param { axis: 1 slice_point: 3 } }
layer { name: "prelu" type: "PReLU" bottom: "sb" top: "sb" }
layer { name: "cat" type: "Concat" bottom: "sb" bottom: "sa" top: "cat" }
layer { name: "fc" type: "InnerProduct" bottom: "cat" top: "fc" inner_product_param { num_output: 10 } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
"""

# The same net with every in-place blob renamed, so pycaffe shows the versions OpenCV calls "B@layer".
RENAMES = {"c_conv": "conv1@conv1", "c_bn": "conv1@bn1", "c_scale": "conv1@scale1", "sb_slice": "sb@slice1"}
OUT_OF_PLACE = (TINY_NET.replace('bottom: "data" top: "conv1"', 'bottom: "data" top: "c_conv"')
                .replace('bottom: "conv1" top: "conv1" batch', 'bottom: "c_conv" top: "c_bn" batch')
                .replace('bottom: "conv1" top: "conv1" scale', 'bottom: "c_bn" top: "c_scale" scale')
                .replace('"ReLU" bottom: "conv1" top: "conv1"', '"ReLU" bottom: "c_scale" top: "conv1"')
                .replace('top: "sb" slice', 'top: "sb_slice" slice')
                .replace('bottom: "sb" top: "sb"', 'bottom: "sb_slice" top: "sb"'))


def _needs(runtime: str) -> None:
    if not available_runtimes()[runtime]:
        pytest.skip(f"{runtime} is not available")


@pytest.fixture(scope="module")
def tiny_caffe(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Prototxt (+ out-of-place twin) and a caffemodel with realistic random weights, saved by pycaffe."""
    _needs("pycaffe")
    os.environ.setdefault("GLOG_minloglevel", "2")
    caffe = pytest.importorskip("caffe")
    folder = tmp_path_factory.mktemp("tiny_caffe")
    prototxt, twin, caffemodel = folder / "net.prototxt", folder / "twin.prototxt", folder / "net.caffemodel"
    prototxt.write_text(TINY_NET)
    twin.write_text(OUT_OF_PLACE)
    rng = np.random.default_rng(0)
    net = caffe.Net(str(prototxt), caffe.TEST)
    for name, blobs in net.params.items():
        shapes = [tuple(b.data.shape) for b in blobs]
        if name == "bn1":  # mean, variance, scale factor
            values = [rng.normal(0, 0.5, shapes[0]), rng.uniform(0.5, 1.5, shapes[1]), np.ones(shapes[2])]
        elif name == "prelu":
            values = [rng.uniform(0.1, 0.4, shapes[0])]
        else:  # He-normal weights, small biases
            values = [rng.normal(0, np.sqrt(2 / np.prod(s[1:])), s) if len(s) > 1 else rng.normal(0, 0.1, s)
                      for s in shapes]
        for blob, value in zip(blobs, values, strict=True):
            blob.data[...] = value
    net.save(str(caffemodel))
    return prototxt, twin, caffemodel


def _data(shape: tuple[int, ...] = (2, 3, 12, 12)) -> dict[str, np.ndarray]:
    return {"data": np.random.default_rng(1).standard_normal(shape).astype(np.float32)}


def test_pycaffe_and_opencv_give_the_same_blobs(tiny_caffe: tuple[Path, Path, Path]) -> None:
    _needs("opencv")
    prototxt, _, caffemodel = tiny_caffe
    ref = run_in_worker("pycaffe", [prototxt, caffemodel], _data())
    got = run_in_worker("opencv", [prototxt, caffemodel], _data())
    assert ref.runtime == "pycaffe" and got.runtime == "opencv"
    assert ref.outputs == got.outputs == ["prob"]
    assert list(ref) == ["data", "conv1", "pool1", "sa", "sb", "cat", "fc", "prob"]
    result = compare(ref, got, outputs=ref.outputs)
    assert result.passed, result.table()
    assert [row.name for row in result.rows] == list(ref)


def test_opencv_in_place_versions_match_pycaffe_out_of_place(tiny_caffe: tuple[Path, Path, Path]) -> None:
    _needs("opencv")
    prototxt, twin, caffemodel = tiny_caffe
    ref = run_in_worker("pycaffe", [twin, caffemodel], _data())
    got = run_in_worker("opencv", [prototxt, caffemodel], _data())
    result = compare(ref, got, outputs=["prob", *RENAMES], name_map=RENAMES)
    assert result.passed, result.table()
    assert len(result.rows) == len(ref) + 0  # every pycaffe blob has its OpenCV counterpart
    # the versions really differ (BatchNorm, Scale and ReLU each change the blob)
    assert not np.allclose(got["conv1@conv1"], got["conv1@bn1"])
    assert not np.allclose(got["conv1@scale1"], got["conv1"])


def test_pycaffe_reshapes_inputs(tiny_caffe: tuple[Path, Path, Path]) -> None:
    prototxt, _, caffemodel = tiny_caffe
    got = run_in_worker("pycaffe", [prototxt, caffemodel], _data((3, 3, 12, 12)))
    assert got["conv1"].shape == (3, 8, 12, 12)
    assert got["prob"].shape == (3, 10)
    # A spatial size InnerProduct cannot take: Caffe aborts, and its CHECK message reaches the caller.
    with pytest.raises(NNBridgeError, match=r"worker killed by SIGABRT: Check failed: .*Input size incompatible"):
        run_in_worker("pycaffe", [prototxt, caffemodel], _data((1, 3, 16, 16)))


def test_pycaffe_large_caffemodel_path_copies_weights(tiny_caffe: tuple[Path, Path, Path],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Above Caffe's read limit the weights come from nnbridge's reader; the blobs must not change."""
    prototxt, _, caffemodel = tiny_caffe
    ref = run_in_worker("pycaffe", [prototxt, caffemodel], _data())
    monkeypatch.setenv("NNBRIDGE_CAFFE_READ_LIMIT", "0")
    got = run_in_worker("pycaffe", [prototxt, caffemodel], _data())
    assert list(got) == list(ref)
    assert all(np.array_equal(ref[name], got[name]) for name in ref)


def test_worker_errors_are_clean(tmp_path: Path) -> None:
    missing = tmp_path / "missing.onnx"
    with pytest.raises(NNBridgeError, match=r"onnxruntime on .*missing\.onnx: .*no such ONNX file"):
        run_in_worker("onnxruntime", missing, _data())
    bad = tmp_path / "bad.prototxt"
    bad.write_text("input: 'data' input_shape { dim: 2 dim: 3 dim: 12 dim: 12 }\n"
                   "layer { name: 'x' type: 'Nonsense' bottom: 'data' top: 'y' }\n")
    if available_runtimes()["pycaffe"]:
        # Caffe aborts on an unknown layer type: the status and Caffe's own message are reported.
        message = r"pycaffe on .*bad\.prototxt: worker killed by SIGABRT: .*Unknown layer type: Nonsense"
        with pytest.raises(NNBridgeError, match=message):
            run_in_worker("pycaffe", [bad, None], _data())
    with pytest.raises(NNBridgeError, match="unknown runtime"):
        run_in_worker("tensorflow-lite", missing, _data())


def _test_double_infer(attrs, shapes, dtypes):  # type: ignore[no-untyped-def]
    return [(shapes[0], dtypes[0])]


if get_custom_op("TestDouble") is None:
    @custom_op("TestDouble", infer=_test_double_infer, doc="y = factor * x (test only)")
    def _test_double(attrs, inputs):  # type: ignore[no-untyped-def]
        return [inputs[0] * np.float32(attrs.get("factor", 2.0))]


def _custom_model(weight: np.ndarray) -> ir.Model:
    """x -> Relu -> TestDouble -> Add(weight) -> Sigmoid -> TestDouble -> y, plus Neg(r) as a second output."""
    shape = ir.Shape(list(weight.shape))
    x = ir.Value(name="x", shape=shape, type=ir.TensorType(ir.DataType.FLOAT))
    w = ir.Value(name="w", const_value=ir.tensor(weight, name="w"), shape=shape,
                 type=ir.TensorType(ir.DataType.FLOAT))
    relu = ir.node("Relu", [x], name="relu", outputs=[ir.Value(name="r")])
    double = ir.node("TestDouble", [relu.outputs[0]], domain=CUSTOM_DOMAIN, name="double",
                     attributes={"factor": 3.0}, outputs=[ir.Value(name="d")])
    add = ir.node("Add", [double.outputs[0], w], name="add", outputs=[ir.Value(name="a")])
    sig = ir.node("Sigmoid", [add.outputs[0]], name="sig", outputs=[ir.Value(name="s")])
    neg = ir.node("Neg", [relu.outputs[0]], name="neg", outputs=[ir.Value(name="n")])
    double2 = ir.node("TestDouble", [sig.outputs[0]], domain=CUSTOM_DOMAIN, name="double2",
                      outputs=[ir.Value(name="y")])
    graph = ir.Graph([x], [double2.outputs[0], neg.outputs[0]], nodes=[relu, double, add, sig, neg, double2],
                     initializers=[w], opset_imports={"": 17, CUSTOM_DOMAIN: 1}, name="custom")
    return ir.Model(graph, ir_version=10)


def test_onnxruntime_runs_custom_nodes_by_reference(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    weight = rng.standard_normal((64, 300)).astype(np.float32)  # > INLINE_BYTES: fed as an input
    x = rng.standard_normal((64, 300)).astype(np.float32)
    r = np.maximum(x, 0)
    expected = {"x": x, "r": r, "d": 3 * r, "a": 3 * r + weight, "s": 1 / (1 + np.exp(-(3 * r + weight))),
                "n": -r}
    expected["y"] = 2 * expected["s"]
    got = onnxruntime_rt.run(_custom_model(weight), {"x": x})
    assert list(got) == ["x", "r", "d", "a", "s", "n", "y"]  # topological order, inputs first
    result = compare(expected, got, outputs=["y", "n"], rtol=1e-6)
    assert result.passed, result.table()
    only = onnxruntime_rt.run(_custom_model(weight), {"x": x}, intermediates=False)
    assert list(only) == ["y", "n"]

    path = tmp_path / "custom.onnx"
    ir.save(_custom_model(weight), str(path), external_data="custom.onnx.data")
    # The worker imports this file as a plugin, so that TestDouble is declared there too.
    through_worker = run_in_worker("onnxruntime", path, {"x": x}, plugins=[__file__])
    assert through_worker.outputs == ["y", "n"]
    assert compare(expected, through_worker, outputs=["y", "n"], rtol=1e-6).passed


def test_onnxruntime_rejects_wrong_inputs() -> None:
    model = _custom_model(np.ones((2, 2), np.float32))
    with pytest.raises(NNBridgeError, match="not inputs of the model"):
        onnxruntime_rt.run(model, {"x": np.ones((2, 2), np.float32), "z": np.ones(1)})
    with pytest.raises(NNBridgeError, match="was not given"):
        onnxruntime_rt.run(model, {})
