"""Run an ONNX / hub model with onnxruntime and return every value it computes, by name.

Custom-domain nodes (:data:`nnbridge.hub.custom.CUSTOM_DOMAIN`) are not known to onnxruntime, so the
graph is cut, in topological order, into maximal segments of standard nodes; each segment becomes a
small ONNX model run by its own onnxruntime session, and each custom node runs its numpy reference in
between. Every value produced by a segment is declared as a graph output of the sub-model (onnxruntime
infers the output types), so all intermediates are returned.

Weights: initializers of more than :data:`INLINE_BYTES` bytes are not serialized into the sub-models:
they become graph inputs and are fed as numpy arrays, which onnxruntime uses in place (for C-contiguous
arrays of its element types), so memory-mapped weights are read from the map and never copied.
Smaller initializers are embedded as constants, so onnxruntime sees shapes, axes, etc. as constants;
their data is always embedded, even when the file keeps them in an external data file (sub-models
reach onnxruntime as bytes, with no folder to resolve an external reference against).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir

from nnbridge.errors import ConversionError, NNBridgeError
from nnbridge.hub.custom import CUSTOM_DOMAIN, get_custom_op

logger = logging.getLogger(__name__)

INLINE_BYTES = 1 << 16
_SUB_MODEL_IR_VERSION = 10  # onnxruntime refuses IR versions newer than it knows


@dataclass
class _Segment:
    nodes: list[ir.Node] = field(default_factory=list)
    custom: bool = False


def load_model(path: str | os.PathLike[str]) -> ir.Model:
    """Load an ONNX file as an ``onnx_ir`` model (external data stays memory-mapped)."""
    try:
        return ir.load(os.fspath(path))
    except FileNotFoundError as exc:
        raise NNBridgeError(f"{path}: no such ONNX file") from exc
    except Exception as exc:
        raise NNBridgeError(f"{path}: cannot read ONNX model: {exc}") from exc


def run(model: ir.Model | str | os.PathLike[str], inputs: Mapping[str, np.ndarray], *,
        intermediates: bool = True) -> dict[str, np.ndarray]:
    """Run ``model`` on ``inputs``; return graph inputs, every node output (or only the graph outputs)."""
    if not isinstance(model, ir.Model):
        model = load_model(model)
    graph = model.graph
    initializers = {name: value for name, value in graph.initializers.items() if value.const_value is not None}
    env: dict[str, Any] = {}
    for value in graph.inputs:
        if _name(value) in inputs:
            env[_name(value)] = np.asarray(inputs[_name(value)])
        elif value.name not in initializers:
            raise NNBridgeError(f"model input {value.name!r} was not given (given: {sorted(inputs)})")
    unknown = sorted(set(inputs) - {v.name for v in graph.inputs})
    if unknown:
        raise NNBridgeError(f"inputs {unknown} are not inputs of the model "
                            f"(model inputs: {[v.name for v in graph.inputs]})")
    wanted = {_name(v) for v in graph.outputs}
    segments = _partition(graph)
    for index, segment in enumerate(segments):
        if segment.custom:
            _run_custom(segment.nodes[0], env, initializers)
        else:
            keep = None if intermediates else wanted | _needed_later(segments[index + 1:])
            _run_standard(model, index, segment.nodes, env, initializers, keep)
    order = [_name(v) for v in graph.inputs if v.name in env]
    for node in graph:
        order.extend(_name(o) for o in node.outputs if o.name in env)
    for value in graph.outputs:  # a graph output may be an initializer
        if value.name not in env and value.name in initializers:
            env[value.name] = initializers[value.name].const_value.numpy()  # type: ignore[union-attr]
            order.append(value.name)
    missing = [name for name in wanted if name not in env]
    if missing:
        raise NNBridgeError(f"graph outputs {missing} were not computed")
    if not intermediates:
        order = [_name(v) for v in graph.outputs]
    return {name: env[name] for name in dict.fromkeys(order)}


def _name(value: ir.Value) -> str:
    return value.name or ""


def _is_custom(node: ir.Node) -> bool:
    return node.domain == CUSTOM_DOMAIN


def _partition(graph: ir.Graph) -> list[_Segment]:
    segments: list[_Segment] = []
    for node in graph:
        if _is_custom(node):
            segments.append(_Segment([node], custom=True))
        elif segments and not segments[-1].custom:
            segments[-1].nodes.append(node)
        else:
            segments.append(_Segment([node]))
    return segments


def _consumed(node: ir.Node) -> Iterator[str]:
    """Names of values ``node`` reads, including outer-scope values read inside its subgraphs."""
    for value in node.inputs:
        if value is not None and value.name:
            yield value.name
    for attr in node.attributes.values():
        subgraphs: list[ir.Graph] = []
        if attr.type == ir.AttributeType.GRAPH:
            subgraphs = [attr.as_graph()]
        elif attr.type == ir.AttributeType.GRAPHS:
            subgraphs = list(attr.as_graphs())
        for sub in subgraphs:
            local = {v.name for v in sub.inputs} | set(sub.initializers)
            for inner in sub:
                local.update(o.name for o in inner.outputs)
            for inner in sub:
                yield from (name for name in _consumed(inner) if name not in local)


def _needed_later(segments: list[_Segment]) -> set[str]:
    return {name for segment in segments for node in segment.nodes for name in _consumed(node)}


def _value_from(name: str, env: Mapping[str, Any], initializers: Mapping[str, ir.Value]) -> np.ndarray:
    if name in env:
        return env[name]
    if name in initializers:
        return initializers[name].const_value.numpy()  # type: ignore[union-attr]
    raise NNBridgeError(f"value {name!r} is used before it is computed (graph not in topological order?)")


def _run_custom(node: ir.Node, env: dict[str, Any], initializers: Mapping[str, ir.Value]) -> None:
    op = get_custom_op(node.op_type)
    if op is None:
        raise ConversionError(f"node {node.name!r}: custom op {CUSTOM_DOMAIN}::{node.op_type} has no "
                              f"reference implementation in nnbridge")
    attrs = {name: _attr_value(attr) for name, attr in node.attributes.items()}
    args = [_value_from(_name(v), env, initializers) if v is not None else None for v in node.inputs]
    results = op.reference(attrs, args)  # type: ignore[arg-type]
    if len(results) != len(node.outputs):
        raise ConversionError(f"node {node.name!r}: reference of {node.op_type} returned {len(results)} "
                              f"arrays for {len(node.outputs)} outputs")
    for value, array in zip(node.outputs, results, strict=True):
        env[_name(value)] = np.asarray(array)


def _attr_value(attr: Any) -> Any:
    value = attr.value
    if isinstance(value, ir.TensorProtocol):
        return value.numpy()
    if isinstance(value, (list, tuple)):
        return [v.numpy() if isinstance(v, ir.TensorProtocol) else v for v in value]
    return value


def _embedded(tensor: ir.TensorProtocol) -> onnx.TensorProto:
    """``tensor`` as a TensorProto holding its data: a sub-model is handed to onnxruntime as bytes, so a
    reference to an external data file (relative to the model's folder) could not be resolved."""
    proto = ir.serde.serialize_tensor(tensor)
    if proto.data_location == onnx.TensorProto.EXTERNAL:
        proto = ir.serde.serialize_tensor(ir.Tensor(tensor.numpy(), dtype=tensor.dtype, name=tensor.name))
    return proto


def _run_standard(model: ir.Model, index: int, nodes: list[ir.Node], env: dict[str, Any],
                  initializers: Mapping[str, ir.Value], keep: set[str] | None) -> None:
    import onnxruntime as ort

    produced: list[str] = [_name(o) for node in nodes for o in node.outputs if o.name]
    produced_set = set(produced)
    feeds: dict[str, np.ndarray] = {}
    graph_inputs: list[onnx.ValueInfoProto] = []
    constants: list[onnx.TensorProto] = []
    for name in dict.fromkeys(n for node in nodes for n in _consumed(node)):
        if name in produced_set or name in feeds:
            continue
        if name in env:
            array = np.asarray(env[name])
        elif name in initializers:
            tensor = initializers[name].const_value
            assert tensor is not None
            if tensor.nbytes <= INLINE_BYTES:
                constants.append(_embedded(tensor))
                continue
            array = np.asarray(tensor.numpy())
        else:
            continue  # an optional input left empty
        if not array.flags.c_contiguous:
            array = np.ascontiguousarray(array)
        feeds[name] = array
        graph_inputs.append(onnx.helper.make_tensor_value_info(
            name, onnx.helper.np_dtype_to_tensor_dtype(array.dtype), list(array.shape)))
    outputs = [n for n in produced if keep is None or n in keep]
    graph = onnx.helper.make_graph(
        [ir.serde.serialize_node(node) for node in nodes], f"segment{index}", graph_inputs,
        [onnx.ValueInfoProto(name=n) for n in outputs], initializer=constants)
    opsets = [onnx.helper.make_opsetid(domain, version)
              for domain, version in model.opset_imports.items() if domain != CUSTOM_DOMAIN]
    proto = onnx.helper.make_model(graph, opset_imports=opsets, ir_version=_SUB_MODEL_IR_VERSION)
    proto.functions.extend(ir.serde.serialize_function(f) for f in model.functions.values())
    options = ort.SessionOptions()
    options.log_severity_level = 3
    first, last = nodes[0].name or nodes[0].op_type, nodes[-1].name or nodes[-1].op_type
    logger.debug("segment %d: %d nodes (%s .. %s), %d weights fed", index, len(nodes), first, last, len(feeds))
    try:
        session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
        results = session.run(outputs, feeds)
    except Exception as exc:
        raise NNBridgeError(f"onnxruntime failed on nodes {first!r} .. {last!r}: {exc}") from exc
    for name, array in zip(outputs, results, strict=True):
        env[name] = array
