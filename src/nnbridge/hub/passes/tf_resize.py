"""TensorFlow resizes to a size; tf2onnx writes ONNX ``Resize`` with float ``scales`` ``size / in``.

ONNX computes the output size as ``floor(in * scale)`` and maps coordinates with ``scale`` itself. When
``size / in`` is not exact in float32 (Keras ``Resizing(7, 9)`` of a 5x6 map: ``7/5 -> 1.4f``,
``5 * 1.4f = 6.9999998``), ONNX shape inference, and so every exporter that follows it, gives 6 rows where
TensorFlow gives 7 (onnxruntime happens to compute 7), and coordinates are mapped with ``1.4f``, not ``7/5``.
:class:`ResizeScalesToSizes` gives such a Resize the ``sizes`` input ``round(in * scale)`` instead: ONNX then
uses ``size / in`` exactly as TensorFlow does. It only fires where ``in * scale`` is within
float32 rounding of an integer that ``floor`` misses, so resizes whose scales are exact keep their form.
"""

from __future__ import annotations

import math

import numpy as np
import onnx_ir as ir

from nnbridge.hub.passes.base import NodePass
from nnbridge.hub.passes.graph import const_array, new_const, shape_of

_REL = 1e-5  # float32 rounding of size / in, with room


class ResizeScalesToSizes(NodePass):
    """``Resize(x, roi, scales)`` -> ``Resize(x, roi, None, sizes)`` where ``floor(in * scale)`` misses the size."""

    name = "resize-scales-to-sizes"

    def visit(self, graph: ir.Graph, node: ir.Node) -> bool:
        if node.domain != "" or node.op_type != "Resize" or len(node.inputs) < 3 or len(node.inputs) > 3:
            return False
        x, scales_value = node.inputs[0], node.inputs[2]
        shape = shape_of(x) if x is not None else None
        scales = const_array(scales_value) if scales_value is not None else None
        if shape is None or scales is None or scales.size != len(shape):
            return False
        sizes = []
        for dim, scale in zip(shape, scales.astype(np.float64).reshape(-1), strict=True):
            exact = dim * scale
            nearest = round(exact)
            sizes.append(nearest if abs(exact - nearest) <= _REL * max(1.0, exact) else math.floor(exact))
        if sizes == [math.floor(d * float(s)) for d, s in zip(shape, scales.reshape(-1), strict=True)]:
            return False
        name = f"{node.name or 'resize'}.sizes"
        sizes_value = new_const(graph, name, np.asarray(sizes, dtype=np.int64))
        node.replace_input_with(2, None)
        node.resize_inputs(4)
        node.replace_input_with(3, sizes_value)
        output = node.outputs[0]
        output.shape = ir.Shape([int(d) for d in sizes])
        return True


__all__ = ["ResizeScalesToSizes"]
