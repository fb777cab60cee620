"""Bilinear Resize with align_corners -> DeepLab's Interp (opencv dialect), run in OpenCV's Caffe importer against
onnxruntime; refused with the dialect to use in bvlc."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from export_cases import layer_types, run_onnx, to_hub
from onnx import TensorProto, helper

from nnbridge.caffe.exporter import export_caffe
from nnbridge.errors import UnsupportedOpsError


def _resize(in_hw: tuple[int, int], out_hw: tuple[int, int]) -> onnx.ModelProto:
    sizes = helper.make_tensor("sizes", TensorProto.INT64, [4], [1, 3, *out_hw])
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="linear",
                            coordinate_transformation_mode="align_corners", name="resize")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, *in_hw])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, *out_hw])], [sizes])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize(("in_hw", "out_hw"), [((5, 6), (10, 12)), ((5, 6), (7, 9)), ((8, 9), (5, 4)),
                                               ((4, 4), (1, 1))])
def test_align_corners_bilinear_as_interp(in_hw: tuple[int, int], out_hw: tuple[int, int], tmp_path: Path) -> None:
    pytest.importorskip("cv2", reason="OpenCV (opencv-python-headless<5) runs the Interp layer")
    from nnbridge.caffe.formats.net import save_caffe
    from nnbridge.verify.worker import run_in_worker

    model = _resize(in_hw, out_hw)
    feeds = {"x": np.random.default_rng(3).normal(size=(1, 3, *in_hw)).astype(np.float32)}
    export = export_caffe(to_hub(model), dialect="opencv")
    assert layer_types(export) == ["Interp"]
    prototxt, caffemodel = tmp_path / "net.prototxt", tmp_path / "net.caffemodel"
    save_caffe(export.net, export.blobs, prototxt, caffemodel)
    got = run_in_worker("opencv", (prototxt, caffemodel), feeds)["y"]
    want = run_onnx(model, feeds)["y"]
    assert got.shape == want.shape
    assert float(np.max(np.abs(got - want))) / float(np.max(np.abs(want))) <= 1e-5


def test_align_corners_refused_without_interp() -> None:
    with pytest.raises(UnsupportedOpsError, match="opencv"):
        export_caffe(to_hub(_resize((5, 6), (10, 12))), dialect="bvlc")
