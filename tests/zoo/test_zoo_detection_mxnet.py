"""Detection evaluation of an MXNet source (``layout = "mxnet_multibox"``): a tiny SSD-style symbol (conv
features, MultiBoxPrior anchors, softmax classes, MultiBoxDetection; seeded He-normal weights) run in real
MXNet 1.9.1 and, converted to ONNX, in onnxruntime, on the same 32 x 32 images in batches of 2 (the last one
padded): every box must match (same class, IoU 1 within float tolerance, same score within 1e-4)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from nnbridge.cli import main
from support.mxnet_env import mxnet_python, run_mxnet

cv2 = pytest.importorskip("cv2")
IMAGES = 3

BUILD = r'''
S = mx.sym
data = S.var("data")
feat = S.Activation(S.Convolution(data, kernel=(3, 3), stride=(2, 2), pad=(1, 1), num_filter=8, name="conv1"),
                    act_type="relu", name="relu1")
anchors = S.contrib.MultiBoxPrior(feat, sizes=(0.4, 0.2), ratios=(1, 2, 0.5), name="anchors")
cls = S.softmax(S.Reshape(S.Convolution(feat, kernel=(3, 3), pad=(1, 1), num_filter=4 * 4, name="cls_conv"),
                          shape=(0, 4, -1)), axis=1, name="cls_prob")
loc = S.Flatten(S.transpose(S.Convolution(feat, kernel=(3, 3), pad=(1, 1), num_filter=4 * 4, name="loc_conv"),
                            axes=(0, 2, 3, 1)), name="loc")
out = S.contrib.MultiBoxDetection(cls, loc, anchors, threshold=0.05, nms_threshold=0.45, nms_topk=60, name="det")
arg, aux = realistic_params(out, (1, 3, 32, 32), 7)
mx.model.save_checkpoint(args["prefix"], 0, out, arg, aux)
'''


def test_multibox_detections_agree_in_mxnet_and_onnx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    python = mxnet_python()  # skips without the MXNet environment
    monkeypatch.setenv("NNBRIDGE_MXNET_PYTHON", python)
    run_mxnet(BUILD, prefix=str(tmp_path / "ssd"))
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(9)
    for index in range(IMAGES):
        assert cv2.imwrite(str(images / f"{index}.png"), rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    manifest = tmp_path / "zoo.toml"
    manifest.write_text(f"""
[[model]]
name = "tiny_multibox"
source = "{tmp_path / 'ssd-symbol.json'}"
input_shapes = {{ data = [1, 3, 32, 32] }}
targets = ["onnx"]
task = "detection"
[model.preprocess]
raw_scale = 1.0
[model.dataset]
images = "images"
batch = 2
[model.detection]
layout = "mxnet_multibox"
""", encoding="utf-8")
    assert main(["zoo", "run", str(manifest), "-o", str(tmp_path / "report")]) == 0
    result = json.loads((tmp_path / "report" / "report.json").read_text(encoding="utf-8"))["models"][0]
    assert result["targets"][0]["source_runtime"].startswith("mxnet")
    det = result["detection"]
    boxes = det["source"]["boxes"]
    assert det["images"] == IMAGES and boxes >= 3 * IMAGES
    onnx = det["targets"]["onnx"]
    assert "error" not in onnx, onnx
    assert onnx["matched"] == onnx["boxes"] == boxes and onnx["agreement"] == 1.0
    assert onnx["min_iou"] >= 1 - 1e-5 and onnx["max_score_diff"] < 1e-4, onnx
    print(f"onnx: {boxes} boxes, min IoU {onnx['min_iou']:.7f}, max score diff {onnx['max_score_diff']:.2g}, "
          f"worst per-blob rel error {result['targets'][0]['worst_rel']:.3g}")
    assert os.path.isdir(tmp_path / "report" / "models" / "tiny_multibox" / "onnx" / "eval")
