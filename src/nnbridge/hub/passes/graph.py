"""Generic graph helpers shared by the passes and the exporters.

Everything here works on :mod:`onnx_ir` graphs in place: finding consumers, reading constants
(initializers or ``Constant`` nodes), replacing a chain of nodes by new nodes while keeping the names,
types and shapes of the surviving values (Caffe blob names are hub value names, so they must survive).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx_ir as ir

#: Domain of the internal nodes that passes produce for the Caffe exporter: ``op_type`` is the Caffe
#: layer type, attribute ``param`` names the layer's parameter message (e.g. ``scale_param``) and the
#: other attributes are that message's fields. Inputs with a constant value are the layer's blobs, in
#: order; the others are its bottoms. These nodes never leave :func:`nnbridge.caffe.exporter.export_caffe`.
CAFFE_DOMAIN = "nnbridge.caffe_layer"


def consumers(value: ir.Value) -> list[ir.Node]:
    """The distinct nodes that read ``value`` (a graph output counts as no node)."""
    seen: dict[int, ir.Node] = {}
    for node in value.consumers():
        seen.setdefault(id(node), node)
    return list(seen.values())


def sole_consumer(value: ir.Value) -> ir.Node | None:
    """The only node reading ``value``, or None when there are several or it is a graph output."""
    users = consumers(value)
    if len(users) != 1 or value.is_graph_output():
        return None
    return users[0]


def const_array(value: ir.Value | None) -> np.ndarray | None:
    """The constant content of ``value`` (initializer or ``Constant`` node output), else None."""
    if value is None:
        return None
    tensor = ir.convenience.get_const_tensor(value)
    if tensor is None:
        return None
    return np.asarray(tensor.numpy())


def attr(node: ir.Node, name: str, default: Any = None) -> Any:
    """Attribute value as a plain Python value (lists for INTS/FLOATS), else ``default``."""
    a = node.attributes.get(name)
    if a is None:
        return default
    value = a.value
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return list(value)
    return value


def shape_of(value: ir.Value) -> tuple[int, ...] | None:
    """Static shape as ints, or None if unknown or symbolic."""
    if value.shape is None or not all(isinstance(d, int) for d in value.shape):
        return None
    return tuple(int(d) for d in value.shape)  # type: ignore[arg-type]


def new_const(graph: ir.Graph, name: str, array: np.ndarray) -> ir.Value:
    """Register an initializer with a name not yet used in ``graph``."""
    used = {v.name for v in graph.initializers.values()}
    for node in graph:
        used.update(v.name for v in node.outputs)
    used.update(v.name for v in graph.inputs)
    candidate, i = name, 0
    while candidate in used:
        i += 1
        candidate = f"{name}_{i}"
    array = np.asarray(array, order="C")  # (ascontiguousarray makes 0-D arrays 1-D)
    value = ir.Value(name=candidate, shape=ir.Shape(list(array.shape)),
                     type=ir.TensorType(ir.DataType.from_numpy(array.dtype)),
                     const_value=ir.Tensor(array, name=candidate))
    graph.register_initializer(value)
    return value


def caffe_node(layer_type: str, inputs: Sequence[ir.Value], *, name: str, param: str | None = None,
               fields: Mapping[str, Any] | None = None, num_outputs: int = 1,
               metadata: Mapping[str, str] | None = None) -> ir.Node:
    """An internal node of :data:`CAFFE_DOMAIN` standing for one Caffe layer."""
    attrs: dict[str, Any] = {k: v for k, v in (fields or {}).items() if v is not None}
    if param is not None:
        attrs["param"] = param
    outputs = [ir.Value() for _ in range(num_outputs)]
    return ir.node(layer_type, list(inputs), attrs, domain=CAFFE_DOMAIN, outputs=outputs, name=name,
                   metadata_props=dict(metadata) if metadata else None)


def replace_chain(graph: ir.Graph, old_nodes: Sequence[ir.Node], new_nodes: Sequence[ir.Node],
                  old_values: Sequence[ir.Value], new_values: Sequence[ir.Value]) -> None:
    """Replace ``old_nodes`` (in graph order) by ``new_nodes``; ``old_values`` -> ``new_values`` keep
    names, types and shapes. New nodes are inserted after the last old node."""
    ir.convenience.replace_nodes_and_values(graph, old_nodes[-1], old_nodes, new_nodes, old_values,
                                            new_values)


def remove_unused(graph: ir.Graph) -> bool:
    """Drop nodes whose outputs nobody reads and unused initializers; True if anything went. Nodes
    without outputs stay (a Caffe ``Silence`` layer made by a pass exists for its side effect)."""
    changed = False
    for node in reversed(list(graph)):
        if node.outputs and all(not v.uses() and not v.is_graph_output() for v in node.outputs):
            graph.remove(node, safe=True)
            changed = True
    for name, value in list(graph.initializers.items()):
        if not value.uses() and not value.is_graph_output() and not value.is_graph_input():
            del graph.initializers[name]
            changed = True
    return changed


def channel_vector(array: np.ndarray, rank: int, channels: int) -> np.ndarray | None:
    """``array`` as a per-channel vector of length ``channels`` if it broadcasts against an
    (N, C, ...) tensor of ``rank`` along the channel axis only (shape (C,1,..), (1,C,1,..), scalar
    -> filled); else None."""
    if array.ndim > rank:
        return None
    full = (1,) * (rank - array.ndim) + tuple(array.shape)
    if full[0] != 1 or any(d != 1 for d in full[2:]):
        return None
    if full[1] not in (1, channels):
        return None
    return np.broadcast_to(array.reshape(-1), (channels,)).astype(np.float32)


def metadata_of(node: ir.Node) -> dict[str, str]:
    return dict(node.metadata_props)
