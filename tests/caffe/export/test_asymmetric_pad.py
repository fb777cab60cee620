"""TensorFlow-style asymmetric padding exported to Caffe exactly: onnxruntime on the ONNX model vs REAL Caffe
(pycaffe) on the export, every blob both sides have compared by name.

Conv with pads ``b != e`` (widened kernel + Slice/Silence), zero ``Pad`` before Conv / MaxPool /
AveragePool (folded, absorbed or materialised by a padding Deconvolution), ConvTranspose 'same' (Slice),
and Keras' Flatten after a conv stack (the NHWC Transpose folded into the dense weights).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import pytest

from nnbridge.caffe.exporter import CaffeExport, export_caffe
from nnbridge.errors import UnsupportedOpsError
from support.asym_cases import (
    CASES,
    CONV_CASES,
    DECONV_CASES,
    FLATTEN_CASES,
    NHWC_CASES,
    PAD_CASES,
    POOL_CASES,
    _deconv,
    input_of,
)
from support.layer_check import caffe_module, run_hub, run_real_caffe

RTOL = 1e-5


def _check(case: str) -> tuple[CaffeExport, list[str]]:
    """Export ``CASES[case]``, run both sides, compare; return the export and the compared blob names."""
    from nnbridge.caffe.formats.net import save_caffe
    from nnbridge.verify.compare import compare

    caffe_module()
    proto = CASES[case]()
    feeds = input_of(proto)
    reference = run_hub(ir.serde.deserialize_model(proto), feeds)
    export = export_caffe(ir.serde.deserialize_model(proto))
    with tempfile.TemporaryDirectory() as tmp:
        prototxt, caffemodel = Path(tmp) / "net.prototxt", Path(tmp) / "net.caffemodel"
        save_caffe(export.net, export.blobs, prototxt, caffemodel)
        got = run_real_caffe(prototxt, caffemodel=caffemodel, inputs=feeds).blobs
    result = compare(reference, got, outputs=["y"], rtol=RTOL, atol=1e-6)
    assert result.passed, f"{case}: onnxruntime vs real Caffe\n{result.table()}"
    compared = [row.name for row in result.rows if row.max_abs is not None]
    return export, compared


def _types(export: CaffeExport) -> list[str]:
    return [layer.type for layer in export.net.layer]


@pytest.mark.parametrize("case", list(CONV_CASES))
def test_conv_asymmetric_pads(case: str) -> None:
    export, compared = _check(case)
    assert {"x", "c", "y"} <= set(compared)
    types = _types(export)
    assert types.count("Convolution") == 1
    assert set(types) <= {"Convolution", "ReLU", "Slice", "Silence"}, types
    if case in ("k3_s2_same_even", "dw_k3_s2_same_even", "k2_s1_same_even"):
        assert types == ["Convolution", "ReLU"]  # the widened kernel gives ONNX's output size: one layer


@pytest.mark.parametrize("case", list(PAD_CASES))
def test_zero_pad_before_conv_and_pool(case: str) -> None:
    export, compared = _check(case)
    assert "y" in compared
    types = _types(export)
    if case.startswith("pad_conv"):
        assert types == ["Convolution"]  # the Pad is folded into the (widened) convolution
    elif case.startswith("relu_pad_maxpool"):
        assert types[:2] == ["ReLU", "Pooling"] and "Deconvolution" not in types  # max(x >= 0, 0) = max(x)
    elif case.startswith("pad_maxpool"):
        assert types[:2] == ["Deconvolution", "Pooling"] and "p" in compared  # materialised zeros, compared
    else:
        assert "Pooling" in types and set(types) <= {"Deconvolution", "Pooling", "Scale", "Slice", "Silence"}


@pytest.mark.parametrize("case", list(POOL_CASES))
def test_pool_with_uneven_own_pads(case: str) -> None:
    """TF 'SAME' pooling: one Pooling layer (+ Slice/Silence for a larger end pad, + Scale for the AVE divisor)."""
    export, compared = _check(case)
    assert "y" in compared
    types = _types(export)
    assert types.count("Pooling") == 1 and set(types) <= {"Pooling", "Scale", "Slice", "Silence"}
    if "_s1_" in case:
        assert "Slice" in types  # Caffe padded by the end amount: the leading outputs are cut off


def test_padding_deconvolution_is_bit_exact() -> None:
    """The materialised padding (Caffe blob ``p``) equals numpy's zero padding exactly, not just within rtol."""
    from nnbridge.caffe.formats.net import save_caffe

    caffe_module()
    proto = PAD_CASES["pad_maxpool_same"]()
    feeds = input_of(proto)
    export = export_caffe(ir.serde.deserialize_model(proto))
    with tempfile.TemporaryDirectory() as tmp:
        prototxt, caffemodel = Path(tmp) / "net.prototxt", Path(tmp) / "net.caffemodel"
        save_caffe(export.net, export.blobs, prototxt, caffemodel)
        got = run_real_caffe(prototxt, caffemodel=caffemodel, inputs=feeds).blobs
    expected = np.pad(feeds["x"], ((0, 0), (0, 0), (0, 1), (2, 0)))
    np.testing.assert_array_equal(got["p"], expected)


@pytest.mark.parametrize("case", list(DECONV_CASES))
def test_conv_transpose_asymmetric_pads(case: str) -> None:
    export, compared = _check(case)
    assert "y" in compared
    types = _types(export)
    assert types.count("Deconvolution") == 1 and set(types) <= {"Deconvolution", "Slice", "Silence"}, types
    if case == "deconv_same_k4_s2":
        assert types == ["Deconvolution"]


@pytest.mark.parametrize("case", list(FLATTEN_CASES))
def test_flatten_transpose_folded(case: str) -> None:
    export, compared = _check(case)
    types = _types(export)
    assert "Permute" not in types and types[-1] == "InnerProduct", types
    assert {"x", "c", "y"} <= set(compared)
    assert not {"t", "f"} & {top for layer in export.net.layer for top in layer.top}


@pytest.mark.parametrize("case", sorted(set(NHWC_CASES) - set(FLATTEN_CASES)))
def test_nhwc_chains_folded(case: str) -> None:
    """UpSampling2D's repeat chain -> one upsampling Deconvolution; a Transpose pair disappears."""
    export, compared = _check(case)
    types = _types(export)
    assert "Permute" not in types and not {"Tile", "Reshape"} & set(types), types
    assert {"x", "c", "y"} <= set(compared)
    if case.startswith("upsample"):
        assert types == ["Convolution", "Deconvolution", "ReLU"] and "up" in compared


def test_conv_transpose_too_large_output_shape_refused() -> None:
    proto = _deconv(None, output_shape=[10, 12])()
    node = proto.graph.node[0]
    del node.attribute[[a.name for a in node.attribute].index("output_shape")]
    node.attribute.append(onnx.helper.make_attribute("output_shape", [10, 14]))
    out = proto.graph.value_info[0] if proto.graph.value_info else proto.graph.output[0]
    out.type.tensor_type.shape.dim[3].dim_value = 14
    with pytest.raises(UnsupportedOpsError, match=r"ConvTranspose x1 \(deconv\).*larger than the transposed"):
        export_caffe(ir.serde.deserialize_model(proto))
