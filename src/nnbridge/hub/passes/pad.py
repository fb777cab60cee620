"""Fold a constant zero ``Pad`` into the following ``Conv``.

``Conv(Pad(x, p, value=0), pads=q) = Conv(x, pads=p+q)`` when ``p`` pads only the spatial axes with
non-negative amounts in ``constant`` mode with value 0 (Conv's own padding is zeros too). The Pad output
must have no other reader. Unequal sides ``b != e`` are fine: the Conv exporter
(:mod:`nnbridge.caffe.export.conv`) makes any non-negative pads exact. A Pad before AveragePool is absorbed
by :mod:`nnbridge.hub.passes.pool` when Caffe's divisor rule allows it; a max over zero padding is not a
max over -inf padding, so MaxPool absorbs one only when its input is provably non-negative (after a ReLU).

:class:`MaterializeZeroPad` (Caffe only, run after those two): every other constant zero Pad of the spatial
axes of an ``(N, C, H, W)`` tensor becomes a depthwise Caffe ``Deconvolution`` (``group = num_output = C``,
stride 1, pad 0, no bias) with kernel ``(b_h + e_h + 1, b_w + e_w + 1)`` holding a single 1 at tap
``(b_h, b_w)``. A stride-1 transposed convolution computes ``y[o] = sum_j x[o - j] w[j]`` over
``o in [0, H + K - 1)``; with ``w = delta(j - b)`` that is ``y[o] = x[o - b]``: ``b`` zeros, then ``x``,
then ``K - 1 - b = e`` zeros. Each output is one product ``1 * x`` plus exact zeros ``0 * x`` (Caffe's
col2im adds them), so the values are bit-exact for finite inputs. This makes ``Pad -> MaxPool`` (the max
does see the zeros) and ``Pad -> AveragePool`` that the pooling pass refused exact.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from nnbridge.hub.passes.base import NodePass
from nnbridge.hub.passes.graph import attr, caffe_node, const_array, new_const, replace_chain, shape_of, sole_consumer


def zero_pad_amounts(node: ir.Node) -> list[int] | None:
    """Spatial pads ``[b1.., e1..]`` of a constant-zero Pad on an (N, C, ...) tensor, else None."""
    if node.op_type != "Pad" or node.domain != "" or attr(node, "mode", "constant") != "constant":
        return None
    if len(node.inputs) > 3 and node.inputs[3] is not None:
        return None  # axes input: keep it simple
    pads = const_array(node.inputs[1]) if len(node.inputs) > 1 else None
    if pads is None:
        return None
    if len(node.inputs) > 2 and node.inputs[2] is not None:
        value = const_array(node.inputs[2])
        if value is None or np.any(value != 0):
            return None
    amounts = [int(p) for p in pads.reshape(-1)]
    rank = len(amounts) // 2
    begin, end = amounts[:rank], amounts[rank:]
    if rank < 3 or any(begin[:2]) or any(end[:2]) or min(amounts) < 0:
        return None
    return begin[2:] + end[2:]


class FoldPadIntoConv(NodePass):
    """``Conv(Pad0(x, p)) -> Conv(x, pads + p)``."""

    name = "fold-pad-into-conv"

    def visit(self, graph: ir.Graph, node: ir.Node) -> bool:
        extra = zero_pad_amounts(node)
        if extra is None:
            return False
        conv = sole_consumer(node.outputs[0])
        if conv is None or conv.op_type not in ("Conv",) or conv.inputs[0] is not node.outputs[0]:
            return False
        if attr(conv, "auto_pad", "NOTSET") != "NOTSET":
            return False
        pads = attr(conv, "pads", [0] * len(extra))
        conv.attributes["pads"] = ir.AttrInt64s("pads", [a + b for a, b in zip(pads, extra, strict=False)])
        conv.replace_input_with(0, node.inputs[0])
        graph.remove(node, safe=True)
        return True


def padding_deconvolution(channels: int, begin: list[int], end: list[int]) -> np.ndarray:
    """Depthwise Deconvolution weights ``(C, 1, b_h + e_h + 1, b_w + e_w + 1)`` that zero-pad exactly."""
    weight = np.zeros((channels, 1, begin[0] + end[0] + 1, begin[1] + end[1] + 1), np.float32)
    weight[:, :, begin[0], begin[1]] = 1.0
    return weight


class MaterializeZeroPad(NodePass):
    """A constant zero ``Pad`` of H and W (4-D) -> exact depthwise padding ``Deconvolution`` (Caffe)."""

    name = "materialize-zero-pad"

    def visit(self, graph: ir.Graph, node: ir.Node) -> bool:
        amounts = zero_pad_amounts(node)
        x = node.inputs[0]
        shape = shape_of(x) if x is not None else None
        if amounts is None or len(amounts) != 4 or x is None or shape is None or not any(amounts):
            return False
        begin, end = amounts[:2], amounts[2:]
        channels = int(shape[1])
        name = node.metadata_props.get("caffe.layer") or node.name or "pad"
        weight = new_const(graph, f"{name}.weight", padding_deconvolution(channels, begin, end))
        fields = {"num_output": channels, "bias_term": False, "group": channels,
                  "kernel_h": begin[0] + end[0] + 1, "kernel_w": begin[1] + end[1] + 1,
                  "stride_h": 1, "stride_w": 1, "pad_h": 0, "pad_w": 0}
        new = caffe_node("Deconvolution", [x, weight], name=name, param="convolution_param", fields=fields,
                         metadata=dict(node.metadata_props))
        replace_chain(graph, [node], [new], [node.outputs[0]], list(new.outputs))
        return True
