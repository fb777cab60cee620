"""Streaming ONNX writer: initializer payloads go from their (memory-mapped) buffers straight to the file.

``onnx.save`` and ``ir.save`` first build the whole ``ModelProto`` in memory, which holds a second copy of
every weight. Here the model is serialized *without* the graph's initializers, and the file is then
assembled by hand in protobuf wire format (https://protobuf.dev/programming-guides/encoding/):

- a field is ``tag = (field_number << 3) | wire_type`` as a varint; wire type 2 (LEN) is followed by the
  payload length as a varint and the payload bytes;
- ``ModelProto.graph`` is field 7, ``GraphProto.initializer`` field 5 (repeated ``TensorProto``),
  ``TensorProto.raw_data`` field 9 (little-endian element bytes), ``external_data`` field 13 and
  ``data_location`` field 14 (``EXTERNAL`` = 1);
- fields may appear in any order, so each initializer is written as its small header (name, dims,
  data_type, ...) followed by its ``raw_data`` field, after the rest of the graph.

The file is ``model-without-graph | tag(7) len(graph) graph-without-initializers | initializer*``; all
lengths are known beforehand from the array sizes, so nothing is buffered. An initializer whose array is
a view of a memory-mapped input file (:func:`nnbridge.fileio.map_readonly`, e.g. a caffemodel blob: the
same little-endian bytes) is copied file to file in the kernel (:func:`nnbridge.fileio.write_array`);
``ir.Tensor(array).numpy()`` returns ``array`` itself, so the view survives. Models whose initializers do
not fit the 2 GiB protobuf limit are written with external data (one ``<name>.data`` file beside the
model, offsets aligned to 64 bytes, as ``onnx.external_data_helper`` reads it); tensors under 1 KiB stay
inline, because runtimes read shape-like inputs (Reshape's shape...) only from inline data.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir

from nnbridge.fileio import AtomicGroup
from nnbridge.fileio import write_array as _write_array  # file-to-file copy for views of mapped files
from nnbridge.protowire import encode_varint

logger = logging.getLogger(__name__)

PROTOBUF_LIMIT = 2**31 - 1
_HEADROOM = 64 * 2**20  # room for the graph itself under the protobuf limit
_ALIGN = 64
_EXTERNAL_MIN = 1024  # bytes; like onnx.save's default size_threshold

_TAG_GRAPH = (7 << 3) | 2
_TAG_INITIALIZER = (5 << 3) | 2
_TAG_RAW_DATA = (9 << 3) | 2
_NO_NUMPY_DTYPES = {ir.DataType.INT4, ir.DataType.UINT4, ir.DataType.FLOAT4E2M1, ir.DataType.STRING}


def _len_field(tag: int, length: int) -> bytes:
    return encode_varint(tag) + encode_varint(length)


@dataclass
class _Initializer:
    header: bytes  # serialized TensorProto without raw_data (or the complete tensor when ``data`` is None)
    data: np.ndarray | None  # C-contiguous little-endian array whose bytes are raw_data
    external: bool = False  # data goes to the external data file

    @property
    def nbytes(self) -> int:
        return 0 if self.data is None else int(self.data.nbytes)

    def payload_size(self) -> int:
        if self.data is None or self.external:
            return len(self.header)
        return len(self.header) + len(_len_field(_TAG_RAW_DATA, self.nbytes)) + self.nbytes


def _tensor_header(tensor: ir.TensorProtocol, name: str) -> onnx.TensorProto:
    proto = onnx.TensorProto(name=name, data_type=tensor.dtype.value)
    proto.dims.extend(int(d) for d in tensor.shape.numpy())
    if tensor.doc_string:
        proto.doc_string = tensor.doc_string
    for key, value in tensor.metadata_props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto


def _array_of(tensor: ir.TensorProtocol) -> np.ndarray | None:
    """The tensor's element bytes as a numpy array without copying, or None to serialize it whole."""
    if isinstance(tensor, ir.TensorProtoTensor) or tensor.dtype in _NO_NUMPY_DTYPES:
        return None
    array = tensor.numpy()
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return np.ascontiguousarray(array).reshape(-1)


