"""nnbridge.mxnet.CaffeOp (native translation) vs REAL Caffe: forward, bottom diffs and parameter diffs, blob by
blob, and a float64 finite-difference check of MXNet's gradients."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
from caffe_in_mxnet_check import Case, check_case, run_cases

from support.layer_check import caffe_module

logger = logging.getLogger(__name__)

# (id, layer text, bottom shapes, num_weight, Caffe gives its blobs no gradient)
CASES = [
    ("ip", 'layer{type:"InnerProduct" inner_product_param{num_output: 7}}', [(4, 3, 2, 2)], 2, False),
    ("ip_nobias", 'layer{type:"InnerProduct" inner_product_param{num_output: 5 bias_term: false}}', [(3, 6)], 1,
     False),
    ("conv", 'layer{type:"Convolution" convolution_param{num_output: 4 kernel_size: 3 stride: 2 pad: 1}}',
     [(2, 3, 9, 9)], 2, False),
    ("conv_group_dilated", 'layer{type:"Convolution" convolution_param{num_output: 4 kernel_h: 3 kernel_w: 2 '
     'group: 2 dilation: 2 bias_term: false}}', [(2, 4, 9, 8)], 1, False),
    ("pool_max", 'layer{type:"Pooling" pooling_param{pool: MAX kernel_size: 3 stride: 2}}', [(2, 3, 8, 9)], 0,
     False),
    ("pool_max_pad_clip", 'layer{type:"Pooling" pooling_param{pool: MAX kernel_size: 2 stride: 2 pad: 1}}',
     [(2, 3, 5, 6)], 0, False),
    ("pool_ave_pad", 'layer{type:"Pooling" pooling_param{pool: AVE kernel_size: 3 stride: 2 pad: 1}}',
     [(2, 3, 7, 8)], 0, False),
    ("pool_ave_pad_clip", 'layer{type:"Pooling" pooling_param{pool: AVE kernel_size: 2 stride: 2 pad: 1}}',
     [(2, 3, 5, 6)], 0, False),
    ("pool_ave_global", 'layer{type:"Pooling" pooling_param{pool: AVE global_pooling: true}}', [(2, 3, 5, 4)], 0,
     False),
    ("pool_max_global", 'layer{type:"Pooling" pooling_param{pool: MAX global_pooling: true}}', [(2, 3, 5, 4)], 0,
     False),
    ("relu", 'layer{type:"ReLU"}', [(2, 3, 4, 5)], 0, False),
    ("relu_leaky", 'layer{type:"ReLU" relu_param{negative_slope: 0.1}}', [(2, 3, 4, 5)], 0, False),
    ("tanh", 'layer{type:"TanH"}', [(2, 3, 4, 5)], 0, False),
    ("sigmoid", 'layer{type:"Sigmoid"}', [(4, 6)], 0, False),
    ("batchnorm", 'layer{type:"BatchNorm" batch_norm_param{use_global_stats: true}}', [(2, 3, 4, 5)], 3, True),
    ("batchnorm_2d_eps", 'layer{type:"BatchNorm" batch_norm_param{eps: 0.001}}', [(4, 6)], 3, True),
    ("scale_bias", 'layer{type:"Scale" scale_param{bias_term: true}}', [(2, 3, 4, 5)], 2, False),
    ("scale", 'layer{type:"Scale"}', [(3, 4)], 1, False),
    ("softmax", 'layer{type:"Softmax"}', [(3, 5, 2, 2)], 0, False),
    ("eltwise_sum_coeff", 'layer{type:"Eltwise" eltwise_param{operation: SUM coeff: 0.5 coeff: -2}}',
     [(2, 3, 4, 4), (2, 3, 4, 4)], 0, False),
    ("eltwise_max", 'layer{type:"Eltwise" eltwise_param{operation: MAX}}', [(2, 3, 4, 4), (2, 3, 4, 4)], 0, False),
    ("concat", 'layer{type:"Concat"}', [(2, 3, 4, 4), (2, 2, 4, 4)], 0, False),
]


def _case(text: str, shapes: list[tuple[int, ...]], num_weight: int, frozen: bool) -> Case:
    rng = np.random.default_rng(7)
    bottoms = {f"data_{i}": rng.standard_normal(s).astype(np.float32) for i, s in enumerate(shapes)}
    return Case(text, bottoms, num_weight=num_weight, frozen_blobs=frozen)


@pytest.fixture(scope="module")
def results() -> tuple[dict[str, Case], dict[str, Any]]:
    caffe_module()
    cases = {c[0]: _case(*c[1:]) for c in CASES}
    return cases, run_cases(cases)


@pytest.mark.caffe
@pytest.mark.parametrize("key", [c[0] for c in CASES])
def test_caffe_op_matches_real_caffe(key: str, results: tuple[dict[str, Case], dict[str, Any]]) -> None:
    cases, got = results
    errors = check_case(cases[key], got[key])
    logger.info("%s: worst %s", key, max(errors.items(), key=lambda kv: kv[1]))
