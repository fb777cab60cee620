"""The NCHW passes on hub models, checked in onnxruntime (before vs after): FoldFlattenTranspose (Keras Flatten
after a conv stack), when it must not fire, and the Caffe lowering of zero Pads (fold into Conv with unequal
sides, materialise before MaxPool). The real-runtime checks of the same models are in
tests/caffe/export/test_asymmetric_pad.py (real Caffe) and tests/mxnet/test_export_asymmetric_pad.py (MXNet)."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import helper

from nnbridge.hub.passes import FoldFlattenTranspose, FoldRepeatUpsample, FoldTransposePair, caffe_lowering
from nnbridge.hub.passes.graph import CAFFE_DOMAIN
from nnbridge.hub.passes.nhwc import nchw_cleanup, nhwc_row_order
from nnbridge.verify.compare import compare
from support.asym_cases import FLATTEN_CASES, NHWC_CASES, PAD_CASES, input_of
from support.layer_check import run_hub


def test_row_order_is_the_nhwc_flatten_permutation() -> None:
    x = np.random.default_rng(0).standard_normal((1, 3, 4, 5))
    nhwc_flat = x.transpose(0, 2, 3, 1).reshape(-1)
    np.testing.assert_array_equal(nhwc_flat[nhwc_row_order(3, 4, 5)], x.reshape(-1))


def _ops(model: ir.Model) -> list[str]:
    return [node.op_type for node in model.graph]


@pytest.mark.parametrize("case", list(FLATTEN_CASES))
def test_fold_flatten_transpose(case: str) -> None:
    proto = FLATTEN_CASES[case]()
    feeds = input_of(proto)
    reference = run_hub(ir.serde.deserialize_model(proto), feeds)
    model = ir.serde.deserialize_model(proto)
    manager = nchw_cleanup()
    assert manager.run(model)
    assert manager.fired == {"fold-flatten-transpose": 1}
    assert "Transpose" not in _ops(model) and "Reshape" not in _ops(model)
    names = {v.name for node in model.graph for v in node.outputs}
    assert "t" not in names and "f" not in names and "f/nchw" in names
    assert set(model.graph.initializers) <= {"wc", "bc", "fb", "fw/nchw"}  # the NHWC weight and shape went
    got = run_hub(model, feeds)
    result = compare(reference, got, outputs=["y"], rtol=1e-5, atol=1e-6)
    assert result.passed, result.table()
    assert {"c", "r", "y"} <= {row.name for row in result.rows if row.max_abs is not None}


def _flatten_variant(perm: list[int], shape: list[int], extra_reader: bool = False) -> onnx.ModelProto:
    rng = np.random.default_rng(1)
    k = int(np.prod(shape[1:]))
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=perm),
             helper.make_node("Reshape", ["t", "shape"], ["f"]),
             helper.make_node("MatMul", ["f", "w"], ["y"])]
    outputs = [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)]
    if extra_reader:
        nodes.append(helper.make_node("Relu", ["t"], ["z"]))
        outputs.append(helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, None))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 4, 5])], outputs,
        [onnx.numpy_helper.from_array(np.array(shape, np.int64), "shape"),
         onnx.numpy_helper.from_array(rng.standard_normal((k, 2)).astype(np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)


@pytest.mark.parametrize(("perm", "shape", "extra"), [
    ([0, 3, 1, 2], [1, 60], False),  # not the NHWC permutation
    ([0, 2, 3, 1], [1, 60], True),  # the transposed value has another reader
    ([0, 2, 3, 1], [4, 15], False),  # not a flatten to (N, C*H*W)
])
def test_fold_flatten_transpose_does_not_fire(perm: list[int], shape: list[int], extra: bool) -> None:
    model = ir.serde.deserialize_model(_flatten_variant(perm, shape, extra))
    assert not FoldFlattenTranspose().run(model)
    assert "Transpose" in _ops(model)


def test_zero_pads_lowered_for_caffe() -> None:
    """Unequal-sided Pad before Conv folds into the Conv's pads; before MaxPool it becomes a Deconvolution."""
    conv = ir.serde.deserialize_model(PAD_CASES["pad_conv"]())
    caffe_lowering().run(conv)
    node = next(iter(conv.graph))
    assert _ops(conv) == ["Conv"] and list(node.attributes["pads"].value) == [1, 2, 2, 3]
    pool = ir.serde.deserialize_model(PAD_CASES["pad_maxpool"]())
    manager = caffe_lowering()
    manager.run(pool)
    assert "materialize-zero-pad" in manager.fired
    lowered = [(n.domain, n.op_type) for n in pool.graph]
    assert lowered[:2] == [(CAFFE_DOMAIN, "Deconvolution"), (CAFFE_DOMAIN, "Pooling")], lowered  # (+ Slice)
    assert [v.name for v in next(iter(pool.graph)).outputs] == ["p"]  # the padded blob keeps its name


def test_nonzero_pad_value_not_materialised() -> None:
    proto = PAD_CASES["pad_maxpool"]()
    proto.graph.initializer.append(onnx.numpy_helper.from_array(np.array(1.5, np.float32), "v"))
    proto.graph.node[0].input.append("v")
    model = ir.serde.deserialize_model(proto)
    caffe_lowering().run(model)
    assert "Pad" in _ops(model)


@pytest.mark.parametrize("case", ["upsample_repeat_2x2", "upsample_repeat_3x2", "transpose_pair_flatten"])
def test_nhwc_chains_folded_exactly(case: str) -> None:
    proto = NHWC_CASES[case]()
    feeds = input_of(proto)
    reference = run_hub(ir.serde.deserialize_model(proto), feeds)
    model = ir.serde.deserialize_model(proto)
    manager = nchw_cleanup()
    manager.run(model)
    assert not {"Transpose", "Tile", "Unsqueeze", "Reshape"} & set(_ops(model)), _ops(model)
    if case.startswith("upsample"):
        assert _ops(model) == ["Conv", "Resize", "Relu"] and manager.fired == {"fold-repeat-upsample": 1}
    got = run_hub(model, feeds)
    exact = case.startswith("upsample")  # pure data movement: bit-exact (a dense layer may sum in another order)
    result = compare(reference, got, outputs=["y"], rtol=0 if exact else 1e-5, atol=0 if exact else 1e-6)
    assert result.passed, result.table()


def test_repeat_chain_with_another_map_is_kept() -> None:
    """The same ops with the NHWC view reshaped as NCHW (a scramble, not an upsampling) stay as they are."""
    proto = NHWC_CASES["upsample_repeat_2x2"]()
    init = next(i for i in proto.graph.initializer if i.name == "s1")
    init.CopyFrom(onnx.numpy_helper.from_array(np.array([1, 4, 6, 5], np.int64), "s1"))
    model = ir.serde.deserialize_model(proto)
    assert not FoldRepeatUpsample().run(model)
    assert "Resize" not in _ops(model)


def test_transpose_pair_composed() -> None:
    graph = helper.make_graph(
        [helper.make_node("Transpose", ["x"], ["a"], perm=[0, 2, 3, 1]),
         helper.make_node("Transpose", ["a"], ["y"], perm=[0, 2, 1, 3])],
        "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 4, 5])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)])
    model = ir.serde.deserialize_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    x = np.random.default_rng(0).standard_normal((1, 3, 4, 5)).astype(np.float32)
    assert FoldTransposePair().run(model)
    assert _ops(model) == ["Transpose"]
    np.testing.assert_array_equal(run_hub(model, {"x": x})["y"], x.transpose(0, 2, 3, 1).transpose(0, 2, 1, 3))
