"""tf2onnx's size-1 artefacts (``nnbridge.hub.passes.cleanup``), which it emits only for some graphs (e.g. a 32 px
ResNet50's last stage, depending on TensorFlow's graph rewrites): a hand-built hub graph with all three, checked
in real Caffe and real MXNet 1.9.1 against onnxruntime on the hub model (rel err <= 1e-5 per output), and the
passes must have fired.

- ``Conv(x, W, b)`` with a computed bias ``b`` (M,) (tf2onnx fuses a residual Add into the bias);
- ``ReduceMean`` over axes of size 1 (a global mean of a 1x1 map, NHWC axes (1, 2));
- ``Add`` of (1, C) and (C,) (a BiasAdd whose operand was squeezed).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from nnbridge.hub.builder import GraphBuilder
from support.layer_check import caffe_module, realistic_blob


def _model():  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    b = GraphBuilder("degenerate")
    x = b.input("data", [1, 8, 4, 4])
    w = b.const("conv.weight", realistic_blob(rng, "weight", (6, 8, 3, 3)))
    w2 = b.const("side.weight", realistic_blob(rng, "weight", (6, 8, 4, 4)))
    side = b.op1("Conv", [x, w2], {"kernel_shape": [4, 4]}, name="side")  # (1, 6, 1, 1)
    bias = b.op1("Reshape", [side, b.int64s("flat", [6])], name="bias")  # computed (6,)
    conv = b.op1("Conv", [x, w, bias], {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
                 name="conv")  # (1, 6, 2, 2)
    relu = b.op1("Relu", [conv], name="relu")
    pooled = b.op1("GlobalAveragePool", [relu], name="pool")  # (1, 6, 1, 1)
    nhwc = b.op1("Reshape", [pooled, b.int64s("nhwc", [1, 1, 1, 6])], name="nhwc")
    mean = b.op1("ReduceMean", [nhwc], {"axes": [1, 2], "keepdims": 0}, name="mean")  # size-1 axes: (1, 6)
    other = b.op1("Reshape", [side, b.int64s("vec", [6])], name="vec")
    out = b.op1("Add", [mean, other], name="out")  # (1, 6) + (6,)
    b.output(out)
    return b.model()


def test_degenerate_shapes_in_real_caffe_and_mxnet() -> None:
    from nnbridge.caffe.exporter import export_caffe
    from nnbridge.caffe.formats.net import save_caffe
    from nnbridge.mxnet.exporter import export_mxnet, save_mxnet
    from nnbridge.verify.compare import compare
    from nnbridge.verify.runtimes import onnxruntime_rt
    from nnbridge.verify.worker import run_in_worker
    from support.mxnet_env import mxnet_python

    caffe_module()
    python = mxnet_python()
    model = _model()
    feeds = {"data": np.random.default_rng(1).standard_normal((1, 8, 4, 4)).astype(np.float32)}
    reference = dict(onnxruntime_rt.run(model, feeds, intermediates=False))
    caffe_export = export_caffe(model)
    mx_export = export_mxnet(model)
    for notes in (caffe_export.notes, mx_export.notes):
        text = " ".join(notes)
        for name in ("split-computed-bias", "degenerate-reduce", "reshape-broadcast-operand"):
            assert name in text, notes
    with tempfile.TemporaryDirectory() as tmp:
        save_caffe(caffe_export.net, caffe_export.blobs, Path(tmp) / "n.prototxt", Path(tmp) / "n.caffemodel")
        symbol, params = save_mxnet(mx_export, Path(tmp) / "n")
        runs = {"caffe": run_in_worker("pycaffe", (Path(tmp) / "n.prototxt", Path(tmp) / "n.caffemodel"), feeds),
                "mxnet": run_in_worker(f"mxnet={python}", (symbol, params), feeds)}
    assert float(np.abs(reference["out"]).max()) > 1e-3
    for target, blobs in runs.items():
        result = compare(reference, blobs, outputs=["out"], rtol=1e-5, atol=1e-6)
        assert result.passed, f"onnxruntime vs real {target}:\n{result.table()}"
