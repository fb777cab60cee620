"""Restore the Caffe layers the importer expanded: exact by construction.

Every node the Caffe importer makes for layer ``L`` carries ``metadata_props`` ``caffe.layer = L``,
``caffe.type``, ``caffe.param`` (the layer's text without name, type and blobs) and ``caffe.bottoms`` (JSON
list of the hub names of its bottoms); see :attr:`nnbridge.caffe.importer.LayerContext.provenance`.

A group of nodes sharing ``caffe.layer`` is *intact* when importing the layer again -- same text, bottoms of
the same shapes, blobs recovered from the group's own constants -- rebuilds the group node for node: same op
types, domains and attributes, the same wiring, bit-identical constants, and every value of the group read
outside it (or a graph output) is one of the layer's tops. The importer's contract (tested against real
Caffe) is that the rebuilt nodes compute what the layer computes, so an intact group is replaced by one
internal :data:`~nnbridge.hub.passes.graph.CAFFE_DOMAIN` node that re-emits the layer with its original
parameters. Groups that are not intact (a foreign tool edited them, a bottom disappeared...) are left to the
structural passes and exporters.

Blob recovery: the importer asks for blob ``i`` of kind ``k`` and shape ``s`` and names the initializer
``"{L}.{k}"``; the recovering source returns that initializer reshaped to ``s`` (a view: memory-mapped
weights stay mapped). BatchNorm stores ``mean / f`` and ``var / f`` under those names and has no
``scale_factor`` initializer: ``f = 1`` is recovered, exact because ``x * 1 == x`` in float32 (the rebuilt
constants are compared bit for bit anyway). Caffe stores the single value of ``PReLU``/``Normalize`` with
``channel_shared`` and of ``Scale``/``Bias`` with ``num_axes: 0`` as a 0-D blob; the importer reads it as
``(1,)``, so those blobs are written back 0-D. A BatchNorm with ``use_global_stats: false`` reads no blob but
Caffe loads three: zeros (they only feed the running averages, never the output).

Caffe forks disagree on some defaults (``prior_box_param.clip``: false in weiliu89/caffe, true in some
builds): such fields are written explicitly with the value the importer used.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx_ir as ir

from nnbridge.errors import NNBridgeError
from nnbridge.hub.passes.base import Pass
from nnbridge.hub.passes.graph import CAFFE_DOMAIN, const_array, shape_of

logger = logging.getLogger(__name__)

#: (param message, field) whose default differs between Caffe forks: always written explicitly.
FORK_DEFAULTS: tuple[tuple[str, str], ...] = (("prior_box_param", "clip"),)
#: Blob kinds the importer reads without keeping an initializer of their own, and their exact value.
DERIVED_KINDS: dict[str, float] = {"scale_factor": 1.0}


class NotIntact(Exception):
    """The group of nodes no longer is what the importer made of the layer."""


@dataclass
class RestoredLayer:
    layer: str
    type: str
    nodes: list[ir.Node]
    bottoms: list[ir.Value]
    tops: list[ir.Value]
    blobs: list[np.ndarray]
    text: str


class _RecoveringWeights:
    """A WeightSource serving a layer's blobs from the group's initializers named ``{layer}.{kind}``."""

    def __init__(self, layer: str, constants: dict[str, np.ndarray]) -> None:
        self.layer = layer
        self.constants = constants
        self.served: dict[int, np.ndarray] = {}

    def count(self, layer: str) -> int | None:
        return None

    def get(self, layer: str, index: int, shape: tuple[int, ...], kind: str) -> np.ndarray:
        array = self.constants.get(f"{layer}.{kind}")
        if array is None:
            if kind not in DERIVED_KINDS:
                raise NotIntact(f"no initializer {layer}.{kind} to recover blob {index} from")
            array = np.full(shape, DERIVED_KINDS[kind], np.float32)
        if array.dtype != np.float32 or array.size != int(np.prod(shape)):
            raise NotIntact(f"initializer {layer}.{kind} of shape {array.shape} cannot be blob {index} {shape}")
        array = array.reshape(shape)
        self.served[index] = array
        return array


def _attr_key(node: ir.Node) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, a in node.attributes.items():
        value = a.value
        if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
            value = list(value)
        out[name] = (a.type, value)
    return out


def _same_const(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    return a is not None and b is not None and a.dtype == b.dtype and a.shape == b.shape and \
        bool(np.array_equal(a, b))


def _caffe_blob(layer: Any, index: int, array: np.ndarray, bottoms: int) -> np.ndarray:
    """The blob in Caffe's own shape (0-D for the shared scalar parameters, see the module doc)."""
    if array.shape != (1,):
        return array
    kind = layer.type
    scalar = (kind == "PReLU" and layer.prelu_param.channel_shared) or \
        (kind == "Normalize" and layer.norm_param.channel_shared) or \
        (kind == "Scale" and bottoms == 1 and layer.scale_param.num_axes == 0) or \
        (kind == "Bias" and bottoms == 1 and layer.bias_param.num_axes == 0)
    return array.reshape(()) if scalar else array


