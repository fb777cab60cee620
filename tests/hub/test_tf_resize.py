"""ResizeScalesToSizes: tf2onnx's float scales that floor() to one row/column short become TensorFlow's sizes."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
from onnx import TensorProto, helper

from nnbridge.hub.passes.tf_resize import ResizeScalesToSizes


def _resize(in_hw: tuple[int, int], scales: list[float] | None, sizes: list[int] | None) -> onnx.ModelProto:
    inits = [helper.make_tensor("roi", TensorProto.FLOAT, [0], [])]
    inputs = ["x", "roi"]
    if scales is not None:
        inits.append(helper.make_tensor("scales", TensorProto.FLOAT, [4], scales))
        inputs.append("scales")
    else:
        assert sizes is not None
        inits.append(helper.make_tensor("sizes", TensorProto.INT64, [4], sizes))
        inputs += ["", "sizes"]
    node = helper.make_node("Resize", inputs, ["y"], mode="linear", coordinate_transformation_mode="half_pixel",
                            name="resize")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, *in_hw])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]


def test_inexact_scales_become_sizes() -> None:
    x = np.random.default_rng(0).normal(size=(1, 2, 5, 6)).astype(np.float32)
    scales = [1.0, 1.0, float(np.float32(7 / 5)), float(np.float32(9 / 6))]
    model = ir.serde.deserialize_model(_resize((5, 6), scales, None))
    # ONNX shape inference says floor(5 * 1.4f) = 6 rows (onnxruntime itself computes 7): the hub is inconsistent
    assert list(model.graph.outputs[0].shape) == [1, 2, 6, 9]
    assert ResizeScalesToSizes().run(model)
    fixed = ir.serde.serialize_model(model)
    got = _run(fixed, x)
    assert got.shape == (1, 2, 7, 9)
    np.testing.assert_array_equal(got, _run(_resize((5, 6), None, [1, 2, 7, 9]), x))  # TF's size / in mapping


def test_exact_scales_are_kept() -> None:
    model = ir.serde.deserialize_model(_resize((5, 6), [1.0, 1.0, 2.0, 0.5], None))
    assert not ResizeScalesToSizes().run(model)
    assert [v.name if v is not None else None for v in next(iter(model.graph)).inputs] == ["x", "roi", "scales"]
