"""Hand-built ONNX models of what tf2onnx emits for Keras layers with TensorFlow 'SAME' padding, zero
``Pad`` (ZeroPadding2D) before Conv / pooling, Conv2DTranspose 'same' and Flatten after a conv stack.

``CASES``: name -> builder returning an inferred ``onnx.ModelProto`` (input ``x``, seeded realistic weights:
He-normal kernels, biases N(0, 0.1)). Shared by the Caffe, MXNet and pass tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper


def he(rng: np.random.Generator, *shape: int) -> np.ndarray:
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def bias(rng: np.random.Generator, n: int) -> np.ndarray:
    return (rng.standard_normal(n) * 0.1).astype(np.float32)


def make_model(nodes: Sequence[onnx.NodeProto], shape: Sequence[int], outputs: Sequence[str],
               inits: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    graph = helper.make_graph(
        list(nodes), "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        [onnx.numpy_helper.from_array(np.asarray(a), n) for n, a in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    onnx.checker.check_model(inferred)
    return inferred


def same_pads(size: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
              dilation: Sequence[int] = (1, 1)) -> list[int]:
    """TensorFlow 'SAME': total = max((ceil(H/s) - 1) s + d (k - 1) + 1 - H, 0), begin = total // 2."""
    begin, end = [], []
    for h, k, s, d in zip(size, kernel, stride, dilation, strict=True):
        total = max((math.ceil(h / s) - 1) * s + d * (k - 1) + 1 - h, 0)
        begin.append(total // 2)
        end.append(total - total // 2)
    return begin + end


def _conv(kernel: int, stride: int, size: tuple[int, int], *, dilation: int = 1, depthwise: bool = False,
          pads: list[int] | None = None, auto_pad: str = "", seed: int = 0) -> Callable[[], onnx.ModelProto]:
    def build() -> onnx.ModelProto:
        rng = np.random.default_rng(seed)
        c, m = (6, 6) if depthwise else (3, 8)
        group = c if depthwise else 1
        p = pads if pads is not None else same_pads(size, (kernel,) * 2, (stride,) * 2, (dilation,) * 2)
        inits = {"w": he(rng, m, c // group, kernel, kernel), "b": bias(rng, m)}
        padding: dict[str, object] = {"auto_pad": auto_pad} if auto_pad else {"pads": p}
        conv = helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[kernel] * 2, strides=[stride] * 2,
                                dilations=[dilation] * 2, group=group, name="conv", **padding)
        relu = helper.make_node("Relu", ["c"], ["y"], name="relu")
        return make_model([conv, relu], [1, c, *size], ["y"], inits)
    return build


def _pad_then(op: str, pad: list[int], size: tuple[int, int], relu: bool = False,
              **attrs: object) -> Callable[[], onnx.ModelProto]:
    """``[Relu ->] Pad(x, [0, 0, b_h, b_w, 0, 0, e_h, e_w])`` then ``op`` (a Conv k3 or a pooling)."""
    def build() -> onnx.ModelProto:
        rng = np.random.default_rng(1)
        inits: dict[str, np.ndarray] = {"pads": np.array([0, 0, pad[0], pad[1], 0, 0, pad[2], pad[3]], np.int64)}
        nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu")] if relu else []
        nodes.append(helper.make_node("Pad", ["r" if relu else "x", "pads"], ["p"], mode="constant", name="zeropad"))
        if op == "Conv":
            inits.update(w=he(rng, 8, 4, 3, 3), b=bias(rng, 8))
            nodes.append(helper.make_node("Conv", ["p", "w", "b"], ["y"], kernel_shape=[3, 3], name="conv", **attrs))
        else:
            nodes.append(helper.make_node(op, ["p"], ["y"], name="pool", **attrs))
        return make_model(nodes, [1, 4, *size], ["y"], inits)
    return build


def _deconv(pads: list[int] | None, *, output_padding: list[int] | None = None, group: int = 1,
            kernel: int = 3, stride: int = 2, dilation: int = 1, output_shape: list[int] | None = None,
            auto_pad: str = "NOTSET") -> Callable[[], onnx.ModelProto]:
    def build() -> onnx.ModelProto:
        rng = np.random.default_rng(2)
        c, m = 4, 6
        inits = {"w": he(rng, c, m // group, kernel, kernel), "b": bias(rng, m)}
        extra: dict[str, object] = {"output_padding": output_padding} if output_padding else {}
        extra.update({"pads": pads} if pads is not None else {})
        extra.update({"output_shape": output_shape} if output_shape else {})
        extra.update({"auto_pad": auto_pad} if auto_pad != "NOTSET" else {})
        node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], kernel_shape=[kernel] * 2,
                                strides=[stride] * 2, dilations=[dilation] * 2, group=group,
                                name="deconv", **extra)
        return make_model([node], [1, c, 5, 6], ["y"], inits)
    return build


def _flatten(dense: str, flatten: str = "Reshape") -> Callable[[], onnx.ModelProto]:
    """Conv -> Transpose(0,2,3,1) -> Reshape(1,-1) | Flatten -> MatMul + Add | Gemm (transB 0/1)."""
    def build() -> onnx.ModelProto:
        rng = np.random.default_rng(3)
        c, h, w, n = 5, 4, 6, 7
        k = c * h * w
        inits = {"wc": he(rng, c, 3, 3, 3), "bc": bias(rng, c), "fb": bias(rng, n)}
        nodes = [helper.make_node("Conv", ["x", "wc", "bc"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                                  name="conv"),
                 helper.make_node("Relu", ["c"], ["r"], name="relu"),
                 helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 3, 1], name="to_nhwc")]
        if flatten == "Reshape":
            inits["shape"] = np.array([1, -1], np.int64)
            nodes.append(helper.make_node("Reshape", ["t", "shape"], ["f"], name="flatten"))
        else:
            nodes.append(helper.make_node("Flatten", ["t"], ["f"], axis=1, name="flatten"))
        weight = he(rng, n, k)  # (out, in)
        if dense == "MatMul":
            inits["fw"] = weight.T.copy()
            nodes += [helper.make_node("MatMul", ["f", "fw"], ["mm"], name="dense"),
                      helper.make_node("Add", ["mm", "fb"], ["y"], name="dense_bias")]
        else:
            trans = dense == "GemmT"
            inits["fw"] = weight if trans else weight.T.copy()
            nodes.append(helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=int(trans), name="dense"))
        return make_model(nodes, [1, 3, h, w], ["y"], inits)
    return build


def _upsample_repeat(a: int, b: int) -> Callable[[], onnx.ModelProto]:
    """Keras UpSampling2D((a, b)) as tf2onnx writes it on an NCHW input: repeat H then W in NHWC, back to NCHW."""
    def build() -> onnx.ModelProto:
        rng = np.random.default_rng(4)
        c, h, w = 4, 3, 5
        inits = {"wc": he(rng, c, 3, 3, 3), "bc": bias(rng, c), "ax": np.array([3], np.int64),
                 "rep_a": np.array([1, 1, 1, a, 1], np.int64), "rep_b": np.array([1, 1, 1, b, 1], np.int64),
                 "s1": np.array([1, a * h, w, c], np.int64), "s2": np.array([1, a * h, b * w, c], np.int64)}
        nodes = [helper.make_node("Conv", ["x", "wc", "bc"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
                 helper.make_node("Unsqueeze", ["c", "ax"], ["u1"]),
                 helper.make_node("Tile", ["u1", "rep_a"], ["t1"]),
                 helper.make_node("Transpose", ["t1"], ["p1"], perm=[0, 2, 3, 4, 1]),
                 helper.make_node("Reshape", ["p1", "s1"], ["r1"]),  # NHWC (1, aH, W, C)
                 helper.make_node("Unsqueeze", ["r1", "ax"], ["u2"]),
                 helper.make_node("Tile", ["u2", "rep_b"], ["t2"]),
                 helper.make_node("Reshape", ["t2", "s2"], ["r2"]),
                 helper.make_node("Transpose", ["r2"], ["up"], perm=[0, 3, 1, 2]),
                 helper.make_node("Relu", ["up"], ["y"])]
        return make_model(nodes, [1, 3, h, w], ["y"], inits)
    return build


def _transpose_pair_flatten() -> onnx.ModelProto:
    """Conv -> Transpose(0,2,3,1) -> Transpose(0,3,1,2) -> MaxPool -> Transpose(0,2,3,1) -> Reshape -> MatMul."""
    rng = np.random.default_rng(5)
    inits = {"wc": he(rng, 6, 3, 3, 3), "bc": bias(rng, 6), "shape": np.array([1, -1], np.int64),
             "fw": he(rng, 6 * 2 * 3, 5)}
    nodes = [helper.make_node("Conv", ["x", "wc", "bc"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Transpose", ["c"], ["nhwc"], perm=[0, 2, 3, 1]),
             helper.make_node("Transpose", ["nhwc"], ["nchw"], perm=[0, 3, 1, 2]),
             helper.make_node("MaxPool", ["nchw"], ["m"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Transpose", ["m"], ["t"], perm=[0, 2, 3, 1]),
             helper.make_node("Reshape", ["t", "shape"], ["f"]),
             helper.make_node("MatMul", ["f", "fw"], ["y"])]
    return make_model(nodes, [1, 3, 4, 6], ["y"], inits)


CONV_CASES: dict[str, Callable[[], onnx.ModelProto]] = {
    "k1_s1_pads_0110": _conv(1, 1, (7, 8), pads=[0, 1, 1, 0]),
    "k2_s1_same_even": _conv(2, 1, (8, 8)),
    "k2_s1_same_odd": _conv(2, 1, (7, 9)),
    "k3_s2_same_even": _conv(3, 2, (10, 8)),
    "k3_s2_same_mixed": _conv(3, 2, (10, 9)),
    "k3_s1_pads_2100": _conv(3, 1, (7, 8), pads=[2, 1, 0, 0]),
    "k5_s2_same_even": _conv(5, 2, (10, 12)),
    "k5_s1_pads_1030": _conv(5, 1, (9, 8), pads=[1, 0, 3, 0]),
    "k3_s2_d2_same": _conv(3, 2, (10, 11), dilation=2),
    "k3_s1_d2_pads_0103": _conv(3, 1, (9, 9), dilation=2, pads=[0, 1, 3, 0]),
    "dw_k3_s2_same_even": _conv(3, 2, (10, 8), depthwise=True),
    "dw_k5_s1_pads_1321": _conv(5, 1, (9, 8), depthwise=True, pads=[1, 3, 2, 1]),
    "dw_k2_s1_same_odd": _conv(2, 1, (9, 7), depthwise=True),
    "k3_s2_auto_same_upper": _conv(3, 2, (10, 9), auto_pad="SAME_UPPER"),
    "k4_s2_auto_same_lower": _conv(4, 2, (9, 10), auto_pad="SAME_LOWER"),
}

PAD_CASES: dict[str, Callable[[], onnx.ModelProto]] = {
    "pad_conv": _pad_then("Conv", [0, 1, 1, 2], (9, 10), strides=[2, 2], pads=[1, 1, 1, 1]),
    "pad_conv_valid": _pad_then("Conv", [1, 0, 0, 1], (8, 8), strides=[2, 2]),
    "pad_maxpool": _pad_then("MaxPool", [1, 0, 0, 1], (8, 9), kernel_shape=[2, 2], strides=[2, 2]),
    "pad_maxpool_same": _pad_then("MaxPool", [0, 2, 1, 0], (7, 8), kernel_shape=[3, 3], strides=[2, 2],
                                  pads=[0, 0, 1, 1]),
    "relu_pad_maxpool_stem": _pad_then("MaxPool", [1, 1, 1, 1], (12, 11), relu=True, kernel_shape=[3, 3],
                                       strides=[2, 2]),
    "relu_pad_maxpool_asym": _pad_then("MaxPool", [0, 1, 1, 0], (8, 9), relu=True, kernel_shape=[2, 2],
                                       strides=[2, 2]),
    "pad_avgpool_excl": _pad_then("AveragePool", [1, 0, 0, 1], (8, 9), kernel_shape=[3, 3], strides=[2, 2],
                                  count_include_pad=0),
    "pad_avgpool_incl": _pad_then("AveragePool", [0, 2, 2, 0], (8, 8), kernel_shape=[3, 3], strides=[1, 1],
                                  pads=[1, 1, 0, 0], count_include_pad=1),
    "pad_avgpool_end": _pad_then("AveragePool", [0, 0, 2, 2], (7, 8), kernel_shape=[3, 3], strides=[1, 1],
                                 count_include_pad=0),
}

def _pool(op: str, kernel: int, stride: int, size: tuple[int, int], **attrs: object) -> Callable[[], onnx.ModelProto]:
    """``op`` with TensorFlow 'SAME' pads of its own (no Pad node); AveragePool excludes the padding like TF."""
    def build() -> onnx.ModelProto:
        pads = same_pads(size, (kernel,) * 2, (stride,) * 2)
        node = helper.make_node(op, ["x"], ["y"], kernel_shape=[kernel] * 2, strides=[stride] * 2, pads=pads,
                                name="pool", **attrs)
        return make_model([node], [1, 4, *size], ["y"], {})
    return build


#: pooling with its own uneven pads; with the larger pad at the end at stride 1, Caffe pads by the end amount and
#: the leading outputs are sliced off
POOL_CASES: dict[str, Callable[[], onnx.ModelProto]] = {
    "maxpool_k2_s1_same_even": _pool("MaxPool", 2, 1, (8, 8)),
    "maxpool_k2_s1_same_odd": _pool("MaxPool", 2, 1, (7, 9)),
    "maxpool_k4_s1_same": _pool("MaxPool", 4, 1, (9, 8)),
    "maxpool_k3_s2_same_even": _pool("MaxPool", 3, 2, (8, 10)),
    "avgpool_k2_s1_same_excl": _pool("AveragePool", 2, 1, (8, 7), count_include_pad=0),
    "avgpool_k4_s1_same_excl": _pool("AveragePool", 4, 1, (9, 8), count_include_pad=0),
    "avgpool_k3_s2_same_excl": _pool("AveragePool", 3, 2, (8, 9), count_include_pad=0),
}

DECONV_CASES: dict[str, Callable[[], onnx.ModelProto]] = {
    "deconv_same_k3_s2": _deconv([0, 0, 1, 1]),
    "deconv_same_k4_s2": _deconv([1, 1, 1, 1], kernel=4),
    "deconv_begin_crop": _deconv([1, 0, 0, 1]),
    "deconv_output_padding": _deconv([0, 1, 1, 2], output_padding=[1, 0]),
    "deconv_grouped_same": _deconv([0, 0, 1, 1], group=2),
    "deconv_torch_output_padding": _deconv([1, 1, 1, 1], output_padding=[1, 1]),
    "deconv_bias_only_tail": _deconv([0, 0, 0, 0], output_padding=[1, 1]),
    "deconv_output_shape": _deconv(None, output_shape=[10, 11]),
    "deconv_output_shape_upper": _deconv(None, output_shape=[10, 11], auto_pad="SAME_UPPER"),
    "deconv_output_shape_lower": _deconv(None, output_shape=[9, 12], auto_pad="SAME_LOWER"),
    "deconv_auto_same_upper": _deconv(None, auto_pad="SAME_UPPER"),
    "deconv_dilated_tail": _deconv([1, 0, 0, 0], output_padding=[1, 1], stride=2, dilation=2),
}

FLATTEN_CASES: dict[str, Callable[[], onnx.ModelProto]] = {
    "flatten_matmul": _flatten("MatMul"),
    "flatten_gemm": _flatten("Gemm", "Flatten"),
    "flatten_gemm_transb": _flatten("GemmT"),
}

#: run :func:`nnbridge.hub.passes.nhwc.nchw_cleanup` first for MXNet (the Caffe lowering includes it)
NHWC_CASES: dict[str, Callable[[], onnx.ModelProto]] = {
    **FLATTEN_CASES,
    "upsample_repeat_2x2": _upsample_repeat(2, 2),
    "upsample_repeat_3x2": _upsample_repeat(3, 2),
    "transpose_pair_flatten": _transpose_pair_flatten,
}

CASES = {**CONV_CASES, **PAD_CASES, **POOL_CASES, **DECONV_CASES, **NHWC_CASES}


def input_of(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    return {"x": np.random.default_rng(seed).standard_normal(shape).astype(np.float32)}
