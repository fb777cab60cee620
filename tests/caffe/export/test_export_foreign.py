"""Patterns of foreign ONNX files (PyTorch, tf2onnx) that Caffe has no single layer for, rewritten exactly.

Each case is a small graph built with ``onnx.helper``, exported to Caffe, run in real Caffe (pycaffe) and
compared with onnxruntime (max relative error per output <= 1e-4); the Caffe layer types produced are
asserted, so a rewrite that silently changes shape is caught too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from export_cases import check_against_onnxruntime, he, layer_types, make_model, run_caffe, run_onnx, to_hub
from onnx import helper

from nnbridge.caffe.exporter import export_caffe
from nnbridge.errors import UnsupportedOpsError

RNG = np.random.default_rng(11)


# -- 1. floor-mode pooling: Caffe's ceil output is larger; Slice the extra rows/columns off ------------
def _pool(op: str, size: tuple[int, int], kernel: int, stride: int, pads: list[int], **attrs: int) -> tuple:
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),  # the pool reads a computed blob
             helper.make_node(op, ["r"], ["y"], kernel_shape=[kernel, kernel], strides=[stride, stride],
                              pads=pads, name="pool", **attrs)]
    return make_model(nodes, {"x": [2, 3, *size]}, ["y"])


def _pad_avepool() -> onnx.ModelProto:
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Pad", ["r", "pads"], ["p"], mode="constant", name="pad"),
             helper.make_node("AveragePool", ["p"], ["y"], kernel_shape=[3, 3], strides=[2, 2], name="pool")]
    return make_model(nodes, {"x": [2, 3, 10, 10]}, ["y"], {"pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)})


POOLS = {
    # torchvision ResNet: MaxPool2d(3, 2, 1) on an even size, 16 -> 8 (Caffe 9) on both axes
    "resnet_maxpool": (lambda: _pool("MaxPool", (16, 16), 3, 2, [1, 1, 1, 1]),
                       ["ReLU", "Pooling", "Slice", "Slice", "Silence"]),
    # only the height differs: 8 -> 3 (Caffe 4), width 7 -> 3 (Caffe 3)
    "maxpool_one_axis": (lambda: _pool("MaxPool", (8, 7), 3, 2, [0, 0, 0, 0]),
                         ["ReLU", "Pooling", "Slice", "Silence"]),
    # AVE, padding not counted: border divisors corrected after the slices
    "avepool_exclude_pad": (lambda: _pool("AveragePool", (10, 10), 3, 2, [1, 1, 1, 1], count_include_pad=0),
                            ["ReLU", "Pooling", "Slice", "Slice", "Silence", "Scale"]),
    # AVE, padding counted (Caffe's own divisor rule on the kept windows)
    "avepool_include_pad": (lambda: _pool("AveragePool", (10, 12), 3, 2, [1, 1, 1, 1], count_include_pad=1),
                            ["ReLU", "Pooling", "Slice", "Slice", "Silence"]),
    # a zero Pad absorbed by AveragePool (its zeros count, as Caffe's pad does), floor: 10 + 2 -> 5 (Caffe 6)
    "pad_then_avepool": (_pad_avepool, ["ReLU", "Pooling", "Slice", "Slice", "Silence"]),
    # asymmetric padding (Caffe pads both ends by the begin pad; floor mode never reaches the end)
    "maxpool_uneven_pads": (lambda: _pool("MaxPool", (8, 8), 3, 2, [1, 1, 0, 0]),
                            ["ReLU", "Pooling", "Slice", "Slice", "Silence"]),
}


@pytest.mark.parametrize("case", sorted(POOLS))
def test_floor_mode_pooling(case: str, tmp_path: Path) -> None:
    build, expected = POOLS[case]
    export = check_against_onnxruntime(build(), tmp_path)
    assert layer_types(export) == expected


def test_floor_mode_pool_as_graph_output_and_input() -> None:
    """A pooled graph input: the blob names survive (the kept slice carries the ONNX output name)."""
    model = make_model([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                                         name="mp")], {"x": [1, 3, 8, 8]}, ["y"])
    export = export_caffe(to_hub(model))
    slices = [layer for layer in export.net.layer if layer.type == "Slice"]
    assert slices[-1].top[0] == "y"
    silence = [layer for layer in export.net.layer if layer.type == "Silence"]
    assert len(silence) == 1 and len(silence[0].bottom) == 2


# -- 2. HardSigmoid / HardSwish: Power + ReLU/Eltwise (Clip where the dialect has it) -----------------
def _hard(op: str, **attrs: float) -> onnx.ModelProto:
    s = np.array(4.0, np.float32)  # inputs spread over [-12, 12]: both saturations and the linear part
    nodes = [helper.make_node("Mul", ["x", "s"], ["xs"], name="spread"),
             helper.make_node(op, ["xs"], ["y"], name="act", **attrs)]
    return make_model(nodes, {"x": [2, 4, 6, 6]}, ["y"], {"s": s})


HARD = {
    "hardsigmoid_torch": (lambda: _hard("HardSigmoid", alpha=1 / 6, beta=0.5), "bvlc",
                          ["Power", "Power", "ReLU", "Power", "ReLU", "Eltwise"]),
    "hardsigmoid_default": (lambda: _hard("HardSigmoid"), "ssd",
                            ["Power", "Power", "ReLU", "Power", "ReLU", "Eltwise"]),
    "hardswish": (lambda: _hard("HardSwish"), "bvlc",
                  ["Power", "Power", "ReLU", "Power", "ReLU", "Eltwise", "Eltwise"]),
}


@pytest.mark.parametrize("case", sorted(HARD))
def test_hard_activations(case: str, tmp_path: Path) -> None:
    build, dialect, expected = HARD[case]
    export = check_against_onnxruntime(build(), tmp_path, dialect=dialect)
    assert layer_types(export) == expected


def test_hard_swish_uses_clip_where_the_dialect_has_it() -> None:
    """bvlc-master has Clip (the installed pycaffe does not, so only the layers are checked here)."""
    export = export_caffe(to_hub(_hard("HardSwish")), dialect="bvlc-master")
    assert layer_types(export) == ["Power", "Power", "Clip", "Eltwise"]
    clip = export.net.layer[2]
    assert (clip.clip_param.min, clip.clip_param.max) == (0.0, 1.0)


# -- 3. opset-11 Softmax over channels: Transpose -> Softmax(-1) -> Transpose folds back ---------------
def _transposed_softmax(op: str, perm: list[int], back: list[int]) -> onnx.ModelProto:
    w = he(RNG, 5, 3, 1, 1) * 3.0  # logits of a realistic spread
    nodes = [helper.make_node("Conv", ["x", "w"], ["logits"], name="head"),
             helper.make_node("Transpose", ["logits"], ["t"], perm=perm, name="t1"),
             helper.make_node(op, ["t"], ["s"], axis=-1, name="softmax"),
             helper.make_node("Transpose", ["s"], ["y"], perm=back, name="t2")]
    return make_model(nodes, {"x": [2, 3, 4, 6]}, ["y"], {"w": w}, opset=17)


@pytest.mark.parametrize(("perm", "back"), [([0, 3, 2, 1], [0, 3, 2, 1]), ([0, 2, 3, 1], [0, 3, 1, 2])])
def test_transposed_softmax_folds_to_channel_softmax(perm: list[int], back: list[int], tmp_path: Path) -> None:
    export = check_against_onnxruntime(_transposed_softmax("Softmax", perm, back), tmp_path)
    assert layer_types(export) == ["Convolution", "Softmax"]
    assert export.net.layer[-1].softmax_param.axis == 1


def test_transposes_that_do_not_cancel_stay_refused() -> None:
    with pytest.raises(UnsupportedOpsError, match="Permute"):
        export_caffe(to_hub(_transposed_softmax("Softmax", [0, 2, 3, 1], [0, 2, 3, 1])))


# -- 4. spatial attention: (N, C, H, W) x (N, 1, H, W) -> Tile + Eltwise; SE (N, C, 1, 1) -> Scale -----
def _attention() -> onnx.ModelProto:
    c = 6
    inits = {"w": he(RNG, c, 3, 3, 3), "wa": he(RNG, 1, c, 1, 1), "ws": he(RNG, c, c, 1, 1)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["f"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Conv", ["f", "wa"], ["a"], name="att_conv"),
             helper.make_node("Sigmoid", ["a"], ["att"], name="att"),
             helper.make_node("Mul", ["att", "f"], ["spatial"], name="spatial_mul"),  # small operand first
             helper.make_node("Add", ["spatial", "a"], ["shifted"], name="spatial_add"),
             helper.make_node("ReduceMean", ["shifted"], ["pooled"], axes=[2, 3], keepdims=1, name="squeeze"),
             helper.make_node("Conv", ["pooled", "ws"], ["gate_in"], name="excite"),
             helper.make_node("Sigmoid", ["gate_in"], ["gate"], name="gate"),
             helper.make_node("Mul", ["shifted", "gate"], ["y"], name="se_mul")]
    return make_model(nodes, {"x": [2, 3, 5, 7]}, ["y"], inits)


def test_spatial_and_channel_attention(tmp_path: Path) -> None:
    export = check_against_onnxruntime(_attention(), tmp_path)
    types = layer_types(export)
    assert types.count("Tile") == 2 and types.count("Eltwise") == 2, types
    assert "Scale" in types and "Flatten" in types, types


def _channel_pools() -> onnx.ModelProto:
    """CBAM's spatial attention input: mean and max over the channels, concatenated."""
    nodes = [helper.make_node("ReduceMean", ["x"], ["avg"], axes=[1], keepdims=1, name="avg"),
             helper.make_node("ReduceMax", ["x"], ["mx"], axes=[1], keepdims=1, name="max"),
             helper.make_node("Concat", ["avg", "mx"], ["y"], axis=1, name="cat")]
    return make_model(nodes, {"x": [2, 5, 4, 4]}, ["y"])


