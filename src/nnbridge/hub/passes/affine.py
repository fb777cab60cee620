"""Affine idioms -> Caffe Scale / Eltwise.

- :class:`MulAddToScale`: ``Add(Mul(x, g), b)`` with ``g``, ``b`` constants that broadcast along the
  channel axis of an (N, C, ...) ``x`` only = Caffe ``Scale(axis=1, bias_term=true)`` with blobs
  ``g`` (C,) and ``b`` (C,): ``y[n, c, ...] = x[n, c, ...] * g[c] + b[c]``.
- :class:`WeightedSum`: ``Add``/``Sub`` trees over same-shaped tensors whose terms are ``t``,
  ``Mul(t, s)`` (``s`` a constant scalar) or ``Neg(t)`` = Caffe ``Eltwise(SUM, coeff=[...])``:
  ``y = sum_i c_i * t_i``, accumulated left to right like Caffe's ``caffe_axpy`` loop. Intermediate
  results must have no other reader.
- :class:`MinMaxToClip`: ``Max(x, a)`` / ``Min(x, b)`` with scalar constants ``a``, ``b`` (TensorFlow's
  ``clip_by_value``, Keras ``ReLU(max_value=...)``) = ``Clip(x, a, b)`` (``Clip`` is defined as
  ``min(max(x, a), b)``); ``Min(Max(x, a), b)`` with ``a <= b`` and no other reader of the ``Max`` becomes one
  ``Clip(x, a, b)``. The constant must not broadcast ``x`` to a larger shape.

:class:`FuseSwish` (only for dialects with Caffe's ``Swish`` layer): ``Mul(x, Sigmoid(x))`` (SiLU, Keras
``swish``) whose Sigmoid has no other reader = ``Swish(x)`` with ``beta = 1`` (``x * sigmoid(beta x)``).

:func:`input_preprocessing` describes (for the exporters' notes) the chain of constant affine ops that reads
a graph input directly, e.g. Keras ``Rescaling``/``Normalization`` layers: they stay inside the exported net
(as Caffe ``Power``/``Scale``, MXNet arithmetic), so the converted model takes raw, unnormalised input.
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


def _scalar_bound(node: ir.Node) -> tuple[ir.Value, float] | None:
    """(x, bound) of a two-input Max/Min with one scalar constant that does not change x's shape."""
    if node.domain != "" or node.op_type not in ("Max", "Min") or len(node.inputs) != 2:
        return None
    split = _split_const(node)
    if split is None or split[1].size != 1 or shape_of(split[0]) != shape_of(node.outputs[0]):
        return None
    return split[0], float(split[1].reshape(()))


class MinMaxToClip(NodePass):
    """``Max(x, a)``, ``Min(x, b)``, ``Min(Max(x, a), b)`` with scalar constants -> ``Clip``."""

    name = "min-max-to-clip"

    def visit(self, graph: ir.Graph, node: ir.Node) -> bool:
        bound = _scalar_bound(node)
        if bound is None or shape_of(node.outputs[0]) is None:
            return False
        x, value = bound
        lo, hi = (value, None) if node.op_type == "Max" else (None, value)
        olds, out = [node], node.outputs[0]
        after = sole_consumer(out)
        outer = _scalar_bound(after) if after is not None else None
        if after is not None and outer is not None and outer[0] is out and after.op_type != node.op_type:
            a, b = (value, outer[1]) if node.op_type == "Max" else (outer[1], value)
            if a <= b:
                lo, hi, olds, out = a, b, [node, after], after.outputs[0]
        dtype = const_array(node.inputs[0] if node.inputs[0] is not x else node.inputs[1])
        assert dtype is not None
        name = node.name or "clip"
        bounds: list[ir.Value | None] = [
            None if v is None else new_const(graph, f"{name}.{tag}", np.asarray(v, dtype=dtype.dtype))
            for v, tag in ((lo, "min"), (hi, "max"))]
        if bounds[1] is None:
            bounds = bounds[:1]
        clip = ir.node("Clip", [x, *bounds], name=name, metadata_props=dict(node.metadata_props))
        replace_chain(graph, olds, [clip], [out], [clip.outputs[0]])
        return True


_AFFINE = ("Mul", "Add", "Sub", "Div")


def _describe(array: np.ndarray) -> str:
    flat = np.asarray(array, dtype=np.float64).reshape(-1)
    shown = ", ".join(f"{v:.6g}" for v in flat[:4]) + (", ..." if flat.size > 4 else "")
    return shown if flat.size == 1 else f"[{shown}]"


def input_preprocessing(model: ir.Model) -> list[str]:
    """One note per graph input read by a chain of Mul/Add/Sub/Div by constants (see the module docstring)."""
    notes = []
    for value in model.graph.inputs:
        if value.const_value is not None:
            continue
        steps: list[str] = []
        current = value
        while True:
            node = sole_consumer(current)
            if node is None or node.domain != "" or node.op_type not in _AFFINE:
                break
            split = _split_const(node)
            if split is None or split[0] is not current:
                break
            steps.append(f"{node.op_type} {_describe(split[1])}")
            current = node.outputs[0]
        if steps:
            notes.append(f"input {value.name!r}: preprocessing is inside the net ({'; '.join(steps)}): feed raw, "
                         "unnormalised input")
    return notes


class FuseSwish(NodePass):
    """``Mul(x, Sigmoid(x))`` -> Caffe ``Swish`` (see the module docstring)."""

    name = "fuse-swish"

    def visit(self, graph: ir.Graph, node: ir.Node) -> bool:
        if node.op_type != "Mul" or node.domain != "" or len(node.inputs) != 2:
            return False
        for gate, x in ((node.inputs[1], node.inputs[0]), (node.inputs[0], node.inputs[1])):
            sigmoid = gate.producer() if gate is not None else None
            if sigmoid is None or sigmoid.op_type != "Sigmoid" or sigmoid.domain != "" or x is None:
                continue
            if sigmoid.inputs[0] is not x or sole_consumer(gate) is not node:  # type: ignore[arg-type]
                continue
            new = caffe_node("Swish", [x], name=_name(node), metadata=dict(node.metadata_props))
            replace_chain(graph, [sigmoid, node], [new], [node.outputs[0]], list(new.outputs))
            return True
        return False
