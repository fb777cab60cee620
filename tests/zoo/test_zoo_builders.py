"""Manifest sources built at run time (nnbridge/zoo/builders.py): keras.applications with weights=None and GluonCV
with pretrained=False (in the MXNet environment), seeded realistic values, converted and verified in the real
runtimes; the content hash follows the builder, its options and the seed; a missing runtime fails or skips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nnbridge.errors import FormatError
from nnbridge.zoo.manifest import load_manifest
from nnbridge.zoo.tasks import content_hash, run_model

KERAS = '''
[[model]]
name = "mnv2"
source = "keras.applications:MobileNetV2"
targets = ["caffe"]
task = "classification"
[model.build]
seed = {seed}
input_shape = [32, 32, 3]
alpha = {alpha}
classes = 10
'''
GLUON = '''
[[model]]
name = "gluon_mn"
source = "gluoncv:mobilenet0.25"
input_shapes = {{ data = [1, 3, 32, 32] }}
targets = ["onnx", "caffe"]
optional = {optional}
[model.build]
input_shape = [1, 3, 32, 32]
classes = 10
'''


def _spec(folder: Path, text: str, **values: object):  # type: ignore[no-untyped-def]
    manifest = folder / f"m{len(list(folder.glob('m*.toml')))}.toml"
    manifest.write_text(text.format(**values), encoding="utf-8")
    return load_manifest(manifest).models[0]


def _check_passed(result: dict, targets: list[str]) -> None:  # type: ignore[type-arg]
    assert result["status"] == "passed", result["reason"]
    assert [t["target"] for t in result["targets"]] == targets
    for row in result["targets"]:
        assert row["status"] == "passed", row["reason"]
        assert len(row["blobs"]) >= 20  # intermediate blobs compared by name, not just the output
        assert row["worst_rel"] is not None and row["worst_rel"] <= 1e-4


def test_keras_applications_source_builds_converts_and_verifies(tmp_path: Path) -> None:
    keras = pytest.importorskip("keras", reason="TensorFlow/Keras is not installed")
    spec = _spec(tmp_path, KERAS, seed=3, alpha=0.35)
    result = run_model(spec, str(tmp_path / "report"))
    _check_passed(result, ["caffe"])
    built = tmp_path / "report" / "models" / "mnv2" / "built" / "MobileNetV2.keras"
    assert built.is_file()
    model = keras.models.load_model(built)
    assert model.get_layer("Conv1").get_weights()[0].std() > 0.05  # seeded values, not keras' initialiser
    out = model.predict(np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype(np.float32), verbose=0)
    assert out.std(axis=1).min() > 1e-3  # realistic BN statistics: the class scores do not collapse to uniform


def test_gluoncv_source_builds_in_mxnet_env_converts_and_verifies(tmp_path: Path) -> None:
    pytest.importorskip("caffe", reason="pycaffe (BVLC Caffe) is not importable")
    from support.mxnet_env import mxnet_python

    python = mxnet_python()
    spec = _spec(tmp_path, GLUON, optional="false")
    result = run_model(spec, str(tmp_path / "report"), mxnet_python=python)
    _check_passed(result, ["onnx", "caffe"])
    built = tmp_path / "report" / "models" / "gluon_mn" / "built"
    assert sorted(p.name for p in built.iterdir()) == ["mobilenet0.25-0000.params", "mobilenet0.25-symbol.json"]
    again = run_model(spec, str(tmp_path / "report"), mxnet_python=python)
    assert again["resumed"] and again["hash"] == result["hash"]


def test_missing_mxnet_fails_or_skips_with_a_reason(tmp_path: Path) -> None:
    required = run_model(_spec(tmp_path, GLUON, optional="false"), str(tmp_path / "a"), mxnet_python=None)
    assert required["status"] == "failed" and "NNBRIDGE_MXNET_PYTHON" in required["reason"]
    optional = run_model(_spec(tmp_path, GLUON, optional="true"), str(tmp_path / "b"), mxnet_python=None)
    assert optional["status"] == "skipped" and "NNBRIDGE_MXNET_PYTHON" in optional["reason"]


def test_hash_follows_builder_options_and_seed(tmp_path: Path) -> None:
    base = content_hash(_spec(tmp_path, KERAS, seed=3, alpha=0.35))
    assert content_hash(_spec(tmp_path, KERAS, seed=3, alpha=0.35)) == base
    assert content_hash(_spec(tmp_path, KERAS, seed=3, alpha=0.5)) != base
    assert content_hash(_spec(tmp_path, KERAS, seed=4, alpha=0.35)) != base
    other = KERAS.replace("MobileNetV2", "MobileNet")
    assert content_hash(_spec(tmp_path, other, seed=3, alpha=0.35)) != base


def test_build_options_need_a_builder_source(tmp_path: Path) -> None:
    manifest = tmp_path / "bad.toml"
    manifest.write_text('[[model]]\nname = "x"\nsource = "x.onnx"\n[model.build]\nalpha = 1.0\n', encoding="utf-8")
    with pytest.raises(FormatError, match="build"):
        load_manifest(manifest)
