"""Passes that make a hub model converted from an NHWC framework (TensorFlow/Keras) native to NCHW targets.

:func:`nchw_cleanup` is run by the TensorFlow importer right after loading tf2onnx's output (which was made
with ``inputs_as_nchw``, so the convolutions already work on NCHW tensors).

:class:`FoldFlattenTranspose`: Keras' ``Flatten`` flattens an NHWC tensor, so tf2onnx writes a Flatten after
a conv stack as ``Transpose(x, perm=[0, 2, 3, 1]) -> Reshape(N, -1) | Flatten(axis=1) -> MatMul(W) | Gemm``.
For ``x`` of shape ``(N, C, H, W)`` the NHWC-flattened row is ``f[h W C + w C + c] = x[c, h, w]`` and the
NCHW-flattened one is ``g[c H W + h W + w] = x[c, h, w]``, so ``g = f[P]`` with the permutation
``P[c H W + h W + w] = h W C + w C + c``. The dense layer computes ``y = f W`` (``W`` of shape ``(K, M)``,
``K = C H W``); since ``f[j] = g[P^-1 j]``, ``y = sum_i g[i] W[P[i]] = g (W[P])``: flattening ``x`` directly
and taking the rows of ``W`` in the order ``P`` (once, at conversion time) gives the same products,
summed over the same terms (only their order may differ, as between any two BLAS calls). Gemm with
``transB = 1`` stores ``W^T``: its columns are permuted instead. The Transpose disappears and the
flattened value gets a new name (``<name>/nchw``: its content differs from the NHWC-flattened value, so
it must not be compared with it). Needed: constant weight, static shapes, Transpose -> flatten -> dense
each read by nothing else.

:class:`FoldTransposePair`: tf2onnx leaves ``Transpose(p) -> Transpose(q)`` pairs where one NHWC value
feeds both an NHWC consumer and an NCHW one (e.g. a conv output read by a Keras Dense on 4-D and by a
MaxPooling2D: ``Transpose(0,2,3,1) -> Transpose(0,3,1,2) -> MaxPool``). With ``t = transpose(x, p)``,
``transpose(t, q)[i] = x`` indexed by ``r[j] = p[q[j]]``: the pair is one ``Transpose(r)``, and nothing
when ``r`` is the identity (then the readers of the second output read ``x`` itself). Pure data
movement: exact. The first Transpose stays while something else reads it.

:class:`FoldRepeatUpsample`: Keras' ``UpSampling2D`` (``repeat`` along H then W in NHWC) reaches the hub
as a chain of pure data-movement ops (``Unsqueeze -> Tile -> Transpose -> Reshape -> ... -> Transpose``)
from an NCHW ``x`` back to an NCHW ``y`` of shape ``(N, C, a H, b W)``. Each such op only copies
elements, so the chain is an index map ``y = x.flat[M]`` that the pass computes once by running the chain
(with numpy's exact integer semantics) on ``iota = arange(x.size)``. When ``M`` equals the map of
nearest upsampling (``y[n, c, i, j] = x[n, c, i // a, j // b]``), the chain is that, and becomes
``Resize(nearest, asymmetric, floor, scales (1, 1, a, b))``, which reads ``floor(i / a) = i // a``
exactly. Nothing is assumed about the chain's form: any chain with another map is left alone.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx_ir as ir

from nnbridge.hub.passes.base import NodePass, PassManager
from nnbridge.hub.passes.graph import attr, const_array, new_const, replace_chain, shape_of, sole_consumer

_NHWC = [0, 2, 3, 1]


def nhwc_row_order(channels: int, height: int, width: int) -> np.ndarray:
    """``P`` with ``P[c H W + h W + w] = h W C + w C + c`` (NCHW flat index -> NHWC flat index)."""
    c, h, w = np.meshgrid(np.arange(channels), np.arange(height), np.arange(width), indexing="ij")
    return (h * width * channels + w * channels + c).reshape(-1)


def _unique_value_name(graph: ir.Graph, base: str) -> str:
    used = {v.name for v in graph.initializers.values()} | {v.name for v in graph.inputs}
    for node in graph:
        used.update(v.name for v in node.outputs)
    candidate, i = base, 0
    while candidate in used:
        i += 1
        candidate = f"{base}_{i}"
    return candidate


def _drop_if_unused(graph: ir.Graph, value: ir.Value) -> None:
    name = value.name
    if name is not None and name in graph.initializers and not value.uses() and not value.is_graph_output():
        del graph.initializers[name]


class FoldFlattenTranspose(NodePass):
    """``Transpose(perm=[0,2,3,1]) -> Reshape(N,-1)|Flatten -> MatMul|Gemm`` with a constant weight ->
    ``Flatten(axis=1) -> MatMul|Gemm`` with the weight rows permuted (see the module docstring)."""

    name = "fold-flatten-transpose"

    def visit(self, graph: ir.Graph, node: ir.Node) -> bool:
        if node.op_type != "Transpose" or node.domain != "" or attr(node, "perm") != _NHWC:
            return False
        x, t = node.inputs[0], node.outputs[0]
        shape = shape_of(x) if x is not None else None
        flat = sole_consumer(t)
        if x is None or shape is None or len(shape) != 4 or flat is None:
            return False
        if flat.op_type not in ("Reshape", "Flatten") or flat.domain != "" or flat.inputs[0] is not t:
            return False
        if flat.op_type == "Flatten" and int(attr(flat, "axis", 1)) not in (1, -3):
            return False
        n, c, h, w = shape
        f = flat.outputs[0]
        if shape_of(f) != (n, c * h * w):
            return False
        dense = sole_consumer(f)
        if dense is None or dense.domain != "" or dense.inputs[0] is not f:
            return False
        weight_value = dense.inputs[1]
        weight = const_array(weight_value)
        if weight_value is None or weight is None or weight.ndim != 2:
            return False
        if dense.op_type == "MatMul" or (dense.op_type == "Gemm" and not attr(dense, "transA", 0)):
            axis = 1 if dense.op_type == "Gemm" and attr(dense, "transB", 0) else 0  # the K axis of the weight
        else:
            return False
        if weight.shape[axis] != c * h * w:
            return False
        permuted = np.take(weight, nhwc_row_order(c, h, w), axis=axis)
        new_weight = new_const(graph, f"{weight_value.name}/nchw", np.ascontiguousarray(permuted))
        new_flat = ir.node("Flatten", [x], {"axis": 1}, name=flat.name, metadata_props=dict(flat.metadata_props))
        out = new_flat.outputs[0]
        out.name = _unique_value_name(graph, f"{f.name}/nchw")
        out.shape = ir.Shape([n, c * h * w])
        out.type = f.type
        graph.insert_after(flat, new_flat)
        dense.replace_input_with(0, out)
        dense.replace_input_with(1, new_weight)
        extra = [v for v in flat.inputs[1:] if v is not None]
        graph.remove(flat, safe=True)
        graph.remove(node, safe=True)
        for value in [weight_value, *extra]:
            _drop_if_unused(graph, value)
        return True


class FoldTransposePair(NodePass):
    """``Transpose(p) -> Transpose(q)`` -> ``Transpose(p o q)``, or nothing when that is the identity."""

    name = "fold-transpose-pair"

    def visit(self, graph: ir.Graph, node: ir.Node) -> bool:
        if node.op_type != "Transpose" or node.domain != "":
            return False
        t, out = node.inputs[0], node.outputs[0]
        first = t.producer() if t is not None else None
        if t is None or first is None or first.op_type != "Transpose" or first.domain != "":
            return False
        x = first.inputs[0]
        shape = shape_of(x) if x is not None else None
        p, q = attr(first, "perm"), attr(node, "perm")
        if x is None or shape is None or p is None or q is None or len(p) != len(shape) or len(q) != len(p):
            return False
        composed = [int(p[int(j)]) for j in q]
        if composed == list(range(len(shape))):
            if out.is_graph_output():
                return False
            out.replace_all_uses_with(x)
            graph.remove(node, safe=True)
        else:
            node.replace_input_with(0, x)
            node.attributes["perm"] = ir.AttrInt64s("perm", composed)
        if not t.uses() and not t.is_graph_output():
            graph.remove(first, safe=True)
        return True


def _reshape(data: np.ndarray, shape: np.ndarray) -> np.ndarray:
    dims = [int(d) if d != 0 else data.shape[i] for i, d in enumerate(shape.reshape(-1))]
    return data.reshape(dims)


def _axes(data: np.ndarray, axes: np.ndarray, rank: int) -> list[int]:
    del data
    return sorted(int(a) % rank for a in axes.reshape(-1))


_MOVES: dict[str, Callable[[np.ndarray, np.ndarray | None, ir.Node], np.ndarray]] = {
    "Unsqueeze": lambda d, a, n: np.expand_dims(d, tuple(_axes(d, a, d.ndim + a.size))) if a is not None else d,
    "Squeeze": lambda d, a, n: np.squeeze(d, tuple(_axes(d, a, d.ndim))) if a is not None else np.squeeze(d),
    "Tile": lambda d, a, n: np.tile(d, [int(r) for r in a.reshape(-1)]) if a is not None else d,
    "Reshape": lambda d, a, n: _reshape(d, a) if a is not None else d,
    "Expand": lambda d, a, n: np.broadcast_to(d, np.broadcast_shapes(d.shape, tuple(int(v) for v in a.reshape(-1))))
    if a is not None else d,
    "Transpose": lambda d, a, n: np.transpose(d, attr(n, "perm", list(reversed(range(d.ndim))))),
}


def _is_move(node: ir.Node | None) -> bool:
    if node is None or node.domain != "" or node.op_type not in _MOVES:
        return False
    if node.op_type == "Reshape" and attr(node, "allowzero", 0):
        return False
    return all(const_array(v) is not None for v in node.inputs[1:] if v is not None)


class FoldRepeatUpsample(NodePass):
    """A data-movement chain NCHW ``x`` -> ``(N, C, aH, bW)`` that is nearest upsampling -> ``Resize``."""

    name = "fold-repeat-upsample"

    def visit(self, graph: ir.Graph, node: ir.Node) -> bool:
        x = node.inputs[0] if node.inputs else None
        shape = shape_of(x) if x is not None else None
        if x is None or shape is None or len(shape) != 4 or not _is_move(node) or _is_move(x.producer()):
            return False
        n, c, h, w = shape
        chain: list[ir.Node] = []
        current: ir.Node | None = node
        while _is_move(current) and current is not None:
            chain.append(current)
            out = current.outputs[0]
            current = sole_consumer(out) if not out.is_graph_output() else None
        if not any(step.op_type in ("Tile", "Expand") for step in chain):
            return False  # nothing duplicates elements: cannot be an upsampling
        ends = [shape_of(step.outputs[0]) for step in chain]
        if not any(e is not None and len(e) == 4 and e[:2] == (n, c) and e[2] % h == 0 and e[3] % w == 0
                   and e[2:] != (h, w) for e in ends):
            return False
        data = np.arange(n * c * h * w, dtype=np.int64).reshape(shape)
        best = None
        for i, step in enumerate(chain):
            arg = const_array(step.inputs[1]) if len(step.inputs) > 1 else None
            data = _MOVES[step.op_type](data, arg, step)
            out_shape = data.shape
            if len(out_shape) == 4 and out_shape[:2] == (n, c) and out_shape[2] % h == 0 and \
                    out_shape[3] % w == 0 and out_shape[2:] != (h, w):
                a, b = out_shape[2] // h, out_shape[3] // w
                expected = np.repeat(np.repeat(np.arange(data.size // (a * b)).reshape(shape), a, 2), b, 3)
                if np.array_equal(data, expected):
                    best = (i, a, b)
        if best is None:
            return False
        last, a, b = best
        olds = chain[: last + 1]
        end = olds[-1].outputs[0]
        if shape_of(end) is None:
            return False
        scales = new_const(graph, f"{end.name}/scales", np.array([1, 1, a, b], np.float32))
        resize = ir.node("Resize", [x, None, scales], {"mode": "nearest",
                                                      "coordinate_transformation_mode": "asymmetric",
                                                      "nearest_mode": "floor"},
                         name=olds[-1].name, metadata_props=dict(olds[-1].metadata_props))
        replace_chain(graph, olds, [resize], [end], list(resize.outputs))
        return True


def nchw_cleanup() -> PassManager:
    """The passes run on every model imported from TensorFlow/Keras (pairs first: that exposes flattens; and
    TensorFlow's size-based resizes, :mod:`nnbridge.hub.passes.tf_resize`)."""
    from nnbridge.hub.passes.tf_resize import ResizeScalesToSizes

    return PassManager([FoldTransposePair(), FoldRepeatUpsample(), FoldFlattenTranspose(), ResizeScalesToSizes()])


__all__ = ["FoldFlattenTranspose", "FoldRepeatUpsample", "FoldTransposePair", "nchw_cleanup", "nhwc_row_order"]