def test_channel_mean_and_max(tmp_path: Path) -> None:
    export = check_against_onnxruntime(_channel_pools(), tmp_path)
    assert layer_types(export) == ["Slice", "Eltwise", "Slice", "Eltwise", "Concat"]


# -- 5. LogSoftmax = Softmax + Log ----------------------------------------------------------------------
def test_log_softmax_on_realistic_logits(tmp_path: Path) -> None:
    """Classifier logits of a realistic spread (std 4, 1000 classes): no probability underflows."""
    w = (RNG.standard_normal((1000, 64)) * 0.5).astype(np.float32)
    nodes = [helper.make_node("Gemm", ["x", "w"], ["logits"], transB=1, name="fc"),
             helper.make_node("LogSoftmax", ["logits"], ["y"], axis=1, name="logprob")]
    model = make_model(nodes, {"x": [4, 64]}, ["y"], {"w": w})
    feeds = {"x": np.random.default_rng(5).standard_normal((4, 64)).astype(np.float32)}
    export = export_caffe(to_hub(model))
    assert layer_types(export) == ["InnerProduct", "Softmax", "Log"]
    ref, got = run_onnx(model, feeds)["y"], run_caffe(export, feeds, tmp_path)["y"]
    assert float(np.ptp(ref, axis=1).max()) > 20.0  # log-probabilities spread like trained logits
    err = float(np.max(np.abs(got - ref))) / float(np.max(np.abs(ref)))
    assert err <= 1e-4


