"""Fold a constant zero ``Pad`` into the following ``Conv``.

``Conv(Pad(x, p, value=0), pads=q) = Conv(x, pads=p+q)`` when ``p`` pads only the spatial axes with
non-negative amounts in ``constant`` mode with value 0 (Conv's own padding is zeros too). The Pad output
must have no other reader. Pooling after a Pad is handled by the pooling exporter, which knows Caffe's
divisor rule (a max over zero padding is not a max over -inf padding, so MaxPool is never folded).
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from nnbridge.hub.passes.base import NodePass
from nnbridge.hub.passes.graph import attr, const_array, sole_consumer


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
