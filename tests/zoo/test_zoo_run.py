"""``nnbridge zoo run`` end to end in the real runtimes: >= 6 models across Caffe, MXNet, TensorFlow and ONNX
sources (MTCNN from ../shared/models when present), one deliberately broken; run twice (the second run does
no work); accuracy on held-out scikit-learn digits measured in TensorFlow, Caffe, onnxruntime and MXNet; the
HTML report rendered by headless chromium."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from zoo_setup import train_digits, write_manifest

from nnbridge.cli import main
from support.cli import run as run_cli

pytest.importorskip("caffe", reason="pycaffe (BVLC Caffe) is not importable")
pytest.importorskip("tensorflow", reason="TensorFlow is not installed (pip install 'nnbridge[tensorflow]')")
pytest.importorskip("sklearn", reason="scikit-learn (digits dataset) is not installed")
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "models"


def _mxnet() -> str | None:
    from support.mxnet_env import mxnet_python

    try:
        return mxnet_python()
    except pytest.skip.Exception:
        return None


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("zoo")
    mx = _mxnet()
    old = os.environ.get("NNBRIDGE_MXNET_PYTHON")
    if mx:
        os.environ["NNBRIDGE_MXNET_PYTHON"] = mx
    try:
        digits, images, keras_acc = train_digits(folder)
        shared = SHARED if (SHARED / "caffe" / "mtcnn").is_dir() else None
        manifest = write_manifest(folder, digits, images, shared, mxnet=bool(mx))
        report = folder / "report"
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["zoo", "run", str(manifest), "-o", str(report), "--workers", "2"])
        yield {"folder": folder, "manifest": manifest, "report": report, "code": code, "out": out.getvalue(),
               "keras_acc": keras_acc, "mxnet": bool(mx), "shared": shared is not None}
    finally:
        if mx:
            if old is None:
                os.environ.pop("NNBRIDGE_MXNET_PYTHON", None)
            else:
                os.environ["NNBRIDGE_MXNET_PYTHON"] = old


def _report(zoo: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((zoo["report"] / "report.json").read_text(encoding="utf-8"))
    return data


def test_first_run_converts_verifies_and_names_the_failure(zoo: dict[str, Any]) -> None:
    assert zoo["code"] == 1, zoo["out"]
    assert "FAILED broken:" in zoo["out"] and "['data'] have no shape" in zoo["out"]
    data = _report(zoo)
    models = {m["name"]: m for m in data["models"]}
    expected = 7 if zoo["shared"] else 5
    assert len(models) == expected and not any(m.get("resumed") for m in models.values())
    assert models["broken"]["status"] == "failed"
    passed = [m for name, m in models.items() if name != "broken"]
    assert all(m["status"] == "passed" for m in passed), [(m["name"], m["reason"]) for m in passed]
    kinds = {m["name"]: {t["source_runtime"] for t in m["targets"]} for m in passed}
    assert kinds["digits_keras"] == {"tensorflow"} and kinds["tiny_onnx"] == {"onnxruntime"}
    assert kinds["tiny_mxnet"] == {"mxnet"} if zoo["mxnet"] else True
    for model in passed:
        for target in model["targets"]:
            assert target["blobs"], (model["name"], target["target"])
            assert target["worst_rel"] is not None and target["worst_rel"] <= 1e-4 or target["worst_abs"] <= 1e-6
            assert Path(target["output"]).is_file() and target["size"] > 0
    rows = data["rows"]
    assert len(rows) == sum(len(m["targets"]) or 1 for m in models.values())
    assert (zoo["report"] / "models" / "digits_keras" / "log.txt").read_text().count("converting") >= 2
    md = (zoo["report"] / "report.md").read_text(encoding="utf-8")
    assert "| broken | onnx | failed |" in md and "digits_keras -> onnx: worst blobs" in md


def test_accuracy_is_the_same_in_every_framework(zoo: dict[str, Any]) -> None:
    accuracy = {m["name"]: m for m in _report(zoo)["models"]}["digits_keras"]["accuracy"]
    assert accuracy["images"] == 120 and not accuracy["softmax_applied"]
    source = accuracy["source"]
    # the Keras model in this process and the TensorFlow worker saw the same images: same top-1
    assert source["top1"] == pytest.approx(zoo["keras_acc"]) and source["top1"] > 0.8
    assert source["top5"] >= source["top1"]
    expected = {"onnx", "caffe"} | ({"mxnet"} if zoo["mxnet"] else set())
    assert set(accuracy["targets"]) == expected
    for name, target in accuracy["targets"].items():
        assert "error" not in target, (name, target)
        assert target["top1"] == source["top1"] and target["top5"] == source["top5"], name
        assert target["agreement"] == 1.0 and target["max_prob_diff"] < 1e-4, (name, target)
    classes = accuracy["classes"]  # per class, named after the class folders (no labels file here)
    assert [c["name"] for c in classes] == [f"{i:02d}" for i in range(10)]
    assert sum(c["images"] for c in classes) == 120
    assert sum(c["top1_source"] * c["images"] for c in classes) == pytest.approx(120 * source["top1"])
    assert all(c["top1"] == {k: c["top1_source"] for k in expected} for c in classes)
    md = (zoo["report"] / "report.md").read_text(encoding="utf-8")
    assert "## digits_keras: top-1 per class" in md and "| 3: 03 | " in md


def test_second_run_resumes_and_does_no_work(zoo: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(p for p in (zoo["report"] / "models").rglob("*") if p.is_file() and p.name != "log.txt")
    stamps = {p: p.stat().st_mtime_ns for p in files}
    code, out, err = run_cli(["zoo", "run", str(zoo["manifest"]), "-o", str(zoo["report"])], capsys)
    assert code == 1 and "FAILED broken:" in out
    models = _report(zoo)["models"]
    assert all(m["resumed"] for m in models), [m["name"] for m in models if not m["resumed"]]
    assert f"({len(models)} resumed)" in out and err.count("resumed") == len(models)
    assert {p: p.stat().st_mtime_ns for p in files} == stamps  # nothing converted, verified or rewritten
    # a changed option is redone, the others are still reused
    text = zoo["manifest"].read_text(encoding="utf-8").replace('targets = ["caffe"', 'targets = ["onnx", "caffe"', 1)
    changed = zoo["folder"] / "changed.toml"
    changed.write_text(text, encoding="utf-8")
    code, out, _ = run_cli(["zoo", "run", str(changed), "-o", str(zoo["report"])], capsys)
    redone = [m["name"] for m in _report(zoo)["models"] if not m["resumed"]]
    assert redone == ["tiny_onnx"], out


def _chromium(page: Path, shot: Path) -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                           "--window-size=1600,1200", "--enable-logging=stderr", "--v=0", page.as_uri()],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    return proc.stderr


def test_html_report_renders_in_chromium(zoo: dict[str, Any], tmp_path: Path) -> None:
    import cv2

    page = zoo["report"] / "report.html"
    html = page.read_text(encoding="utf-8")
    # self-contained: no scripts, no external assets (stylesheets, images, fonts, frames)
    assert "<script" not in html and "<svg" in html and "<style>" in html
    assert not re.search(r"<(link|img|iframe|object)\b|\b(src|href)\s*=|url\(", html)
    # control: the console check does see an error when a page has one
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>console.error('zoo-control')</script></body></html>", encoding="utf-8")
    assert "zoo-control" in _chromium(bad, tmp_path / "bad.png")
    shot = zoo["folder"] / "report.png"
    log = _chromium(page, shot)
    assert ":CONSOLE" not in log, [line for line in log.splitlines() if "CONSOLE" in line]
    pixels = cv2.imread(str(shot))
    assert pixels is not None and pixels.shape[:2] == (1200, 1600)
    # the table's row colours are on the screenshot: passed rows (#d7f5d7) and the failed row (#f8d0d0)
    for bgr in ((0xD7, 0xF5, 0xD7), (0xD0, 0xD0, 0xF8)):
        assert np.all(pixels == np.array(bgr, np.uint8), axis=2).sum() > 2000, bgr
    print(f"report screenshot: {shot}")
