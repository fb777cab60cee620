"""Dense layers: ``Gemm`` / ``MatMul (+ Add)`` with constant weights -> Caffe ``InnerProduct``.

Caffe's InnerProduct with ``axis = a`` views its input ``x`` as ``(M, K)``, ``M = prod(x.shape[:a])``,
``K = prod(x.shape[a:])``, computes ``Y = X W^T + b`` with ``W`` of shape ``(N, K)`` and returns shape
``x.shape[:a] + (N,)``. Hence:

- ``Gemm(A, B, C; alpha, beta, transA=0, transB)`` = InnerProduct on ``A`` (axis 1) with
  ``W = alpha * (B if transB else B^T)`` and ``b = beta * C`` (``C`` broadcast along N only);
- a ``Flatten(axis=a)`` or ``Reshape`` to ``(prod(x[:a]), prod(x[a:]))`` before it is absorbed (the layer
  flattens itself) when the result shape still matches: ``a == 1`` or a trailing ``Reshape`` back to
  ``x[:a] + (N,)`` is absorbed too (the importer's Flatten + Gemm + Reshape pattern);
- ``MatMul(x, W)`` with ``W`` constant 2-D of shape ``(K, N)`` = InnerProduct with ``axis = rank - 1``
  and weight ``W^T``; a following ``Add`` of a constant that broadcasts along the last axis only is its
  bias.
"""

from __future__ import annotations

import math

import numpy as np
import onnx_ir as ir

from nnbridge.hub.passes.base import NodePass
from nnbridge.hub.passes.graph import attr, caffe_node, const_array, new_const, replace_chain, shape_of, sole_consumer


def _flatten_source(value: ir.Value) -> tuple[ir.Node, ir.Value, int] | None:
    """If ``value`` = Flatten/Reshape of ``x`` to 2-D ``(prod(x[:a]), prod(x[a:]))``: (node, x, a)."""
    node = value.producer()
    if node is None or sole_consumer(value) is None or node.op_type not in ("Flatten", "Reshape"):
        return None
    x = node.inputs[0]
    shape = shape_of(x) if x is not None else None
    out = shape_of(value)
    if x is None or shape is None or out is None or len(out) != 2:
        return None
    if node.op_type == "Flatten":
        axis = int(attr(node, "axis", 1)) % max(len(shape), 1)
        return node, x, axis
    for a in range(1, len(shape)):
        if (math.prod(shape[:a]), math.prod(shape[a:])) == out:
            return node, x, a
    return None


def _bias_vector(c: np.ndarray | None, n: int) -> np.ndarray | None:
    if c is None:
        return None
    if c.size == 1:
        return np.full((n,), float(c.reshape(())), np.float32)
    squeezed = c.reshape(-1)
    if squeezed.size == n and (c.ndim <= 1 or all(d == 1 for d in c.shape[:-1])):
        return squeezed.astype(np.float32)
    return None


def _inner_product(graph: ir.Graph, name: str, x: ir.Value, weight: np.ndarray, bias: np.ndarray | None,
                   axis: int, meta: dict[str, str]) -> ir.Node:
    # copy=False: a float32 weight (e.g. a view of a memory-mapped weights file) is used as is
    inputs = [x, new_const(graph, f"{name}.weight", weight.astype(np.float32, copy=False))]
    if bias is not None:
        inputs.append(new_const(graph, f"{name}.bias", bias.astype(np.float32, copy=False)))
    fields = {"num_output": int(weight.shape[0]), "axis": axis, "bias_term": bias is not None}
    return caffe_node("InnerProduct", inputs, name=name, param="inner_product_param", fields=fields,
                      metadata=meta)


def _layer_name(node: ir.Node) -> str:
    return node.metadata_props.get("caffe.layer") or node.name or node.op_type


class GemmToInnerProduct(NodePass):
    """``[Flatten|Reshape] -> Gemm -> [Reshape]`` with constant ``B``, ``C`` -> InnerProduct."""

    name = "gemm-to-inner-product"

    def visit(self, graph: ir.Graph, node: ir.Node) -> bool:
        if node.op_type != "Gemm" or node.domain != "" or attr(node, "transA", 0):
            return False
        b = const_array(node.inputs[1])
        if b is None or b.ndim != 2:
            return False
        weight = b if attr(node, "transB", 0) else b.T
        alpha = float(attr(node, "alpha", 1.0))
        if alpha != 1.0:  # scaling by 1 would only copy the (possibly memory-mapped) weight
            weight = alpha * weight
        n = weight.shape[0]
        bias = None
        if len(node.inputs) > 2 and node.inputs[2] is not None:
            bias = _bias_vector(const_array(node.inputs[2]), n)
            if bias is None:
                return False
            bias = bias * float(attr(node, "beta", 1.0))
        olds, x, axis = [node], node.inputs[0], 1
        out = node.outputs[0]
        assert x is not None
        source = _flatten_source(x)
        if source is not None:
            flat, src, a = source
            after = sole_consumer(out)
            src_shape = shape_of(src)
            assert src_shape is not None
            if a == 1:
                olds, x, axis = [flat, node], src, 1
            elif after is not None and after.op_type == "Reshape" and \
                    shape_of(after.outputs[0]) == (*src_shape[:a], n):
                olds, x, axis, out = [flat, node, after], src, a, after.outputs[0]
        new = _inner_product(graph, _layer_name(node), x, weight, bias, axis, dict(node.metadata_props))
        replace_chain(graph, olds, [new], [out], list(new.outputs))
        return True


class MatMulToInnerProduct(NodePass):
    """``MatMul(x, W const (K, N)) [+ b]`` -> InnerProduct(axis = rank(x) - 1)."""

    name = "matmul-to-inner-product"

    def visit(self, graph: ir.Graph, node: ir.Node) -> bool:
        if node.op_type != "MatMul" or node.domain != "":
            return False
        w = const_array(node.inputs[1])
        x = node.inputs[0]
        shape = shape_of(x) if x is not None else None
        if w is None or w.ndim != 2 or x is None or shape is None or len(shape) < 2:
            return False
        olds, out, bias = [node], node.outputs[0], None
        add = sole_consumer(out)
        if add is not None and add.op_type == "Add":
            other = add.inputs[1] if add.inputs[0] is out else add.inputs[0]
            c = const_array(other)
            vec = _bias_vector(c, w.shape[1]) if c is not None and c.ndim <= len(shape) else None
            if vec is not None and shape_of(add.outputs[0]) == shape_of(out):
                olds, out, bias = [node, add], add.outputs[0], vec
        new = _inner_product(graph, _layer_name(node), x, w.T, bias, len(shape) - 1,
                             dict(node.metadata_props))
        replace_chain(graph, olds, [new], [out], list(new.outputs))
        return True
