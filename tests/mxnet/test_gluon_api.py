"""``nnbridge.gluon.convert_model`` / ``save_model``: run under the MXNet python (pycaffe is not there), the written
Caffe files checked in the main environment with REAL Caffe against REAL MXNet 1.9.1.

- ``to_bgr``: Caffe fed the BGR image computes what MXNet computes on the RGB image (every shared blob);
- ``merge_bn``: no BatchNorm layer is left, the same outputs (the folded Conv keeps the BatchNorm's output name,
  so every surviving blob is compared too);
- ``softmax``: the output ``prob`` sums to 1 and equals ``softmax`` of MXNet's logits;
- ``save_model`` with a GluonConverter-style ``NetParameter`` with blobs writes the same bytes;
- a plain (non-hybrid) ``Block`` is refused with a ``ConversionError``.

The hub-level rewrites are also checked alone in onnxruntime (no MXNet needed). Tolerance 1e-4 per blob (relative
to the blob's max): the folded weights are rounded once to float32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from support.gluon_zoo import BUILD
from support.layer_check import assert_same, caffe_module, run_hub, run_real_caffe
from support.mxnet_env import run_mxnet

RTOL, ATOL = 1e-4, 1e-6

CONVERT = BUILD + r'''
from nnbridge.gluon import convert_model, save_model
data = arrays["data"]
net = build_net(args["model"], {}, data.shape, 5)
result["logits"] = net(mx.nd.array(data))
net.export(args["ref"], epoch=0)
result["internals"], result["heads"] = symbol_internals(args["ref"], data)
text, weights = convert_model(net, data.shape, softmax=True, to_bgr=True, merge_bn=True)
save_model(text, weights, args["deploy"])
text, weights = convert_model(net, data.shape, softmax=False, to_bgr=False, merge_bn=False)
save_model(text, weights, args["plain"])
save_model(text, weights.to_proto(), args["proto"])
try:
    convert_model(mx.gluon.Block())
except Exception as exc:  # a plain Block has no symbolic graph
    result["plain_block"] = "%s: %s" % (type(exc).__name__, exc)
'''


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x.astype(np.float64) - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_convert_model_bgr_merge_bn_softmax(tmp_path: Path) -> None:
    caffe_module()
    shape = (1, 3, 112, 112)
    rgb = np.random.default_rng(11).uniform(-1.0, 1.0, shape).astype(np.float32)
    paths = {k: tmp_path / k for k in ("ref", "deploy", "plain", "proto")}
    got = run_mxnet(CONVERT, arrays={"data": rgb}, model="resnet18_v1", **paths)
    internals, heads, logits = got["internals"], got["heads"], got["logits"]
    assert len(heads) == 1 and np.abs(logits).max() > 1e-3
    assert got["plain_block"].startswith("ConversionError: convert_model needs a mxnet.gluon.HybridBlock")

    deploy_text = (tmp_path / "deploy.prototxt").read_text()
    plain_text = (tmp_path / "plain.prototxt").read_text()
    assert plain_text.count('type: "BatchNorm"') >= 20
    assert 'type: "BatchNorm"' not in deploy_text and 'type: "Softmax"' in deploy_text

    bgr = np.ascontiguousarray(rgb[:, ::-1])
    deploy = run_real_caffe(tmp_path / "deploy.prototxt", caffemodel=tmp_path / "deploy.caffemodel",
                            inputs={"data": bgr})
    assert deploy.outputs == ["prob"]
    prob = deploy.blobs["prob"]
    np.testing.assert_allclose(prob.sum(axis=1), 1.0, rtol=1e-5)
    assert_same({"prob": _softmax(logits)}, deploy.blobs, ["prob"], rtol=RTOL, atol=ATOL,
                what="softmax(MXNet logits on RGB) vs Caffe prob on BGR")
    shared = [k for k in internals if k in deploy.blobs]
    assert len(shared) > 20 and heads[0] in shared  # BatchNorm output names survive the folding
    assert_same(internals, deploy.blobs, heads, rtol=RTOL, atol=ATOL, what="MXNet (RGB) vs merged Caffe (BGR)")

    plain = run_real_caffe(tmp_path / "plain.prototxt", caffemodel=tmp_path / "plain.caffemodel",
                           inputs={"data": rgb})
    assert plain.outputs == heads
    assert_same(internals, plain.blobs, heads, rtol=RTOL, atol=ATOL, what="MXNet vs unmerged Caffe (RGB)")

    assert (tmp_path / "proto.prototxt").read_bytes() == (tmp_path / "plain.prototxt").read_bytes()
    assert (tmp_path / "proto.caffemodel").read_bytes() == (tmp_path / "plain.caffemodel").read_bytes()


# -- the rewrites alone, in onnxruntime -----------------------------------------------------------------------------
def _conv_bn_model(group: int = 1, consumer: str = "Conv"):  # type: ignore[no-untyped-def]
    from nnbridge.hub.builder import GraphBuilder

    rng = np.random.default_rng(0)
    b = GraphBuilder("t")
    x = b.input("data", [1, 4, 8, 8])
    w = b.const("conv.w", rng.normal(0, 0.3, (6, 4 // group, 3, 3)).astype(np.float32))
    bias = b.const("conv.b", rng.normal(0, 0.1, (6,)).astype(np.float32))
    first = b.op1("Conv", [x, w, bias], {"group": group, "pads": [1, 1, 1, 1]}, name="conv")
    if consumer != "Conv":
        b.op1(consumer, [x], name="side")
    stats = [rng.uniform(0.5, 1.5, 6), rng.normal(0, 0.1, 6), rng.normal(0, 0.2, 6), rng.uniform(0.5, 1.5, 6)]
    consts = [b.const(f"bn.{i}", s.astype(np.float32)) for i, s in enumerate(stats)]
    y = b.op1("BatchNormalization", [first, *consts], {"epsilon": 2e-3}, name="bn")
    b.output(b.op1("Relu", [y], name="relu"))
    return b.model()


def test_fold_batchnorm_and_bgr_and_softmax_in_onnxruntime() -> None:
    from nnbridge.gluon import convert_hub  # noqa: F401  (module imports without mxnet)
    from nnbridge.hub.passes import PassManager
    from nnbridge.hub.passes.fold_batchnorm import AppendSoftmax, FoldBatchNorm, ReverseInputChannels

    x = np.random.default_rng(1).standard_normal((1, 4, 8, 8)).astype(np.float32)
    ref = run_hub(_conv_bn_model(), {"data": x})
    model = _conv_bn_model()
    assert PassManager([FoldBatchNorm()]).run(model)
    assert [n.op_type for n in model.graph] == ["Conv", "Relu"] and model.graph.node(0).outputs[0].name == "bn"
    assert ReverseInputChannels().run(model)
    assert AppendSoftmax().run(model)
    got = run_hub(model, {"data": np.ascontiguousarray(x[:, ::-1])})
    assert_same({k: ref[k] for k in ("bn", "relu")}, got, ["relu"], rtol=RTOL, atol=ATOL, what="folded + BGR")
    np.testing.assert_allclose(got["prob"], _softmax(ref["relu"]), rtol=1e-5, atol=1e-6)


def test_to_bgr_refuses_non_conv_reader() -> None:
    from nnbridge.errors import ConversionError
    from nnbridge.hub.passes.fold_batchnorm import ReverseInputChannels

    with pytest.raises(ConversionError, match="to_bgr: input 'data' is read by.*side"):
        ReverseInputChannels().run(_conv_bn_model(consumer="Relu"))
    with pytest.raises(ConversionError, match="group 1"):
        ReverseInputChannels().run(_conv_bn_model(group=2))
