"""Protocol-buffer wire format primitives shared by the hand-written streaming readers and writers
(caffemodel, binaryproto, ONNX): https://protobuf.dev/programming-guides/encoding/

- a field starts with ``key = (field_number << 3) | wire_type`` as a varint;
- wire types: 0 varint, 1 fixed 8 bytes, 2 length-delimited (varint length + bytes), 5 fixed 4 bytes;
- varints are little-endian base-128, at most 10 bytes; negative ``int64``/``int32`` values are encoded
  as their 64-bit two's complement (10 bytes).
"""

from __future__ import annotations

WIRE_VARINT, WIRE_FIXED64, WIRE_LEN, WIRE_FIXED32 = 0, 1, 2, 5


def encode_varint(value: int) -> bytes:
    """Encode a non-negative int (or a negative int64 as its 10-byte two's complement)."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_key(field: int, wire: int) -> bytes:
    return encode_varint((field << 3) | wire)


def len_prefix(field: int, length: int) -> bytes:
    """Key and length of a length-delimited field whose ``length`` payload bytes follow."""
    return encode_key(field, WIRE_LEN) + encode_varint(length)


def to_signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value
