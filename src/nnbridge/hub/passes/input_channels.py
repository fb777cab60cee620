"""Swap the colour order an image input expects (RGB <-> BGR) by permuting the first convolutions' weights.

A convolution is linear in its input channels: with ``P`` the permutation swapping channels 0 and 2
(the reversal of a 3-channel input; BGRA <-> RGBA keeps channel 3)::

    Conv(x, W)[o] = sum_c W[o, c] * x[c] = sum_c W[o, P(c)] * x[P(c)] = Conv(x o P, W o P)[o]

so a model whose every reader of the input is a ``Conv`` (group 1) with constant weights, given the
weights ``W[:, P]``, computes on the swapped image ``x[P]`` exactly what the original computed on ``x``
(bias and everything downstream unchanged). This is MXNet caffe_converter's "first conv" swap and
GluonConverter's ``to_bgr``. An input read by anything else (a Scale, a grouped or depthwise Conv, a
Concat...) is refused: the swap would not be exact there. Shared weight tensors are copied, never
modified in place.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import onnx_ir as ir

from nnbridge.errors import ConversionError
from nnbridge.hub.passes.base import Pass
from nnbridge.hub.passes.graph import attr, const_array, consumers, new_const, shape_of

logger = logging.getLogger(__name__)

IMAGE_CHANNELS = (3, 4)


def channel_permutation(channels: int) -> list[int]:
    """``[2, 1, 0]`` for 3 channels, ``[2, 1, 0, 3]`` for 4 (alpha stays last)."""
    if channels not in IMAGE_CHANNELS:
        raise ValueError(f"cannot swap the colour order of {channels} channels")
    return [2, 1, 0] + list(range(3, channels))


class SwapInputChannels(Pass):
    """Permute the input-channel axis of the weights of every Conv reading an image input (see module doc).

    ``inputs``: graph input names to swap; default: every input of shape (N, 3 or 4, ...).
    ``swapped`` lists ``(input, conv node)`` pairs after :meth:`run`.
    """

    name = "swap-input-channels"

    def __init__(self, inputs: Sequence[str] | None = None) -> None:
        self.inputs = list(inputs) if inputs is not None else None
        self.swapped: list[tuple[str, str]] = []

    def _targets(self, graph: ir.Graph) -> list[ir.Value]:
        data = [v for v in graph.inputs if v.const_value is None and v.name not in graph.initializers]
        if self.inputs is not None:
            unknown = sorted(set(self.inputs) - {str(v.name) for v in data})
            if unknown:
                raise ConversionError(f"swap input channels: {unknown} are not inputs of the graph "
                                      f"(inputs: {[str(v.name) for v in data]})")
            return [v for v in data if v.name in self.inputs]
        picked = [v for v in data if (s := shape_of(v)) is not None and len(s) >= 3 and s[1] in IMAGE_CHANNELS]
        if not picked:
            shown = ", ".join(f"{v.name} {shape_of(v)}" for v in data)
            raise ConversionError(f"swap input channels: no image input with 3 or 4 channels (inputs: {shown})")
        return picked

    def run(self, model: ir.Model) -> bool:
        graph = model.graph
        targets = self._targets(graph)
        problems: list[str] = []
        plans: list[tuple[ir.Value, ir.Node, np.ndarray]] = []
        for value in targets:
            shape = shape_of(value)
            channels = shape[1] if shape is not None and len(shape) >= 2 else None
            if channels not in IMAGE_CHANNELS:
                problems.append(f"input {value.name!r} has shape {shape}, not (N, 3 or 4, ...)")
                continue
            readers = consumers(value)
            if value in graph.outputs:
                problems.append(f"input {value.name!r} is also a graph output")
            if not readers:
                problems.append(f"input {value.name!r} is not read by any node")
            for node in readers:
                weight = const_array(node.inputs[1]) if len(node.inputs) > 1 else None
                where = f"node {node.name!r} ({node.op_type})"
                if node.op_type != "Conv" or node.domain != "":
                    problems.append(f"input {value.name!r} is read by {where}, not by a convolution")
                elif node.inputs[0] is not value or value in node.inputs[1:]:
                    problems.append(f"input {value.name!r} is not only the data operand of {where}")
                elif int(attr(node, "group", 1)) != 1:
                    problems.append(f"input {value.name!r} is read by grouped {where} (group "
                                    f"{attr(node, 'group', 1)})")
                elif weight is None or weight.ndim < 3 or weight.shape[1] != channels:
                    problems.append(f"{where} has no constant weight with {channels} input channels")
                else:
                    plans.append((value, node, weight[:, channel_permutation(int(channels))]))
        if problems:
            raise ConversionError("cannot swap the input channels exactly: " + "; ".join(problems)
                                  + " (only inputs read by plain, group 1, convolutions can be swapped)")
        for value, node, swapped in plans:
            old = node.inputs[1]
            assert old is not None
            if consumers(old) == [node] and old.name in graph.initializers:
                old.const_value = ir.Tensor(np.ascontiguousarray(swapped), name=old.name)
            else:  # shared (or a Constant node's output): give this Conv its own copy
                node.replace_input_with(1, new_const(graph, f"{old.name}_swapped", np.ascontiguousarray(swapped)))
            self.swapped.append((str(value.name), str(node.name)))
            logger.info("swapped the colour channels of %s in %s", value.name, node.name)
        return bool(plans)
