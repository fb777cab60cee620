"""Symbol JSON reader/writer against REAL MXNet 1.9.1 (through tests/support/mxnet_env.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nnbridge.errors import FormatError
from nnbridge.mxnet.formats.checkpoint import aux_names
from nnbridge.mxnet.formats.symbol import (
    MxGraph,
    load_symbol,
    parse_bool,
    parse_float,
    parse_int,
    parse_symbol_json,
    parse_tuple,
    save_symbol,
)
from support.mxnet_env import run_mxnet

# Builds a graph with conv/bn/pool/fc/softmax and ops with tuple/bool/float attributes, saves it with sym.save and
# reports MXNet's own view of it (independent of the JSON text): arguments, aux states, outputs, attributes,
# each op node's type (from debug_str) and input names (from get_children).
BUILD = r"""
data = mx.sym.var("data", shape=(2, 3, 16, 16), dtype="float32")
x = mx.sym.Convolution(data, kernel=(3, 3), pad=(1, 1), stride=(1, 1), num_filter=8, name="conv0")
x = mx.sym.BatchNorm(x, fix_gamma=False, eps=1e-5, momentum=0.9, use_global_stats=True, name="bn0")
x = mx.sym.Activation(x, act_type="relu", name="relu0")
x = mx.sym.Pooling(x, kernel=(2, 2), stride=(2, 2), pool_type="max", pooling_convention="full", name="pool0")
parts = mx.sym.SliceChannel(x, num_outputs=2, axis=1, name="split0")
y = mx.sym.LeakyReLU(parts[1], act_type="leaky", slope=0.25, name="leaky0")
y = mx.sym.clip(y, a_min=-1.5, a_max=2.0, name="clip0")
y = mx.sym._internal._mul_scalar(y, scalar=0.5, name="mul0")
y = mx.sym.Deconvolution(y, kernel=(2, 2), stride=(2, 2), num_filter=4, no_bias=True, adj=(0, 0), name="deconv0")
y = mx.sym.Pooling(y, global_pool=True, pool_type="avg", kernel=(1, 1), name="gpool0")
z = mx.sym.Reshape(parts[0], shape=(0, -1), name="reshape0")
z = mx.sym.Dropout(z, p=0.5, name="drop0")
z = mx.sym.FullyConnected(z, num_hidden=10, flatten=True, name="fc0")
z = mx.sym.SoftmaxOutput(z, name="softmax")
sym = mx.sym.Group([z, mx.sym.flatten(y, name="flat0")])
sym.save(os.path.join(args["out"], "net-symbol.json"))
"""

FACTS = r"""
def facts(sym):
    internals = sym.get_internals()
    ops = {}
    for line in sym.debug_str().splitlines():
        if line.startswith("Op:"):
            op, name = line[3:].split(", Name=")
            ops[name.strip()] = op.strip()
    children = {}
    for out in internals.list_outputs():
        node = internals[out]
        kids = node.get_children()
        if kids is not None:
            children[out] = kids.list_outputs()
    return {
        "arguments": sym.list_arguments(),
        "aux": sym.list_auxiliary_states(),
        "outputs": sym.list_outputs(),
        "internals": internals.list_outputs(),
        "attrs": sym.attr_dict(),
        "ops": ops,
        "children": children,
    }
