"""MaxPool / AveragePool (optionally after a constant zero Pad) -> Caffe Pooling (+ Scale).

Caffe's pooling (pooling_layer.cpp) per axis, input ``H``, kernel ``k``, stride ``s``, pad ``p``:
``out = ceil((H + 2p - k) / s) + 1``, minus one if ``(out - 1) s >= H + p``; window ``o`` covers
``[o s - p, o s - p + k)``. MAX takes the max over the part inside ``[0, H)``. AVE sums that part and
divides by the window length clipped to ``[-p, H + p)``.

ONNX windows start at ``o s - b`` (``b`` = begin pad). Taking ``p = b`` (+ the begin pad of an absorbed
zero ``Pad``) gives the same window positions; the export is exact iff the output sizes agree and:

- MAX: no absorbed Pad (a max over zeros differs from a max over -inf padding), unless the Pad's input is
  provably non-negative (the output of ``Relu``, or of ``Clip`` with a constant ``min >= 0``: Keras'
  ``ZeroPadding2D + MaxPooling2D`` after a ReLU, ResNet's stem) and every window meets ``[0, H)`` (checked
  below): then ``max(valid values, 0) = max(valid values)``, which is what Caffe computes. Other zero Pads
  before MaxPool are materialised by :class:`~nnbridge.hub.passes.pad.MaterializeZeroPad`;
- AVE: the numerators agree (zeros add nothing); ONNX's divisor is the window length clipped to
  ``[0, H)`` (``count_include_pad=0``) or to the padded extent (``=1``; an absorbed Pad's zeros always
  count). Where the divisors differ, a ``Scale`` layer (axis 2, two axes, blob of shape ``(Ho, Wo)``)
  multiplies by ``caffe_divisor / onnx_divisor`` -- a fixed per-position factor.

Floor mode (ONNX ``ceil_mode=0``, torchvision's ``MaxPool2d(3, 2, 1)``) where Caffe's always-ceil output
``Hc`` exceeds ONNX's ``Ho = floor((H + b + e - k) / s) + 1``: Caffe computes a superset of the windows.
Its window ``o`` starts at ``o s - b`` whatever the output size, so for ``o < Ho`` it is ONNX's window
``o``, and the extra ones (``o >= Ho``) are only appended along each axis. Hence
``Pooling -> Slice(axis 2, slice_point Ho) -> Slice(axis 3, slice_point Wo)`` (only the axes that differ)
keeps exactly ONNX's values; the cut-off pieces go to one ``Silence`` layer (Caffe would otherwise
output them). The kept windows lie inside the padded input ``[-b, H + e)`` (floor mode), each must meet
``[0, H)`` (``(Ho - 1) s - b < H``, else MAX would see only padding), and the AVE divisor rule above is
applied to the kept positions only, after the slices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from nnbridge.hub.passes.base import NodePass
from nnbridge.hub.passes.graph import attr, caffe_node, const_array, new_const, replace_chain, shape_of, sole_consumer
from nnbridge.hub.passes.pad import zero_pad_amounts


@dataclass
class PoolPlan:
    method: str  # "MAX" | "AVE"
    kernel: list[int]
    stride: list[int]
    pad: list[int]
    factor: np.ndarray | None  # (Ho, Wo) divisor correction, None when Caffe's divisor is ONNX's
    caffe_out: tuple[int, int] = (0, 0)  # Caffe's (Hc, Wc) when larger than ONNX's: slice the extra off
    onnx_out: tuple[int, int] = (0, 0)
    lead: tuple[int, int] = (0, 0)  # Caffe outputs before ONNX's first one (end pad > begin pad, stride 1)

    @property
    def cut(self) -> list[tuple[int, int, int, int]]:
        """(axis, start, stop, Caffe size): ONNX's outputs are Caffe's ``[start, stop)`` along ``axis``, for
        every spatial axis where the two differ."""
        return [(2 + i, self.lead[i], self.lead[i] + self.onnx_out[i], self.caffe_out[i]) for i in range(2)
                if self.caffe_out[i] != self.onnx_out[i]]


def caffe_pool_size(size: int, kernel: int, stride: int, pad: int) -> int:
    out = math.ceil((size + 2 * pad - kernel) / stride) + 1
    if pad > 0 and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _clipped(out: int, size: int, kernel: int, stride: int, pad: int, lo: int, hi: int) -> np.ndarray:
    starts = np.arange(out) * stride - pad
    return (np.minimum(starts + kernel, hi) - np.maximum(starts, lo)).astype(np.float64)


def plan_pool(node: ir.Node, in_shape: tuple[int, ...], out_shape: tuple[int, ...],
              pre_pad: list[int] | None) -> PoolPlan | str:
    """How to express ``node`` (MaxPool/AveragePool on ``in_shape``) in Caffe, or why not."""
    method = "MAX" if node.op_type == "MaxPool" else "AVE"
    kernel = [int(k) for k in attr(node, "kernel_shape", [])]
    if len(kernel) != 2 or len(in_shape) != 4:
        return f"only 2-D pooling is exported (kernel {kernel})"
    if attr(node, "auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        return "auto_pad SAME_* is not exported; give explicit pads"
    if any(d != 1 for d in attr(node, "dilations", [1, 1])):
        return "dilated pooling has no Caffe equivalent"
    if len(node.outputs) > 1 and node.outputs[1].uses():
        return "the Indices output has no Caffe equivalent"
    if method == "MAX" and pre_pad is not None and not padded_nonnegative(node):
        return "a zero Pad before MaxPool is not padding with -inf"
    stride = [int(s) for s in attr(node, "strides", [1, 1])]
    pads = [int(p) for p in attr(node, "pads", [0, 0, 0, 0])]
    if attr(node, "auto_pad", "NOTSET") == "VALID":
        pads = [0, 0, 0, 0]
    b0, e0 = (pre_pad[:2], pre_pad[2:]) if pre_pad else ([0, 0], [0, 0])
    begin = [pads[i] + b0[i] for i in range(2)]
    end = [pads[2 + i] + e0[i] for i in range(2)]
    sizes = in_shape[2:]
    onnx_out = [int(d) for d in out_shape[2:]]
    caffe_pad, lead = list(begin), [0, 0]
    caffe_out = [caffe_pool_size(h, k, s, p) for h, k, s, p in zip(sizes, kernel, stride, begin, strict=False)]
    for i in range(2):
        shift = end[i] - begin[i]
        if caffe_out[i] < onnx_out[i] and shift > 0 and shift % stride[i] == 0:
            # more padding at the end (TF 'SAME' with an even kernel at stride 1): pad Caffe by the end amount;
            # its window o + shift/s starts where ONNX's window o does, so ONNX's outputs are a slice of Caffe's
            size = caffe_pool_size(sizes[i], kernel[i], stride[i], end[i])
            if size >= shift // stride[i] + onnx_out[i]:
                caffe_pad[i], lead[i], caffe_out[i] = end[i], shift // stride[i], size
    if any(c < o or o < 1 for c, o in zip(caffe_out, onnx_out, strict=False)):
        return (f"Caffe's ceil-mode output {caffe_out} is smaller than ONNX's {onnx_out} "
                f"(pads {pads}, ceil_mode {attr(node, 'ceil_mode', 0)})")
    if any(p >= k for p, k in zip(caffe_pad, kernel, strict=False)):
        return f"pad {caffe_pad} must be smaller than the kernel {kernel} in Caffe"
    if any((o - 1) * s - p >= h for o, s, p, h in zip(onnx_out, stride, begin, sizes, strict=False)):
        return f"the last ONNX window {onnx_out} lies entirely in the end padding {pads}"
    factor = None
    if method == "AVE":
        include = int(attr(node, "count_include_pad", 0))
        ratios = []
        for i in range(2):
            h, k, s, p = sizes[i], kernel[i], stride[i], begin[i]
            caffe_div = _clipped(onnx_out[i], h, k, s, p, -caffe_pad[i], h + caffe_pad[i])
            lo, hi = (-begin[i], h + e0[i] + pads[2 + i]) if include else (-b0[i], h + e0[i])
            onnx_div = _clipped(onnx_out[i], h, k, s, p, lo, hi)
            ratios.append(caffe_div / onnx_div)
        full = np.outer(ratios[0], ratios[1]).astype(np.float32)
        factor = None if np.all(full == 1.0) else full
    return PoolPlan(method, kernel, stride, caffe_pad, factor, (caffe_out[0], caffe_out[1]),
                    (onnx_out[0], onnx_out[1]), (lead[0], lead[1]))


def pool_fields(plan: PoolPlan) -> dict[str, object]:
    return {"pool": plan.method, "kernel_h": plan.kernel[0], "kernel_w": plan.kernel[1],
            "stride_h": plan.stride[0], "stride_w": plan.stride[1], "pad_h": plan.pad[0], "pad_w": plan.pad[1]}


def padded_nonnegative(node: ir.Node) -> bool:
    """True if ``node`` reads ``Pad(v)`` with ``v`` = ``Relu(..)`` or ``Clip(.., min >= 0)``."""
    x = node.inputs[0]
    pad = x.producer() if x is not None else None
    v = pad.inputs[0] if pad is not None and pad.op_type == "Pad" else None
    source = v.producer() if v is not None else None
    if source is None or source.domain != "":
        return False
    if source.op_type == "Relu":
        return True
    if source.op_type == "Clip" and len(source.inputs) > 1:
        low = const_array(source.inputs[1])
        return low is not None and low.size == 1 and float(low.reshape(())) >= 0.0
    return False


def pool_source(node: ir.Node) -> tuple[ir.Value, list[ir.Node], list[int] | None]:
    """(real input, absorbed Pad nodes, zero pads) of a pooling node."""
    x = node.inputs[0]
    assert x is not None
    pad = x.producer()
    absorbs = node.op_type == "AveragePool" or (node.op_type == "MaxPool" and padded_nonnegative(node))
    if absorbs and pad is not None and sole_consumer(x) is node:
        amounts = zero_pad_amounts(pad)
        if amounts is not None and len(amounts) == 4 and pad.inputs[0] is not None:
            return pad.inputs[0], [pad], amounts
    return x, [], None


class PoolToCaffe(NodePass):
    """Lower MaxPool/AveragePool (absorbing a zero Pad before AveragePool) when exact; else leave it
    for the exporter, which reports why."""

    name = "pool-to-caffe"

    def visit(self, graph: ir.Graph, node: ir.Node) -> bool:
        if node.domain != "" or node.op_type not in ("MaxPool", "AveragePool"):
            return False
        x, absorbed, pre_pad = pool_source(node)
        in_shape, out_shape = shape_of(x), shape_of(node.outputs[0])
        if in_shape is None or out_shape is None:
            return False
        plan = plan_pool(node, in_shape, out_shape, pre_pad)
        if isinstance(plan, str):
            return False
        name = node.metadata_props.get("caffe.layer") or node.name or node.op_type
        meta = dict(node.metadata_props)
        pool = caffe_node("Pooling", [x], name=name, param="pooling_param", fields=pool_fields(plan),
                          metadata=meta)
        new = [pool]
        if plan.cut or plan.factor is not None:
            pool.outputs[0].name = f"{name}/pooled"
        new.extend(_slice_extra(name, pool.outputs[0], plan.cut, meta))
        if plan.factor is not None:
            factor = new_const(graph, f"{name}.divisor", plan.factor)
            kept = kept_value(new) if plan.cut else pool.outputs[0]
            new.append(caffe_node("Scale", [kept, factor], name=f"{name}/divisor",
                                  param="scale_param", fields={"axis": 2, "num_axes": 2, "bias_term": False},
                                  metadata=meta))
        result = new[-1].outputs[0] if plan.factor is not None or not plan.cut else kept_value(new)
        replace_chain(graph, [*absorbed, node], new, [node.outputs[0]], [result])
        return True


def _slice_extra(name: str, pooled: ir.Value, cut: list[tuple[int, int, int, int]],
                 meta: dict[str, str]) -> list[ir.Node]:
    """Slice layers keeping rows/columns ``[start, stop)`` of each cut axis (the kept piece is the Slice's
    output 0 when ``start`` is 0, else output 1), then one Silence for the cut-off pieces (last node). Empty when
    nothing is cut. The kept piece of the last Slice is the second-to-last node's output ``kept_index``."""
    nodes: list[ir.Node] = []
    leftovers: list[ir.Value] = []
    bottom = pooled
    for axis, start, stop, size in cut:
        points = [p for p in (start, stop) if 0 < p < size]
        piece = caffe_node("Slice", [bottom], name=f"{name}/crop{axis}", param="slice_param",
                           fields={"axis": axis, "slice_point": points}, num_outputs=len(points) + 1, metadata=meta)
        keep = 1 if start > 0 else 0
        for index, value in enumerate(piece.outputs):
            value.name = f"{name}/crop{axis}" if index == keep else f"{name}/extra{axis}_{index}"
            if index != keep:
                leftovers.append(value)
        nodes.append(piece)
        bottom = piece.outputs[keep]
    if nodes:
        nodes.append(caffe_node("Silence", leftovers, name=f"{name}/silence", num_outputs=0, metadata=meta))
    return nodes


def kept_value(nodes: list[ir.Node]) -> ir.Value:
    """The kept piece of the last Slice made by :func:`_slice_extra` (``nodes[-2]`` is that Slice)."""
    last = nodes[-2]
    extra = {v.name for v in nodes[-1].inputs if v is not None}
    return next(v for v in last.outputs if v.name not in extra)
