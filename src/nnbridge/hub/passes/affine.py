"""Affine idioms -> Caffe Scale / Eltwise.

- :class:`MulAddToScale`: ``Add(Mul(x, g), b)`` with ``g``, ``b`` constants that broadcast along the
  channel axis of an (N, C, ...) ``x`` only = Caffe ``Scale(axis=1, bias_term=true)`` with blobs
  ``g`` (C,) and ``b`` (C,): ``y[n, c, ...] = x[n, c, ...] * g[c] + b[c]``.
- :class:`WeightedSum`: ``Add``/``Sub`` trees over same-shaped tensors whose terms are ``t``,
  ``Mul(t, s)`` (``s`` a constant scalar) or ``Neg(t)`` = Caffe ``Eltwise(SUM, coeff=[...])``:
  ``y = sum_i c_i * t_i``, accumulated left to right like Caffe's ``caffe_axpy`` loop. Intermediate
  results must have no other reader.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from nnbridge.hub.passes.base import NodePass
from nnbridge.hub.passes.graph import (
    CAFFE_DOMAIN,
    attr,
    caffe_node,
    channel_vector,
    const_array,
    new_const,
    replace_chain,
    shape_of,
    sole_consumer,
)


def _split_const(node: ir.Node) -> tuple[ir.Value, np.ndarray] | None:
    """(tensor input, constant) of a binary node with exactly one constant operand."""
    a, b = node.inputs[0], node.inputs[1]
    ca, cb = const_array(a), const_array(b)
    if cb is not None and ca is None and a is not None:
        return a, cb
    if ca is not None and cb is None and b is not None:
        return b, ca
    return None


def _name(node: ir.Node) -> str:
    return node.metadata_props.get("caffe.layer") or node.name or node.op_type


class MulAddToScale(NodePass):
    """``Add(Mul(x, g), b)`` with per-channel constants -> Scale(bias_term)."""

    name = "mul-add-to-scale"

    def visit(self, graph: ir.Graph, node: ir.Node) -> bool:
        if node.op_type != "Mul" or node.domain != "":
            return False
        split = _split_const(node)
        add = sole_consumer(node.outputs[0])
        if split is None or add is None or add.op_type != "Add":
            return False
        x, g = split
        shape = shape_of(x)
        add_split = _split_const(add)
        if shape is None or len(shape) < 2 or add_split is None:
            return False
        if shape_of(add.outputs[0]) != shape or shape_of(node.outputs[0]) != shape:
            return False
        gamma = channel_vector(g, len(shape), shape[1])
        beta = channel_vector(add_split[1], len(shape), shape[1])
        if gamma is None or beta is None or g.ndim == 0 and add_split[1].ndim == 0:
            return False  # scalar affine: left to Power
        name = _name(node)
        new = caffe_node("Scale", [x, new_const(graph, f"{name}.gamma", gamma),
                                   new_const(graph, f"{name}.beta", beta)],
                         name=name, param="scale_param", fields={"axis": 1, "bias_term": True},
                         metadata=dict(node.metadata_props))
        replace_chain(graph, [node, add], [new], [add.outputs[0]], list(new.outputs))
        return True


def _term(value: ir.Value, sign: float) -> tuple[list[ir.Node], list[tuple[ir.Value, float]]]:
    """Absorbable producer nodes and (tensor, coefficient) terms that ``value`` stands for."""
    node = value.producer()
    if node is None or sole_consumer(value) is None:
        return [], [(value, sign)]
    if node.op_type == "Neg" and node.domain == "" and node.inputs[0] is not None:
        return [node], [(node.inputs[0], -sign)]
    if node.op_type == "Mul" and node.domain == "":
        split = _split_const(node)
        if split is not None and split[1].size == 1 and shape_of(split[0]) == shape_of(value):
            return [node], [(split[0], sign * float(split[1].reshape(())))]
    if node.domain == CAFFE_DOMAIN and node.op_type == "Eltwise" and attr(node, "operation") == "SUM":
        coeffs = attr(node, "coeff", [1.0] * len(node.inputs))
        return [node], [(v, sign * c) for v, c in zip(node.inputs, coeffs, strict=False) if v is not None]
    return [], [(value, sign)]


class WeightedSum(NodePass):
    """Add/Sub of same-shaped tensors (with scalar-scaled or negated terms) -> Eltwise SUM + coeff."""

    name = "weighted-sum"

    def visit(self, graph: ir.Graph, node: ir.Node) -> bool:
        if node.op_type not in ("Add", "Sub") or node.domain != "":
            return False
        a, b = node.inputs[0], node.inputs[1]
        if a is None or b is None or const_array(a) is not None or const_array(b) is not None:
            return False
        shape = shape_of(node.outputs[0])
        if shape is None or shape_of(a) != shape or shape_of(b) != shape:
            return False
        nodes_a, terms_a = _term(a, 1.0)
        nodes_b, terms_b = _term(b, -1.0 if node.op_type == "Sub" else 1.0)
        terms = terms_a + terms_b
        if any(shape_of(t) != shape or t.const_value is not None for t, _ in terms):
            return False
        coeffs = [float(np.float32(c)) for _, c in terms]
        fields = {"operation": "SUM", "coeff": coeffs if any(c != 1.0 for c in coeffs) else None}
        name = _name(node)
        new = caffe_node("Eltwise", [t for t, _ in terms], name=name, param="eltwise_param", fields=fields,
                         metadata=dict(node.metadata_props))
        olds = sorted(nodes_a + nodes_b, key=lambda n: list(graph).index(n)) + [node]
        replace_chain(graph, olds, [new], [node.outputs[0]], list(new.outputs))
        return True
