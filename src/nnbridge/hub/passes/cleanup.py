"""Clean-up passes: drop no-op nodes, fold constant and shape-only subgraphs.

- :class:`RemoveIdentity`: ``Identity(x) = x``; ``Dropout(x)`` at inference is ``x`` (its mask output
  must be unused). The surviving value takes the removed output's name when that output is a graph output.
- :class:`FoldConstants`: a node whose inputs are all constants is evaluated once (ONNX reference
  evaluator) and replaced by an initializer; ``Shape``/``Size`` of a statically shaped value are constants
  too, so shape-computing subgraphs (``Shape -> Gather -> Concat -> Reshape``) collapse to constants.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx_ir as ir
from onnx.reference import ReferenceEvaluator

from nnbridge.hub.passes.base import NodePass
from nnbridge.hub.passes.graph import CAFFE_DOMAIN, attr, const_array, new_const, remove_unused, shape_of

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


__all__ = ["FoldConstants", "RemoveIdentity"]
