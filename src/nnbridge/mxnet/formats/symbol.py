"""MXNet symbol JSON (``*-symbol.json``) of every version: reader into :class:`MxGraph`, writer of the 1.x layout.

Layout (nnvm ``SaveJSON``/``LoadJSON``, MXNet 1.9.1 ``src/nnvm/legacy_json_util.cc``):

- ``nodes``: topologically ordered; each ``{"op", "name", "attrs", "inputs"}``. ``op == "null"`` is a variable
  (data input, parameter or auxiliary state). ``inputs`` entries are ``[node_id, output_index, version]`` (1.x) or
  ``[node_id, output_index]`` (0.8); ``node_id`` always refers to an earlier node.
- ``arg_nodes``: the indices of all variable nodes (arguments and auxiliary states); ``node_row_ptr``: prefix sums of
  each node's output count (redundant, recomputed by MXNet); ``heads``: the graph outputs, entries as above;
  ``attrs``: ``{"mxnet_version": ["int", 10901]}`` (absent in files older than 0.9.0).
- MXNet 0.8 files use ``param`` (op parameters) and ``attr`` (user attributes) instead of ``attrs`` and carry a
  ``backward_source_id``; on load MXNet merges both into the attribute dict and upgrades the graph:

  1. (every version < 1.9.1) user keys ``ctx_group``, ``lr_mult``, ``wd_mult``, ``force_mirroring``,
     ``mirror_stage`` become hidden keys ``__lr_mult__`` etc.; ``<arg>_<key>`` on an op node (e.g.
     ``weight_lr_mult``) moves to the op's ``<arg>`` input variable as ``__<key>__``;
  2. (< 0.9.0) auxiliary inputs missing from the file (BatchNorm's ``moving_mean``/``moving_var``) are added as new
     variables ``<node>_<arg>`` carrying a copy of the op's attributes;
  3. (< 0.9.4) BatchNorm-family aux variables get ``__init__`` ``["zero", {}]`` (index 3) and ``["one", {}]`` (4).

  This reader applies the same upgrade, so a legacy file gives the graph ``mx.sym.load(...).tojson()`` gives.

Attribute values are strings in MXNet's own spellings; :func:`parse_tuple`, :func:`parse_bool`,
:func:`parse_float`, :func:`parse_int` read them (``"(3, 3)"``, ``"(3,3)"``, ``"[3, 3]"``, ``"3"`` (a 1-tuple),
``"(3L, 3L)"`` (Python 2 longs), ``"()"``; ``"True"``/``"true"``/``"1"``; ``"1e-05"``). ``"None"`` marks an unset
optional parameter: the ``MxNode.get_*`` helpers return their default for it.

The writer emits what MXNet 1.9.1 writes: input/head triples whose version is 1 for the inputs an op mutates
(BatchNorm's aux states) and 0 otherwise, ``arg_nodes``, ``node_row_ptr`` and ``mxnet_version`` 10901.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from nnbridge.errors import FormatError
from nnbridge.fileio import atomic_write
from nnbridge.mxnet.formats.attrs import is_none, parse_bool, parse_float, parse_int, parse_tuple

logger = logging.getLogger(__name__)

T = TypeVar("T")
MXNET_VERSION = 10901  # what MXNet 1.9.1 writes
LEGACY_AUX_VERSION = 900  # 0.9.0: aux states stored in the JSON
INIT_ATTR_VERSION = 904  # 0.9.4: BatchNorm aux variables carry __init__
HIDDEN_KEYS = ("ctx_group", "lr_mult", "wd_mult", "force_mirroring", "mirror_stage")
_BN_INPUTS = ("data", "gamma", "beta", "moving_mean", "moving_var")
#: Input names of ops whose named parameters matter to the legacy upgrade (MXNet's FListInputNames).
INPUT_NAMES: dict[str, tuple[str, ...]] = {
    "BatchNorm": _BN_INPUTS,
    "BatchNorm_v1": _BN_INPUTS,
    "CuDNNBatchNorm": _BN_INPUTS,
    "SyncBatchNorm": _BN_INPUTS,
    "_contrib_SyncBatchNorm": _BN_INPUTS,
    "Convolution": ("data", "weight", "bias"),
    "Deconvolution": ("data", "weight", "bias"),
    "FullyConnected": ("data", "weight", "bias"),
    "Embedding": ("data", "weight"),
    "LeakyReLU": ("data", "gamma"),
    "SoftmaxOutput": ("data", "label"),
    "InstanceNorm": ("data", "gamma", "beta"),
    "LayerNorm": ("data", "gamma", "beta"),
}
#: Inputs each op mutates (MXNet's FMutateInputs): written with version 1, and the aux states of legacy files.
MUTATED_INPUTS: dict[str, tuple[int, ...]] = {
    op: (3, 4) for op in ("BatchNorm", "BatchNorm_v1", "CuDNNBatchNorm", "SyncBatchNorm", "_contrib_SyncBatchNorm")
}


def _rnn_outputs(attrs: dict[str, str]) -> int:
    if not parse_bool(attrs.get("state_outputs", "False")):
        return 1
    return 3 if attrs.get("mode") == "lstm" else 2


#: Output counts (hidden ones included) of multi-output ops, as MXNet 1.9.1 (pip build, oneDNN) reports them in
#: ``node_row_ptr``; other ops: 1, or the highest output index the graph references + 1.
NUM_OUTPUTS: dict[str, Callable[[dict[str, str]], int]] = {
    **{op: (lambda attrs: 3) for op in (*MUTATED_INPUTS, "InstanceNorm", "LayerNorm", "GroupNorm",
                                        "_contrib_MultiBoxTarget", "Correlation", "SpatialTransformer")},
    **{op: (lambda attrs: 2) for op in ("Dropout", "LRN", "L2Normalization", "ROIPooling", "BilinearSampler",
                                        "_contrib_box_nms")},
    "Pooling": lambda attrs: 2 if attrs.get("pool_type", "max") == "max" else 1,  # oneDNN workspace output
    "LeakyReLU": lambda attrs: 2 if attrs.get("act_type") == "rrelu" else 1,
    "topk": lambda attrs: 2 if attrs.get("ret_typ") == "both" else 1,
    "RNN": _rnn_outputs,
    "SliceChannel": lambda attrs: parse_int(attrs.get("num_outputs", "1")),
    "split": lambda attrs: parse_int(attrs.get("num_outputs", "1")),
}
_NODE_KEYS = {"op", "name", "inputs", "attrs", "attr", "param", "backward_source_id", "control_deps", "subgraphs"}


# ----------------------------------------------------------------------------------------------------- data model
@dataclass
class MxNode:
    """One node: ``op == "null"`` for variables; attribute values are MXNet's strings."""

    op: str
    name: str
    attrs: dict[str, str] = field(default_factory=dict)
    inputs: list[tuple[int, int]] = field(default_factory=list)
    subgraphs: list[Any] = field(default_factory=list)  # control-flow ops only; raw JSON

    @property
    def is_variable(self) -> bool:
        return self.op == "null"

    def _get(self, key: str, default: T, parser: Callable[[str], Any]) -> Any:
        text = self.attrs.get(key)
        if text is None or is_none(text):
            return default
        try:
            return parser(text)
        except ValueError as exc:
            raise FormatError(None, f"{exc}", location=f"node {self.name!r} ({self.op}) attribute {key!r}") from None

    def get_int(self, key: str, default: T) -> int | T:
        return self._get(key, default, parse_int)  # type: ignore[no-any-return]

    def get_float(self, key: str, default: T) -> float | T:
        return self._get(key, default, parse_float)  # type: ignore[no-any-return]

    def get_bool(self, key: str, default: T) -> bool | T:
        return self._get(key, default, parse_bool)  # type: ignore[no-any-return]

    def get_tuple(self, key: str, default: T, kind: Callable[[str], Any] = parse_int) -> tuple[Any, ...] | T:
        return self._get(key, default, lambda text: parse_tuple(text, kind))  # type: ignore[no-any-return]

    def get_str(self, key: str, default: T) -> str | T:
        return self._get(key, default, str)  # type: ignore[no-any-return]


