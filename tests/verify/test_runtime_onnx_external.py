"""onnxruntime runner on ONNX files whose weights live in an external data file (``.onnx.data``).

Regression: small initializers used to be handed to onnxruntime with their relative external reference,
inside a sub-model given as bytes, and onnxruntime refused ("External data path ... escapes working
directory"). The reference is onnxruntime itself, loading the file from its path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from nnbridge.verify.compare import compare
from nnbridge.verify.runtimes import onnxruntime_rt
from nnbridge.verify.worker import run_in_worker

ort = pytest.importorskip("onnxruntime")


def _model(rng: np.random.Generator) -> onnx.ModelProto:
    """x (2, 16, 8, 8) -> Conv (small weight, embedded when run) -> Relu -> Flatten -> Gemm (big weight,
    fed as an input) -> Reshape (shape: a tiny int64 initializer) -> y."""
    w_conv = rng.normal(0, np.sqrt(2 / (16 * 9)), (8, 16, 3, 3)).astype(np.float32)  # 4.6 KB
    b_conv = rng.normal(0, 0.1, 8).astype(np.float32)
    w_fc = rng.normal(0, np.sqrt(2 / 512), (512, 64)).astype(np.float32)  # 128 KB > INLINE_BYTES
    shape = np.array([2, 4, 16], np.int64)
    assert w_fc.nbytes > onnxruntime_rt.INLINE_BYTES > w_conv.nbytes
    nodes = [
        helper.make_node("Conv", ["x", "w_conv", "b_conv"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["f"], name="flatten"),
        helper.make_node("MatMul", ["f", "w_fc"], ["m"], name="fc"),
        helper.make_node("Reshape", ["m", "shape"], ["y"], name="reshape"),
    ]
    graph = helper.make_graph(
        nodes, "external", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 16, 8, 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 4, 16])],
        initializer=[numpy_helper.from_array(w_conv, "w_conv"), numpy_helper.from_array(b_conv, "b_conv"),
                     numpy_helper.from_array(w_fc, "w_fc"), numpy_helper.from_array(shape, "shape")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_external_data_runs_from_another_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    folder = tmp_path / "model"
    folder.mkdir()
    path = folder / "ext.onnx"
    model = _model(rng)
    x = rng.standard_normal((2, 16, 8, 8)).astype(np.float32)
    # onnxruntime itself cannot load this file (it will not read a Reshape shape from external data),
    # so the reference is onnxruntime on the model with embedded weights
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    reference = {"x": x, "y": session.run(["y"], {"x": x})[0]}
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.onnx.data", size_threshold=0)
    assert (folder / "ext.onnx.data").is_file()
    assert all(t.data_location == onnx.TensorProto.EXTERNAL
               for t in onnx.load(str(path), load_external_data=False).graph.initializer)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    got = onnxruntime_rt.run(path, {"x": x})
    assert list(got) == ["x", "c", "r", "f", "m", "y"]
    result = compare(reference, got, outputs=["y"], rtol=1e-6)
    assert result.passed, result.table()
    np.testing.assert_allclose(got["r"], np.maximum(got["c"], 0))

    relative = Path("..") / "model" / "ext.onnx"  # a relative model path, resolved in the worker's cwd
    through_worker = run_in_worker("onnxruntime", relative, {"x": x})
    assert compare(reference, through_worker, outputs=["y"], rtol=1e-6).passed
