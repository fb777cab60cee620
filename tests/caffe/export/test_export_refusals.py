"""What the Caffe exporter refuses, and how: one error listing everything."""

from __future__ import annotations

import numpy as np
import pytest
from export_cases import he, make_model, to_hub
from onnx import helper

from nnbridge.caffe.exporter import export_caffe
from nnbridge.errors import UnsupportedOpsError

RNG = np.random.default_rng(3)


def test_conv_1d_refused() -> None:
    # (asymmetric pads are exact now: tests/caffe/export/test_asymmetric_pad.py)
    model = make_model([helper.make_node("Conv", ["x", "w"], ["y"], pads=[0, 1], name="c")],
                       {"x": [1, 3, 8]}, ["y"], {"w": he(RNG, 4, 3, 3)})
    with pytest.raises(UnsupportedOpsError, match=r"Conv x1 \(c\).*only 2-D kernels"):
        export_caffe(to_hub(model))


def test_transpose_refused_by_bvlc_dialect() -> None:
    model = make_model([helper.make_node("Transpose", ["x"], ["y"], perm=[0, 2, 3, 1], name="t")],
                       {"x": [1, 3, 4, 5]}, ["y"])
    with pytest.raises(UnsupportedOpsError, match=r"dialect 'bvlc'.*Transpose x1 \(t\).*Permute") as info:
        export_caffe(to_hub(model), dialect="bvlc")
    assert [item.node for item in info.value.items] == ["t"]


def test_all_unsupported_ops_listed_at_once() -> None:
    nodes = [helper.make_node("Sin", ["x"], ["a"], name="sin1"),
             helper.make_node("Cos", ["a"], ["b"], name="cos1"),
             helper.make_node("Sin", ["b"], ["c"], name="sin2"),
             helper.make_node("Transpose", ["c"], ["y"], perm=[0, 1, 3, 2], name="t")]
    model = make_model(nodes, {"x": [1, 3, 4, 4]}, ["y"])
    with pytest.raises(UnsupportedOpsError) as info:
        export_caffe(to_hub(model))
    text = str(info.value)
    assert "Sin x2 (sin1, sin2)" in text and "Cos x1 (cos1)" in text
    assert "1 more node(s) need layers dialect 'bvlc' lacks" in text
    assert sorted(item.node for item in info.value.items) == ["cos1", "sin1", "sin2"]


def test_pool_output_larger_than_caffes_refused() -> None:
    """Floor mode with a larger Caffe output is sliced (test_export_foreign.py); ceil mode with a larger end
    pad gives more windows than Caffe computes: refused."""
    model = make_model([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2],
                                         pads=[0, 0, 1, 1], ceil_mode=1, name="mp")], {"x": [1, 3, 8, 8]}, ["y"])
    with pytest.raises(UnsupportedOpsError, match="ceil-mode output .* smaller than ONNX's"):
        export_caffe(to_hub(model))