@dataclass
class MxGraph:
    """A symbol graph: nodes in topological order, variable indices, outputs, the MXNet version that wrote it."""

    nodes: list[MxNode]
    arg_nodes: list[int]
    heads: list[tuple[int, int]]
    version: int | None = None  # attrs.mxnet_version (e.g. 10901); None for files older than 0.9.0
    path: str | None = None

    def index(self, name: str) -> int:
        """Index of the last node called ``name`` (MXNet allows duplicates; the last definition is the visible one)."""
        for i in range(len(self.nodes) - 1, -1, -1):
            if self.nodes[i].name == name:
                return i
        raise KeyError(name)

    def variables(self) -> list[MxNode]:
        return [node for node in self.nodes if node.is_variable]


# ---------------------------------------------------------------------------------------------------------- reader
def load_symbol(path: str | os.PathLike[str]) -> MxGraph:
    """Read a symbol JSON file of any MXNet version (legacy files are upgraded as MXNet 1.9.1 does)."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(path, f"cannot read symbol JSON: {exc}") from None
    return parse_symbol_json(text, path=path)


def parse_symbol_json(text: str, path: str | None = None) -> MxGraph:
    """Parse symbol JSON text; errors are :class:`FormatError` with ``line:col`` or the node at fault."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(path, f"malformed JSON: {exc.msg}", location=f"{exc.lineno}:{exc.colno}",
                          hint="is this an MXNet *-symbol.json file?") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list):
        raise FormatError(path, "not an MXNet symbol: the top level must be an object with a 'nodes' list")
    version = _version(doc.get("attrs"), path)
    nodes = [_node(raw, i, path) for i, raw in enumerate(doc["nodes"])]
    count = len(nodes)
    heads = [_entry(raw, count, path, "heads") for raw in _list(doc.get("heads", []), path, "heads")]
    if "arg_nodes" in doc:
        arg_nodes = [_index(v, count, path, "arg_nodes") for v in _list(doc["arg_nodes"], path, "arg_nodes")]
        for i in arg_nodes:
            if not nodes[i].is_variable:
                raise FormatError(path, f"arg_nodes lists {nodes[i].name!r}, an {nodes[i].op} op, not a variable",
                                  location=f"node #{i}")
    else:
        arg_nodes = [i for i, node in enumerate(nodes) if node.is_variable]
    graph = MxGraph(nodes, arg_nodes, heads, version, path)
    if version is None or version < MXNET_VERSION:
        _upgrade(graph, version or 800)
    return graph


