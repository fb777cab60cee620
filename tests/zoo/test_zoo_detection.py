"""Detection evaluation end to end in the real runtimes: a tiny SSD-style Caffe net (conv heads, Permute,
PriorBox, softmax, DetectionOutput; seeded He-normal weights) converted to ONNX and to Caffe (``ssd``
dialect); the source runs in real Caffe (pycaffe with weiliu89's SSD layers), the targets in onnxruntime and
Caffe, on the same 48 x 48 images in batches of 2 (the last one padded). Every box must match its source box
(same class, IoU 1 within float tolerance, same score within 1e-4) and the mAP on hand-made annotations must
be the same in every framework."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nnbridge.cli import main
from nnbridge.zoo.manifest import load_manifest

pytest.importorskip("caffe", reason="pycaffe (BVLC Caffe) is not importable")
cv2 = pytest.importorskip("cv2")
NET = Path(__file__).with_name("tiny_ssd.prototxt")
IMAGES = 5


def _manifest(tmp_path: Path) -> Path:
    rng = np.random.default_rng(5)
    images = tmp_path / "images"
    images.mkdir()
    for index in range(IMAGES):
        pixels = cv2.GaussianBlur(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8), (5, 5), 0)
        assert cv2.imwrite(str(images / f"{index}.png"), pixels)
    truth = {"0.png": [[1, 0.1, 0.1, 0.5, 0.5], [2, 0.4, 0.3, 0.9, 0.8]], "3.png": [[3, 0.0, 0.2, 0.6, 0.7]],
             "4.png": [[1, 0.3, 0.3, 0.7, 0.7]]}
    (tmp_path / "boxes.json").write_text(json.dumps(truth), encoding="utf-8")
    text = f"""
[[model]]
name = "tiny_ssd"
source = "{NET}"
random_weights = 3
targets = ["onnx", "caffe"]
caffe_dialect = "ssd"
task = "detection"
[model.preprocess]
mean = [104, 117, 123]
scale = 0.017
[model.dataset]
images = "images"
annotations = "boxes.json"
batch = 2
[model.detection]
layout = "caffe_ssd"
output = "det"
ap = "all"
"""
    path = tmp_path / "zoo.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_ssd_detections_agree_in_every_framework(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zoo", "run", str(_manifest(tmp_path)), "-o", str(tmp_path / "report")]) == 0
    err = capsys.readouterr().err
    # the worker process's steps reach the parent's stderr (not a terminal here: plain lines)
    for step in ("tiny_ssd -> onnx: converting and verifying", "tiny_ssd: caffe evaluation batch 3/3",
                 "tiny_ssd: onnx evaluation batch 3/3", "[1/1] tiny_ssd: passed"):
        assert step in err, (step, err)
    assert "\r" not in err
    report = json.loads((tmp_path / "report" / "report.json").read_text(encoding="utf-8"))
    result = report["models"][0]
    assert result["status"] == "passed", result["reason"]
    worst = max(t["worst_rel"] for t in result["targets"])
    print(f"worst per-blob relative error: {worst:.3g}")
    det = result["detection"]
    assert det["images"] == IMAGES and det["batch"] == 2 and det["layout"] == "caffe_ssd"
    boxes = det["source"]["boxes"]
    assert boxes >= 3 * IMAGES, "random weights should give several boxes per image"
    source_ap = det["source"]["ap"]
    assert source_ap["method"] == "all" and set(source_ap["per_class"]) == {"1", "2", "3"}
    assert set(det["targets"]) == {"onnx", "caffe"}
    for kind, target in det["targets"].items():
        assert "error" not in target, (kind, target)
        assert target["boxes"] == boxes and target["matched"] == boxes and target["agreement"] == 1.0, kind
        assert target["unmatched"] == target["unmatched_source"] == 0
        assert target["min_iou"] >= 1 - 1e-5 and target["max_score_diff"] < 1e-4, (kind, target)
        assert target["ap"]["per_class"] == pytest.approx(source_ap["per_class"], abs=1e-6), kind
        print(f"{kind}: {boxes} boxes, min IoU {target['min_iou']:.7f}, "
              f"max score diff {target['max_score_diff']:.2g}, mAP {target['ap']['map']:.4f}")
    assert (tmp_path / "report" / "models" / "tiny_ssd" / "onnx" / "eval").is_dir()
    rows = {row["target"]: row for row in report["rows"]}
    assert rows["onnx"]["box_agreement"] == 1.0 and rows["caffe"]["map"] == pytest.approx(source_ap["map"])
    markdown = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert "| box agree | mean IoU |" in markdown and "| tiny_ssd | caffe | passed |" in markdown


def test_detection_manifest_errors_name_the_key(tmp_path: Path) -> None:
    from nnbridge.errors import FormatError

    text = _manifest(tmp_path).read_text(encoding="utf-8")
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace('layout = "caffe_ssd"', 'layout = "yolo"'), encoding="utf-8")
    with pytest.raises(FormatError, match=r"key 'layout'.*'yolo'.*caffe_ssd, mxnet_multibox"):
        load_manifest(bad)
    bad.write_text(text.replace('ap = "all"', 'ap = "coco"'), encoding="utf-8")
    with pytest.raises(FormatError, match=r"key 'ap'.*voc11 or all"):
        load_manifest(bad)
