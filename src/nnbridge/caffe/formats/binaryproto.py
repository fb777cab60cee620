"""``.binaryproto`` files: one serialized BlobProto, as written by Caffe's ``compute_image_mean``.

Shape as in ``Blob::FromProto`` and pycaffe's ``caffe.io.blobproto_to_array``: when any of the legacy
``num``/``channels``/``height``/``width`` fields (1-4) is present the array is 4-D
``(num, channels, height, width)``, otherwise it takes ``shape.dim`` (field 7). Values come from
``double_data`` (8) when present, else ``data`` (5); both are read packed or unpacked. Arrays are
returned as float32 (Caffe's own precision for float nets).

Writing produces ``shape`` + packed ``data`` (what ``Blob::ToProto`` writes); ``legacy=True`` writes
the four legacy fields instead, for 4-D arrays (what old tools and ``array_to_blobproto`` wrote).
"""

from __future__ import annotations

import os

import numpy as np

from nnbridge.caffe.formats.wire import (
    WIRE_LEN,
    WIRE_VARINT,
    Walker,
    encode_blob_header,
    encode_key,
    encode_varint,
    parse_blob,
)
from nnbridge.errors import FormatError
from nnbridge.fileio import atomic_write


def parse_binaryproto(data: bytes, path: str | None = None) -> np.ndarray:
    """The array held by BlobProto bytes (a writable float32 copy)."""
    walker = Walker(path, data)
    walker.where = "the blob"
    if not data:
        raise FormatError(path, "the binaryproto is empty")
    record = parse_blob(walker, 0, len(data))
    return np.array(record.array, dtype=np.float32)


def read_binaryproto(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a mean file (or any BlobProto file) as a float32 array."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise FormatError(name, f"cannot read the binaryproto: {exc.strerror or exc}") from None
    return parse_binaryproto(data, name)


def encode_binaryproto(array: np.ndarray, *, legacy: bool = False) -> bytes:
    """BlobProto bytes for ``array`` (float32 values)."""
    values = np.ascontiguousarray(array, dtype="<f4")
    if not legacy:
        return encode_blob_header(values.shape, values.nbytes) + values.tobytes()
    if values.ndim != 4:
        raise ValueError(f"legacy BlobProto needs a 4-D array, got shape {values.shape}")
    head = b"".join(encode_key(i + 1, WIRE_VARINT) + encode_varint(int(d)) for i, d in enumerate(values.shape))
    return head + encode_key(5, WIRE_LEN) + encode_varint(values.nbytes) + values.tobytes()


def write_binaryproto(path: str | os.PathLike[str], array: np.ndarray, *, legacy: bool = False) -> None:
    """Write ``array`` as a BlobProto file, atomically."""
    with atomic_write(path, "wb") as handle:
        handle.write(encode_binaryproto(array, legacy=legacy))