def _list(value: Any, path: str | None, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise FormatError(path, f"'{where}' must be a list, found {type(value).__name__}")
    return value


def _index(value: Any, count: int, path: str | None, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < count:
        raise FormatError(path, f"node index {value!r} out of range (the graph has {count} nodes)", location=where)
    return value


def _entry(raw: Any, limit: int, path: str | None, where: str) -> tuple[int, int]:
    if not isinstance(raw, list) or len(raw) not in (2, 3) or not all(isinstance(v, int) for v in raw):
        raise FormatError(path, f"bad entry {raw!r}: expected [node_id, output_index] or a triple", location=where)
    if where != "heads" and not 0 <= raw[0] < limit:
        raise FormatError(path, f"input {raw!r} does not refer to an earlier node (node ids 0..{limit - 1})",
                          location=where, hint="nodes must be listed in topological order")
    node_id = _index(raw[0], limit, path, where)
    if raw[1] < 0:
        raise FormatError(path, f"negative output index in {raw!r}", location=where)
    return node_id, raw[1]


def _version(attrs: Any, path: str | None) -> int | None:
    if not isinstance(attrs, dict) or "mxnet_version" not in attrs:
        return None
    value = attrs["mxnet_version"]
    if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int):
        return value[1]
    raise FormatError(path, f"bad attrs.mxnet_version {value!r}: expected [\"int\", 10901]")


def _node(raw: Any, index: int, path: str | None) -> MxNode:
    if not isinstance(raw, dict):
        raise FormatError(path, f"node #{index} is not an object")
    name, op = raw.get("name"), raw.get("op")
    where = f"node #{index} {name!r}"
    if not isinstance(name, str) or not isinstance(op, str):
        raise FormatError(path, "a node needs string 'op' and 'name'", location=where)
    unknown = sorted(set(raw) - _NODE_KEYS)
    if unknown:
        logger.warning("%s: %s: ignoring unknown node keys %s", path or "<memory>", where, unknown)
    attrs: dict[str, str] = {}
    for key in ("param", "attr", "attrs"):  # legacy "param" and "attr" merge into the 1.x "attrs"
        section = raw.get(key) or {}
        if not isinstance(section, dict):
            raise FormatError(path, f"'{key}' must be an object", location=where)
        for k, v in section.items():
            if not isinstance(v, str):
                raise FormatError(path, f"attribute {k!r} = {v!r} is not a string", location=where,
                                  hint="MXNet stores every attribute value as a string, e.g. \"(3, 3)\"")
            attrs[k] = v
    inputs = [_entry(e, index, path, where) for e in _list(raw.get("inputs", []), path, f"{where} inputs")]
    subgraphs = raw.get("subgraphs") or []
    return MxNode(op=op, name=name, attrs=attrs, inputs=inputs, subgraphs=list(subgraphs))


# ---------------------------------------------------------------------------------------------- legacy upgrade
def _fix_hidden_keys(graph: MxGraph) -> None:
    """Upgrade step 1 (see the module docstring): user keys -> ``__key__`` hidden keys."""
    for node in graph.nodes:
        kept: dict[str, str] = {}
        moved: dict[str, str] = {}
        for key, value in node.attrs.items():
            target = _hidden_target(node, key, graph)
            if target is None:
                kept[key] = value
            elif target[0] < 0:
                moved[target[1]] = value
            else:
                graph.nodes[node.inputs[target[0]][0]].attrs[target[1]] = value
        node.attrs = {**kept, **moved}


def _hidden_target(node: MxNode, key: str, graph: MxGraph) -> tuple[int, str] | None:
    """(-1, hidden key) for the node itself, (input position, hidden key) for an input variable, None to keep."""
    for hidden in HIDDEN_KEYS:
        pos = key.rfind(hidden)
        if pos == -1 or not (pos == 0 or pos == len(key) - len(hidden)):
            continue
        if pos == 0 and len(key) == len(hidden):
            return -1, f"__{hidden}__"
        if pos > 1 and pos == len(key) - len(hidden) and not node.is_variable:
            names = INPUT_NAMES.get(node.op, ())
            arg = key[: pos - 1]
            if arg in names and names.index(arg) < len(node.inputs):
                source = node.inputs[names.index(arg)][0]
                if graph.nodes[source].is_variable:
                    return names.index(arg), f"__{hidden}__"
        return None
    return None


def _upgrade(graph: MxGraph, version: int) -> None:
    _fix_hidden_keys(graph)
    if version >= INIT_ATTR_VERSION:
        return
    if version < LEGACY_AUX_VERSION:
        _add_aux_variables(graph)
    for node in graph.nodes:
        for position in MUTATED_INPUTS.get(node.op, ()):
            if position < len(node.inputs):
                var = graph.nodes[node.inputs[position][0]]
                if var.is_variable and "__init__" not in var.attrs:
                    var.attrs["__init__"] = '["zero", {}]' if position == 3 else '["one", {}]'


def _add_aux_variables(graph: MxGraph) -> None:
    """Upgrade step 2: insert ``<node>_moving_mean``/``_moving_var`` variables right before their BatchNorm."""
    nodes: list[MxNode] = []
    remap: list[int] = []
    for node in graph.nodes:
        node.inputs = [(remap[i], k) for i, k in node.inputs]
        names = INPUT_NAMES.get(node.op, ())
        if node.op in MUTATED_INPUTS and len(node.inputs) < len(names):
            for arg in names[len(node.inputs):]:
                node.inputs.append((len(nodes), 0))
                nodes.append(MxNode("null", f"{node.name}_{arg}", dict(node.attrs)))
                logger.debug("legacy upgrade: added aux variable %s", nodes[-1].name)
        remap.append(len(nodes))
        nodes.append(node)
    graph.nodes = nodes
    graph.heads = [(remap[i], k) for i, k in graph.heads]
    graph.arg_nodes = [i for i, node in enumerate(nodes) if node.is_variable]


# ---------------------------------------------------------------------------------------------------------- writer
def num_outputs(node: MxNode, referenced: int) -> int:
    """How many outputs ``node`` has: known multi-output ops by table, else the highest index referenced + 1."""
    counter = NUM_OUTPUTS.get(node.op)
    count = counter(node.attrs) if counter else 1
    return max(count, referenced)


def symbol_to_dict(graph: MxGraph) -> dict[str, Any]:
    """The JSON document MXNet 1.9.1 would write for ``graph``."""
    referenced = [0] * len(graph.nodes)
    for node in graph.nodes:
        for i, k in node.inputs:
            referenced[i] = max(referenced[i], k + 1)
    for i, k in graph.heads:
        referenced[i] = max(referenced[i], k + 1)
    nodes, row_ptr = [], [0]
    for index, node in enumerate(graph.nodes):
        mutated = MUTATED_INPUTS.get(node.op, ())
        for i, _ in node.inputs:
            if i >= index:
                raise FormatError(graph.path, f"input #{i} is not an earlier node", location=f"node {node.name!r}",
                                  hint="nodes must be in topological order")
        entry: dict[str, Any] = {"op": node.op, "name": node.name}
        if node.attrs:
            entry["attrs"] = {k: str(v) for k, v in node.attrs.items()}
        entry["inputs"] = [[i, k, 1 if pos in mutated else 0] for pos, (i, k) in enumerate(node.inputs)]
        if node.subgraphs:
            entry["subgraphs"] = node.subgraphs
        nodes.append(entry)
        row_ptr.append(row_ptr[-1] + (1 if node.is_variable else num_outputs(node, referenced[index])))
    return {
        "nodes": nodes,
        "arg_nodes": [i for i, node in enumerate(graph.nodes) if node.is_variable],
        "node_row_ptr": row_ptr,
        "heads": [[i, k, 0] for i, k in graph.heads],
        "attrs": {"mxnet_version": ["int", MXNET_VERSION]},
    }


def _dump(value: Any, indent: str) -> str:
    """JSON with objects and lists of objects one item per line, flat lists inline (MXNet's own layout)."""
    inner = indent + "  "
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(k)}: {_dump(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        return "[\n" + ",\n".join(inner + _dump(v, inner) for v in value) + "\n" + indent + "]"
    return json.dumps(value)


def symbol_to_json(graph: MxGraph) -> str:
    """Symbol JSON text laid out as MXNet writes it."""
    return _dump(symbol_to_dict(graph), "")


def save_symbol(graph: MxGraph, path: str | os.PathLike[str]) -> None:
    """Write ``graph`` as 1.x symbol JSON, atomically."""
    text = symbol_to_json(graph)
    with atomic_write(path, "w") as handle:
        handle.write(text)


def make_graph(nodes: Sequence[MxNode], heads: Sequence[tuple[int, int]]) -> MxGraph:
    """A graph from nodes and heads with ``arg_nodes`` derived (for writers that build graphs)."""
    return MxGraph(list(nodes), [i for i, n in enumerate(nodes) if n.is_variable], list(heads), MXNET_VERSION)



__all__ = [
    "MxGraph",
    "MxNode",
    "is_none",
    "load_symbol",
    "make_graph",
    "num_outputs",
    "parse_bool",
    "parse_float",
    "parse_int",
    "parse_symbol_json",
    "parse_tuple",
    "save_symbol",
    "symbol_to_dict",
    "symbol_to_json",
]
