"""Clean-up passes: drop no-op nodes, fold constant and shape-only subgraphs.

- :class:`RemoveIdentity`: ``Identity(x) = x``; ``Dropout(x)`` at inference is ``x`` (its mask output
  must be unused). The surviving value takes the removed output's name when that output is a graph output.
- :class:`FoldConstants`: a node whose inputs are all constants is evaluated once (ONNX reference
  evaluator) and replaced by an initializer; ``Shape``/``Size`` of a statically shaped value are constants
  too, so shape-computing subgraphs (``Shape -> Gather -> Concat -> Reshape``) collapse to constants.

Degenerate shapes left by tf2onnx when a spatial size is 1 (e.g. a 32 px ResNet's last stage), rewritten
into plainer ops with the same arithmetic:

- :class:`SplitComputedBias`: ``Conv(x, W, b)`` with a *computed* bias ``b`` of shape (M,) (tf2onnx fuses
  a residual ``Add`` of a (N, M, 1, 1) tensor into the bias) = ``Add(Conv(x, W), Reshape(b, (1, M, 1, ..)))``:
  the convolution adds its bias after the sum over the window, exactly as the separate ``Add`` does.
- :class:`DegenerateReduce`: ``ReduceMean/Sum/Max/Min`` over axes that all have size 1 = ``Reshape`` to the
  output shape (the mean/sum/max of one element is that element).
- :class:`ReshapeBroadcastOperand`: a binary ``Add/Sub/Mul/Div`` whose computed operand has as many
  elements as the output but another shape (``(C,)`` against ``(1, 1, 1, C)``): broadcasting then only
  prepends ones, so the operand is ``Reshape``d to the output shape (same elements, same order).
"""

from __future__ import annotations

import logging

import numpy as np
import onnx_ir as ir
from onnx.reference import ReferenceEvaluator

from nnbridge.hub.passes.base import NodePass
from nnbridge.hub.passes.graph import (
    CAFFE_DOMAIN,
    attr,
    const_array,
    new_const,
    remove_unused,
    replace_chain,
    shape_of,
)

logger = logging.getLogger(__name__)

_MAX_FOLD_ELEMENTS = 1 << 22  # don't materialise huge constants (e.g. an Expand to an activation size)


class RemoveIdentity(NodePass):
    """``Identity(x) -> x``; ``Dropout(x) -> x`` (inference)."""

    name = "remove-identity"

    def visit(self, graph: ir.Graph, node: ir.Node) -> bool:
        if node.domain != "" or node.op_type not in ("Identity", "Dropout"):
            return False
        if node.op_type == "Dropout" and len(node.outputs) > 1 and node.outputs[1].uses():
            return False
        src, out = node.inputs[0], node.outputs[0]
        if src is None:
            return False
        if out.is_graph_output():
            if src.is_graph_input() or src.is_graph_output() or src.const_value is not None:
                return False  # Caffe needs a layer here; the exporter keeps it
            out_name = out.name
            out.replace_all_uses_with(src, replace_graph_outputs=True)
            graph.remove(node, safe=True)
            src.name = out_name
            return True
        out.replace_all_uses_with(src)
        graph.remove(node, safe=True)
        return True


class FoldConstants(NodePass):
    """Evaluate nodes whose inputs are constants (and ``Shape``/``Size`` of static shapes)."""

    name = "fold-constants"

    def visit(self, graph: ir.Graph, node: ir.Node) -> bool:
        if node.domain not in ("", "ai.onnx") or any(o.is_graph_output() for o in node.outputs):
            return False
        results: list[np.ndarray] | None
        if node.op_type in ("Shape", "Size") and node.inputs and node.inputs[0] is not None:
            shape = shape_of(node.inputs[0])
            if shape is None:
                return False
            if node.op_type == "Size":
                results = [np.asarray(int(np.prod(shape)), dtype=np.int64)]
            else:
                start, end = attr(node, "start", 0), attr(node, "end", None)
                results = [np.asarray(shape[start:end], dtype=np.int64)]
        elif node.op_type == "Constant":
            folded = const_array(node.outputs[0])
            if folded is None:
                return False
            results = [folded]
        else:
            arrays = [const_array(v) if v is not None else None for v in node.inputs]
            if not node.inputs or any(a is None for a, v in zip(arrays, node.inputs, strict=False) if v is not None):
                return False
            if any(a is not None and a.size > _MAX_FOLD_ELEMENTS for a in arrays):
                return False
            results = _evaluate(node, arrays)
            if results is None:
                return False
        if any(r.size > _MAX_FOLD_ELEMENTS for r in results):
            return False
        for value, array in zip(node.outputs, results, strict=False):
            const = new_const(graph, value.name or f"{node.name}_const", np.asarray(array))
            value.replace_all_uses_with(const)
        graph.remove(node, safe=True)
        remove_unused(graph)
        return True