def _collect(graph: ir.Graph) -> list[_Initializer]:
    result = []
    for name, value in graph.initializers.items():
        tensor = value.const_value
        if tensor is None:
            logger.warning("initializer %r has no value; left out", name)
            continue
        array = _array_of(tensor)
        if array is None:
            full = ir.serde.serialize_tensor(tensor)
            full.name = name
            result.append(_Initializer(full.SerializeToString(), None))
        else:
            result.append(_Initializer(_tensor_header(tensor, name).SerializeToString(), array))
    return result


class _ModelShell:
    """The model seen through a graph view without initializers (everything else delegates)."""

    def __init__(self, model: ir.Model, graph: ir.GraphView) -> None:
        self._model = model
        self.graph = graph

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def _shell_bytes(model: ir.Model) -> tuple[bytes, bytes]:
    """(ModelProto without graph, GraphProto without initializers) as bytes."""
    graph = model.graph
    view = ir.GraphView(
        graph.inputs, graph.outputs, nodes=list(graph), initializers=(),
        doc_string=graph.doc_string, opset_imports=dict(graph.opset_imports), name=graph.name,
        metadata_props=dict(graph.metadata_props),
    )
    proto = ir.serde.serialize_model_into(onnx.ModelProto(), _ModelShell(model, view))  # type: ignore[arg-type]
    input_names = {v.name for v in graph.inputs}
    for value in graph.initializers.values():  # type/shape annotations, as ir.serde writes them
        if value.name not in input_names and (value.type is not None or value.shape is not None):
            ir.serde.serialize_value_into(proto.graph.value_info.add(), value)
    graph_bytes = proto.graph.SerializeToString()
    proto.ClearField("graph")
    return proto.SerializeToString(), graph_bytes


def _external_headers(inits: list[_Initializer], location: str) -> Iterator[tuple[_Initializer, int]]:
    """Rewrite streamed headers to point into the data file; yields (initializer, offset)."""
    offset = 0
    for init in inits:
        if init.data is None or init.nbytes < _EXTERNAL_MIN:
            continue  # small tensors stay inline: runtimes read shapes etc. only from inline data
        init.external = True
        offset = (offset + _ALIGN - 1) // _ALIGN * _ALIGN
        proto = onnx.TensorProto.FromString(init.header)
        proto.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", str(offset)), ("length", str(init.nbytes))):
            entry = proto.external_data.add()
            entry.key, entry.value = key, value
        init.header = proto.SerializeToString()
        yield init, offset
        offset += init.nbytes


def save_model_streaming(model: ir.Model, path: str | os.PathLike[str], *, external_data: bool | None = None) -> None:
    """Write ``model`` to ``path`` atomically, streaming initializer data (see the module docstring).

    ``external_data``: None chooses external data only when the initializers exceed the protobuf limit.
    """
    target = Path(path)
    inits = _collect(model.graph)
    head, graph_bytes = _shell_bytes(model)
    total = sum(init.nbytes for init in inits)
    if external_data is None:
        external_data = total + len(graph_bytes) + _HEADROOM > PROTOBUF_LIMIT
    data_name = f"{target.name}.data"
    with AtomicGroup() as group:
        placed: list[tuple[_Initializer, int]] = []
        if external_data:
            placed = list(_external_headers(inits, data_name))
            data_tmp = group.path(target.parent / data_name)
            with open(data_tmp, "wb") as handle:
                for init, offset in placed:
                    handle.seek(offset)
                    assert init.data is not None
                    _write_array(handle, init.data)
        graph_len = len(graph_bytes) + sum(
            len(_len_field(_TAG_INITIALIZER, init.payload_size())) + init.payload_size()
            for init in inits
        )
        if graph_len > PROTOBUF_LIMIT:
            raise ValueError(f"{target}: graph of {graph_len} bytes exceeds the protobuf limit even without weights")
        with open(group.path(target), "wb") as handle:
            handle.write(head)
            handle.write(_len_field(_TAG_GRAPH, graph_len))
            handle.write(graph_bytes)
            for init in inits:
                handle.write(_len_field(_TAG_INITIALIZER, init.payload_size()))
                handle.write(init.header)
                if init.data is not None and not init.external:
                    handle.write(_len_field(_TAG_RAW_DATA, init.nbytes))
                    _write_array(handle, init.data)
    logger.info("wrote %s (%d initializers, %.1f MB%s)", target, len(inits), total / 1e6,
                f", external data {data_name}" if external_data else "")
