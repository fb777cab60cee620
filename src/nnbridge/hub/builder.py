"""Build hub graphs node by node, with static shapes inferred as nodes are added.

Importers need the shapes of the values they consume (Flatten, Crop, InnerProduct's axis, Caffe's
pooling output rule...), so :class:`GraphBuilder` runs ONNX's per-node shape inference on each standard
node as it is added, and the custom op's own ``infer`` on custom-domain nodes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir
from onnx import shape_inference

from nnbridge.errors import ConversionError
from nnbridge.hub import custom

logger = logging.getLogger(__name__)

OPSET = 17
_SMALL = 64  # constant inputs with at most this many elements are shown to shape inference


def np_dtype(value: ir.Value) -> np.dtype:
    if value.dtype is None:
        raise ConversionError(f"value {value.name!r} has no known element type")
    return value.dtype.numpy()


def static_shape(value: ir.Value) -> tuple[int, ...]:
    """The value's shape as a tuple of ints; raises if any dimension is unknown."""
    shape = value.shape
    if shape is None or not all(isinstance(d, int) for d in shape):
        raise ConversionError(f"value {value.name!r} has no static shape ({shape}); give an input shape")
    return tuple(int(d) for d in shape)  # type: ignore[arg-type]


class GraphBuilder:
    """Accumulates inputs, initializers and nodes of one graph and keeps names unique."""

    def __init__(self, name: str = "graph", opset: int = OPSET) -> None:
        self.opset = opset
        self.graph = ir.Graph(
            inputs=[],
            outputs=[],
            nodes=[],
            opset_imports={"": opset, custom.CUSTOM_DOMAIN: custom.CUSTOM_DOMAIN_VERSION},
            name=name,
        )
        self._names: set[str] = set()  # value names in use
        self._reserved: set[str] = set()  # value names kept for :meth:`claim`
        self._node_names: set[str] = set()

    # -- names -----------------------------------------------------------------------------------
    def unique(self, name: str) -> str:
        """``name`` if unused and not reserved, else ``name_1``, ``name_2``... The result is taken."""
        candidate, i = name, 0
        while candidate in self._names or candidate in self._reserved:
            i += 1
            candidate = f"{name}_{i}"
        self._names.add(candidate)
        return candidate

    def reserve(self, names: Sequence[str]) -> None:
        """Keep ``names`` free for later :meth:`claim` calls (e.g. the blob names of a Caffe net)."""
        self._reserved.update(names)

    def claim(self, value: ir.Value, name: str) -> None:
        """Give ``value`` exactly ``name``, which must be reserved or free."""
        if value.name == name:
            return
        if name in self._names:
            raise ConversionError(f"duplicate value name {name!r}")
        self._reserved.discard(name)
        self._names.discard(value.name or "")
        self._names.add(name)
        value.name = name

    def _unique_node(self, name: str) -> str:
        candidate, i = name, 0
        while candidate in self._node_names:
            i += 1
            candidate = f"{name}_{i}"
        self._node_names.add(candidate)
        return candidate

    # -- graph pieces ------------------------------------------------------------------------------
    def input(self, name: str, shape: Sequence[int | str | None], dtype: ir.DataType = ir.DataType.FLOAT) -> ir.Value:
        value = ir.Value(name=self.unique(name), shape=ir.Shape(list(shape)), type=ir.TensorType(dtype))
        self.graph.inputs.append(value)
        return value

    def const(self, name: str, array: np.ndarray | ir.TensorProtocol) -> ir.Value:
        """Add an initializer. numpy arrays are wrapped without copying (memory-mapped weights stay mapped)."""
        unique = self.unique(name)
        tensor = array if isinstance(array, ir.TensorProtocol) else ir.Tensor(np.asarray(array), name=unique)
        tensor.name = unique
        value = ir.Value(
            name=unique,
            shape=ir.Shape([int(d) for d in tensor.shape]),  # type: ignore[arg-type]
            type=ir.TensorType(tensor.dtype),
            const_value=tensor,
        )
        self.graph.register_initializer(value)
        return value

    def int64s(self, name: str, values: Sequence[int]) -> ir.Value:
        return self.const(name, np.asarray(list(values), dtype=np.int64))

    def output(self, value: ir.Value) -> None:
        self.graph.outputs.append(value)

    def op(
        self,
        op_type: str,
        inputs: Sequence[ir.Value | None],
        attrs: Mapping[str, Any] | None = None,
        *,
        name: str,
        outputs: Sequence[str] | int = 1,
        domain: str = "",
        metadata: Mapping[str, str] | None = None,
    ) -> list[ir.Value]:
        """Add a node and return its output values, with type and shape filled in.

        ``outputs`` is either a list of output names or a count (names derived from ``name``).
        """
        node_name = self._unique_node(name)
        if isinstance(outputs, int):
            out_names = [self.unique(node_name if outputs == 1 else f"{node_name}:{i}") for i in range(outputs)]
        else:
            out_names = [self.unique(n) for n in outputs]
        values = [ir.Value(name=n) for n in out_names]
        clean_attrs = {k: v for k, v in (attrs or {}).items() if v is not None}
        node = ir.node(
            op_type,
            list(inputs),
            clean_attrs,
            domain=domain,
            outputs=values,
            name=node_name,
            metadata_props=dict(metadata) if metadata else None,
        )
        self.graph.append(node)
        self._infer(node)
        return list(node.outputs)

    def op1(self, op_type: str, inputs: Sequence[ir.Value | None], attrs: Mapping[str, Any] | None = None,
            **kwargs: Any) -> ir.Value:
        """:meth:`op` for the common single-output case."""
        return self.op(op_type, inputs, attrs, **kwargs)[0]

    def model(self, metadata: Mapping[str, str] | None = None, producer: str = "nnbridge") -> ir.Model:
        model = ir.Model(self.graph, ir_version=8, producer_name=producer)
        if metadata:
            model.metadata_props.update(metadata)
        return model

    # -- shape inference ----------------------------------------------------------------------------
    def _infer(self, node: ir.Node) -> None:
        if node.domain == custom.CUSTOM_DOMAIN:
            op = custom.get_custom_op(node.op_type)
            if op is None:
                raise ConversionError(f"custom op {node.op_type!r} of domain {node.domain} is not defined")
            attrs = {k: a.value for k, a in node.attributes.items()}
            shapes = [static_shape(v) for v in node.inputs if v is not None]
            dtypes = [np_dtype(v) for v in node.inputs if v is not None]
            for value, (shape, dtype) in zip(node.outputs, op.infer(attrs, shapes, dtypes), strict=True):
                value.shape = ir.Shape(list(shape))
                value.type = ir.TensorType(ir.DataType.from_numpy(np.dtype(dtype)))
            return
        infer_node(node, self.opset)


