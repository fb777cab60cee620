"""Checkpoint pairs and .nd mean files against REAL MXNet 1.9.1 (through tests/support/mxnet_env.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nnbridge.mxnet.formats.checkpoint import (
    load_checkpoint,
    load_mean,
    load_mxnet,
    save_checkpoint,
    save_mean,
)
from nnbridge.mxnet.formats.symbol import load_symbol
from support.mxnet_env import run_mxnet

NET = r"""
data = mx.sym.var("data")
x = mx.sym.Convolution(data, kernel=(3, 3), pad=(1, 1), num_filter=8, name="conv0")
x = mx.sym.BatchNorm(x, fix_gamma=False, eps=2e-5, name="bn0")
x = mx.sym.Activation(x, act_type="relu", name="relu0")
x = mx.sym.Pooling(x, kernel=(2, 2), stride=(2, 2), pool_type="max", name="pool0")
x = mx.sym.FullyConnected(x, num_hidden=10, name="fc0")
sym = mx.sym.softmax(x, name="prob")
"""


def _realistic(shapes: dict[str, list[int]], rng: np.random.Generator) -> dict[str, np.ndarray]:
    out = {}
    for name, shape in shapes.items():
        if name.endswith("weight"):
            out[name] = rng.normal(0, np.sqrt(2 / np.prod(shape[1:])), shape)
        elif name.endswith(("gamma", "moving_var")):
            out[name] = rng.uniform(0.5, 1.5, shape)
        elif name.endswith("moving_mean"):
            out[name] = rng.normal(0, 0.2, shape)
        else:
            out[name] = rng.normal(0, 0.1, shape)
    return {k: v.astype(np.float32) for k, v in out.items()}


def test_written_checkpoint_runs_in_module_and_symbolblock(tmp_path: Path) -> None:
    info = run_mxnet(
        NET + "sym.save(args['sym'])\n"
        "a, _, x = sym.infer_shape(data=(2, 3, 8, 8))\n"
        "result['args'] = dict(zip(sym.list_arguments(), a))\n"
        "result['aux'] = dict(zip(sym.list_auxiliary_states(), x))",
        sym=tmp_path / "ref-symbol.json",
    )
    rng = np.random.default_rng(0)
    arg = _realistic({k: v for k, v in info["args"].items() if k != "data"}, rng)
    aux = _realistic(info["aux"], rng)
    graph = load_symbol(tmp_path / "ref-symbol.json")
    prefix = tmp_path / "out" / "net"
    save_checkpoint(prefix, 7, graph, arg, aux)
    assert sorted(p.name for p in prefix.parent.iterdir()) == ["net-0007.params", "net-symbol.json"]

    x = rng.normal(0, 1, (2, 3, 8, 8)).astype(np.float32)
    script = NET + r"""
from mxnet import gluon
x = mx.nd.array(arrays["x"])
ref_args = {k[4:]: mx.nd.array(v) for k, v in arrays.items() if k.startswith("arg:")}
ref_aux = {k[4:]: mx.nd.array(v) for k, v in arrays.items() if k.startswith("aux:")}
exe = sym.bind(mx.cpu(), {"data": x, **ref_args}, aux_states=ref_aux, grad_req="null")
result["ref"] = exe.forward(is_train=False)[0]

s, a, b = mx.model.load_checkpoint(args["prefix"], 7)
mod = mx.mod.Module(s, data_names=["data"], label_names=None, context=mx.cpu())
mod.bind(data_shapes=[("data", x.shape)], for_training=False)
mod.set_params(a, b)
mod.forward(mx.io.DataBatch([x]), is_train=False)
result["module"] = mod.get_outputs()[0]
result["arg_names"] = sorted(a)
result["aux_names"] = sorted(b)

net = gluon.SymbolBlock.imports(args["prefix"] + "-symbol.json", ["data"], args["prefix"] + "-0007.params")
result["gluon"] = net(x)
"""
    arrays = {"x": x, **{f"arg:{k}": v for k, v in arg.items()}, **{f"aux:{k}": v for k, v in aux.items()}}
    result = run_mxnet(script, arrays=arrays, prefix=str(prefix))
    assert result["arg_names"] == sorted(arg) and result["aux_names"] == sorted(aux)
    ref = result["ref"]
    assert ref.shape == (2, 10) and np.abs(ref.sum(axis=1) - 1).max() < 1e-5 and ref.std() > 1e-3
    for runner in ("module", "gluon"):  # different executors (oneDNN subgraphs): float32 rounding only
        assert result[runner].shape == ref.shape
        assert np.abs(result[runner] - ref).max() / np.abs(ref).max() < 1e-5, runner

    ours = load_checkpoint(prefix, 7)
    assert sorted(ours.arg_params) == sorted(arg) and sorted(ours.aux_params) == sorted(aux)
    for name, value in {**arg, **aux}.items():
        np.testing.assert_array_equal(ours.params[name], value)


def test_reads_mxnet_checkpoint_and_gluon_export(tmp_path: Path) -> None:
    script = NET + r"""
from mxnet import gluon
mod = mx.mod.Module(sym, data_names=["data"], label_names=None)
mod.bind(data_shapes=[("data", (1, 3, 8, 8))], for_training=False)
mod.init_params(mx.init.Xavier())
a, b = mod.get_params()
mx.model.save_checkpoint(args["prefix"], 12, sym, a, b)
result["arg"] = {k: v for k, v in a.items()}
result["aux"] = {k: v for k, v in b.items()}
net = gluon.nn.HybridSequential()
net.add(gluon.nn.Conv2D(4, 3), gluon.nn.BatchNorm(), gluon.nn.Dense(5))
net.initialize()
net.hybridize()
net(mx.nd.ones((1, 3, 6, 6)))
net.export(args["gluon"])
g = mx.nd.load(args["gluon"] + "-0000.params")
result["garg"] = sorted(k[4:] for k in g if k.startswith("arg:"))
result["gaux"] = sorted(k[4:] for k in g if k.startswith("aux:"))
"""
    result = run_mxnet(script, prefix=str(tmp_path / "mod"), gluon=str(tmp_path / "g"))
    ours = load_checkpoint(tmp_path / "mod", 12)
    assert sorted(ours.arg_params) == sorted(result["arg"]) and sorted(ours.aux_params) == sorted(result["aux"])
    for name, value in {**result["arg"], **result["aux"]}.items():
        np.testing.assert_array_equal(ours.params[name], value)
    assert ours.graph.nodes[ours.graph.index("bn0")].get_float("eps", 1e-3) == 2e-5
    g = load_mxnet(tmp_path / "g-symbol.json", tmp_path / "g-0000.params")
    assert sorted(g.arg_params) == result["garg"] and sorted(g.aux_params) == result["gaux"]


def test_mean_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    mean = rng.uniform(90, 130, (3, 6, 5)).astype(np.float32)
    ours = tmp_path / "mean.nd"
    save_mean(ours, mean)
    result = run_mxnet(
        "loaded = mx.nd.load(args['ours'])\nresult['keys'] = sorted(loaded)\nresult['mean'] = loaded['mean_image']\n"
        "mx.nd.save(args['theirs'], {'mean_img': mx.nd.array(arrays['m'])})",
        arrays={"m": mean[::-1].copy()}, ours=ours, theirs=tmp_path / "theirs.nd",
    )
    assert result["keys"] == ["mean_image"]
    np.testing.assert_array_equal(result["mean"], mean)
    np.testing.assert_array_equal(load_mean(tmp_path / "theirs.nd"), mean[::-1])
