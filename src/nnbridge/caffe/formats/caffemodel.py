"""``.caffemodel`` files (binary NetParameter with parameter blobs): mmap reader, streaming writer.

Layout (caffe.proto): NetParameter ``layer = 100`` (LayerParameter, ``blobs = 7``) or, in old files,
``layers = 2`` (V1LayerParameter, ``blobs = 6``, possibly wrapping a V0 ``layer = 1`` whose
``blobs = 50``). Blob payloads are walked by hand (:mod:`.wire`) and returned as float32 numpy views of
the memory-mapped file (no copy; ``double_data`` is converted to float32, a copy); everything else of a
layer (small) is parsed by protobuf with the blob fields cut out, and the net is upgraded to V2
(:mod:`.upgrade`). Blobs are keyed by layer name. When several layers share a name, Caffe's
``Net::CopyTrainedLayersFrom`` copies each source layer into the *first* net layer of that name in
file order, so the *last* source layer wins; we keep the last one too (with a warning).

The writer streams: per layer it serialises the layer without blobs, computes the layer length from
the blob headers and byte sizes, and writes ``key, length, layer bytes``, then per blob its header
(``shape`` + ``data`` key and length) and the array's memory (``memoryview``), never a copy of the model;
float32 views of a memory-mapped input file (another caffemodel, ONNX or MXNet weights) are copied file to
file in the kernel instead (:func:`nnbridge.fileio.write_array`). Such a copy is cheapest when the blob's data
land at the offset they have in the source modulo 64 KiB (:func:`nnbridge.fileio.copy_phase`), so a copied
blob of at least :data:`PAD_MIN_BYTES` starts with a padding field (unknown field number :data:`PAD_FIELD`,
zero bytes) of the size that puts its data there: protobuf parsers, Caffe's and OpenCV's included, skip
unknown fields, and the reader above ignores them. Blobs written from memory get no padding.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
from google.protobuf import message as pb_message
from google.protobuf.descriptor import FieldDescriptor

from nnbridge.caffe.formats.upgrade import upgrade_net
from nnbridge.caffe.formats.wire import (
    WIRE_LEN,
    BlobRecord,
    Walker,
    encode_blob_header,
    encode_key,
    encode_varint,
    parse_blob,
)
from nnbridge.caffe.proto import caffe_pb2
from nnbridge.errors import FormatError
from nnbridge.fileio import COPY_ALIGN, atomic_write, copy_phase, file_range, map_readonly, write_array

logger = logging.getLogger(__name__)

NET_LAYER, NET_LAYERS = 100, 2  # NetParameter.layer (V2), NetParameter.layers (V1)
V2_BLOBS, V2_NAME = 7, 1
V1_BLOBS, V1_NAME, V1_V0 = 6, 4, 1
V0_BLOBS, V0_NAME = 50, 1
PAD_FIELD = 2**29 - 1  # the largest legal field number, far above BVLC BlobProto's 1-9 and forks' additions
PAD_MIN_BYTES = 4 * 2**20  # copied blobs at least this large are aligned (padding <= 64 KiB, <= 1.6% of them)
_PAD_KEY = encode_key(PAD_FIELD, WIRE_LEN)


@dataclass
class CaffemodelFile:
    """A read caffemodel: the upgraded net (layers without blobs) and every layer's blobs."""

    path: str
    net: caffe_pb2.NetParameter
    blobs: dict[str, list[np.ndarray]]
    legacy: dict[str, list[bool]] = field(default_factory=dict)  # blob shaped by num/channels/height/width
    buffer: Any = field(default=None, repr=False)  # the mmap the arrays view (kept alive here too)

    @property
    def nbytes(self) -> int:
        return sum(int(a.nbytes) for arrays in self.blobs.values() for a in arrays)


@dataclass
class _Layer:
    message: Any
    name: str
    blobs: list[BlobRecord]


def _name_at(walker: Walker, f: Any) -> str:
    return bytes(walker.buf[f.start:f.end]).decode("utf-8", errors="replace")