def infer_node(node: ir.Node, opset: int = OPSET) -> None:
    """Fill in the output types/shapes of a standard-domain node from its inputs."""
    proto = ir.serde.serialize_node(node)
    input_types: dict[str, onnx.TypeProto] = {}
    input_data: dict[str, onnx.TensorProto] = {}
    for value in node.inputs:
        if value is None or not value.name:
            continue
        if value.type is None:
            raise ConversionError(f"node {node.name!r}: input {value.name!r} has no known type")
        shape = None if value.shape is None else [d if isinstance(d, int) else None for d in value.shape]
        input_types[value.name] = onnx.helper.make_tensor_type_proto(value.dtype, shape)  # type: ignore[arg-type]
        const = value.const_value
        if const is not None and const.size <= _SMALL:
            input_data[value.name] = onnx.numpy_helper.from_array(const.numpy(), value.name)
    schema = onnx.defs.get_schema(node.op_type, opset, node.domain)
    try:
        result = shape_inference.infer_node_outputs(schema, proto, input_types, input_data)
    except Exception as exc:  # onnx raises InferenceError and friends
        raise ConversionError(f"node {node.name!r} ({node.op_type}): shape inference failed: {exc}") from exc
    for value in node.outputs:
        tp = result.get(value.name or "")
        if tp is None or not tp.HasField("tensor_type"):
            continue
        value.type = ir.TensorType(ir.DataType(tp.tensor_type.elem_type))
        if tp.tensor_type.HasField("shape"):
            dims: list[int | str | None] = []
            for d in tp.tensor_type.shape.dim:
                if d.HasField("dim_value"):
                    dims.append(d.dim_value)
                elif d.HasField("dim_param"):
                    dims.append(d.dim_param)
                else:
                    dims.append(None)
            value.shape = ir.Shape(dims)
