"""nnbridge.torch.CaffeLayer on the layers added for issue 5 vs REAL Caffe: forward, bottom diffs and parameter
diffs blob by blob, plus a float64 finite-difference check of autograd; the same cases as the MXNet CaffeOp
tests (support/caffe_layer_cases.py, which describes the exceptions: fork layers pycaffe lacks compared with
nnbridge's hub model in onnxruntime and by finite differences; Threshold/ArgMax without a Caffe backward; Upsample
whose pycaffe backward is broken; SSD Normalize whose Caffe bottom diff is not the exact gradient)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from torch_caffe_check import check_torch_case

from support.caffe_layer_cases import CASES, make_case
from support.layer_check import caffe_module

pytest.importorskip("torch")
logger = logging.getLogger(__name__)


@pytest.mark.caffe
@pytest.mark.parametrize("key", list(CASES))
def test_caffe_layer_new_layers_match(key: str) -> None:
    caffe_module()
    errors = check_torch_case(make_case(*CASES[key]))
    logger.info("%s: worst %s", key, max(errors.items(), key=lambda kv: kv[1]))


@pytest.mark.caffe
@pytest.mark.parametrize("key", ["deconv_group", "prelu", "prelu_shared", "bias", "bias_axis0_2axes",
                                 "scale_axis2_rest", "normalize", "normalize_per_pixel"])
def test_lazy_blobs_get_caffe_shapes(key: str) -> None:
    """Blobs created at the first forward (no weights=) have Caffe's shapes (0-D where Caffe's are)."""
    import torch

    from nnbridge.torch import CaffeLayer
    from support.caffe_grad import caffe_layer_grads

    caffe_module()
    case = make_case(*CASES[key])
    ref = caffe_layer_grads(case.layer_text, case.bottoms)
    layer = CaffeLayer(case.layer_text)
    layer(*(torch.from_numpy(v) for v in case.bottoms.values()))
    assert [tuple(b.shape) for b in layer.blobs] == [ref[f"blob{i}.diff"].shape for i in range(case.num_weight)]


@pytest.mark.parametrize(("text", "kwargs", "shapes", "needles"), [
    ('layer{type:"Scale"}', {"weights": [np.ones(3, np.float32)]}, [(2, 3), (2, 3)], ["2 bottoms", "two-bottom"]),
    ('layer{type:"Slice" slice_param{slice_point: 1}}', {"num_out": 3}, [(2, 4)], ["2 tops", "num_out=3"]),
    ('layer{type:"ReLU"}', {"num_out": 2}, [(2, 4)], ["num_out=2", "several tops"]),
    ('layer{type:"Embed" embed_param{num_output: 2 input_dim: 3}}',
     {"weights": [np.ones((3, 2), np.float32), np.zeros(2, np.float32)]}, [(4,)], ["integer indices in [0, 3)"]),
    ('layer{type:"LRN" lrn_param{local_size: 4}}', {}, [(1, 3, 4, 4)], ["local_size 4 must be odd"]),
], ids=["scale_two_bottoms", "slice_num_out", "relu_num_out", "embed_index", "lrn_even"])
def test_bad_new_layer_input_gives_one_clear_error(text: str, kwargs: dict, shapes: list, needles: list[str]) -> None:
    import torch

    from nnbridge.errors import NNBridgeError
    from nnbridge.torch import CaffeLayer

    with pytest.raises(NNBridgeError) as info:
        CaffeLayer(text, **kwargs)(*(torch.full(s, 7.0) for s in shapes))
    for needle in needles:
        assert needle in str(info.value), str(info.value)
