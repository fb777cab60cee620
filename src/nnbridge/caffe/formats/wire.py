"""Protocol-buffer wire format by hand, for the parts of Caffe files that are too big for protobuf.

Facts used (primitives in :mod:`nnbridge.protowire`):

- wire types 3/4 (groups) do not occur in caffe.proto and are treated as corruption;
- a ``repeated float`` field is either *packed* (one wire-type-2 field holding ``4 * n`` little-endian
  IEEE floats) or unpacked (``n`` wire-type-5 fields); parsers must accept both.

BlobProto (caffe.proto): ``shape = 7`` (BlobShape, ``repeated int64 dim = 1 [packed]``),
``data = 5`` (packed float), ``diff = 6``, ``double_data = 8`` (packed double), ``double_diff = 9``,
legacy ``num = 1``, ``channels = 2``, ``height = 3``, ``width = 4`` (int32). As in Caffe's
``Blob::FromProto``: when any legacy dimension is present the shape is ``(num, channels, height, width)``
(absent ones 0), otherwise ``shape.dim``; ``double_data`` wins over ``data`` when non-empty.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnbridge.errors import FormatError
from nnbridge.protowire import (  # noqa: F401  (re-exported for the Caffe readers)
    WIRE_FIXED32,
    WIRE_FIXED64,
    WIRE_LEN,
    WIRE_VARINT,
    encode_key,
    encode_varint,
    to_signed64,
)


@dataclass(frozen=True)
class Field:
    """One field of a message: ``buf[tag:end]`` is the whole field, ``buf[start:end]`` its payload."""

    number: int
    wire: int
    tag: int
    start: int
    end: int
    value: int = 0  # the decoded varint for wire type 0
    short: bool = False  # length-delimited payload runs past the enclosing message (end was clamped)


class Walker:
    """Walks fields of a buffer (bytes or mmap) and raises FormatError naming file, place and byte offset."""

    def __init__(self, path: str | None, buf: Any):
        self.path = path
        self.buf = buf
        self.size = len(buf)
        self.where = "the file"

    def truncated(self, pos: int, what: str = "") -> FormatError:
        detail = f" ({what})" if what else ""
        return FormatError(self.path, f"truncated inside {self.where}{detail} at byte {pos}",
                           hint="the file is incomplete; copy or download it again")

    def corrupt(self, pos: int, what: str) -> FormatError:
        return FormatError(self.path, f"corrupt data inside {self.where} at byte {pos}: {what}",
                           hint="the file is damaged or is not a Caffe protobuf file")

    def overrun(self, pos: int, end: int, what: str) -> FormatError:
        if end >= self.size:
            return self.truncated(pos, what)
        return self.corrupt(pos, f"{what} runs past the end of its enclosing message (byte {end})")

    def varint(self, pos: int, end: int) -> tuple[int, int]:
        buf = self.buf
        result = shift = 0
        start = pos
        while True:
            if pos >= end:
                raise self.overrun(start, end, "varint")
            byte = buf[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result, pos
            shift += 7
            if shift >= 70:
                raise self.corrupt(start, "varint longer than 10 bytes")

    def field_at(self, pos: int, end: int, clamp: frozenset[int] = frozenset()) -> Field:
        """The field starting at ``pos``. A length-delimited field whose number is in ``clamp`` and that
        overruns ``end`` comes back with ``short=True`` and a clamped end (so the caller can descend and
        name the precise place); any other overrun raises."""
        tag = pos
        key, pos = self.varint(pos, end)
        number, wire = key >> 3, key & 7
        value = 0
        short = False
        if number == 0:
            raise self.corrupt(tag, "field number 0")
        if wire == WIRE_VARINT:
            value, stop = self.varint(pos, end)
        elif wire == WIRE_FIXED64:
            stop = pos + 8
        elif wire == WIRE_FIXED32:
            stop = pos + 4
        elif wire == WIRE_LEN:
            length, pos = self.varint(pos, end)
            stop = pos + length
            if stop > end and number in clamp:
                stop, short = end, True
        else:
            raise self.corrupt(tag, f"invalid wire type {wire} (field {number})")
        if stop > end:
            raise self.overrun(pos, end, f"field {number}")
        return Field(number, wire, tag, pos, stop, value, short)

    def fields(self, start: int, end: int, *, clamp: frozenset[int] = frozenset()) -> Iterator[Field]:
        pos = start
        while pos < end:
            field = self.field_at(pos, end, clamp)
            yield field
            pos = field.end

    def packed_varints(self, start: int, end: int) -> list[int]:
        out = []
        pos = start
        while pos < end:
            value, pos = self.varint(pos, end)
            out.append(value)
        return out

    def fixed_run(self, field: Field, end: int, dtype: str) -> tuple[np.ndarray, int]:
        """An unpacked repeated fixed-width field: consecutive 1-byte-key + value records starting at
        ``field.tag``, read with one numpy view; returns float32 values and where the run stops."""
        width = np.dtype(dtype).itemsize
        stride = 1 + width
        key = self.buf[field.tag]
        if field.start != field.tag + 1:
            raise self.corrupt(field.tag, "unexpected multi-byte key in a float run")
        count = (end - field.tag) // stride
        records = np.frombuffer(self.buf, dtype=np.dtype([("k", "u1"), ("v", dtype)]), count=count,
                                offset=field.tag)
        bad = np.flatnonzero(records["k"] != key)
        n = int(bad[0]) if bad.size else count
        return records["v"][:n].astype(np.float32), field.tag + n * stride


@dataclass
class BlobRecord:
    """Where one BlobProto's values live and how Caffe shapes it."""

    shape: tuple[int, ...]
    legacy: bool  # shape came from num/channels/height/width
    array: np.ndarray


