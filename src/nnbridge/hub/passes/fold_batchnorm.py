"""Deployment rewrites used by the Gluon -> Caffe API (:mod:`nnbridge.gluon`), opt-in, never part of a lowering.

``fold-batchnorm`` (``merge_bn``)
    ``BatchNormalization(Conv(x, W, b), g, beta, m, v, epsilon)`` whose Conv output has no other reader becomes
    ``Conv(x, W', b')`` with, per output channel ``o`` and the BatchNorm's OWN ``epsilon``::

        s_o  = g_o / sqrt(v_o + epsilon)
        W'_o = W_o * s_o
        b'_o = (b_o - m_o) * s_o + beta_o          (b = 0 when the Conv has no bias)

    This is the same function in exact arithmetic, not in float32: ``s``, ``W'`` and ``b'`` are computed in
    float64 and rounded once to float32, so the folded net differs from the unfolded one only by float32
    rounding (the order of the products changes), i.e. relative errors of order 1e-6 per layer. The folded Conv
    keeps the BatchNorm output's name (the Conv's own output value disappears).

``reverse-input-channels`` (``to_bgr``)
    For a graph input ``x`` of shape (N, C, ...) read only by Convs (as their data input, weights constant,
    ``group == 1``): ``Conv(x[:, ::-1], W[:, ::-1]) == Conv(x, W)``, so reversing the weights' input-channel axis
    makes the model take the channels in reverse order (RGB-trained weights then take BGR images). Exact: the
    same products, summed in another order. Any other reader of ``x`` is refused (:class:`ConversionError`).

``append-softmax`` (``softmax``)
    Every graph output ``y`` gets ``Softmax(y, axis=1)`` (over the classes of an (N, K, ...) output); the new
    output is named ``prob`` (one output) or ``{y}_prob``.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from nnbridge.errors import ConversionError
from nnbridge.hub.passes.base import NodePass, Pass
from nnbridge.hub.passes.graph import attr, const_array, consumers, new_const, replace_chain, shape_of, sole_consumer


class FoldBatchNorm(NodePass):
    """``BatchNormalization(Conv(x)) -> Conv(x)`` with folded weights (see the module docstring)."""

    name = "fold-batchnorm"

    def visit(self, graph: ir.Graph, node: ir.Node) -> bool:
        if node.op_type != "BatchNormalization" or node.domain != "" or attr(node, "training_mode", 0):
            return False
        if len(node.outputs) > 1 and any(v.uses() or v.is_graph_output() for v in node.outputs[1:]):
            return False
        conv = node.inputs[0].producer() if node.inputs[0] is not None else None
        if conv is None or conv.op_type != "Conv" or conv.domain != "" or sole_consumer(conv.outputs[0]) is not node:
            return False
        weight = const_array(conv.inputs[1])
        stats = [const_array(node.inputs[i]) for i in range(1, 5)]
        bias = const_array(conv.inputs[2]) if len(conv.inputs) > 2 and conv.inputs[2] is not None else None
        if weight is None or any(s is None for s in stats) or (len(conv.inputs) > 2 and conv.inputs[2] is not None
                                                               and bias is None):
            return False
        gamma, beta, mean, var = (np.asarray(s, np.float64).reshape(-1) for s in stats)  # type: ignore[arg-type]
        out_channels = weight.shape[0]
        if any(a.size != out_channels for a in (gamma, beta, mean, var)):
            return False
        eps = float(attr(node, "epsilon", 1e-5))
        scale = gamma / np.sqrt(var + eps)
        w64 = np.asarray(weight, np.float64) * scale.reshape((-1,) + (1,) * (weight.ndim - 1))
        b64 = np.zeros(out_channels) if bias is None else np.asarray(bias, np.float64).reshape(-1)
        b64 = (b64 - mean) * scale + beta
        base = conv.name or "conv"
        w_value = new_const(graph, f"{base}.folded_weight", w64.astype(np.float32))
        b_value = new_const(graph, f"{base}.folded_bias", b64.astype(np.float32))
        folded = ir.node("Conv", [conv.inputs[0], w_value, b_value], {a.name: a for a in conv.attributes.values()},
                         name=node.name or base, metadata_props=dict(node.metadata_props))
        replace_chain(graph, [conv, node], [folded], [node.outputs[0]], [folded.outputs[0]])
        return True


class ReverseInputChannels(Pass):
    """Reverse the channel order a graph input is read in, through its Convs' weights (see the module docstring)."""

    name = "reverse-input-channels"

    def run(self, model: ir.Model) -> bool:
        graph = model.graph
        changed = False
        for value in graph.inputs:
            if value.const_value is not None:
                continue
            readers = consumers(value)
            bad = [f"{n.name or n.op_type} ({n.op_type})" for n in readers
                   if n.op_type != "Conv" or n.domain != "" or n.inputs[0] is not value
                   or int(attr(n, "group", 1)) != 1 or const_array(n.inputs[1]) is None]
            if bad:
                raise ConversionError(
                    f"to_bgr: input {value.name!r} is read by {bad}; only reversing the input channels of "
                    "convolutions (group 1, constant weights) is exact here (convert with to_bgr=False and swap the "
                    "channels of the images instead)")
            for conv in readers:
                weight = const_array(conv.inputs[1])
                assert weight is not None
                flipped = np.ascontiguousarray(weight[:, ::-1])
                conv.replace_input_with(1, new_const(graph, f"{conv.name or 'conv'}.bgr_weight", flipped))
                changed = True
        return changed


class AppendSoftmax(Pass):
    """``y -> Softmax(y, axis=1)`` on every graph output (see the module docstring)."""

    name = "append-softmax"

    def run(self, model: ir.Model) -> bool:
        graph = model.graph
        outputs = list(graph.outputs)
        for i, value in enumerate(outputs):
            shape = shape_of(value)
            if shape is not None and len(shape) < 2:
                raise ConversionError(f"softmax: output {value.name!r} has shape {shape}; needs (N, K, ...)")
            name = "prob" if len(outputs) == 1 else f"{value.name}_prob"
            node = ir.node("Softmax", [value], {"axis": 1}, name=name)
            out = node.outputs[0]
            out.name, out.shape, out.type = name, value.shape, value.type
            graph.append(node)
            graph.outputs[i] = out
        return bool(outputs)


__all__ = ["AppendSoftmax", "FoldBatchNorm", "ReverseInputChannels"]
