"""Compute-layer importers (conv, dense, pool, norm, activation) against REAL Caffe, one layer per net.

Every row builds a one-layer net in pycaffe with realistic random weights, runs it on seeded inputs and
compares each blob with the hub model run by onnxruntime (tests/support/layer_check.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from support.layer_check import check_layer

RNG = np.random.default_rng(1234)


def _dims(shape: tuple[int, ...]) -> str:
    return " ".join(f"dim: {d}" for d in shape)


def net(body: str, shape: tuple[int, ...] = (2, 3, 5, 5), *, second: tuple[int, ...] | None = None) -> str:
    text = f'name: "t"\ninput: "data"\ninput_shape {{ {_dims(shape)} }}\n'
    if second is not None:
        text += f'input: "data2"\ninput_shape {{ {_dims(second)} }}\n'
    return text + body


def layer(layer_type: str, params: str = "", *, name: str = "l", bottom: str = "data", top: str = "out",
          extra_bottom: str | None = None) -> str:
    bottoms = f'bottom: "{bottom}"' + (f' bottom: "{extra_bottom}"' if extra_bottom else "")
    return f'layer {{ name: "{name}" type: "{layer_type}" {bottoms} top: "{top}" {params} }}\n'


def one(layer_type: str, params: str = "", shape: tuple[int, ...] = (2, 3, 5, 5), **kw: Any) -> str:
    return net(layer(layer_type, params), shape, **kw)


def pool(params: str, shape: tuple[int, ...]) -> str:
    return one("Pooling", f"pooling_param {{ {params} }}", shape)


def conv(params: str, shape: tuple[int, ...] = (2, 4, 9, 10), layer_type: str = "Convolution") -> str:
    return one(layer_type, f"convolution_param {{ {params} }}", shape)


def positive(shape: tuple[int, ...], low: float = 0.2, high: float = 3.0) -> dict[str, np.ndarray]:
    return {"data": RNG.uniform(low, high, shape).astype(np.float32)}


def spread(shape: tuple[int, ...], scale: float) -> dict[str, np.ndarray]:
    return {"data": (RNG.standard_normal(shape) * scale).astype(np.float32)}


def bn_weights(channels: int, factor: float) -> dict[str, list[np.ndarray]]:
    mean = RNG.normal(0.0, 0.2, channels).astype(np.float32) * max(factor, 1.0)
    var = RNG.uniform(0.5, 1.5, channels).astype(np.float32) * max(factor, 1.0)
    # factor 0 keeps non-zero running sums: Caffe then uses mean = var = 0 (y = x / sqrt(eps))
    return {"l": [mean, var, np.asarray([factor], np.float32)]}


CASES: list[Any] = [
    # -- pooling: Caffe's ceil rule with padding, the AVE border divisor, global pooling -----------------
    pytest.param(pool("pool: MAX kernel_size: 2 stride: 2 pad: 1", (2, 3, 5, 5)), {}, id="max-5-k2s2p1"),
    pytest.param(pool("pool: AVE kernel_size: 2 stride: 2 pad: 1", (2, 3, 5, 5)), {}, id="ave-5-k2s2p1"),
    pytest.param(pool("pool: MAX kernel_size: 3 stride: 2 pad: 1", (1, 4, 112, 112)), {}, id="max-112-k3s2p1"),
    pytest.param(pool("pool: AVE kernel_size: 3 stride: 2 pad: 1", (1, 4, 112, 112)), {}, id="ave-112-k3s2p1"),
    pytest.param(pool("pool: MAX kernel_size: 3 stride: 2", (2, 3, 7, 7)), {}, id="max-7-k3s2p0"),
    pytest.param(pool("pool: AVE kernel_size: 3 stride: 2", (2, 3, 7, 7)), {}, id="ave-7-k3s2p0"),
    pytest.param(pool("pool: AVE kernel_size: 3 stride: 2", (2, 3, 8, 8)), {}, id="ave-8-k3s2p0-ceil"),
    pytest.param(pool("pool: MAX kernel_size: 3 stride: 2", (2, 3, 8, 8)), {}, id="max-8-k3s2p0-ceil"),
    pytest.param(pool("pool: MAX kernel_size: 5 stride: 3 pad: 2", (1, 3, 11, 12)), {}, id="max-k5s3p2"),
    pytest.param(pool("pool: AVE kernel_size: 5 stride: 3 pad: 2", (1, 3, 11, 12)), {}, id="ave-k5s3p2"),
    pytest.param(pool("pool: AVE kernel_size: 3 stride: 3 pad: 2", (1, 2, 7, 7)), {}, id="ave-decrement"),
    pytest.param(pool("pool: MAX kernel_size: 3 stride: 3 pad: 2", (1, 2, 7, 7)), {}, id="max-decrement"),
    pytest.param(pool("pool: AVE kernel_size: 3 stride: 1 pad: 1", (2, 3, 6, 6)), {}, id="ave-same-borders"),
    pytest.param(pool("pool: MAX kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 3 pad_h: 1 pad_w: 1",
                      (1, 2, 10, 11)), {}, id="max-rect"),
    pytest.param(pool("pool: AVE kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 3 pad_h: 1 pad_w: 1",
                      (1, 2, 10, 11)), {}, id="ave-rect"),
    pytest.param(pool("pool: AVE kernel_h: 4 kernel_w: 3 stride_h: 3 stride_w: 2 pad_h: 2 pad_w: 0",
                      (1, 2, 9, 8)), {}, id="ave-rect-pad-one-axis"),
    pytest.param(pool("pool: AVE kernel_size: 3 stride: 2 pad: 1 ceil_mode: false", (1, 2, 10, 10)), {},
                 id="ave-floor-mode"),
    pytest.param(pool("pool: MAX kernel_size: 3 stride: 2 ceil_mode: false", (1, 2, 10, 10)), {},
                 id="max-floor-mode"),
    pytest.param(pool("pool: AVE global_pooling: true", (2, 3, 6, 7)), {}, id="global-ave"),
    pytest.param(pool("pool: MAX global_pooling: true", (2, 3, 6, 7)), {}, id="global-max"),
    # -- convolution / deconvolution -----------------------------------------------------------------------
    pytest.param(conv("num_output: 6 kernel_size: 3"), {}, id="conv-3x3"),
    pytest.param(conv("num_output: 6 kernel_size: 3 pad: 1 stride: 2"), {}, id="conv-s2p1"),
    pytest.param(conv("num_output: 6 kernel_size: 3 group: 2 pad: 1"), {}, id="conv-grouped"),
    pytest.param(conv("num_output: 4 kernel_size: 3 group: 4 pad: 1"), {}, id="conv-depthwise"),
    pytest.param(conv("num_output: 6 kernel_size: 3 dilation: 2 pad: 2"), {}, id="conv-dilated"),
    pytest.param(conv("num_output: 6 kernel_h: 3 kernel_w: 1 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0"), {},
                 id="conv-rect-hw"),
    pytest.param(conv("num_output: 6 kernel_size: 3 kernel_size: 2 stride: 1 stride: 2 pad: 0 pad: 1"), {},
                 id="conv-rect-repeated"),
    pytest.param(conv("num_output: 6 kernel_size: 3 bias_term: false"), {}, id="conv-no-bias"),
    pytest.param(conv("num_output: 8 kernel_size: 1"), {}, id="conv-1x1"),
    pytest.param(conv("num_output: 4 kernel_size: 3 stride: 2 pad: 1", (1, 2, 5, 6, 7)), {}, id="conv-3d"),
    pytest.param(conv("num_output: 4 kernel_size: 3 dilation: 2", (2, 3, 12)), {}, id="conv-1d"),
    pytest.param(conv("num_output: 6 kernel_size: 4 stride: 2 pad: 1", layer_type="Deconvolution"), {},
                 id="deconv-s2p1"),
    pytest.param(conv("num_output: 6 kernel_size: 3 stride: 2 group: 2", layer_type="Deconvolution"), {},
                 id="deconv-grouped"),
    pytest.param(conv("num_output: 4 kernel_size: 4 stride: 2 pad: 1 group: 4 bias_term: false",
                      layer_type="Deconvolution"), {}, id="deconv-depthwise-no-bias"),
    pytest.param(conv("num_output: 3 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 3 pad_h: 1 dilation: 2",
                      layer_type="Deconvolution"), {}, id="deconv-rect-dilated"),
    pytest.param(conv("num_output: 2 kernel_size: 2 stride: 2", (1, 3, 3, 4, 5), layer_type="Deconvolution"), {},
                 id="deconv-3d"),
    # -- inner product ----------------------------------------------------------------------------------
    pytest.param(one("InnerProduct", "inner_product_param { num_output: 7 }"), {}, id="ip-4d"),
    pytest.param(one("InnerProduct", "inner_product_param { num_output: 7 }", (4, 10)), {}, id="ip-2d"),
    pytest.param(one("InnerProduct", "inner_product_param { num_output: 7 axis: 2 }", (2, 3, 4, 5)), {},
                 id="ip-axis2"),
    pytest.param(one("InnerProduct", "inner_product_param { num_output: 7 axis: -1 }", (2, 3, 4)), {},
                 id="ip-axis-neg"),
    pytest.param(one("InnerProduct", "inner_product_param { num_output: 7 transpose: true }"), {},
                 id="ip-transpose"),
    pytest.param(one("InnerProduct", "inner_product_param { num_output: 7 bias_term: false axis: 2 "
                     "transpose: true }", (2, 3, 4, 5)), {}, id="ip-axis2-transpose-no-bias"),
    # -- BatchNorm -----------------------------------------------------------------------------------------
    pytest.param(one("BatchNorm"), {"weights": bn_weights(3, 1.0)}, id="bn-factor-1"),
    pytest.param(one("BatchNorm"), {"weights": bn_weights(3, 2.5)}, id="bn-factor-2.5"),
    pytest.param(one("BatchNorm"), {"weights": bn_weights(3, 0.0)}, id="bn-factor-0"),
    pytest.param(one("BatchNorm", "batch_norm_param { eps: 0.1 use_global_stats: true }"),
                 {"weights": bn_weights(3, 999.98)}, id="bn-eps-big-factor"),
    pytest.param(one("BatchNorm", "batch_norm_param { eps: 0.001 }", (4, 5)), {"weights": bn_weights(5, 2.0)},
                 id="bn-2d"),
    pytest.param(one("BatchNorm", "batch_norm_param { use_global_stats: false eps: 0.01 }", (3, 4, 5, 6)),
                 {"weights": bn_weights(4, 1.0)}, id="bn-batch-stats"),
    # -- Scale / Bias -----------------------------------------------------------------------------------
    pytest.param(one("Scale"), {}, id="scale"),
    pytest.param(one("Scale", "scale_param { bias_term: true }"), {}, id="scale-bias"),
    pytest.param(one("Scale", "scale_param { axis: 1 num_axes: 2 bias_term: true }"), {}, id="scale-2axes"),
    pytest.param(one("Scale", "scale_param { axis: 2 num_axes: -1 }"), {}, id="scale-axis2-to-end"),
    pytest.param(one("Scale", "scale_param { axis: 0 num_axes: 0 bias_term: true }"), {}, id="scale-scalar"),
    pytest.param(one("Scale", "scale_param { axis: -1 }"), {}, id="scale-last-axis"),
    pytest.param(net(layer("Scale", "scale_param { axis: 0 }", extra_bottom="data2"), second=(2, 3)), {},
                 id="scale-two-bottoms-axis0"),
    pytest.param(net(layer("Scale", "scale_param { axis: 1 bias_term: true }", extra_bottom="data2"),
                     second=(3, 5)), {}, id="scale-two-bottoms-bias"),
    pytest.param(net(layer("Scale", "scale_param { axis: 2 }", extra_bottom="data2"), second=(5, 5)), {},
                 id="scale-two-bottoms-axis2"),
    pytest.param(one("Bias"), {}, id="bias"),
    pytest.param(one("Bias", "bias_param { axis: 2 num_axes: 2 }"), {}, id="bias-axis2"),
    pytest.param(net(layer("Bias", extra_bottom="data2"), second=(3, 5)), {}, id="bias-two-bottoms"),
    # -- LRN / MVN -----------------------------------------------------------------------------------------
    pytest.param(one("LRN", "lrn_param { local_size: 5 alpha: 0.1 beta: 0.75 }", (2, 7, 4, 4)), {},
                 id="lrn-across"),
    pytest.param(one("LRN", "lrn_param { local_size: 3 alpha: 0.5 beta: 0.6 k: 2 }", (2, 7, 4, 4)), {},
                 id="lrn-across-k2"),
    pytest.param(one("LRN", "lrn_param { local_size: 3 alpha: 0.8 beta: 0.75 k: 5 norm_region: WITHIN_CHANNEL }",
                     (2, 3, 6, 7)), {}, id="lrn-within"),
    pytest.param(one("LRN", "lrn_param { local_size: 5 alpha: 2 beta: 0.5 norm_region: WITHIN_CHANNEL }",
                     (2, 3, 6, 7)), {}, id="lrn-within-5"),
    pytest.param(one("MVN"), {}, id="mvn"),
    pytest.param(one("MVN", "mvn_param { across_channels: true }"), {}, id="mvn-across"),
    pytest.param(one("MVN", "mvn_param { normalize_variance: false }"), {}, id="mvn-mean-only"),
    pytest.param(one("MVN", "mvn_param { eps: 0.5 }"), {}, id="mvn-big-eps"),
    # -- activations ----------------------------------------------------------------------------------------
    pytest.param(one("ReLU"), {}, id="relu"),
    pytest.param(one("ReLU", "relu_param { negative_slope: 0.1 }"), {}, id="relu-slope"),
    pytest.param(one("ReLU6"), {"inputs": spread((2, 3, 5, 5), 5.0)}, id="relu6"),
    pytest.param(one("ReLU6", "relu6_param { negative_slope: 0.2 threshold: 2.5 }"),
                 {"inputs": spread((2, 3, 5, 5), 4.0)}, id="relu6-slope-threshold"),
    pytest.param(one("PReLU"), {}, id="prelu"),
    pytest.param(one("PReLU", "prelu_param { channel_shared: true }"), {}, id="prelu-shared"),
    pytest.param(one("PReLU", "", (4, 6)), {}, id="prelu-2d"),
    pytest.param(one("ELU"), {}, id="elu"),
    pytest.param(one("ELU", "elu_param { alpha: 0.3 }"), {}, id="elu-alpha"),
    pytest.param(one("Sigmoid"), {"inputs": spread((2, 3, 5, 5), 4.0)}, id="sigmoid"),
    pytest.param(one("TanH"), {"inputs": spread((2, 3, 5, 5), 3.0)}, id="tanh"),
    pytest.param(one("AbsVal"), {}, id="absval"),
    pytest.param(one("BNLL"), {}, id="bnll"),
    pytest.param(one("BNLL"), {"inputs": spread((2, 3, 5, 5), 60.0)}, id="bnll-large"),
    pytest.param(one("Power", "power_param { power: 2 scale: 0.5 shift: 1 }"), {}, id="power-square"),
    pytest.param(one("Power", "power_param { power: 0.5 scale: 2 shift: 0.1 }"),
                 {"inputs": positive((2, 3, 5, 5))}, id="power-sqrt"),
    pytest.param(one("Power", "power_param { power: -1.5 }"), {"inputs": positive((2, 3, 5, 5))},
                 id="power-negative"),
    pytest.param(one("Power", "power_param { scale: 3 shift: -1 }"), {}, id="power-affine"),
    pytest.param(one("Power", "power_param { power: 0 scale: 2 }"), {}, id="power-zero"),
    pytest.param(one("Power", "power_param { power: 3 scale: 0 shift: 1.5 }"), {}, id="power-const"),
    pytest.param(one("Exp"), {}, id="exp"),
    pytest.param(one("Exp", "exp_param { base: 2 scale: 0.5 shift: 1.5 }"), {}, id="exp-base2"),
    pytest.param(one("Exp", "exp_param { scale: -1 shift: 0.7 }"), {}, id="exp-e-shift"),
    pytest.param(one("Log"), {"inputs": positive((2, 3, 5, 5))}, id="log"),
    pytest.param(one("Log", "log_param { base: 10 scale: 2 shift: 0.5 }"), {"inputs": positive((2, 3, 5, 5))},
                 id="log-base10"),
    pytest.param(one("Log", "log_param { base: 2 shift: 4 }"), {}, id="log-base2-shift"),
    pytest.param(one("Threshold"), {}, id="threshold"),
    pytest.param(one("Threshold", "threshold_param { threshold: 0.4 }"), {}, id="threshold-0.4"),
    pytest.param(one("Softmax"), {}, id="softmax"),
    pytest.param(one("Softmax", "softmax_param { axis: 2 }"), {}, id="softmax-axis2"),
    pytest.param(one("Softmax", "softmax_param { axis: -1 }", (3, 10)), {}, id="softmax-2d"),
    pytest.param(one("Dropout", "dropout_param { dropout_ratio: 0.3 }"), {}, id="dropout"),
]


@pytest.mark.parametrize(("prototxt", "options"), CASES)
def test_layer_against_real_caffe(prototxt: str, options: dict[str, Any]) -> None:
    check_layer(prototxt, **options)


def test_in_place_chain_against_real_caffe() -> None:
    """Conv -> BatchNorm -> Scale -> ReLU written in place, as in ResNet: every version of the blob."""
    body = (layer("Convolution", "convolution_param { num_output: 4 kernel_size: 3 pad: 1 }", name="conv")
            + layer("BatchNorm", name="bn", bottom="out", top="out")
            + layer("Scale", "scale_param { bias_term: true }", name="sc", bottom="out", top="out")
            + layer("ReLU", name="relu", bottom="out", top="out")
            + layer("Pooling", "pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 }", name="pool",
                    bottom="out", top="pooled"))
    check_layer(net(body, (2, 3, 8, 8)))


# -- layers the installed Caffe lacks, and refusals: checked against numpy / for the error -------------------
def _import(prototxt: str, tmp_path: Any) -> Any:
    from nnbridge.caffe.formats.net import load_caffe
    from nnbridge.caffe.importer import import_layers
    from nnbridge.caffe.weights import RandomWeights

    path = tmp_path / "net.prototxt"
    path.write_text(prototxt)
    loaded = load_caffe(path)
    return import_layers(list(loaded.net.layer), loaded.inputs, RandomWeights(0), source=str(path))


def _run(model: Any, x: np.ndarray) -> np.ndarray:
    import onnx_ir as ir
    import onnxruntime as ort

    session = ort.InferenceSession(ir.serde.serialize_model(model).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["out"], {"data": x})[0])


@pytest.mark.parametrize(("params", "lo", "hi"), [("min: -0.5 max: 0.7", -0.5, 0.7), ("min: 0 max: 0", 0.0, 0.0)])
def test_clip_against_numpy(tmp_path: Any, params: str, lo: float, hi: float) -> None:
    """BVLC master's Clip (not in the installed Caffe fork): max(min, min(x, max))."""
    x = spread((2, 3, 4, 4), 2.0)["data"]
    got = _run(_import(one("Clip", f"clip_param {{ {params} }}", (2, 3, 4, 4)), tmp_path), x)
    np.testing.assert_array_equal(got, np.maximum(np.float32(lo), np.minimum(x, np.float32(hi))))


