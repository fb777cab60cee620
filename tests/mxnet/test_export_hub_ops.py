"""Hub (ONNX) ops Caffe never produces, exported to MXNet and run in REAL MXNet 1.9.1 against onnxruntime:
asymmetric pads (explicit ``Pad`` before Convolution / Pooling, with the AVE divisor map), ceil-mode pooling,
asymmetric ConvTranspose (cropped with ``slice``)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper

from nnbridge.mxnet.exporter import export_mxnet, save_mxnet
from nnbridge.verify.compare import compare
from support.mxnet_env import mxnet_python, run_mxnet

SCRIPT = r'''
sym, arg_params, aux_params = mx.model.load_checkpoint(args["prefix"], 0)
mod = mx.mod.Module(sym, data_names=["x"], label_names=None, context=mx.cpu())
mod.bind(data_shapes=[("x", arrays["x"].shape)], for_training=False)
mod.set_params(arg_params, aux_params)
mod.forward(mx.io.DataBatch([mx.nd.array(arrays["x"])]), is_train=False)
result["y"] = mod.get_outputs()[0]
'''


def _model(node: onnx.NodeProto, shape: list[int], inits: list[onnx.TensorProto]) -> onnx.ModelProto:
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


CASES = {
    "maxpool_asym": (helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                                      pads=[0, 1, 2, 2]), []),
    "avgpool_asym_excl": (helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[1, 2],
                                           pads=[0, 1, 2, 2], count_include_pad=0), []),
    "avgpool_asym_incl": (helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 2], strides=[1, 1],
                                           pads=[2, 0, 0, 1], count_include_pad=1), []),
    "maxpool_ceil": (helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                                      ceil_mode=1), []),
    "conv_asym": (helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], pads=[0, 1, 2, 1]), ["w"]),
    "deconv_asym": (helper.make_node("ConvTranspose", ["x", "wt"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                                     pads=[0, 1, 1, 2], output_padding=[1, 0]), ["wt"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hub_op_in_real_mxnet(case: str) -> None:
    import onnxruntime as ort

    mxnet_python()
    rng = np.random.default_rng(0)
    node, names = CASES[case]
    weights = {"w": rng.normal(0, 0.3, (4, 3, 3, 3)), "wt": rng.normal(0, 0.3, (3, 2, 3, 3))}
    inits = [onnx.numpy_helper.from_array(weights[n].astype(np.float32), n) for n in names]
    proto = _model(node, [1, 3, 9, 8], inits)
    x = rng.standard_normal((1, 3, 9, 8)).astype(np.float32)
    ref = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    export = export_mxnet(ir.serde.deserialize_model(proto))
    with tempfile.TemporaryDirectory() as tmp:
        save_mxnet(export, Path(tmp) / "m")
        got = run_mxnet(SCRIPT, arrays={"x": x}, prefix=str(Path(tmp) / "m"))
    result = compare({"y": ref}, {"y": got["y"]}, outputs=["y"], rtol=1e-5)
    assert result.passed, f"{case}:\n{result.table()}"
