"""Many raw uint8 Datums decoded at once from their protobuf wire format (the fast path of ``Data`` layers).

A raw Datum is a few varints (``channels`` 1, ``height`` 2, ``width`` 3, ``label`` 5, ``encoded`` 7) and one
length-delimited ``data`` (4) of ``C*H*W`` bytes. In a database written by one tool every record has the same
bytes except the pixels and the label. :func:`layout_of` parses one record by hand into a :class:`Layout`
(where the pixels and the label varint are), checked against the protobuf parse of the same record.
:func:`decode_rows` then takes a batch of records: those of the template's length whose every other byte (tags,
lengths, dimensions, the varint continuation bits of the label) equals the template's are parsed the same way
by protobuf, so their pixels are one column slice of the stacked bytes and their labels one vectorised varint
decode. The other records (another size, ``float_data``, encoded images, anything unusual) are reported as not
decoded; the caller parses them with protobuf, which also raises the errors for broken records.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nnbridge.caffe.proto import caffe_pb2

_VARINT_FIELDS = {1, 2, 3, 5, 7}  # channels, height, width, label, encoded
_DATA = 4


@dataclass(frozen=True)
class Layout:
    """Byte positions in one record: ``template`` bytes, ``fixed`` columns that must match, pixels, label."""

    template: np.ndarray
    fixed: np.ndarray
    shape: tuple[int, int, int]
    pixels: slice
    label: slice | None

    @property
    def length(self) -> int:
        return int(self.template.size)


def _varint(buffer: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buffer) or shift > 63:
            raise ValueError("truncated varint")
        byte = buffer[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def layout_of(value: bytes) -> Layout | None:
    """The layout of a raw uint8 Datum record, or None when it is anything else (then no fast path)."""
    fields: dict[int, tuple[int, int, int]] = {}  # field -> (value, start, stop) of the value bytes
    pos = 0
    try:
        while pos < len(value):
            tag, pos = _varint(value, pos)
            field, wire = tag >> 3, tag & 7
            if field in fields:
                return None  # repeated scalar: protobuf keeps the last one; not worth a fast path
            start = pos
            if field in _VARINT_FIELDS and wire == 0:
                number, pos = _varint(value, pos)
                fields[field] = (number, start, pos)
            elif field == _DATA and wire == 2:
                size, pos = _varint(value, pos)
                if pos + size > len(value):
                    return None
                fields[field] = (size, pos, pos + size)
                pos += size
            else:
                return None  # float_data, unknown fields, unexpected wire types
    except ValueError:
        return None
    shape = tuple(fields.get(f, (0, 0, 0))[0] for f in (1, 2, 3))
    if _DATA not in fields or fields.get(7, (0,))[0] or min(shape) <= 0 or max(shape) >= 2**31 \
            or fields[_DATA][0] != shape[0] * shape[1] * shape[2]:
        return None
    template = np.frombuffer(value, np.uint8).copy()
    fixed = np.ones(template.size, bool)
    pixels = slice(fields[_DATA][1], fields[_DATA][2])
    fixed[pixels] = False
    label = None
    if 5 in fields:
        label = slice(fields[5][1], fields[5][2])
        fixed[label] = False
    layout = Layout(template, np.flatnonzero(fixed), (int(shape[0]), int(shape[1]), int(shape[2])), pixels, label)
    datum = caffe_pb2.Datum.FromString(value)  # the hand parse must agree with protobuf's, else no fast path
    pixels_ok = datum.data == value[pixels] and not datum.float_data and not datum.encoded
    labels, _ = _labels(template[None], layout)
    if not pixels_ok or (datum.channels, datum.height, datum.width) != layout.shape or datum.label != labels[0]:
        return None
    return layout


def _labels(rows: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """int32 labels of stacked records and a mask of rows whose label varint has the template's length."""
    if layout.label is None:
        return np.zeros(len(rows), np.int32), np.ones(len(rows), bool)
    raw = rows[:, layout.label]
    more = layout.template[layout.label] & 0x80
    same = ((raw & 0x80) == more).all(axis=1)
    if raw.shape[1] == 1:  # labels 0..127: one byte, the varint is the value
        return raw[:, 0].astype(np.int32), same
    value = np.zeros(len(rows), np.uint64)
    for k in range(raw.shape[1]):
        value |= (raw[:, k] & 0x7F).astype(np.uint64) << np.uint64(7 * k)
    # int32 fields hold negative numbers as 64-bit two's complement; protobuf keeps the low 32 bits
    return value.view(np.int64).astype(np.int32), same


def decode_rows(values: list[bytes], layout: Layout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pixels uint8 (N, C, H, W), labels int32 (N,), decoded (N,) bool) for ``values``; undecoded rows are 0."""
    count = len(values)
    channels, height, width = layout.shape
    pixels = np.zeros((count, channels, height, width), np.uint8)
    labels = np.zeros(count, np.int32)
    if set(map(len, values)) == {layout.length}:
        candidates = np.arange(count)
    else:
        candidates = np.flatnonzero(np.array([len(value) for value in values]) == layout.length)
    decoded = np.zeros(count, bool)
    if not candidates.size:
        return pixels, labels, decoded
    chosen = values if candidates.size == count else [values[i] for i in candidates]
    rows = np.frombuffer(b"".join(chosen), np.uint8).reshape(candidates.size, layout.length)
    same = (rows[:, layout.fixed] == layout.template[layout.fixed]).all(axis=1)
    row_labels, label_ok = _labels(rows, layout)
    good = same & label_ok
    where = candidates[good]
    pixels[where] = rows[good, layout.pixels].reshape(-1, channels, height, width)
    labels[where] = row_labels[good]
    decoded[where] = True
    return pixels, labels, decoded
