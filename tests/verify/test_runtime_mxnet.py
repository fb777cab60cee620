"""The MXNet runtime of verify: a worker in the MXNet environment returns every internal output of a checkpoint,
under hub names, equal to what real MXNet gives when each output is bound on its own."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nnbridge.errors import NNBridgeError
from nnbridge.verify import worker
from nnbridge.verify.api import choose_runtimes
from nnbridge.verify.compare import compare
from nnbridge.verify.runtimes import mxnet_rt
from nnbridge.verify.worker import run_in_worker
from support.mxnet_env import mxnet_python, run_mxnet

# Real MXNet builds a small net (conv/bn/relu/pool/split/sigmoid/fc/softmax), draws realistic weights, saves it
# as a Module checkpoint (arg:/aux: names) and as bare names (Gluon save_parameters), and computes every internal
# output with one executor per output (MXNet's default settings), as the reference.
BUILD = r'''
S = mx.sym
data = S.var("data")
conv = S.Convolution(data, kernel=(3, 3), pad=(1, 1), num_filter=8, name="conv0")
bn = S.BatchNorm(conv, fix_gamma=False, eps=1e-5, name="bn0")
relu = S.Activation(bn, act_type="relu", name="relu0")
pool = S.Pooling(relu, kernel=(3, 3), stride=(2, 2), pool_type="max", pooling_convention="full", name="pool0")
halves = S.SliceChannel(pool, num_outputs=2, name="split0")
gate = S.Activation(halves[1], act_type="sigmoid", name="sig0")
mixed = S.elemwise_mul(halves[0], gate, name="mul0")
fc = S.FullyConnected(mixed, num_hidden=10, name="fc0")
out = S.SoftmaxOutput(fc, name="softmax")
shape = tuple(args["shape"])
arg, aux = realistic_params(out, shape, 3)
mx.model.save_checkpoint(args["prefix"], 3, out, arg, aux)
mx.nd.save(args["prefix"] + "-bare.params", {**arg, **aux})
x = mx.nd.array(arrays["x"])
internals = out.get_internals()
outputs = {}
for index, name in enumerate(internals.list_outputs()):
    if "_output" not in name:
        continue
    head = internals[index]
    values = {"data": x, "softmax_label": mx.nd.zeros((shape[0],)), **arg, **aux}
    exe = head.bind(mx.cpu(), args={k: values[k] for k in head.list_arguments()},
                    aux_states={k: values[k] for k in head.list_auxiliary_states()}, grad_req="null")
    outputs[name] = exe.forward(is_train=False)[0]
result["outputs"] = outputs
'''

SHAPE = (2, 3, 11, 11)


@functools.lru_cache(maxsize=1)
def _checkpoint(folder: str) -> tuple[str, dict[str, np.ndarray], np.ndarray]:
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    prefix = os.path.join(folder, "net")
    got = run_mxnet(BUILD, arrays={"x": x}, prefix=prefix, shape=list(SHAPE))
    return prefix, got["outputs"], x


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, np.ndarray], np.ndarray]:
    mxnet_python()
    return _checkpoint(str(tmp_path_factory.mktemp("mx_rt")))


@pytest.mark.parametrize("params", ["-0003.params", "-bare.params"])
def test_worker_returns_every_internal(checkpoint: Any, params: str) -> None:
    prefix, reference, x = checkpoint
    got = run_in_worker(f"mxnet={mxnet_python()}", (prefix + "-symbol.json", prefix + params), {"data": x})
    assert got.runtime == "mxnet"
    assert got.outputs == ["softmax"]
    expected = {mxnet_rt.hub_name(name): value for name, value in reference.items()}
    assert {"conv0", "bn0", "relu0", "pool0", "split0:0", "split0:1", "sig0", "mul0", "fc0", "softmax"} <= set(got)
    assert set(expected) <= set(got)
    np.testing.assert_array_equal(got["data"], x)
    result = compare(expected, got, outputs=list(expected), rtol=1e-5, atol=1e-7)
    assert result.passed, result.table()


def test_outputs_only(checkpoint: Any) -> None:
    prefix, reference, x = checkpoint
    got = run_in_worker("mxnet", (prefix + "-symbol.json", prefix + "-0003.params"), {"data": x},
                        python=mxnet_python(), intermediates=False)
    assert set(got) == {"softmax"}
    np.testing.assert_allclose(got["softmax"], reference["softmax_output"], rtol=1e-5, atol=1e-7)


def test_missing_mxnet_python_names_the_ways_to_give_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(worker.MXNET_PYTHON_ENV, raising=False)
    monkeypatch.setattr(worker.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(NNBridgeError) as info:
        run_in_worker("mxnet", (tmp_path / "net-symbol.json", tmp_path / "net-0000.params"), {})
    assert "NNBRIDGE_MXNET_PYTHON" in str(info.value) and "--runtime mxnet=" in str(info.value)
    with pytest.raises(NNBridgeError, match="cannot import mxnet"):
        run_in_worker(f"mxnet={tmp_path / 'no-python'}", (tmp_path / "net-symbol.json",), {})


def test_hub_names_match_the_importer() -> None:
    from nnbridge.mxnet.importer import hub_name

    for name in ("conv0_output", "split0_output1", "data", "conv0_weight", "a_output_output", "x_output12"):
        assert mxnet_rt.hub_name(name) == hub_name(name)


def test_runtime_choice() -> None:
    assert choose_runtimes(None, "caffe", "mxnet") == ("caffe", "mxnet")
    assert choose_runtimes(("mxnet=/p",), "caffe", "mxnet") == ("caffe", "mxnet=/p")
    assert choose_runtimes(("mxnet=/p",), "mxnet", "onnx") == ("mxnet=/p", "onnx")
    assert choose_runtimes(("opencv", "mxnet=/p"), "caffe", "mxnet") == ("opencv", "mxnet=/p")
    with pytest.raises(NNBridgeError):
        choose_runtimes(("caffe", "onnx", "mxnet"), "caffe", "onnx")
