"""The built-in example: Caffe -> ONNX -> Caffe, verified against pycaffe (or OpenCV) and onnxruntime."""

from __future__ import annotations

import importlib.util

import pytest

from nnbridge.examples import run_example
from nnbridge.verify import worker


def _check(result, caffe_runtime: str) -> None:
    assert result.passed, "\n\n".join(r.render() for r in result.reports)
    first, second = result.reports
    assert (first.source_runtime, first.converted_runtime) == (caffe_runtime, "onnxruntime")
    assert (second.source_runtime, second.converted_runtime) == ("onnxruntime", caffe_runtime)
    # every Caffe blob of the example is compared, not only the output
    names = {row.name for row in first.comparison.rows}
    assert {"conv1", "pool1", "res2", "concat", "pool2", "fc1", "prob"} <= names
    assert {row.name for row in second.comparison.rows} >= {"conv1", "res2", "concat", "prob"}


def test_example_with_pycaffe(tmp_path):
    if not worker.available_runtimes()["pycaffe"]:
        pytest.skip("pycaffe is not importable (install real Caffe: ../shared/tools/reference-caffe/install.sh)")
    result = run_example(tmp_path / "ex", echo=None)
    _check(result, "pycaffe")
    assert sorted(p.name for p in (tmp_path / "ex").iterdir()) == [
        "tiny_net.caffemodel", "tiny_net.onnx", "tiny_net.prototxt",
        "tiny_net_roundtrip.caffemodel", "tiny_net_roundtrip.prototxt",
    ]


def test_example_with_opencv_only(tmp_path, monkeypatch):
    if importlib.util.find_spec("cv2") is None:
        pytest.skip("OpenCV is not installed (pip install 'nnbridge[verify]')")
    monkeypatch.setattr(worker, "_pycaffe_importable", lambda python: False)
    lines: list[str] = []
    result = run_example(tmp_path / "ex", echo=lines.append)
    _check(result, "opencv")
    assert lines[-1].strip().startswith("example passed")
