"""Helpers for the exporter tests: build ONNX graphs, run them in onnxruntime and the export in pycaffe."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import helper

from nnbridge.caffe.exporter import CaffeExport, export_caffe

RNG_SEED = 1234


def he(rng: np.random.Generator, *shape: int) -> np.ndarray:
    """He-normal weights: std sqrt(2 / fan_in) with fan_in = prod(shape[1:])."""
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def make_model(nodes: Sequence[onnx.NodeProto], inputs: Mapping[str, Sequence[int]], outputs: Sequence[str],
               inits: Mapping[str, np.ndarray] | None = None, opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(
        list(nodes), "g",
        [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, list(s)) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in outputs],
        [onnx.numpy_helper.from_array(np.asarray(a), n) for n, a in (inits or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    onnx.checker.check_model(inferred)
    return inferred


def to_hub(model: onnx.ModelProto) -> ir.Model:
    return ir.serde.deserialize_model(model)


def run_onnx(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, dict(feeds)), strict=False))


def run_caffe(export: CaffeExport, feeds: Mapping[str, np.ndarray], tmp: Path) -> dict[str, np.ndarray]:
    pytest.importorskip("caffe", reason="pycaffe (real Caffe) is not installed")
    from nnbridge.caffe.formats.net import save_caffe
    from nnbridge.verify.worker import run_in_worker

    prototxt, caffemodel = tmp / "net.prototxt", tmp / "net.caffemodel"
    save_caffe(export.net, export.blobs, prototxt, caffemodel)
    return dict(run_in_worker("pycaffe", (prototxt, caffemodel), dict(feeds)))


def layer_types(export: CaffeExport) -> list[str]:
    return [layer.type for layer in export.net.layer]


def check_against_onnxruntime(model: onnx.ModelProto, tmp: Path, *, dialect: str = "bvlc",
                              tol: float = 1e-4, seed: int = RNG_SEED) -> CaffeExport:
    """Export ``model``, run both runtimes on N(0,1) inputs, compare every graph output by name."""
    rng = np.random.default_rng(seed)
    feeds = {i.name: rng.standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim]).astype(np.float32)
             for i in model.graph.input}
    export = export_caffe(to_hub(model), dialect=dialect)
    reference = run_onnx(model, feeds)
    got = run_caffe(export, feeds, tmp)
    for name, ref in reference.items():
        assert name in got, f"Caffe has no blob {name!r} (blobs: {sorted(got)})"
        assert got[name].shape == ref.shape, f"{name}: shape {got[name].shape} != {ref.shape}"
        scale = max(float(np.max(np.abs(ref))), 1e-30)
        err = float(np.max(np.abs(got[name] - ref))) / scale
        assert err <= tol, f"{name}: max rel err {err:.3g} > {tol} ({layer_types(export)})"
    return export
