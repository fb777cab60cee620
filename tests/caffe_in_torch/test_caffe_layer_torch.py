"""nnbridge.torch.CaffeLayer / CaffeLoss vs REAL Caffe: forward, bottom diffs, parameter diffs; float64 finite
differences; lazily created blobs get Caffe's shapes; bad input gives one clear error."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from torch_caffe_check import check_torch_layer

from support.caffe_loss_cases import CASES as LOSSES
from support.layer_check import caffe_module

pytest.importorskip("torch")
logger = logging.getLogger(__name__)

LAYERS = {
    "ip": ('layer{type:"InnerProduct" inner_product_param{num_output: 7}}', [(4, 3, 2, 2)]),
    "ip_transpose": ('layer{type:"InnerProduct" inner_product_param{num_output: 5 transpose: true}}', [(3, 6)]),
    "conv": ('layer{type:"Convolution" convolution_param{num_output: 4 kernel_size: 3 stride: 2 pad: 1}}',
             [(2, 3, 9, 9)]),
    "conv_group_dilated": ('layer{type:"Convolution" convolution_param{num_output: 4 kernel_h: 3 kernel_w: 2 '
                           'group: 2 dilation: 2 bias_term: false}}', [(2, 4, 9, 8)]),
    "pool_max": ('layer{type:"Pooling" pooling_param{pool: MAX kernel_size: 3 stride: 2}}', [(2, 3, 8, 9)]),
    "pool_max_pad_clip": ('layer{type:"Pooling" pooling_param{pool: MAX kernel_size: 2 stride: 2 pad: 1}}',
                          [(2, 3, 5, 6)]),
    "pool_ave_pad": ('layer{type:"Pooling" pooling_param{pool: AVE kernel_size: 3 stride: 2 pad: 1}}',
                     [(2, 3, 7, 8)]),
    "pool_ave_pad_clip": ('layer{type:"Pooling" pooling_param{pool: AVE kernel_size: 2 stride: 2 pad: 1}}',
                          [(2, 3, 5, 6)]),
    "pool_ave_global": ('layer{type:"Pooling" pooling_param{pool: AVE global_pooling: true}}', [(2, 3, 5, 4)]),
    "relu": ('layer{type:"ReLU"}', [(2, 3, 4, 5)]),
    "relu_leaky": ('layer{type:"ReLU" relu_param{negative_slope: 0.1}}', [(2, 3, 4, 5)]),
    "tanh": ('layer{type:"TanH"}', [(2, 3, 4, 5)]),
    "sigmoid": ('layer{type:"Sigmoid"}', [(4, 6)]),
    "batchnorm": ('layer{type:"BatchNorm" batch_norm_param{use_global_stats: true}}', [(2, 3, 4, 5)]),
    "batchnorm_2d_eps": ('layer{type:"BatchNorm" batch_norm_param{eps: 0.001}}', [(4, 6)]),
    "scale_bias": ('layer{type:"Scale" scale_param{bias_term: true}}', [(2, 3, 4, 5)]),
    "softmax": ('layer{type:"Softmax"}', [(3, 5, 2, 2)]),
    "eltwise_sum_coeff": ('layer{type:"Eltwise" eltwise_param{operation: SUM coeff: 0.5 coeff: -2}}',
                          [(2, 3, 4, 4), (2, 3, 4, 4)]),
    "concat": ('layer{type:"Concat"}', [(2, 3, 4, 4), (2, 2, 4, 4)]),
}

@pytest.mark.caffe
@pytest.mark.parametrize("key", list(LAYERS))
def test_caffe_layer_matches_real_caffe(key: str) -> None:
    caffe_module()
    text, shapes = LAYERS[key]
    rng = np.random.default_rng(7)
    bottoms = {f"data_{i}": rng.standard_normal(s).astype(np.float32) for i, s in enumerate(shapes)}
    errors = check_torch_layer(text, bottoms)
    logger.info("%s: worst %s", key, max(errors.items(), key=lambda kv: kv[1]))


@pytest.mark.caffe
@pytest.mark.parametrize("key", list(LOSSES))
def test_caffe_loss_matches_real_caffe(key: str) -> None:
    caffe_module()
    text, bottoms, extra = LOSSES[key]
    # CaffeLoss returns loss_weight * loss: its derivative already carries the scale MXNet's check applies
    errors = check_torch_layer(text, bottoms, loss=True, **{k: v for k, v in extra.items() if k != "fd_scale"})
    logger.info("%s: worst %s", key, max(errors.items(), key=lambda kv: kv[1]))


@pytest.mark.caffe
@pytest.mark.parametrize("key", ["ip", "conv_group_dilated", "batchnorm", "scale_bias"])
def test_lazy_blobs_get_caffe_shapes(key: str) -> None:
    import torch

    from nnbridge.torch import CaffeLayer
    from support.caffe_grad import caffe_layer_grads

    text, shapes = LAYERS[key]
    bottoms = {f"data_{i}": np.zeros(s, np.float32) for i, s in enumerate(shapes)}
    ref = caffe_layer_grads(text, bottoms)
    layer = CaffeLayer(text)
    layer(*(torch.zeros(s) for s in shapes))
    assert [tuple(b.shape) for b in layer.blobs] == [ref[f"blob{i}"].shape for i in range(len(layer.blobs))]


@pytest.mark.parametrize(("make", "needles"), [
    (lambda t: t.CaffeLayer('layer{type:"TanH"} layer{type:"ReLU"}'), ["exactly one layer", "found 2"]),
    (lambda t: t.CaffeLayer('layer{type:"MyFancyLayer"}'), ["MyFancyLayer", "no PyTorch translation"]),
    (lambda t: t.CaffeLayer('layer{type:"InnerProduct" inner_product_param{num_output: 2}}', weights=[np.ones((2, 3))]),
     ["1 weight blob(s) given", "has 2"]),
    (lambda t: t.CaffeLoss('layer{type:"InfogainLoss"}'), ["InfogainLoss"]),
    (lambda t: t.CaffeLoss('layer{type:"ContrastiveLoss"}')(*[__import__("torch").zeros(2, 3)] * 2),
     ["2 bottoms given", "takes 3"]),
], ids=["two_layers", "unknown_type", "blob_count", "unknown_loss", "loss_bottoms"])
def test_bad_input_gives_one_clear_error(make, needles: list[str]) -> None:  # type: ignore[no-untyped-def]
    import nnbridge.torch as nt
    from nnbridge.errors import NNBridgeError

    with pytest.raises(NNBridgeError) as info:
        make(nt)
    for needle in needles:
        assert needle in str(info.value), str(info.value)


@pytest.mark.caffe
@pytest.mark.parametrize("text", ['layer{type:"BatchNorm"}',
                                  'layer{type:"BatchNorm" batch_norm_param{use_global_stats: false '
                                  'moving_average_fraction: 0.9 eps: 0.01}}'], ids=["default", "explicit"])
def test_batchnorm_train_phase_matches_real_caffe(text: str) -> None:
    """train() = Caffe's TRAIN phase: batch statistics, gradients through them, blobs averaged in place."""
    import torch

    from nnbridge.torch import CaffeLayer
    from support.caffe_grad import caffe_layer_grads
    from support.layer_check import assert_same

    caffe_module()
    x = np.random.default_rng(2).standard_normal((3, 4, 5, 2)).astype(np.float32) * 2 + 0.5
    ref = caffe_layer_grads(text, {"data_0": x}, phase="TRAIN")
    layer = CaffeLayer(text, weights=[ref["blob0"], ref["blob1"], ref["blob2"]]).train()
    data = torch.tensor(x, requires_grad=True)
    top = layer(data)
    (top * torch.from_numpy(ref["top.diff"])).sum().backward()
    got = {"top": top.detach().numpy(), "data_0.diff": data.grad.numpy(),
           **{f"blob{i}.after": b.detach().numpy() for i, b in enumerate(layer.blobs)}}
    names = ["top", "data_0.diff", "blob0.after", "blob1.after", "blob2.after"]
    assert_same({k: ref[k] for k in names}, got, names, rtol=1e-4, atol=1e-6, what="Caffe TRAIN vs PyTorch train()")