def parse_blob(walker: Walker, start: int, end: int, short: bool = False) -> BlobRecord:
    """Parse one BlobProto in ``buf[start:end]``; float ``data`` stays a zero-copy view of the buffer.

    ``short`` says the enclosing field was clamped at the end of the file: reaching ``end`` without
    finding the damage still means the blob is truncated.
    """
    dims: list[int] = []
    legacy: dict[int, int] = {}
    floats: list[np.ndarray] = []
    doubles: list[np.ndarray] = []
    buf = walker.buf
    pos = start
    while pos < end:
        f = walker.field_at(pos, end, clamp=frozenset({5, 8}))
        pos = f.end
        if f.number == 7 and f.wire == WIRE_LEN:
            for g in walker.fields(f.start, f.end):
                if g.number == 1 and g.wire == WIRE_LEN:
                    dims.extend(to_signed64(v) for v in walker.packed_varints(g.start, g.end))
                elif g.number == 1 and g.wire == WIRE_VARINT:
                    dims.append(to_signed64(g.value))
        elif 1 <= f.number <= 4 and f.wire == WIRE_VARINT:
            value = f.value & 0xFFFFFFFF  # int32
            legacy[f.number] = value - (1 << 32) if value >= 1 << 31 else value
        elif f.number in (5, 8) and f.wire == WIRE_LEN:
            if f.short:
                raise walker.truncated(end, "data" if f.number == 5 else "double_data")
            width = 4 if f.number == 5 else 8
            length = f.end - f.start
            if length % width:
                raise walker.corrupt(f.start, f"packed field {f.number} has {length} bytes, "
                                              f"not a multiple of {width}")
            if f.number == 5:
                floats.append(np.frombuffer(buf, dtype="<f4", count=length // 4, offset=f.start)
                              if length else np.empty(0, np.float32))
            else:
                doubles.append(np.frombuffer(buf, dtype="<f8", count=length // 8, offset=f.start)
                               .astype(np.float32))
        elif (f.number, f.wire) in ((5, WIRE_FIXED32), (8, WIRE_FIXED64)):
            run, pos = walker.fixed_run(f, end, "<f4" if f.number == 5 else "<f8")
            (floats if f.number == 5 else doubles).append(run)
    if short:
        raise walker.truncated(end)
    is_legacy = bool(legacy)
    shape = tuple(legacy.get(i, 0) for i in range(1, 5)) if is_legacy else tuple(dims)
    if any(d < 0 for d in shape):
        raise walker.corrupt(start, f"negative blob dimension in shape {list(shape)}")
    parts = doubles if any(p.size for p in doubles) else floats
    values = _join(parts)
    need = int(np.prod(shape, dtype=np.int64))
    if values.size != need:
        raise walker.corrupt(start, f"blob has {values.size} values but its shape {list(shape)} needs {need}")
    return BlobRecord(shape, is_legacy, values.reshape(shape))


def _join(parts: list[np.ndarray]) -> np.ndarray:
    if len(parts) == 1:
        return parts[0]  # the usual case: one packed field, a view of the buffer
    return np.concatenate(parts) if parts else np.empty(0, np.float32)


def encode_blob_header(shape: tuple[int, ...], nbytes: int) -> bytes:
    """BlobProto bytes up to the float payload: ``shape`` (packed int64 dims), then the ``data`` key and
    length; the ``nbytes`` of little-endian float32 values follow."""
    dims = b"".join(encode_varint(int(d)) for d in shape)
    blob_shape = encode_key(1, WIRE_LEN) + encode_varint(len(dims)) + dims if shape else b""
    return (encode_key(7, WIRE_LEN) + encode_varint(len(blob_shape)) + blob_shape
            + encode_key(5, WIRE_LEN) + encode_varint(nbytes))