"""


def _output_names(graph: MxGraph, index: int) -> list[str]:
    node = graph.nodes[index]
    if node.is_variable:
        return [node.name]
    if node.op == "SliceChannel":
        return [f"{node.name}_output{i}" for i in range(int(node.attrs["num_outputs"]))]
    return [f"{node.name}_output"]


def _our_facts(graph: MxGraph) -> dict:
    aux = aux_names(graph)
    name_of = {}
    for i in range(len(graph.nodes)):
        for k, out in enumerate(_output_names(graph, i)):
            name_of[(i, k)] = out
    children = {}
    for i, node in enumerate(graph.nodes):
        if not node.is_variable:
            for out in _output_names(graph, i):
                children[out] = [name_of[entry] for entry in node.inputs]
    return {
        "arguments": [n.name for n in graph.nodes if n.is_variable and n.name not in aux],
        "aux": [n.name for n in graph.nodes if n.is_variable and n.name in aux],
        "outputs": [name_of[h] for h in graph.heads],
        "internals": [name for i in range(len(graph.nodes)) for name in _output_names(graph, i)],
        "attrs": {n.name: n.attrs for n in graph.nodes if n.attrs},
        "ops": {n.name: n.op for n in graph.nodes if not n.is_variable},
        "children": children,
    }


@pytest.fixture(scope="module")
def mxnet_graph(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("mxsym")
    result = run_mxnet(BUILD + FACTS + "result['facts'] = facts(sym)", out=out)
    return out / "net-symbol.json", result["facts"]


def _same_graph(a: MxGraph, b: MxGraph) -> None:
    assert [(n.op, n.name, n.attrs, n.inputs) for n in a.nodes] == [(n.op, n.name, n.attrs, n.inputs) for n in b.nodes]
    assert a.heads == b.heads
    assert a.arg_nodes == b.arg_nodes


def test_reader_matches_mxnet_view(mxnet_graph: tuple[Path, dict]) -> None:
    path, facts = mxnet_graph
    graph = load_symbol(path)
    assert graph.version == 10901
    ours = _our_facts(graph)
    for key in facts:
        assert ours[key] == facts[key], key
    conv = graph.nodes[graph.index("conv0")]
    assert conv.get_tuple("kernel", None) == (3, 3) and conv.get_int("num_filter", 0) == 8
    bn = graph.nodes[graph.index("bn0")]
    assert bn.get_bool("fix_gamma", True) is False and bn.get_float("eps", 1e-3) == 1e-5
    assert graph.nodes[graph.index("data")].get_tuple("__shape__", None) == (2, 3, 16, 16)


def test_writer_loads_in_mxnet_and_round_trips(mxnet_graph: tuple[Path, dict], tmp_path: Path) -> None:
    path, facts = mxnet_graph
    graph = load_symbol(path)
    ours = tmp_path / "ours-symbol.json"
    save_symbol(graph, ours)
    result = run_mxnet(
        FACTS + "s = mx.sym.load(args['p'])\nresult['facts'] = facts(s)\nresult['json'] = s.tojson()\n"
        "result['same'] = json.loads(s.tojson()) == json.load(open(args['orig']))",
        p=ours, orig=path,
    )
    assert result["facts"] == facts
    assert result["same"], "MXNet's re-serialisation of our file differs from its own file"
    _same_graph(parse_symbol_json(result["json"]), graph)
    assert json.loads(ours.read_text()) == json.loads(path.read_text())  # what MXNet 1.9.1 writes


def test_legacy_v08_symbol(shared_models: Path) -> None:
    legacy = shared_models / "mxnet" / "legacy_v0.8_symbol.json"
    graph = load_symbol(legacy)
    assert graph.version is None
    result = run_mxnet("result['json'] = mx.sym.load(args['p']).tojson()", p=legacy)
    upgraded = parse_symbol_json(result["json"])
    _same_graph(graph, upgraded)
    assert [n.name for n in graph.nodes if n.name.endswith(("moving_mean", "moving_var"))] == [
        "batchnorm0_moving_mean", "batchnorm0_moving_var"]


# MXNet's own parameter parser decides what each spelling means: a Convolution whose attributes are written in
# the given spellings is shape-inferred by MXNet, and the weight shape / output shape reveal the parsed values.
SPELLINGS = [
    ("(3, 3)", "(1, 1)", "True"),
    ("(3,3)", "(0,0)", "False"),
    ("[3, 3]", "[1, 1]", "true"),
    ("(3L, 3L)", "(1L, 1L)", "false"),
    ("[3,3]", "(2, 2)", "1"),
    ("(5, 3)", "(0, 1)", "0"),
]


def test_attribute_spellings_match_mxnet(tmp_path: Path) -> None:
    docs = []
    for kernel, pad, no_bias in SPELLINGS:
        attrs = {"kernel": kernel, "pad": pad, "no_bias": no_bias, "num_filter": "4"}
        nodes: list[dict[str, Any]] = [{"op": "null", "name": "data", "inputs": []},
                                       {"op": "null", "name": "c_weight", "inputs": []}]
        inputs = [[0, 0, 0], [1, 0, 0]]
        if not parse_bool(no_bias):
            nodes.append({"op": "null", "name": "c_bias", "inputs": []})
            inputs.append([2, 0, 0])
        nodes.append({"op": "Convolution", "name": "c", "attrs": attrs, "inputs": inputs})
        docs.append(json.dumps({"nodes": nodes, "arg_nodes": list(range(len(nodes) - 1)),
                                "heads": [[len(nodes) - 1, 0, 0]], "attrs": {"mxnet_version": ["int", 10901]}}))
    result = run_mxnet(
        "out = []\nfor d in args['docs']:\n"
        "    s = mx.sym.load_json(d)\n"
        "    a, o, _ = s.infer_shape(data=(1, 2, 9, 9))\n"
        "    out.append([dict(zip(s.list_arguments(), a)), o[0]])\nresult['shapes'] = out",
        docs=docs,
    )
    for (kernel, pad, no_bias), (arg_shapes, out_shape) in zip(SPELLINGS, result["shapes"], strict=True):
        k, p = parse_tuple(kernel), parse_tuple(pad)
        assert tuple(arg_shapes["c_weight"]) == (4, 2, *k)
        assert ("c_bias" not in arg_shapes) == parse_bool(no_bias)
        assert tuple(out_shape) == (1, 4, 9 + 2 * p[0] - k[0] + 1, 9 + 2 * p[1] - k[1] + 1)


def test_scalar_parsers() -> None:
    assert parse_tuple("3") == (3,) and parse_tuple("()") == () and parse_tuple("(3,)") == (3,)
    assert parse_tuple("(0.1, 0.2)", parse_float) == (0.1, 0.2)
    assert parse_int("128") == 128 and parse_int("-1") == -1 and parse_int("7L") == 7
    assert parse_float("1e-05") == 1e-5 and parse_float("0.001") == 0.001
    for bad, parser in (("yes", parse_bool), ("(3, x)", parse_tuple), ("1.5", parse_int), ("abc", parse_float)):
        with pytest.raises(ValueError):
            parser(bad)


def test_malformed_json_has_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad-symbol.json"
    bad.write_text('{\n  "nodes": [\n    {"op": "null", "name": "data" "inputs": []}\n  ]\n}\n')
    with pytest.raises(FormatError) as info:
        load_symbol(bad)
    assert f"{bad}:3:35" in str(info.value)


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ({"nodes": [{"op": "null", "name": "a", "inputs": []},
                    {"op": "Activation", "name": "act", "attrs": {"act_type": "relu"}, "inputs": [[5, 0, 0]]}],
          "heads": [[1, 0, 0]]}, "'act'"),
        ({"nodes": [{"op": "null", "name": "a", "inputs": []},
                    {"op": "Activation", "name": "loop", "inputs": [[1, 0, 0]]}], "heads": [[1, 0, 0]]}, "'loop'"),
        ({"nodes": [{"op": "null", "name": "a", "inputs": []},
                    {"op": "Convolution", "name": "conv", "attrs": {"num_filter": 8}, "inputs": [[0, 0]]}],
          "heads": [[1, 0]]}, "'conv'"),
        ({"nodes": [{"op": "null", "name": "a", "inputs": []}], "heads": [[3, 0, 0]]}, "heads"),
        ({"nodes": [{"op": "Activation", "name": "r", "inputs": []}], "arg_nodes": [0], "heads": [[0, 0]]}, "'r'"),
        ({"graph": []}, "'nodes'"),
    ],
)
def test_structural_errors_name_the_node(doc: dict, needle: str) -> None:
    with pytest.raises(FormatError) as info:
        parse_symbol_json(json.dumps(doc), path="x-symbol.json")
    assert needle in str(info.value) and "x-symbol.json" in str(info.value)