def test_log_softmax_saturation_caveat(tmp_path: Path) -> None:
    """The documented limit: a logit ~110 below the largest underflows in Softmax, and Caffe's Log gives
    -inf where ONNX's fused LogSoftmax is finite."""
    model = make_model([helper.make_node("LogSoftmax", ["x"], ["y"], axis=1, name="logprob")], {"x": [1, 3]}, ["y"])
    feeds = {"x": np.array([[0.0, -1.0, -110.0]], np.float32)}
    ref, got = run_onnx(model, feeds)["y"], run_caffe(export_caffe(to_hub(model)), feeds, tmp_path)["y"]
    assert np.allclose(got[0, :2], ref[0, :2], rtol=1e-6) and np.isfinite(ref).all()
    assert got[0, 2] == -np.inf


# -- 6. Min = -max(-a, -b); Div of two tensors and computed matmul weights are refused ------------------
def test_min_via_negated_max(tmp_path: Path) -> None:
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Min", ["x", "r", "z"], ["y"], name="min3")]
    model = make_model(nodes, {"x": [2, 3, 4, 4], "z": [2, 3, 4, 4]}, ["y"])
    export = check_against_onnxruntime(model, tmp_path)
    assert layer_types(export) == ["ReLU", "Power", "Power", "Power", "Eltwise", "Power"]


def test_div_and_computed_weights_refused_together() -> None:
    nodes = [helper.make_node("Div", ["a", "b"], ["q"], name="div"),
             helper.make_node("MatMul", ["q", "w"], ["y"], name="mm")]
    model = make_model(nodes, {"a": [2, 4, 4], "b": [2, 4, 4], "w": [2, 4, 4]}, ["y"])
    with pytest.raises(UnsupportedOpsError) as info:
        export_caffe(to_hub(model))
    text = str(info.value)
    assert "no element-wise division" in text and "InnerProduct needs a constant" in text, text
    assert sorted(item.node for item in info.value.items) == ["div", "mm"]