@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_swish_against_numpy(tmp_path: Any, beta: float) -> None:
    """BVLC master's Swish (not in the installed Caffe fork): x * sigmoid(beta * x)."""
    x = spread((2, 3, 4, 4), 3.0)["data"]
    got = _run(_import(one("Swish", f"swish_param {{ beta: {beta} }}", (2, 3, 4, 4)), tmp_path), x)
    want = x.astype(np.float64) / (1.0 + np.exp(-beta * x.astype(np.float64)))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("prototxt", "message"), [
    pytest.param(pool("pool: STOCHASTIC kernel_size: 2 stride: 2", (1, 2, 6, 6)), "STOCHASTIC", id="stochastic"),
    pytest.param(pool("pool: MAX kernel_size: 1 stride: 3", (1, 2, 5, 5)), "entirely outside", id="empty-window"),
    pytest.param(net(layer("Pooling", "pooling_param { pool: MAX kernel_size: 2 stride: 2 }") .replace(
        'top: "out"', 'top: "out" top: "mask"'), (1, 2, 6, 6)), "mask", id="pool-mask-top"),
    pytest.param(conv("num_output: 6 kernel_size: 3 axis: 2"), "axis", id="conv-axis"),
    pytest.param(conv("num_output: 5 kernel_size: 3 group: 2"), "group", id="conv-bad-group"),
    pytest.param(one("LRN", "lrn_param { local_size: 4 }"), "odd", id="lrn-even"),
    pytest.param(one("Clip", "clip_param { min: 1 max: 0 }"), "must not exceed", id="clip-min-max"),
    pytest.param(one("Exp", "exp_param { base: -2 }"), "base", id="exp-bad-base"),
])
def test_refused_with_message(tmp_path: Any, prototxt: str, message: str) -> None:
    from nnbridge.errors import NNBridgeError

    with pytest.raises(NNBridgeError, match=message) as info:
        _import(prototxt, tmp_path)
    assert "layer 'l'" in str(info.value)