def _read_layer(walker: Walker, start: int, end: int, short: bool, index: int, v1: bool) -> _Layer:
    """One LayerParameter (``v1=False``) or V1LayerParameter: strip the blobs, parse the rest."""
    walker.where = f"layer #{index}"
    blob_field, name_field = (V1_BLOBS, V1_NAME) if v1 else (V2_BLOBS, V2_NAME)
    rest = bytearray()
    spans: list[tuple[int, int, bool]] = []
    v0_spans: list[tuple[int, int, bool]] = []
    name = ""
    for f in walker.fields(start, end, clamp=frozenset({blob_field, V1_V0} if v1 else {blob_field})):
        if f.number == name_field and f.wire == WIRE_LEN:
            name = _name_at(walker, f)
            walker.where = f"layer {name!r}"
        if f.number == blob_field and f.wire == WIRE_LEN:
            spans.append((f.start, f.end, f.short))
        elif v1 and f.number == V1_V0 and f.wire == WIRE_LEN:
            v0_rest = bytearray()
            for g in walker.fields(f.start, f.end, clamp=frozenset({V0_BLOBS})):
                if g.number == V0_NAME and g.wire == WIRE_LEN and not name:
                    name = _name_at(walker, g)
                    walker.where = f"layer {name!r}"
                if g.number == V0_BLOBS and g.wire == WIRE_LEN:
                    v0_spans.append((g.start, g.end, g.short))
                else:
                    v0_rest += walker.buf[g.tag:g.end]
            if f.short and not (v0_spans and v0_spans[-1][2]):
                raise walker.truncated(f.end)
            rest += encode_key(V1_V0, WIRE_LEN) + encode_varint(len(v0_rest)) + v0_rest
        else:
            rest += walker.buf[f.tag:f.end]
    if v0_spans:  # Caffe's V0 upgrade keeps only the V0 layer's blobs
        spans = v0_spans
    label = repr(name) if name else f"#{index}"
    records = []
    for i, (s, e, blob_short) in enumerate(spans):
        walker.where = f"layer {label} blob {i}"
        records.append(parse_blob(walker, s, e, blob_short))
    if short:
        walker.where = f"layer {label}"
        raise walker.truncated(end)
    message = caffe_pb2.V1LayerParameter() if v1 else caffe_pb2.LayerParameter()
    try:
        message.ParseFromString(bytes(rest))
    except pb_message.DecodeError as exc:
        raise FormatError(walker.path, f"corrupt layer {label} starting at byte {start}: "
                          f"{exc}", hint="the file is damaged or is not a Caffe caffemodel") from None
    return _Layer(message, name, records)


def _invalid_string(message: Any, prefix: str = "") -> str | None:
    """Name of a string field holding invalid UTF-8 (protobuf hands those back as bytes), if any."""
    for field_desc, value in message.ListFields():
        values = value if field_desc.is_repeated else [value]
        name = prefix + field_desc.name
        if field_desc.type == FieldDescriptor.TYPE_STRING:
            if any(isinstance(v, bytes) for v in values):
                return name
        elif field_desc.type == FieldDescriptor.TYPE_MESSAGE:
            for v in values:
                found = _invalid_string(v, name + ".")
                if found:
                    return found
    return None


def read_caffemodel(path: str | os.PathLike[str]) -> CaffemodelFile:
    """Memory-map ``path`` and read its net and blobs (blob data are zero-copy views of the map)."""
    name = os.fspath(path)
    buf = map_readonly(name, empty="the caffemodel is empty", unreadable="cannot read the caffemodel: {strerror}")
    return parse_caffemodel(buf, name)


