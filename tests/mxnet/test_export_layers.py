"""Caffe layers -> hub -> MXNet, run in REAL MXNet 1.9.1 (Module and Gluon SymbolBlock) against REAL Caffe.

Every blob both sides have is compared by name (MXNet internals ``{name}_output``), rtol 1e-4.
Needs pycaffe and an MXNet environment (``NNBRIDGE_MXNET_PYTHON``); skips otherwise.
"""

from __future__ import annotations

import numpy as np
import pytest

from support.mxnet_export_check import check_caffe_text


def net(shape: tuple[int, ...], body: str, name: str = "t") -> str:
    dims = " ".join(f"dim: {d}" for d in shape)
    return f'name: "{name}"\ninput: "data"\ninput_shape {{ {dims} }}\n{body}'


def pool(name: str, bottom: str, method: str, k: int, s: int, p: int) -> str:
    return (f'layer {{ name: "{name}" type: "Pooling" bottom: "{bottom}" top: "{name}" '
            f'pooling_param {{ pool: {method} kernel_size: {k} stride: {s} pad: {p} }} }}\n')


def _pool_conventions(export: object) -> dict[str, str]:
    graph = export.graph  # type: ignore[attr-defined]
    return {n.name: n.attrs.get("pooling_convention", "") for n in graph.nodes if n.op == "Pooling"}


@pytest.mark.parametrize(("size", "k", "s", "p"), [(5, 2, 2, 1), (112, 3, 2, 1), (6, 3, 2, 0), (7, 3, 2, 1),
                                                  (6, 3, 2, 1), (8, 2, 2, 0)])
def test_pooling_ceil_rule(size: int, k: int, s: int, p: int) -> None:
    """Caffe's ceil rule with its last-window correction, MAX and AVE (divisors at the borders)."""
    body = pool("max", "data", "MAX", k, s, p) + pool("ave", "data", "AVE", k, s, p)
    result = check_caffe_text(net((1, 2, size, size), body))
    if (size, k, s, p) == (5, 2, 2, 1):  # Caffe 3 windows; MXNet "full" would give 4
        caffe = result["caffe"]
        assert caffe.blobs["max"].shape[2:] == (3, 3)  # type: ignore[attr-defined]
        assert _pool_conventions(result["export"])["max"] == "valid"


def test_global_pooling_and_batchnorm_eps_scale_factor() -> None:
    rng = np.random.default_rng(3)
    mean, var = rng.normal(0, 0.2, 4).astype(np.float32), rng.uniform(0.5, 1.5, 4).astype(np.float32)
    body = '''
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "bn" batch_norm_param { eps: 1e-5 } }
layer { name: "bn_tiny" type: "BatchNorm" bottom: "conv" top: "bn_tiny" batch_norm_param { eps: 1e-10 } }
layer { name: "sc" type: "Scale" bottom: "bn" top: "sc" scale_param { bias_term: true } }
layer { name: "gmax" type: "Pooling" bottom: "sc" top: "gmax" pooling_param { pool: MAX global_pooling: true } }
layer { name: "gave" type: "Pooling" bottom: "bn_tiny" top: "gave" pooling_param { pool: AVE global_pooling: true } }
'''  # noqa: E501
    weights = {"bn": [mean * 4, var * 4, np.array([4.0], np.float32)],
               "bn_tiny": [mean * 0.5, np.full(4, 1e-6, np.float32), np.array([0.5], np.float32)]}
    check_caffe_text(net((2, 3, 9, 9), body), weights=weights)


def test_eltwise_crop_slice_concat() -> None:
    body = '''
layer { name: "a" type: "Convolution" bottom: "data" top: "a" convolution_param { num_output: 6 kernel_size: 1 } }
layer { name: "b" type: "Convolution" bottom: "data" top: "b" convolution_param { num_output: 6 kernel_size: 1 } }
layer { name: "prod" type: "Eltwise" bottom: "a" bottom: "b" top: "prod" eltwise_param { operation: PROD } }
layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" top: "sum" eltwise_param { operation: SUM coeff: 0.5 coeff: -2 } }
layer { name: "max" type: "Eltwise" bottom: "a" bottom: "b" bottom: "prod" top: "max" eltwise_param { operation: MAX } }
layer { name: "small" type: "Convolution" bottom: "data" top: "small" convolution_param { num_output: 2 kernel_size: 3 } }
layer { name: "crop" type: "Crop" bottom: "max" bottom: "small" top: "crop" crop_param { axis: 1 offset: 1 offset: 2 offset: 1 } }
layer { name: "slice" type: "Slice" bottom: "sum" top: "s1" top: "s2" top: "s3" slice_param { axis: 1 slice_point: 1 slice_point: 4 } }
layer { name: "cat" type: "Concat" bottom: "s3" bottom: "prod" bottom: "s1" top: "cat" concat_param { axis: 1 } }
'''  # noqa: E501
    check_caffe_text(net((2, 3, 8, 8), body))


