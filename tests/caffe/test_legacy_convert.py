"""Legacy V1 nets (``layers { type: CONVOLUTION ... }``) convert exactly like their V2 form, and the result
matches real Caffe running the V1 file (which upgrades it itself)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

import nnbridge
from nnbridge.caffe.formats.net import load_caffe, save_caffe
from nnbridge.caffe.importer import import_layers
from nnbridge.caffe.weights import RandomWeights
from support.layer_check import caffe_module

V1 = """name: "legacy"
input: "data"
input_dim: 1 input_dim: 3 input_dim: 17 input_dim: 17
layers { name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1" blobs_lr: 1 blobs_lr: 2
  weight_decay: 1 weight_decay: 0 convolution_param { num_output: 8 kernel_size: 3 stride: 2 pad: 1 } }
layers { name: "relu1" type: RELU bottom: "conv1" top: "conv1" }
layers { name: "pool1" type: POOLING bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layers { name: "norm1" type: LRN bottom: "pool1" top: "norm1" lrn_param { local_size: 3 alpha: 0.0001 beta: 0.75 } }
layers { name: "split" type: SPLIT bottom: "norm1" top: "a" top: "b" }
layers { name: "cat" type: CONCAT bottom: "a" bottom: "b" top: "cat" concat_param { concat_dim: 1 } }
layers { name: "fc" type: INNER_PRODUCT bottom: "cat" top: "fc" blobs_lr: 1 blobs_lr: 2
  inner_product_param { num_output: 10 } }
layers { name: "prob" type: SOFTMAX bottom: "fc" top: "prob" }
"""

V2 = """name: "legacy"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 17 dim: 17 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
  convolution_param { num_output: 8 kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "norm1" type: "LRN" bottom: "pool1" top: "norm1" lrn_param { local_size: 3 alpha: 0.0001 beta: 0.75 } }
layer { name: "split" type: "Split" bottom: "norm1" top: "a" top: "b" }
layer { name: "cat" type: "Concat" bottom: "a" bottom: "b" top: "cat" concat_param { axis: 1 } }
layer { name: "fc" type: "InnerProduct" bottom: "cat" top: "fc" param { lr_mult: 1 } param { lr_mult: 2 }
  inner_product_param { num_output: 10 } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
"""


def _graph_without_names(path: Path) -> onnx.GraphProto:
    graph = onnx.load(str(path)).graph
    graph.name = ""
    for node in graph.node:
        del node.metadata_props[:]  # carries each layer's text, which spells the V1 layer differently
    return graph


def test_v1_converts_like_v2_and_like_real_caffe(tmp_path: Path) -> None:
    v1, v2 = tmp_path / "v1.prototxt", tmp_path / "v2.prototxt"
    v1.write_text(V1)
    v2.write_text(V2)
    loaded = load_caffe(v2)
    weights = RandomWeights(5)
    import_layers(list(loaded.net.layer), loaded.inputs, weights, source=str(v2))
    caffemodel = tmp_path / "w.caffemodel"
    save_caffe(loaded.net, weights.served, tmp_path / "w.prototxt", caffemodel)

    nnbridge.convert(v1, tmp_path / "v1.onnx", weights=caffemodel)
    nnbridge.convert(v2, tmp_path / "v2.onnx", weights=caffemodel)
    assert _graph_without_names(tmp_path / "v1.onnx") == _graph_without_names(tmp_path / "v2.onnx")

    try:
        caffe_module()
    except pytest.skip.Exception:
        return  # the structural equality above still holds without real Caffe
    report = nnbridge.verify(v1, tmp_path / "v1.onnx", source_weights=caffemodel)
    assert report.source_runtime == "pycaffe"
    assert report.passed, report.render()
    compared = {row.name for row in report.comparison.rows if row.max_abs == row.max_abs}
    assert {"conv1", "pool1", "norm1", "cat", "fc", "prob"} <= compared
