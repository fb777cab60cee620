"""Class names in the report's accuracy section: from the manifest's labels file (else the class folders), with
per-class top-1 of the source and of each target (numbers computed here by hand)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nnbridge.zoo.accuracy import class_names, per_class
from nnbridge.zoo.executor import ZooRun
from nnbridge.zoo.manifest import Dataset
from nnbridge.zoo.report import class_table, html_page, markdown


def test_names_from_labels_file_then_folders(tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\n\ndog\nbird\n", encoding="utf-8")
    for name in ("b_second", "a_first"):
        (tmp_path / "images" / name).mkdir(parents=True)
    assert class_names(Dataset(images=str(tmp_path / "images"), labels=str(labels))) == ["cat", "dog", "bird"]
    assert class_names(Dataset(images=str(tmp_path / "images"))) == ["a_first", "b_second"]
    assert class_names(Dataset(list_file=str(tmp_path / "none.txt"))) is None


def test_per_class_top1_and_report_section() -> None:
    labels = np.array([0, 0, 2, 2, 2])
    ref = np.eye(3)[[0, 1, 2, 2, 0]]  # class 0: 1/2 right, class 2: 2/3 right
    onnx = np.eye(3)[[0, 0, 2, 2, 2]]
    rows = per_class(labels, ref, {"onnx": onnx}, ["cat", "dog", "bird"])
    assert [(r["name"], r["images"]) for r in rows] == [("cat", 2), ("bird", 3)]
    assert rows[0]["top1_source"] == 0.5 and abs(rows[1]["top1_source"] - 2 / 3) < 1e-12
    assert rows[0]["top1"] == {"onnx": 1.0} and rows[1]["top1"] == {"onnx": 1.0}
    result = {"name": "m", "status": "passed", "reason": "", "targets": [], "accuracy": {"classes": rows}}
    table = class_table(result)
    assert table[0] == ["class", "images", "top-1 src", "top-1 onnx"]
    assert table[2] == ["2: bird", "3", "66.7%", "100.0%"]
    run = ZooRun("m.toml", "/nonexistent", [result])
    assert "| 0: cat | 2 | 50.0% | 100.0% |" in markdown(run)
    assert "<td>2: bird</td>" in html_page(run)
    assert class_table({"name": "x", "accuracy": {}}) == []