def test_inner_product_axis_softmax_axis_flatten() -> None:
    body = '''
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 5 axis: 2 } }
layer { name: "sm" type: "Softmax" bottom: "ip" top: "sm" softmax_param { axis: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1" inner_product_param { num_output: 7 } }
layer { name: "sm1" type: "Softmax" bottom: "ip1" top: "sm1" }
layer { name: "flat" type: "Flatten" bottom: "sm" top: "flat" }
layer { name: "resh" type: "Reshape" bottom: "ip" top: "resh" reshape_param { shape { dim: 0 dim: -1 dim: 5 } } }
'''  # noqa: E501
    check_caffe_text(net((2, 3, 4, 6), body))


def test_activations() -> None:
    body = '''
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "relu6" type: "ReLU6" bottom: "conv" top: "relu6" }
layer { name: "prelu" type: "PReLU" bottom: "conv" top: "prelu" }
layer { name: "prelu_s" type: "PReLU" bottom: "conv" top: "prelu_s" prelu_param { channel_shared: true } }
layer { name: "leaky" type: "ReLU" bottom: "conv" top: "leaky" relu_param { negative_slope: 0.1 } }
layer { name: "elu" type: "ELU" bottom: "conv" top: "elu" elu_param { alpha: 0.7 } }
layer { name: "sig" type: "Sigmoid" bottom: "conv" top: "sig" }
layer { name: "tanh" type: "TanH" bottom: "conv" top: "tanh" }
layer { name: "bnll" type: "BNLL" bottom: "conv" top: "bnll" }
layer { name: "abs" type: "AbsVal" bottom: "conv" top: "abs" }
layer { name: "pow" type: "Power" bottom: "abs" top: "pow" power_param { power: 1.5 scale: 2 shift: 0.5 } }
layer { name: "exp" type: "Exp" bottom: "tanh" top: "exp" }
layer { name: "log" type: "Log" bottom: "exp" top: "log" }
layer { name: "thr" type: "Threshold" bottom: "conv" top: "thr" threshold_param { threshold: 0.2 } }
'''  # noqa: E501
    check_caffe_text(net((2, 3, 6, 6), body))


def test_lrn_and_grouped_deconvolution() -> None:
    body = '''
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 8 kernel_size: 3 pad: 1 group: 2 } }
layer { name: "lrn" type: "LRN" bottom: "conv" top: "lrn" lrn_param { local_size: 5 alpha: 0.001 beta: 0.75 k: 2 } }
layer { name: "lrn_w" type: "LRN" bottom: "conv" top: "lrn_w" lrn_param { local_size: 3 alpha: 0.01 beta: 0.6 norm_region: WITHIN_CHANNEL } }
layer { name: "deconv" type: "Deconvolution" bottom: "lrn" top: "deconv" convolution_param { num_output: 6 kernel_size: 4 stride: 2 pad: 1 group: 2 } }
layer { name: "dil" type: "Convolution" bottom: "lrn_w" top: "dil" convolution_param { num_output: 4 kernel_size: 3 dilation: 2 pad: 2 stride: 2 } }
'''  # noqa: E501
    check_caffe_text(net((2, 4, 7, 7), body))


def test_structural_layers() -> None:
    body = '''
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 4 kernel_size: 1 } }
layer { name: "perm" type: "Permute" bottom: "conv" top: "perm" permute_param { order: 0 order: 2 order: 3 order: 1 } }
layer { name: "tile" type: "Tile" bottom: "conv" top: "tile" tile_param { axis: 2 tiles: 2 } }
layer { name: "red" type: "Reduction" bottom: "conv" top: "red" reduction_param { operation: MEAN axis: 2 } }
layer { name: "argmax" type: "ArgMax" bottom: "conv" top: "argmax" argmax_param { axis: 1 } }
layer { name: "split" type: "Split" bottom: "conv" top: "c1" top: "c2" }
layer { name: "drop" type: "Dropout" bottom: "c1" top: "drop" }
layer { name: "up" type: "Upsample" bottom: "c2" top: "up" upsample_param { scale: 2 } }
'''  # noqa: E501
    check_caffe_text(net((2, 3, 5, 6), body))