def _evaluate(node: ir.Node, arrays: list[np.ndarray | None]) -> list[np.ndarray] | None:
    if node.domain == CAFFE_DOMAIN:
        return None
    proto = ir.serde.serialize_node(node)
    feeds = {str(v.name): a for v, a in zip(node.inputs, arrays, strict=False) if v is not None and a is not None}
    try:
        evaluator = ReferenceEvaluator(proto)
        outputs = evaluator.run(None, feeds)
    except Exception as exc:  # unsupported by the reference evaluator: leave the node alone
        logger.debug("could not fold %s (%s): %s", node.name, node.op_type, exc)
        return None
    return [np.asarray(o) for o in outputs]


def _shaped(node: ir.Node, like: ir.Value, shape: tuple[int, ...] | None = None) -> ir.Node:
    """Give the node's single output the type of ``like`` and ``shape`` (default: like's shape)."""
    out = node.outputs[0]
    out.type = like.type
    out.shape = ir.Shape(list(shape)) if shape is not None else like.shape
    return node


def _reshape(graph: ir.Graph, x: ir.Value, shape: tuple[int, ...], name: str) -> ir.Node:
    target = new_const(graph, f"{name}.shape", np.asarray(shape, dtype=np.int64))
    return _shaped(ir.node("Reshape", [x, target], name=name), x, shape)


class SplitComputedBias(NodePass):
    """``Conv(x, W, b computed)`` -> ``Add(Conv(x, W), Reshape(b))`` (see the module docstring)."""

    name = "split-computed-bias"

    def visit(self, graph: ir.Graph, node: ir.Node) -> bool:
        if node.op_type != "Conv" or node.domain != "" or len(node.inputs) < 3 or node.inputs[2] is None:
            return False
        bias, out = node.inputs[2], node.outputs[0]
        shape, bias_shape = shape_of(out), shape_of(bias)
        if const_array(bias) is not None or shape is None or bias_shape is None or len(bias_shape) != 1:
            return False
        base = node.name or "conv"
        conv = _shaped(ir.node("Conv", [node.inputs[0], node.inputs[1]], dict(node.attributes.items()),
                               name=f"{base}/nobias", metadata_props=dict(node.metadata_props)), out)
        conv.outputs[0].name = f"{out.name}/nobias"
        column = _reshape(graph, bias, (1, bias_shape[0]) + (1,) * (len(shape) - 2), f"{base}/bias")
        column.outputs[0].name = f"{out.name}/bias"
        add = _shaped(ir.node("Add", [conv.outputs[0], column.outputs[0]], name=base), out)
        replace_chain(graph, [node], [conv, column, add], [out], [add.outputs[0]])
        return True


class DegenerateReduce(NodePass):
    """A reduction over size-1 axes -> Reshape."""

    name = "degenerate-reduce"

    def visit(self, graph: ir.Graph, node: ir.Node) -> bool:
        if node.domain != "" or node.op_type not in ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin"):
            return False
        x, out = node.inputs[0], node.outputs[0]
        shape = shape_of(x) if x is not None else None
        out_shape = shape_of(out)
        if x is None or shape is None or out_shape is None or not shape:
            return False
        if len(node.inputs) > 1 and node.inputs[1] is not None:
            axes_arr = const_array(node.inputs[1])
            if axes_arr is None:
                return False
            axes = [int(a) for a in axes_arr.reshape(-1)]
        else:
            axes = attr(node, "axes", None)
        if not axes:  # all axes (or noop_with_empty_axes, left alone)
            return False
        if any(shape[int(a) % len(shape)] != 1 for a in axes):
            return False
        new = _reshape(graph, x, out_shape, node.name or "reduce")
        replace_chain(graph, [node], [new], [out], [new.outputs[0]])
        return True


class ReshapeBroadcastOperand(NodePass):
    """A computed binary operand with the output's element count but another shape -> Reshape it."""

    name = "reshape-broadcast-operand"

    def visit(self, graph: ir.Graph, node: ir.Node) -> bool:
        if node.domain != "" or node.op_type not in ("Add", "Sub", "Mul", "Div") or len(node.inputs) != 2:
            return False
        out_shape = shape_of(node.outputs[0])
        if out_shape is None:
            return False
        for i, value in enumerate(node.inputs):
            shape = shape_of(value) if value is not None else None
            if value is None or shape is None or shape == out_shape or const_array(value) is not None:
                continue
            if int(np.prod(shape)) != int(np.prod(out_shape)) or len(shape) > len(out_shape):
                continue
            new = _reshape(graph, value, out_shape, f"{node.name or node.op_type}/operand{i}")
            graph.insert_before(node, new)
            node.replace_input_with(i, new.outputs[0])
            return True
        return False


__all__ = ["DegenerateReduce", "FoldConstants", "RemoveIdentity", "ReshapeBroadcastOperand", "SplitComputedBias"]
