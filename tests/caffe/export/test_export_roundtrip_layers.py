"""Caffe -> hub -> Caffe for every layer the importer knows, against REAL Caffe (and OpenCV for SSD).

Each one-layer net of the importer test tables (tests/caffe/ops/) goes through ``check_layer(...,
roundtrip=True)``: real Caffe on the original, the hub in onnxruntime, and the exported net again in real
Caffe, blob by blob. The dialect is the set of layer types the installed pycaffe build registers, so every
layer is restored as itself and the round-tripped prototxt must list the same layer types in the same order.
Fallbacks (a group a foreign tool edited, a layer the dialect lacks) go through the structural exporters.
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from nnbridge.caffe.dialects import Dialect
from support.layer_check import caffe_module, check_layer

OPS_TESTS = Path(__file__).resolve().parents[1] / "ops"


def _tables(name: str) -> ModuleType:
    """The importer test module (its tables and net builders), loaded by path: ``caffe`` is pycaffe's name."""
    spec = importlib.util.spec_from_file_location(f"_roundtrip_{name}", OPS_TESTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


COMPUTE = _tables("test_ops_compute")
STRUCTURE = _tables("test_ops_structure")


def installed_dialect() -> Dialect:
    caffe = caffe_module()
    return Dialect("installed", frozenset(caffe.layer_type_list()), "the layers of the installed pycaffe build")


def exported_types(prototxt: str, dialect: Dialect | str) -> tuple[list[str], list[str]]:
    """(original layer types, exported layer types) with realistic random weights."""
    from nnbridge.caffe.exporter import export_caffe
    from nnbridge.caffe.formats.net import load_caffe
    from nnbridge.caffe.importer import import_layers
    from nnbridge.caffe.weights import RandomWeights

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "net.prototxt"
        path.write_text(prototxt)
        net = load_caffe(path)
    model = import_layers(list(net.net.layer), net.inputs, RandomWeights(0), source="net")
    export = export_caffe(model, dialect=dialect)
    return [layer.type for layer in net.net.layer], [layer.type for layer in export.net.layer]


def roundtrip(prototxt: str, dialect: Dialect | str | None = None, **options: Any) -> None:
    dialect = installed_dialect() if dialect is None else dialect
    check_layer(prototxt, roundtrip=True, dialect=dialect, **options)  # type: ignore[arg-type]
    original, exported = exported_types(prototxt, dialect)
    kept = [t for t in original if t != "Silence"]  # Silence makes no hub node: nothing to restore
    assert exported == kept, f"layer types {exported} != {kept}"


# -- compute layers (tests/caffe/ops/test_ops_compute.py) -------------------------------------------
@pytest.mark.parametrize(("prototxt", "options"), COMPUTE.CASES)
def test_compute_layer_roundtrip(prototxt: str, options: dict[str, Any]) -> None:
    roundtrip(prototxt, **options)


def test_in_place_chain_roundtrip() -> None:
    layer = COMPUTE.layer
    body = (layer("Convolution", "convolution_param { num_output: 4 kernel_size: 3 pad: 1 }", name="conv")
            + layer("BatchNorm", name="bn", bottom="out", top="out")
            + layer("Scale", "scale_param { bias_term: true }", name="sc", bottom="out", top="out")
            + layer("ReLU", name="relu", bottom="out", top="out")
            + layer("Dropout", name="drop", bottom="out", top="out"))
    roundtrip(COMPUTE.net(body, (2, 3, 8, 8)))


# -- structural layers (tests/caffe/ops/test_ops_structure.py) ---------------------------------------
def _structure_cases() -> list[Any]:
    s = STRUCTURE
    cases: list[Any] = []
    for key, (op, coeffs, count) in s.ELTWISE.items():
        bottoms = tuple(f"data{i or ''}" for i in range(count))
        body = s.layer("Eltwise", f"eltwise_param {{ operation: {op} {coeffs} }}", bottoms=bottoms)
        cases.append(pytest.param(s.net(body, *([s.SHAPE] * count)), id=f"eltwise-{key}"))
    for axis in (0, 1, 2, 3, -1):
        other = list(s.SHAPE)
        other[axis] += 2
        body = s.layer("Concat", f"concat_param {{ axis: {axis} }}", bottoms=("data", "data1"))
        cases.append(pytest.param(s.net(body, s.SHAPE, tuple(other)), id=f"concat-{axis}"))
    for key, (params, tops) in s.SLICES.items():
        body = s.layer("Slice", f"slice_param {{ {params} }}", tops=tuple(f"s{i}" for i in range(tops)))
        cases.append(pytest.param(s.net(body), id=f"slice-{key}"))
    body = (s.layer("Split", tops=("a", "b", "c"), name="split")
            + s.layer("Eltwise", "eltwise_param { operation: SUM }", bottoms=("a", "b"), name="sum")
            + s.layer("Silence", bottoms=("c",), tops=(), name="silence"))
    cases.append(pytest.param(s.net(body), id="split-silence"))
    for key, params in s.FLATTEN.items():
        cases.append(pytest.param(s.net(s.layer("Flatten", f"flatten_param {{ {params} }}")), id=f"flatten-{key}"))
    for key, params in s.RESHAPE.items():
        cases.append(pytest.param(s.net(s.layer("Reshape", f"reshape_param {{ {params} }}")), id=f"reshape-{key}"))
    for key, (params, ref) in s.CROPS.items():
        body = s.layer("Crop", f"crop_param {{ {params} }}", bottoms=("data", "data1"))
        cases.append(pytest.param(s.net(body, s.SHAPE, ref), id=f"crop-{key}"))
    for i, params in enumerate(("axis: 1 tiles: 3", "axis: -1 tiles: 2", "axis: 0 tiles: 2")):
        cases.append(pytest.param(s.net(s.layer("Tile", f"tile_param {{ {params} }}")), id=f"tile-{i}"))
    for order in ((0, 2, 3, 1), (1, 0), (3,)):
        params = " ".join(f"order: {o}" for o in order)
        cases.append(pytest.param(s.net(s.layer("Permute", f"permute_param {{ {params} }}")),
                                  id="permute-" + "".join(map(str, order))))
    for op in ("SUM", "ASUM", "SUMSQ", "MEAN"):
        for axis, coeff in ((0, 1.0), (1, -0.5), (-1, 2.0)):
            body = s.layer("Reduction", f"reduction_param {{ operation: {op} axis: {axis} coeff: {coeff} }}")
            cases.append(pytest.param(s.net(body), id=f"reduction-{op}-{axis}-{coeff}"))
    for key, (params, shape) in s.ARGMAX.items():
        cases.append(pytest.param(s.net(s.layer("ArgMax", f"argmax_param {{ {params} }}"), shape),
                                  id=f"argmax-{key}"))
    for scale in (1, 2):
        cases.append(pytest.param(s.net(s.layer("Upsample", f"upsample_param {{ scale: {scale} }}")),
                                  id=f"upsample-{scale}"))
    return cases


@pytest.mark.parametrize("prototxt", _structure_cases())
def test_structure_layer_roundtrip(prototxt: str) -> None:
    roundtrip(prototxt)


# -- fallbacks: what is not restored goes through the structural exporters -------------------------
def test_dialect_without_the_layer_falls_back_to_exact_rewrites() -> None:
    """ReLU6 in the ssd dialect (no ReLU6, no Clip): ReLU(x) - ReLU(x - 6); Upsample in bvlc: Deconvolution."""
    relu6 = COMPUTE.one("ReLU6")
    check_layer(relu6, roundtrip=True, dialect="ssd", inputs=COMPUTE.spread((2, 3, 5, 5), 5.0))
    assert exported_types(relu6, "ssd")[1] == ["ReLU", "Power", "ReLU", "Eltwise"]
    upsample = STRUCTURE.net(STRUCTURE.layer("Upsample", "upsample_param { scale: 2 }"))
    check_layer(upsample, roundtrip=True, dialect="bvlc")
    assert exported_types(upsample, "bvlc")[1] == ["Deconvolution"]


def test_edited_group_is_not_restored(tmp_path: Path) -> None:
    """LRN WITHIN_CHANNEL whose alpha constant a foreign tool changed: no longer the layer's import, so the
    group is exported op by op (Eltwise / Pooling / Power), and that net must compute the edited model."""
    import onnx_ir as ir
    from export_cases import run_caffe

    from nnbridge.caffe.exporter import export_caffe
    from nnbridge.caffe.formats.net import load_caffe
    from nnbridge.caffe.importer import import_layers
    from nnbridge.caffe.weights import RandomWeights
    from support.layer_check import run_hub

    path = tmp_path / "lrn.prototxt"
    path.write_text(COMPUTE.one("LRN", "lrn_param { local_size: 3 alpha: 0.8 beta: 0.75 norm_region: "
                                "WITHIN_CHANNEL }", (2, 3, 6, 7)))
    net = load_caffe(path)
    model = import_layers(list(net.net.layer), net.inputs, RandomWeights(0), source=str(path))
    alpha = model.graph.initializers["l.alpha"]
    alpha.const_value = ir.Tensor(np.asarray(0.3, np.float32), name="l.alpha")
    export = export_caffe(model, dialect="bvlc")
    types = [layer.type for layer in export.net.layer]
    assert "LRN" not in types and "Pooling" in types, types
    feeds = {"data": np.random.default_rng(2).standard_normal((2, 3, 6, 7)).astype(np.float32)}
    want = run_hub(model, feeds)["out"]
    got = run_caffe(export, feeds, tmp_path)["out"]
    assert float(np.max(np.abs(got - want))) <= 1e-5 * float(np.max(np.abs(want)))


def test_weights_are_not_copied() -> None:
    """The exported blobs are views of the hub's weight arrays (memory-mapped weights stay mapped)."""
    from nnbridge.caffe.exporter import export_caffe
    from nnbridge.caffe.formats.net import load_caffe
    from nnbridge.caffe.importer import import_layers
    from nnbridge.caffe.weights import DictWeights

    rng = np.random.default_rng(0)
    weight, bias = rng.standard_normal((6, 4, 3, 3)).astype(np.float32), np.zeros(6, np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "net.prototxt"
        path.write_text(COMPUTE.conv("num_output: 6 kernel_size: 3"))
        net = load_caffe(path)
    model = import_layers(list(net.net.layer), net.inputs, DictWeights({"l": [weight, bias]}), source="net")
    export = export_caffe(model)
    assert np.shares_memory(export.blobs["l"][0], weight) and np.shares_memory(export.blobs["l"][1], bias)
    assert model.graph.node(0).op_type == "Conv"  # the caller's model is left alone
