"""ONNX-native graphs exported to Caffe and run in real Caffe (pycaffe), compared with onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from export_cases import check_against_onnxruntime, he, layer_types, make_model
from onnx import helper

RNG = np.random.default_rng(7)


def _conv_bn_relu() -> tuple:
    c = 8
    inits = {"w": he(RNG, c, 3, 3, 3), "b": (RNG.standard_normal(c) * 0.1).astype(np.float32),
             "g": RNG.uniform(0.5, 1.5, c).astype(np.float32),
             "beta": (RNG.standard_normal(c) * 0.1).astype(np.float32),
             "m": (RNG.standard_normal(c) * 0.1).astype(np.float32), "v": RNG.uniform(0.5, 1.5, c).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("BatchNormalization", ["c", "g", "beta", "m", "v"], ["bn"], epsilon=1e-3, name="bn"),
             helper.make_node("Relu", ["bn"], ["y"], name="relu")]
    return make_model(nodes, {"x": [1, 3, 12, 12]}, ["y"], inits), ["Convolution", "BatchNorm", "Scale", "ReLU"]


def _gemm() -> tuple:
    inits = {"w": he(RNG, 10, 3 * 4 * 4), "b": (RNG.standard_normal(10) * 0.1).astype(np.float32)}
    nodes = [helper.make_node("Flatten", ["x"], ["f"], axis=1, name="flat"),
             helper.make_node("Gemm", ["f", "w", "b"], ["y"], transB=1, name="fc")]
    return make_model(nodes, {"x": [2, 3, 4, 4]}, ["y"], inits), ["InnerProduct"]


def _matmul_add() -> tuple:
    inits = {"w": he(RNG, 6, 16).T.copy(), "b": (RNG.standard_normal(6) * 0.1).astype(np.float32)}
    nodes = [helper.make_node("MatMul", ["x", "w"], ["mm"], name="mm"),
             helper.make_node("Add", ["mm", "b"], ["y"], name="add")]
    return make_model(nodes, {"x": [3, 16]}, ["y"], inits), ["InnerProduct"]


def _pad_conv() -> tuple:
    inits = {"w": he(RNG, 4, 3, 3, 3), "pads": np.array([0, 0, 2, 1, 0, 0, 2, 1], np.int64)}
    nodes = [helper.make_node("Pad", ["x", "pads"], ["p"], mode="constant", name="pad"),
             helper.make_node("Conv", ["p", "w"], ["y"], strides=[2, 2], name="conv")]
    return make_model(nodes, {"x": [1, 3, 9, 9]}, ["y"], inits), ["Convolution"]


def _clip6(dialect_types: list[str]) -> tuple:
    inits = {"lo": np.array(0.0, np.float32), "hi": np.array(6.0, np.float32),
             "s": np.array(4.0, np.float32)}
    nodes = [helper.make_node("Mul", ["x", "s"], ["xs"], name="scale"),
             helper.make_node("Clip", ["xs", "lo", "hi"], ["y"], name="relu6")]
    return make_model(nodes, {"x": [1, 3, 5, 5]}, ["y"], inits), dialect_types


def _clip_general() -> tuple:
    inits = {"lo": np.array(-0.5, np.float32), "hi": np.array(1.25, np.float32)}
    nodes = [helper.make_node("Clip", ["x", "lo", "hi"], ["y"], name="clip")]
    return make_model(nodes, {"x": [1, 3, 5, 5]}, ["y"], inits), ["Power", "ReLU", "Power", "ReLU", "Eltwise", "Power"]


def _transpose() -> tuple:
    nodes = [helper.make_node("Transpose", ["x"], ["y"], perm=[0, 2, 3, 1], name="perm")]
    return make_model(nodes, {"x": [1, 3, 4, 5]}, ["y"]), ["Permute"]


def _resize_nearest() -> tuple:
    inits = {"scales": np.array([1, 1, 2, 2], np.float32)}
    nodes = [helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest", name="up")]
    return make_model(nodes, {"x": [1, 3, 4, 5]}, ["y"], inits), ["Deconvolution"]


def _sub_mul_channel() -> tuple:
    inits = {"k": RNG.uniform(0.5, 1.5, (3, 1, 1)).astype(np.float32),
             "d": (RNG.standard_normal((1, 3, 1, 1))).astype(np.float32)}
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="relu"),
             helper.make_node("Sub", ["x", "a"], ["s"], name="sub"),
             helper.make_node("Mul", ["s", "k"], ["m"], name="mulc"),
             helper.make_node("Div", ["m", "d"], ["y"], name="divc")]
    return make_model(nodes, {"x": [2, 3, 4, 4]}, ["y"], inits), ["ReLU", "Eltwise", "Scale", "Scale"]


def _concat_softmax_gap() -> tuple:
    inits = {"w": he(RNG, 5, 3, 1, 1)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv1x1"),
             helper.make_node("Concat", ["x", "c"], ["cat"], axis=1, name="cat"),
             helper.make_node("GlobalAveragePool", ["cat"], ["gap"], name="gap"),
             helper.make_node("Softmax", ["gap"], ["y"], axis=1, name="prob")]
    return make_model(nodes, {"x": [2, 3, 6, 6]}, ["y"], inits), ["Convolution", "Concat", "Pooling", "Softmax"]


def _pools() -> tuple:
    nodes = [helper.make_node("MaxPool", ["x"], ["mp"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                              name="maxpool"),
             helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                              pads=[1, 1, 1, 1], count_include_pad=0, name="avepool")]
    return make_model(nodes, {"x": [1, 2, 9, 9]}, ["mp", "y"]), ["Pooling", "Pooling", "Scale"]


def _tile() -> tuple:
    inits = {"r": np.array([1, 2, 1, 3], np.int64)}
    nodes = [helper.make_node("Tile", ["x", "r"], ["y"], name="tile")]
    return make_model(nodes, {"x": [1, 3, 4, 5]}, ["y"], inits), ["Tile", "Tile"]


def _tile_concat() -> tuple:
    model, _ = _tile()
    return model, ["Concat", "Concat"]  # a dialect without Tile: Concat of the same bottom, once per copy


def _add_channel_scale() -> tuple:
    inits = {"b": RNG.standard_normal((3, 1, 1)).astype(np.float32)}
    nodes = [helper.make_node("Add", ["x", "b"], ["y"], name="addc")]
    return make_model(nodes, {"x": [2, 3, 4, 4]}, ["y"], inits), ["Scale"]  # no Bias layer: x * 1 + b


CASES = {
    "conv_bn_relu": (_conv_bn_relu, "bvlc"),
    "gemm": (_gemm, "bvlc"),
    "matmul_add": (_matmul_add, "bvlc"),
    "pad_conv": (_pad_conv, "bvlc"),
    "clip6_bvlc": (lambda: _clip6(["Power", "ReLU", "Power", "ReLU", "Eltwise"]), "ssd"),
    "clip6_opencv": (lambda: _clip6(["Power", "ReLU6"]), "opencv"),
    "clip_general": (_clip_general, "ssd"),
    "transpose_ssd": (_transpose, "ssd"),
    "resize_nearest": (_resize_nearest, "bvlc"),
    "sub_mul_channel": (_sub_mul_channel, "bvlc"),
    "concat_softmax_gap": (_concat_softmax_gap, "bvlc"),
    "pools": (_pools, "bvlc"),
    "tile": (_tile, "bvlc"),
    "tile_opencv": (_tile_concat, "opencv"),
    "add_channel_opencv": (_add_channel_scale, "opencv"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_export_matches_onnxruntime(case: str, tmp_path: Path) -> None:
    build, dialect = CASES[case]
    model, expected = build()
    export = check_against_onnxruntime(model, tmp_path, dialect=dialect)
    assert layer_types(export) == expected