def parse_caffemodel(buf: Any, path: str | None = None) -> CaffemodelFile:
    """Parse caffemodel bytes held in ``buf`` (bytes, mmap, memoryview...)."""
    walker = Walker(path, buf)
    walker.where = "the net header"
    rest = bytearray()
    v2: list[_Layer] = []
    v1: list[_Layer] = []
    for f in walker.fields(0, walker.size, clamp=frozenset({NET_LAYER, NET_LAYERS})):
        if f.number == NET_LAYER and f.wire == WIRE_LEN:
            v2.append(_read_layer(walker, f.start, f.end, f.short, len(v2) + len(v1), v1=False))
        elif f.number == NET_LAYERS and f.wire == WIRE_LEN:
            v1.append(_read_layer(walker, f.start, f.end, f.short, len(v2) + len(v1), v1=True))
        else:
            rest += buf[f.tag:f.end]
        walker.where = f"the net after layer #{len(v2) + len(v1) - 1}"
    net = caffe_pb2.NetParameter()
    try:
        net.ParseFromString(bytes(rest))
    except pb_message.DecodeError as exc:
        raise FormatError(path, f"corrupt net header: {exc}", hint="is this really a caffemodel?") from None
    if not v2 and not v1:
        raise FormatError(path, "no layers found", hint="is this really a caffemodel (not a prototxt)?")
    net.layer.extend(layer.message for layer in v2)
    net.layers.extend(layer.message for layer in v1)
    source_layers = v1 if v1 else v2  # Caffe's V1 upgrade ignores `layer` when `layers` is present
    bad = _invalid_string(net)
    if bad:
        raise FormatError(path, f"corrupt text (invalid UTF-8) in field {bad} of the net definition",
                          hint="the file is damaged")
    upgrade_net(net, path)
    blobs: dict[str, list[np.ndarray]] = {}
    legacy: dict[str, list[bool]] = {}
    for layer in source_layers:
        if layer.name in blobs:
            logger.warning("%s: several layers are named %r; the last one's blobs are used, as in Caffe",
                           path, layer.name)
        if layer.blobs or layer.name in blobs:
            blobs[layer.name] = [record.array for record in layer.blobs]
            legacy[layer.name] = [record.legacy for record in layer.blobs]
    return CaffemodelFile(path or "<memory>", net, blobs, legacy, buf)


def _as_float32(array: Any, layer: str, index: int) -> np.ndarray:
    out = np.asarray(array, dtype="<f4", order="C")  # ascontiguousarray would turn 0-D blobs into (1,)
    # min/max propagate NaN and reach +-inf: the same test as isfinite(out).all(), without a bool temporary.
    # Blobs copied unchanged from a mapped model file are not scanned: that would read every page of the
    # input (time and memory) only to repeat what the source file already holds.
    if out.size and file_range(out) is None and not (np.isfinite(out.min()) and np.isfinite(out.max())):
        logger.warning("layer %r blob %d holds non-finite values", layer, index)
    return out


def write_caffemodel(path: str | os.PathLike[str], net: caffe_pb2.NetParameter,
                     blobs: Mapping[str, Sequence[np.ndarray]]) -> None:
    """Write ``net`` (V2 layers) with ``blobs[layer name]`` as a caffemodel, atomically and streaming."""
    with atomic_write(path, "wb") as handle:
        stream_caffemodel(handle, net, blobs)


def stream_caffemodel(handle: IO[bytes], net: caffe_pb2.NetParameter,
                      blobs: Mapping[str, Sequence[np.ndarray]]) -> None:
    """Write the caffemodel bytes to an open binary file."""
    if len(net.layers):
        raise ValueError("write_caffemodel needs V2 layers; upgrade the net first (upgrade_net)")
    names = {layer.name for layer in net.layer}
    unknown = sorted(set(blobs) - names)
    if unknown:
        raise ValueError(f"blobs given for layers that are not in the net: {', '.join(unknown)}")
    header = caffe_pb2.NetParameter()
    header.CopyFrom(net)
    header.ClearField("layer")
    header_bytes = header.SerializeToString()
    position = _start_if_padding(handle, blobs)
    if position is not None:
        position += len(header_bytes)  # where the next layer starts
    handle.write(header_bytes)
    for layer in net.layer:
        if layer.name in blobs:
            stripped = caffe_pb2.LayerParameter()
            stripped.CopyFrom(layer)
            stripped.ClearField("blobs")
            layer_bytes = stripped.SerializeToString()
            arrays = [_as_float32(a, layer.name, i) for i, a in enumerate(blobs[layer.name])]
        else:
            layer_bytes = layer.SerializeToString()
            arrays = []
        head, parts = _layout(layer_bytes, arrays, position)
        handle.write(head)
        for prefix, array in parts:
            handle.write(prefix)
            if array.nbytes:
                write_array(handle, array)  # file to file for views of a mapped file, else from memory
        if position is not None:
            position += len(head) + sum(len(prefix) + array.nbytes for prefix, array in parts)


