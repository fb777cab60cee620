"""Undo layout shuffles that exporters wrap around axis-wise ops.

:class:`FoldTransposeSoftmax`: ONNX before opset 13 defined ``Softmax(axis)`` on the input flattened to
2-D at ``axis``, so PyTorch's exporter writes ``softmax(x, dim=1)`` of an (N, C, H, W) tensor as
``Transpose(p) -> Softmax(axis=-1) -> Transpose(q)`` (e.g. ``p = q = (0, 3, 2, 1)``). With
``t = transpose(x, p)`` (``t.shape[j] = x.shape[p[j]]``) and ``y = transpose(s, q)``, ``y`` is
``transpose(softmax(t, a), q)`` = ``softmax(x, p[a])`` permuted by ``r[j] = p[q[j]]``; when ``r`` is the
identity (``q`` inverts ``p``), ``y = Softmax(x, axis = p[a])``: the same numbers, computed in the same
order along the same axis (per-axis Softmax, opset 13+ semantics, which the hub uses). LogSoftmax the
same. The intermediate values must have no other reader; they disappear (no Caffe blob).
"""

from __future__ import annotations

import onnx_ir as ir

from nnbridge.hub.passes.base import NodePass
from nnbridge.hub.passes.graph import attr, replace_chain, shape_of, sole_consumer


def _perm(node: ir.Node, rank: int) -> list[int] | None:
    if node.op_type != "Transpose" or node.domain != "":
        return None
    perm = [int(p) for p in attr(node, "perm", list(reversed(range(rank))))]
    return perm if sorted(perm) == list(range(rank)) else None


class FoldTransposeSoftmax(NodePass):
    """``Transpose(p) -> Softmax|LogSoftmax(a) -> Transpose(p^-1)`` -> ``Softmax|LogSoftmax(p[a])``."""

    name = "fold-transpose-softmax"

    def visit(self, graph: ir.Graph, node: ir.Node) -> bool:
        if node.domain != "" or node.op_type not in ("Softmax", "LogSoftmax"):
            return False
        t, s = node.inputs[0], node.outputs[0]
        if t is None:
            return False
        first = t.producer()
        last = sole_consumer(s)
        x = first.inputs[0] if first is not None else None
        shape = shape_of(x) if x is not None else None
        if first is None or last is None or x is None or shape is None or sole_consumer(t) is not node:
            return False
        rank = len(shape)
        p, q = _perm(first, rank), _perm(last, rank)
        if p is None or q is None or any(p[q[j]] != j for j in range(rank)):
            return False
        axis = p[int(attr(node, "axis", -1)) % rank]
        new = ir.node(node.op_type, [x], {"axis": axis}, name=node.name, metadata_props=dict(node.metadata_props))
        replace_chain(graph, [first, node, last], [new], [last.outputs[0]], list(new.outputs))
        return True


__all__ = ["FoldTransposeSoftmax"]