def _layer_text(layer: Any) -> str:
    """Text of the layer's parameters (no name/type/bottom/top/blobs), fork-sensitive defaults explicit."""
    from google.protobuf import text_format

    clean = type(layer)()
    clean.CopyFrom(layer)
    for name in ("name", "type", "bottom", "top", "blobs"):
        clean.ClearField(name)
    for param, field in FORK_DEFAULTS:
        if clean.HasField(param) or layer.type == _PARAM_OWNER.get(param):
            message = getattr(clean, param)
            setattr(message, field, getattr(message, field))
    return text_format.MessageToString(clean)


_PARAM_OWNER = {"prior_box_param": "PriorBox"}


class RestoreCaffeLayers(Pass):
    """Replace every intact importer group by one internal node re-emitting the original layer."""

    name = "restore-caffe-layers"

    def __init__(self, allows: Callable[[str], bool] = lambda _: True) -> None:
        self.allows = allows
        self.restored: list[str] = []
        self.skipped: dict[str, str] = {}  # layer -> why it was not restored

    def run(self, model: ir.Model) -> bool:
        graph = model.graph
        groups: dict[str, list[ir.Node]] = {}
        for node in graph:
            if node.domain != CAFFE_DOMAIN and "caffe.param" in node.metadata_props:
                groups.setdefault(node.metadata_props["caffe.layer"], []).append(node)
        if not groups:
            return False
        values: dict[str, ir.Value] = {str(v.name): v for v in graph.inputs}
        for node in graph:
            values.update((str(v.name), v) for v in node.outputs)
        order = {id(node): i for i, node in enumerate(graph)}
        changed = False
        for layer, nodes in groups.items():
            layer_type = nodes[0].metadata_props.get("caffe.type", "")
            if not self.allows(layer_type):
                self.skipped[layer] = f"the dialect has no {layer_type} layer"
                continue
            try:
                restored = match_group(layer, nodes, values, order)
            except NotIntact as why:
                self.skipped[layer] = str(why)
                logger.debug("layer %r not restored: %s", layer, why)
                continue
            node = _replace(graph, restored)
            order[id(node)] = order[id(restored.nodes[0])]
            values.update((str(v.name), v) for v in node.outputs)
            self.restored.append(layer)
            changed = True
        return changed


