"""Bad input to CaffeOp / CaffeLoss: one clear nnbridge error each (what is wrong, and what to do)."""

from __future__ import annotations

import pytest

from support.mxnet_env import run_mxnet

CASES = {
    "two_layers": ("op", 'layer{type:"TanH"} layer{type:"ReLU"}', {}, ["exactly one layer", "found 2"]),
    "no_layer": ("op", 'name: "net"', {}, ["exactly one layer", "found 0"]),
    "syntax": ("op", 'layer{type:"TanH" bogus_field: 3}', {}, ["bogus_field", "1:"]),
    "no_type": ("op", "layer{}", {}, ["no type"]),
    "num_weight": ("op", 'layer{type:"InnerProduct" inner_product_param{num_output: 3}}', {"num_weight": 0},
                   ["num_weight=0", "2 parameter blob", "pass num_weight=2"]),
    "num_weight_nobias": ("op", 'layer{type:"InnerProduct" inner_product_param{num_output: 3 bias_term: false}}',
                          {"num_weight": 2}, ["num_weight=2", "1 parameter blob"]),
    "num_data": ("op", 'layer{type:"Convolution" convolution_param{num_output: 3 kernel_size: 1}}',
                 {"num_weight": 2, "num_data": 2}, ["num_data=2", "takes 1 bottom"]),
    "concat_one": ("op", 'layer{type:"Concat"}', {"num_data": 1}, ["num_data=1", "at least 2"]),
    "unknown_type": ("op", 'layer{type:"MyFancyLayer"}', {}, ["MyFancyLayer", "no native translation",
                                                                'engine="caffe"']),
    "bn_batch_stats": ("op", 'layer{type:"BatchNorm" batch_norm_param{use_global_stats: false}}', {"num_weight": 3},
                       ["use_global_stats: false", 'engine="caffe"']),
    "slice_num_out": ("op", 'layer{type:"Slice" slice_param{slice_point: 2}}', {"num_out": 3},
                      ["2 tops", "num_out=3", "pass num_out=2"]),
    "relu_num_out": ("op", 'layer{type:"ReLU"}', {"num_out": 2}, ["num_out=2", "1 top"]),
    "reshape_form": ("op", 'layer{type:"Reshape" reshape_param{shape{dim: -1} axis: 1 num_axes: 2}}', {},
                     ["num_axes 2", "translated are", 'engine="caffe"']),
    "crop_one_bottom": ("op", 'layer{type:"Crop"}', {}, ["num_data=1", "takes 2 bottom"]),
    "scale_two_bottoms": ("op", 'layer{type:"Scale"}', {"num_data": 2, "num_weight": 1},
                          ["num_data=2", "takes 1 bottom"]),
    "lrn_even": ("op", 'layer{type:"LRN" lrn_param{local_size: 4}}', {}, ["local_size 4 must be odd"]),
    "clip_range": ("op", 'layer{type:"Clip" clip_param{min: 1 max: 0}}', {}, ["must not exceed max"]),
    "bias_num_weight": ("op", 'layer{type:"Bias"}', {}, ["num_weight=0", "pass num_weight=1"]),
    "engine": ("op", 'layer{type:"TanH"}', {"engine": "cafe"}, ["engine must be"]),
    "loss_unknown": ("loss", 'layer{type:"InfogainLoss"}', {}, ["InfogainLoss", 'engine="caffe"']),
    "loss_num_data": ("loss", 'layer{type:"ContrastiveLoss"}', {}, ["num_data=2", "takes 3 bottoms"]),
    "sigmoid_ce_loss_param": ("loss", 'layer{type:"SigmoidCrossEntropyLoss" loss_param{ignore_label: -1}}', {},
                              ["loss_param", "reference BVLC Caffe"]),
}

SCRIPT = r'''
from nnbridge.errors import NNBridgeError
from nnbridge.mxnet import CaffeOp, CaffeLoss
for key, (kind, text, kwargs, _) in args["cases"].items():
    try:
        if kind == "op":
            CaffeOp(data_0=mx.sym.Variable("x"), prototxt=text, name="bad", **kwargs)
        else:
            CaffeLoss(data=mx.sym.Variable("x"), label=mx.sym.Variable("y"), prototxt=text, name="bad", **kwargs)
        result[key] = "no error"
    except NNBridgeError as exc:
        result[key] = "%s: %s" % (type(exc).__name__, exc)
    except Exception as exc:
        result[key] = "NOT AN NNBRIDGE ERROR %s: %s" % (type(exc).__name__, exc)
'''


@pytest.fixture(scope="module")
def messages() -> dict[str, str]:
    return run_mxnet(SCRIPT, cases=CASES)


@pytest.mark.parametrize("key", list(CASES))
def test_bad_input_gives_one_clear_error(key: str, messages: dict[str, str]) -> None:
    message = messages[key]
    assert message.split(":")[0] in ("FormatError", "ConversionError"), message
    assert "\n" not in message, message
    for needle in CASES[key][3]:
        assert needle in message, f"{needle!r} not in {message!r}"


def test_import_stays_mxnet_free_and_missing_mxnet_is_one_clear_error() -> None:
    import subprocess
    import sys

    code = ("import sys, nnbridge.mxnet as m; f = m.CaffeOp; assert 'mxnet' not in sys.modules, 'mxnet imported'\n"
            "try:\n    import mxnet\nexcept ImportError:\n    pass\nelse:\n    raise SystemExit(0)\n"
            "from nnbridge.errors import MissingExtraError\n"
            "try:\n    f(prototxt='layer{type:\"TanH\"}')\nexcept MissingExtraError as e:\n    print(e)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" or "mxnet" in proc.stdout, proc.stdout
