"""verify() end to end: Caffe <-> ONNX on a real MTCNN net, ONNX vs ONNX failures, inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from nnbridge.errors import NNBridgeError
from nnbridge.verify.api import verify
from nnbridge.verify.inputs import Preprocess, make_inputs
from nnbridge.verify.worker import available_runtimes


def _onnx_model(path: Path, weight: np.ndarray, output: str = "y") -> Path:
    """x -> MatMul(w) -> h -> Tanh -> y."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Tanh", ["h"], [output])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", 4])],
        initializer=[numpy_helper.from_array(weight, "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), path)
    return path


def test_onnx_vs_onnx(tmp_path: Path) -> None:
    weight = np.random.default_rng(0).normal(0, 0.5, (8, 4)).astype(np.float32)
    a = _onnx_model(tmp_path / "a.onnx", weight)
    same = verify(a, _onnx_model(tmp_path / "b.onnx", weight.copy()), input_shapes={"x": [3, 8]})
    assert same.passed, same.render()
    assert [row.name for row in same.comparison.rows] == ["x", "h", "y"]
    assert same.source_runtime == same.converted_runtime == "onnxruntime"
    assert "x 3x8: N(0,1) float32, seed 0" in same.inputs

    nudged = weight.copy()
    nudged[2, 1] += 0.05
    off = verify(a, _onnx_model(tmp_path / "c.onnx", nudged))
    assert not off.passed
    assert [row.name for row in off.comparison.failures] == ["h", "y"]
    assert "FAIL" in off.render() and off.to_dict()["passed"] is False

    renamed = verify(a, _onnx_model(tmp_path / "d.onnx", weight, output="z"))
    assert not renamed.passed
    assert "output missing in candidate" in renamed.comparison.failures[0].reason


def test_model_file_errors(tmp_path: Path) -> None:
    weight = np.ones((8, 4), np.float32)
    a = _onnx_model(tmp_path / "a.onnx", weight)
    with pytest.raises(NNBridgeError, match="no such model file"):
        verify(a, tmp_path / "nope.onnx")
    (tmp_path / "net.prototxt").write_text("input: 'x'\n")
    with pytest.raises(NNBridgeError, match=r"net\.caffemodel not found"):
        verify(tmp_path / "net.prototxt", a)
    (tmp_path / "m.bin").write_text("")
    with pytest.raises(NNBridgeError, match="cannot tell the model kind"):
        verify(a, tmp_path / "m.bin")


def test_inputs_are_deterministic_and_images_preprocessed(shared_models: Path) -> None:
    specs = [("data", (2, 3, 20, 30)), ("aux", (2, 5))]
    first, again = make_inputs(specs, seed=7), make_inputs(specs, seed=7)
    assert all(np.array_equal(first.arrays[n], again.arrays[n]) for n, _ in specs)
    assert not np.array_equal(first.arrays["aux"], make_inputs(specs, seed=8).arrays["aux"])
    image = next(iter(sorted((shared_models / "images").glob("*.jpg"))))
    bgr = make_inputs(specs, image=str(image), preprocess=Preprocess(mean=(104, 117, 123)))
    rgb = make_inputs(specs, image=str(image), preprocess=Preprocess(channel_order="RGB", mean=(123, 117, 104),
                                                                     scale=0.5))
    x, y = bgr.arrays["data"], rgb.arrays["data"]
    assert x.shape == (2, 3, 20, 30) and x.dtype == np.float32 and np.array_equal(x[0], x[1])
    np.testing.assert_allclose(y[0], 0.5 * x[0, ::-1], rtol=1e-6, atol=1e-4)
    assert x.min() > -130 and x.max() < 160
    assert "resized to 30x20 (bilinear), channel order BGR" in bgr.description
    assert "aux 2x5: N(0,1)" in bgr.description
    with pytest.raises(NNBridgeError, match="no N x C x H x W input"):
        make_inputs([("aux", (2, 5))], image=str(image))


@pytest.mark.caffe
def test_caffe_to_onnx_and_back_on_mtcnn(shared_models: Path, tmp_path: Path) -> None:
    if not available_runtimes()["pycaffe"] or not available_runtimes()["opencv"]:
        pytest.skip("needs pycaffe and OpenCV")
    from nnbridge.api import convert

    folder = shared_models / "caffe" / "mtcnn"
    prototxt, caffemodel = folder / "det3.prototxt", folder / "det3.caffemodel"
    converted = tmp_path / "det3.onnx"
    convert(prototxt, converted, weights=caffemodel)
    forward = verify(prototxt, converted)
    assert forward.passed, forward.render()
    assert forward.source_runtime == "pycaffe"
    assert {"conv1", "conv5", "prob1"} <= {row.name for row in forward.comparison.rows}
    # ONNX as the reference, Caffe through OpenCV, which also shows in-place versions ("conv1@conv1").
    backward = verify(converted, prototxt, converted_weights=caffemodel, runtimes=(None, "opencv"))
    assert backward.passed, backward.render()
    assert backward.converted_runtime == "opencv"
    assert {"conv1@conv1", "conv1", "prob1"} <= {row.name for row in backward.comparison.rows}
    assert "Caffe via OpenCV DNN" in backward.render()