def _start_if_padding(handle: IO[bytes], blobs: Mapping[str, Sequence[np.ndarray]]) -> int | None:
    """Where the file starts (``handle.tell()``) when copied blobs may be padded, else None: not for streams
    without a position, nor for mappings that may build their arrays on access (only a ``dict``'s sizes are
    summed), nor when the padding (at most 1/64 of the bytes) could push the file past the 2 GiB that Caffe's
    and OpenCV's protobuf readers accept."""
    if not isinstance(blobs, dict):
        return None
    total = sum(int(getattr(a, "nbytes", 0)) for arrays in blobs.values() for a in arrays)
    if total + total // 32 + 2**24 >= 2**31:
        return None
    try:
        return handle.tell()
    except (OSError, ValueError):
        return None


def _pad_field(size: int) -> bytes | None:
    """An unknown length-delimited field (:data:`PAD_FIELD`, zeros) of exactly ``size`` bytes, or None when no
    field has that size (too small, or between two widths of the length varint)."""
    for width in (1, 2, 3):
        count = size - len(_PAD_KEY) - width
        if count >= 0 and len(encode_varint(count)) == width:
            return _PAD_KEY + encode_varint(count) + bytes(count)
    return None


def _layout(layer_bytes: bytes, arrays: Sequence[np.ndarray],
            position: int | None) -> tuple[bytes, list[tuple[bytes, np.ndarray]]]:
    """(layer key + length + layer bytes, [(blob prefix, array)]) of a layer starting at byte ``position``.

    Each large copied blob is padded so that its data start at their source offset modulo ``COPY_ALIGN``.
    A padding size moves later bytes (and may widen a length varint), so sizes are settled in a few rounds.
    """
    blob_key = encode_key(V2_BLOBS, WIRE_LEN)
    phases = [copy_phase(a) if position is not None and a.nbytes >= PAD_MIN_BYTES else None for a in arrays]
    pads = [0] * len(arrays)  # bytes of each blob's padding field (0: none)
    for _ in range(4 * len(arrays) + 4):
        headers = []
        for array, pad in zip(arrays, pads, strict=True):
            body = (_pad_field(pad) or b"") + encode_blob_header(array.shape, array.nbytes)
            headers.append(blob_key + encode_varint(len(body) + array.nbytes) + body)
        total = len(layer_bytes) + sum(len(h) + a.nbytes for h, a in zip(headers, arrays, strict=True))
        head = encode_key(NET_LAYER, WIRE_LEN) + encode_varint(total) + layer_bytes
        at = (position or 0) + len(head)
        for i, (header, array, phase) in enumerate(zip(headers, arrays, phases, strict=True)):
            at += len(header)  # where blob i's data start
            gap = 0 if phase is None else (phase - at) % COPY_ALIGN
            if gap:  # grow (or wrap) its padding, then lay the layer out again
                pads[i] = (pads[i] + gap) % COPY_ALIGN
                if pads[i] and _pad_field(pads[i]) is None:
                    pads[i] += COPY_ALIGN
                break
            at += array.nbytes
        else:
            return head, list(zip(headers, arrays, strict=True))
    logger.debug("caffemodel layout did not settle; blobs left unaligned")  # never seen; correct, only slower
    return _layout(layer_bytes, arrays, None)
