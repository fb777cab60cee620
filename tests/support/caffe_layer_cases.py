"""The Caffe layers added to CaffeOp (MXNet) and CaffeLayer (PyTorch) for issue 5, as test cases shared by
tests/caffe_in_mxnet/test_caffe_op_layers_more.py and tests/caffe_in_torch/test_caffe_layer_torch_more.py.

``CASES[id] = (layer text, bottom shapes, num_weight, options)``; ``make_case`` draws the bottoms (seeded) and
returns a :class:`LayerCase`. Options: ``x`` (N(0, 1) * x), ``pos`` (|N(0, 1)| + pos: Log's domain), ``tops``
(Slice/Split), ``backward=False`` (Caffe refuses the backward: Threshold, ArgMax; the candidate must give zero
gradients), ``hub=True`` (fork layers or fields this pycaffe lacks: the forward is compared with nnbridge's hub
model in onnxruntime, the backward only by float64 finite differences), ``caffe_diffs=False`` (this pycaffe's
backward is broken: Upsample leaves the bottom diff at zero; forward vs Caffe, backward by finite differences),
``force_backward=False`` (Embed: no diff for its index bottom), ``ints=n`` (integer-valued bottoms in [0, n)),
``fd_bottoms=False`` (Caffe's bottom diff is not the gradient of its forward: SSD Normalize with a per-channel
scale, MVN with a large eps; the finite differences check the blobs only; ``mvn`` with the default eps 1e-9,
where both agree, keeps the finite-difference check of the bottom).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class LayerCase:
    layer_text: str
    bottoms: dict[str, np.ndarray]
    num_weight: int = 0
    tops: int = 1
    backward: bool = True
    hub: bool = False
    caffe_diffs: bool = True
    fd_bottoms: bool = True
    force_backward: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


S4 = [(2, 3, 4, 5)]
# id -> (layer text, bottom shapes, num_weight, options for Case; "x": N(0, 1) * x, "pos": |N(0, 1)| + pos)
CASES: dict[str, tuple[str, list[tuple[int, ...]], int, dict[str, Any]]] = {
    "deconv_group": ('layer{type:"Deconvolution" convolution_param{num_output: 4 kernel_size: 3 stride: 2 pad: 1 '
                     'group: 2}}', [(2, 4, 4, 5)], 2, {}),
    "deconv_nobias": ('layer{type:"Deconvolution" convolution_param{num_output: 3 kernel_h: 2 kernel_w: 3 '
                      'stride: 2 bias_term: false}}', [(2, 2, 3, 4)], 1, {}),
    "prelu": ('layer{type:"PReLU"}', S4, 1, {}),
    "prelu_shared": ('layer{type:"PReLU" prelu_param{channel_shared: true}}', S4, 1, {}),
    "elu": ('layer{type:"ELU" elu_param{alpha: 0.5}}', S4, 0, {}),
    "lrn_across": ('layer{type:"LRN" lrn_param{local_size: 5 alpha: 0.1 beta: 0.75 k: 2}}', [(2, 7, 4, 5)], 0, {}),
    "lrn_within": ('layer{type:"LRN" lrn_param{local_size: 3 alpha: 0.2 beta: 0.75 norm_region: WITHIN_CHANNEL}}',
                   [(2, 3, 5, 6)], 0, {}),
    "ip_axis2": ('layer{type:"InnerProduct" inner_product_param{num_output: 5 axis: 2}}', S4, 2, {}),
    "ip_transpose": ('layer{type:"InnerProduct" inner_product_param{num_output: 4 transpose: true}}', [(3, 2, 3)],
                     2, {}),
    "bias": ('layer{type:"Bias"}', S4, 1, {}),
    "bias_axis0_2axes": ('layer{type:"Bias" bias_param{axis: 0 num_axes: 2}}', S4, 1, {}),
    "scale_axis2_rest": ('layer{type:"Scale" scale_param{axis: 2 num_axes: -1 bias_term: true}}', S4, 2, {}),
    "scale_axis1_2axes": ('layer{type:"Scale" scale_param{axis: 1 num_axes: 2}}', S4, 1, {}),
    "softmax_axis2": ('layer{type:"Softmax" softmax_param{axis: 2}}', S4, 0, {}),
    "power": ('layer{type:"Power" power_param{power: 2 scale: 0.5 shift: 1}}', S4, 0, {}),
    "power_sqrt": ('layer{type:"Power" power_param{power: 0.5 scale: 0.5 shift: 4}}', S4, 0, {}),
    "exp": ('layer{type:"Exp"}', S4, 0, {}),
    "exp_base": ('layer{type:"Exp" exp_param{base: 2 scale: 0.5 shift: 1}}', S4, 0, {}),
    "log_base": ('layer{type:"Log" log_param{base: 10 scale: 0.5 shift: 3}}', S4, 0, {}),
    "log": ('layer{type:"Log"}', S4, 0, {"pos": 0.5}),
    "bnll": ('layer{type:"BNLL"}', S4, 0, {"x": 3.0}),
    "threshold": ('layer{type:"Threshold" threshold_param{threshold: 0.2}}', S4, 0, {"backward": False}),
    "relu6": ('layer{type:"ReLU6"}', S4, 0, {"x": 4.0}),
    "slice_points": ('layer{type:"Slice" slice_param{axis: 1 slice_point: 1 slice_point: 4}}', [(2, 6, 3, 3)], 0,
                     {"tops": 3}),
    "slice_equal": ('layer{type:"Slice" slice_param{axis: 2}}', [(2, 3, 4, 3)], 0, {"tops": 2}),
    "split": ('layer{type:"Split"}', S4, 0, {"tops": 3}),
    "reshape": ('layer{type:"Reshape" reshape_param{shape{dim: 0 dim: -1}}}', S4, 0, {}),
    "reshape_axis": ('layer{type:"Reshape" reshape_param{shape{dim: 2 dim: 2} axis: 2 num_axes: 1}}', S4, 0, {}),
    "permute": ('layer{type:"Permute" permute_param{order: 0 order: 2 order: 3 order: 1}}', S4, 0, {}),
    "tile": ('layer{type:"Tile" tile_param{axis: 1 tiles: 3}}', [(2, 3, 2, 2)], 0, {}),
    "crop_offsets": ('layer{type:"Crop" crop_param{axis: 2 offset: 1 offset: 2}}', [(2, 3, 7, 8), (2, 3, 4, 5)],
                     0, {}),
    "crop_axis1": ('layer{type:"Crop" crop_param{axis: 1 offset: 1}}', [(2, 5, 6, 6), (2, 3, 4, 4)], 0, {}),
    "reshape_axis_infer": ('layer{type:"Reshape" reshape_param{shape{dim: -1 dim: 2 dim: 1} axis: 1 num_axes: 1}}',
                           [(2, 6, 5)], 0, {}),
    "mvn": ('layer{type:"MVN"}', S4, 0, {}),
    "mvn_across_mean_only": ('layer{type:"MVN" mvn_param{across_channels: true normalize_variance: false}}', S4, 0,
                             {}),
    "mvn_across": ('layer{type:"MVN" mvn_param{across_channels: true eps: 0.001}}', S4, 0, {"fd_bottoms": False}),
    "normalize": ('layer{type:"Normalize"}', S4, 1, {}),
    "normalize_per_pixel": ('layer{type:"Normalize" norm_param{across_spatial: false channel_shared: false}}', S4,
                            1, {"fd_bottoms": False}),
    "reduction_sum_axis0": ('layer{type:"Reduction"}', S4, 0, {}),
    "reduction_asum": ('layer{type:"Reduction" reduction_param{operation: ASUM axis: 1 coeff: 0.5}}', S4, 0, {}),
    "reduction_sumsq": ('layer{type:"Reduction" reduction_param{operation: SUMSQ axis: 2}}', S4, 0, {}),
    "reduction_mean": ('layer{type:"Reduction" reduction_param{operation: MEAN axis: 1 coeff: 2}}', S4, 0, {}),
    "argmax_axis": ('layer{type:"ArgMax" argmax_param{axis: 1 top_k: 2}}', S4, 0, {"backward": False}),
    "argmax_values": ('layer{type:"ArgMax" argmax_param{axis: 2 out_max_val: true}}', S4, 0, {"backward": False}),
    "argmax_flat": ('layer{type:"ArgMax" argmax_param{top_k: 3 out_max_val: true}}', [(3, 10)], 0,
                    {"backward": False}),
    "upsample": ('layer{type:"Upsample" upsample_param{scale: 2}}', [(2, 3, 3, 4)], 0, {"caffe_diffs": False}),
    "upsample_hw": ('layer{type:"Upsample" upsample_param{scale_h: 2 scale_w: 3}}', [(2, 3, 3, 4)], 0, {"hub": True}),
    "embed": ('layer{type:"Embed" embed_param{num_output: 5 input_dim: 6}}', [(3, 4)], 2,
              {"ints": 6, "force_backward": False}),
    "embed_nobias": ('layer{type:"Embed" embed_param{num_output: 3 input_dim: 4 bias_term: false}}', [(5,)], 1,
                     {"ints": 4, "force_backward": False}),
    "interp_zoom": ('layer{type:"Interp" interp_param{zoom_factor: 2}}', [(2, 3, 4, 5)], 0, {"hub": True}),
    "interp_size_crop": ('layer{type:"Interp" interp_param{height: 7 width: 3 pad_beg: -1 pad_end: -1}}',
                         [(2, 3, 6, 6)], 0, {"hub": True}),
    "clip": ('layer{type:"Clip" clip_param{min: -0.5 max: 0.7}}', S4, 0, {"hub": True}),
    "swish": ('layer{type:"Swish" swish_param{beta: 1.5}}', S4, 0, {"hub": True}),
    "shuffle_channel": ('layer{type:"ShuffleChannel" shuffle_channel_param{group: 2}}', [(2, 6, 3, 3)], 0,
                        {"hub": True}),
    "axpy": ('layer{type:"Axpy"}', [(2, 3, 1, 1), (2, 3, 4, 5), (2, 3, 4, 5)], 0, {"hub": True}),
}


def make_case(text: str, shapes: list[tuple[int, ...]], num_weight: int, options: dict[str, Any]) -> LayerCase:
    rng = np.random.default_rng(11)
    extra = dict(options)
    factor, shift = float(extra.pop("x", 1.0)), float(extra.pop("pos", 0.0))
    ints = int(extra.pop("ints", 0))
    bottoms = {}
    for i, s in enumerate(shapes):
        x = rng.standard_normal(s) if not ints else rng.integers(0, ints, s).astype(np.float64)
        bottoms[f"data_{i}"] = (np.abs(x) + shift if shift else x * factor).astype(np.float32)
    return LayerCase(text, bottoms, num_weight=num_weight, **extra)
