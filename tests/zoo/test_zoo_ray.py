"""``--executor ray``: the same tasks on a local Ray instance give the same report data as the local pool."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from nnbridge.zoo.executor import run_zoo
from nnbridge.zoo.manifest import load_manifest

pytest.importorskip("ray", reason="Ray is not installed (pip install ray)")
pytest.importorskip("caffe", reason="pycaffe (BVLC Caffe) is not importable")

MANIFEST = """
[[model]]
name = "tiny_caffe"
source = "package:nnbridge/examples/tiny_net.prototxt"
random_weights = 2
targets = ["onnx"]

[[model]]
name = "tiny_onnx"
source = "package:nnbridge/zoo/examples/tiny_net.onnx"
targets = ["caffe"]

[[model]]
name = "bad_shape"
source = "package:nnbridge/zoo/examples/tiny_net.onnx"
input_shapes = { data = [1, 3, 32] }
targets = ["caffe"]
"""


def _data(results: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What must not depend on the executor: statuses, reasons, hashes, every blob's name and verdict.

    The error magnitudes themselves may differ in the last bits: Ray workers run with OMP_NUM_THREADS=1, so
    the runtimes' float reductions are ordered differently; they are compared separately."""
    return [(r["name"], r["status"], r["reason"].replace(os.sep, "/").split("/models/")[-1], r["hash"],
             [(t["target"], t["status"], [(b["name"], b["shape_ref"], b["passed"]) for b in t["blobs"]])
              for t in r["targets"]]) for r in results]


def _errors(results: list[dict[str, Any]]) -> list[float]:
    return [b["max_rel"] for r in results for t in r["targets"] for b in t["blobs"]]


def test_ray_executor_gives_the_same_report_data(tmp_path: Path) -> None:
    path = tmp_path / "zoo.toml"
    path.write_text(MANIFEST, encoding="utf-8")
    manifest = load_manifest(path)
    local = run_zoo(manifest, str(tmp_path / "local"), workers=2)
    ray_run = run_zoo(manifest, str(tmp_path / "ray"), workers=2, executor="ray")
    assert [r["status"] for r in local.results] == ["passed", "passed", "failed"]
    assert not any(r.get("resumed") for r in ray_run.results)
    assert _data(ray_run.results) == _data(local.results)
    ours, theirs = _errors(local.results), _errors(ray_run.results)
    assert len(ours) == len(theirs) > 20 and max(ours + theirs) < 1e-5
    assert "bad_shape" in ray_run.summary() and "FAILED" in ray_run.summary()
    assert (tmp_path / "ray" / "report.html").is_file()
    assert (tmp_path / "ray" / "models" / "tiny_onnx" / "log.txt").is_file()