def match_group(layer_name: str, nodes: list[ir.Node], values: dict[str, ir.Value],
                order: dict[int, int]) -> RestoredLayer:
    """Re-import the layer of ``nodes`` and check it rebuilds them exactly; raise :class:`NotIntact` if not."""
    from google.protobuf import text_format

    from nnbridge.caffe.importer import CAFFE_IMPORTERS, LayerContext, _load_ops
    from nnbridge.caffe.proto import caffe_pb2
    from nnbridge.hub.builder import GraphBuilder

    meta = nodes[0].metadata_props
    keys = ("caffe.type", "caffe.param", "caffe.bottoms")
    if any(n.metadata_props.get(k) != meta.get(k) for n in nodes for k in keys):
        raise NotIntact("its nodes disagree on the layer they come from")
    layer = caffe_pb2.LayerParameter()
    try:
        text_format.Merge(meta["caffe.param"], layer)
    except text_format.ParseError as exc:
        raise NotIntact(f"unreadable caffe.param: {exc}") from None
    layer.name, layer.type = layer_name, meta["caffe.type"]
    _load_ops()
    importer = CAFFE_IMPORTERS.get(layer.type)
    if importer is None:
        raise NotIntact(f"no importer for {layer.type}")
    names = [str(n) for n in json.loads(meta["caffe.bottoms"])]
    bottoms = [values.get(n) for n in names]
    first = min(order[id(n)] for n in nodes)
    builder = GraphBuilder("restore")
    placeholders: dict[str, ir.Value] = {}
    binding: dict[int, ir.Value] = {}
    for name, value in zip(names, bottoms, strict=True):
        if value is None or value.type is None or shape_of(value) is None:
            raise NotIntact(f"bottom {name!r} is gone or has no static shape")
        producer = value.producer()
        if producer is not None and order.get(id(producer), first) >= first:
            raise NotIntact(f"bottom {name!r} is computed after the layer's first node")
        if name not in placeholders:
            placeholders[name] = builder.input(name, list(shape_of(value) or ()), value.dtype or ir.DataType.FLOAT)
            binding[id(placeholders[name])] = value
    constants = {str(v.name): a for n in nodes for v in n.inputs
                 if v is not None and (a := const_array(v)) is not None}
    source = _RecoveringWeights(layer_name, constants)
    ctx = LayerContext(builder, layer, [placeholders[n] for n in names], source, source="<hub>")
    try:
        outs = list(importer(ctx))
    except NotIntact:
        raise
    except NNBridgeError as exc:
        raise NotIntact(f"re-import failed: {exc}") from None
    rebuilt = list(builder.graph)
    group = sorted(nodes, key=lambda n: order[id(n)])
    if len(rebuilt) != len(group):
        raise NotIntact(f"{len(group)} nodes where the importer makes {len(rebuilt)}")
    for new, old in zip(rebuilt, group, strict=True):
        _match_node(new, old, binding)
    tops = [binding.get(id(v)) for v in outs]
    members = {id(n) for n in group}
    top_ids = set()
    for top in tops:
        if top is None or top.producer() is None or id(top.producer()) not in members:
            raise NotIntact("a top is not computed by the layer's nodes")
        top_ids.add(id(top))
    for node in group:
        for value in node.outputs:
            outside = value.is_graph_output() or any(id(c) not in members for c in value.consumers())
            if outside and id(value) not in top_ids:
                raise NotIntact(f"value {value.name!r} inside the layer is read outside it")
    blobs = [source.served[i] for i in range(len(source.served))] if all(
        i in source.served for i in range(len(source.served))) else None
    if blobs is None:
        raise NotIntact("blobs read out of order")
    blobs = [_caffe_blob(layer, i, b, len(names)) for i, b in enumerate(blobs)]
    if layer.type == "BatchNorm" and not blobs:  # batch statistics: Caffe still has (and loads) 3 blobs
        channels = (shape_of(bottoms[0]) or (0, 0))[1] if bottoms and bottoms[0] is not None else 0
        blobs = [np.zeros((channels,), np.float32), np.zeros((channels,), np.float32), np.zeros((1,), np.float32)]
    return RestoredLayer(layer_name, layer.type, group, [v for v in bottoms if v is not None],
                         [t for t in tops if t is not None], blobs, _layer_text(layer))


def _match_node(new: ir.Node, old: ir.Node, binding: dict[int, ir.Value]) -> None:
    if (new.op_type, new.domain or "") != (old.op_type, old.domain or "") or \
            len(new.inputs) != len(old.inputs) or len(new.outputs) != len(old.outputs):
        raise NotIntact(f"node {old.name!r} ({old.op_type}) differs from the importer's {new.op_type}")
    if _attr_key(new) != _attr_key(old):
        raise NotIntact(f"node {old.name!r} ({old.op_type}) has other attributes")
    for a, b in zip(new.inputs, old.inputs, strict=True):
        if a is None or b is None:
            if a is not b:
                raise NotIntact(f"node {old.name!r}: an optional input differs")
            continue
        if a.const_value is not None:
            if not _same_const(const_array(a), const_array(b)) or b.producer() is not None:
                raise NotIntact(f"node {old.name!r}: constant {b.name!r} differs")
        elif binding.get(id(a)) is not b:
            raise NotIntact(f"node {old.name!r}: input {b.name!r} is wired differently")
    for a, b in zip(new.outputs, old.outputs, strict=True):
        binding[id(a)] = b


def _replace(graph: ir.Graph, restored: RestoredLayer) -> ir.Node:
    """Insert the internal layer node before the group's first node, move the tops onto it, drop the group."""
    from nnbridge.hub.passes.graph import new_const

    blobs = [new_const(graph, f"{restored.layer}.blob{i}", b) for i, b in enumerate(restored.blobs)]
    attrs: dict[str, str | int] = {"caffe_text": restored.text, "num_bottoms": len(restored.bottoms)}
    outputs = [ir.Value(name=f"{restored.layer}/restored{i}") for i in range(len(restored.tops))]
    node = ir.node(restored.type, [*restored.bottoms, *blobs], attrs, domain=CAFFE_DOMAIN, outputs=outputs,
                   name=restored.layer, metadata_props={"caffe.layer": restored.layer, "caffe.type": restored.type})
    graph.insert_before(restored.nodes[0], node)
    for old, new in zip(restored.tops, outputs, strict=True):
        new.type, new.shape = old.type, old.shape
        name = old.name
        old.replace_all_uses_with(new, replace_graph_outputs=True)
        old.name = None
        new.name = name
    graph.remove(restored.nodes, safe=True)
    return node
