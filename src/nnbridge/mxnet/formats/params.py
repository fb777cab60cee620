"""MXNet NDArray files (``.params``, ``.nd``): memory-mapped reader, streaming writer. No mxnet needed.

Layout (MXNet 1.9.1 ``src/ndarray/ndarray.cc`` ``NDArray::Save``/``Load``/``LegacyLoad``; all little-endian;
``dmlc::Stream`` writes a vector as a uint64 count followed by its items, a string as uint64 length + bytes)::

    uint64 0x112 (list magic)   uint64 reserved (0)
    uint64 n    then n NDArrays
    uint64 m    then m names (m == 0: an unnamed list, else m == n)

one NDArray, by its leading uint32:

- ``0xF993FAC9`` (v2, what 1.x writes) or ``0xF993FACA`` (v3, numpy-shape semantics): int32 storage type
  (0 dense, 1 row_sparse, 2 csr, -1 undefined; sparse types add a storage shape, aux types/shapes and aux data:
  refused here), shape = int32 ndim + ndim x int64 dims; ndim 0 (v2) or unknown (v3: ndim -1 or a dim -1) is a
  "none" array and ends the record; then context (int32 dev_type: 1 cpu, 2 gpu, 3 cpu_pinned, 5 cpu_shared;
  int32 dev_id), int32 dtype flag, raw data (C order, prod(shape) x itemsize bytes).
- ``0xF993FAC8`` (v1): int32 ndim + int64 dims, context, dtype flag, data (no storage type).
- anything else (v0): the word is ``ndim`` and ``ndim`` uint32 dims follow, then context, dtype flag, data.

dtype flags (mshadow): 0 float32, 1 float64, 2 float16, 3 uint8, 4 int32, 5 int8, 6 int64, 7 bool, 8 int16,
9 uint16, 10 uint32, 11 uint64 (12 bfloat16: refused, numpy has no such type).

Names: Module checkpoints (``mx.model.save_checkpoint``, Gluon ``export``) prefix ``arg:``/``aux:``; Gluon
``save_parameters`` writes bare parameter names. Names are kept exactly as found.

Reader: the file is memory-mapped and each dense array is a read-only numpy view of the map (no copy). Writer:
what MXNet 1.9.1 writes (v2, dense, cpu context 1/0), streamed array by array from the arrays' own memory
(views of a memory-mapped input file are copied file to file in the kernel: :func:`nnbridge.fileio.write_array`),
atomically.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnbridge.errors import FormatError
from nnbridge.fileio import atomic_write, map_readonly, write_array

logger = logging.getLogger(__name__)

LIST_MAGIC = 0x112
V1_MAGIC, V2_MAGIC, V3_MAGIC = 0xF993FAC8, 0xF993FAC9, 0xF993FACA
DEVICE_TYPES = {1: "cpu", 2: "gpu", 3: "cpu_pinned", 5: "cpu_shared"}
STORAGE_TYPES = {-1: "undefined", 0: "default", 1: "row_sparse", 2: "csr"}
DTYPE_FLAGS: dict[int, np.dtype[Any]] = {
    flag: np.dtype(name).newbyteorder("<")
    for flag, name in enumerate(
        ("float32", "float64", "float16", "uint8", "int32", "int8", "int64", "bool", "int16", "uint16", "uint32",
         "uint64")
    )
}
FLAG_OF_DTYPE = {dtype.str: flag for flag, dtype in DTYPE_FLAGS.items()}
ARG_PREFIX, AUX_PREFIX = "arg:", "aux:"


@dataclass
class NDArrayFile:
    """A read NDArray file: arrays in file order, their names (empty for an unnamed list), per-array layout."""

    path: str | None
    arrays: list[np.ndarray]
    names: list[str]
    layouts: list[str] = field(default_factory=list)  # "v0" | "v1" | "v2" | "v3"
    buffer: Any = field(default=None, repr=False)  # the mmap the arrays view

    def as_dict(self) -> dict[str, np.ndarray]:
        """``{name: array}``; an unnamed list (``mx.nd.save(f, [a, b])``) is an error."""
        if not self.names and self.arrays:
            raise FormatError(self.path, f"the file holds an unnamed list of {len(self.arrays)} arrays",
                              hint="saved with mx.nd.save(path, [arrays]); use .arrays instead of names")
        if len(set(self.names)) != len(self.names):
            dups = sorted({n for n in self.names if self.names.count(n) > 1})
            logger.warning("%s: duplicate array names %s; the last one wins", self.path, dups)
        return dict(zip(self.names, self.arrays, strict=True))

    @property
    def nbytes(self) -> int:
        return sum(int(a.nbytes) for a in self.arrays)


class _Reader:
    """Bounds-checked little-endian reads from a buffer; errors name the file, offset and the current array."""

    def __init__(self, buf: Any, path: str | None) -> None:
        self.buf, self.path, self.pos, self.size = buf, path, 0, len(buf)
        self.what = "header"

    def fail(self, message: str, offset: int | None = None, hint: str | None = None) -> FormatError:
        at = self.pos if offset is None else offset
        return FormatError(self.path, message, location=f"byte {at} ({self.what})", hint=hint)

    def need(self, nbytes: int, what: str) -> None:
        if nbytes < 0 or self.pos + nbytes > self.size:
            raise self.fail(f"truncated: {what} needs {nbytes} bytes, {self.size - self.pos} left",
                            hint="the file is incomplete or corrupt")

    def unpack(self, fmt: str, what: str) -> tuple[Any, ...]:
        size = struct.calcsize(fmt)
        self.need(size, what)
        values = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return values

    def u32(self, what: str) -> int:
        return int(self.unpack("<I", what)[0])

    def i32(self, what: str) -> int:
        return int(self.unpack("<i", what)[0])

    def u64(self, what: str) -> int:
        return int(self.unpack("<Q", what)[0])


def load_ndarrays(path: str | os.PathLike[str]) -> NDArrayFile:
    """Read an NDArray file (any layout) as zero-copy numpy views of the memory-mapped file."""
    path = os.fspath(path)
    buf = map_readonly(path, empty="empty file, not an MXNet NDArray file",
                       unreadable="cannot read NDArray file: {exc}")
    return parse_ndarrays(buf, path)


def parse_ndarrays(buf: Any, path: str | None = None) -> NDArrayFile:
    """Parse NDArray-file bytes (``bytes``, ``mmap`` or any buffer); arrays view ``buf``."""
    reader = _Reader(buf, path)
    magic = reader.u64("list magic")
    if magic != LIST_MAGIC:
        raise reader.fail(f"bad magic 0x{magic:x}, expected 0x{LIST_MAGIC:x}", offset=0,
                          hint="not an MXNet .params/.nd file")
    reader.u64("reserved word")
    count = reader.u64("array count")
    if count * 4 > reader.size - reader.pos:
        raise reader.fail(f"array count {count} cannot fit in the remaining {reader.size - reader.pos} bytes",
                          offset=reader.pos - 8, hint="the file is truncated or corrupt")
    arrays, layouts = [], []
    for index in range(count):
        reader.what = f"array #{index}"
        array, layout = _read_array(reader)
        arrays.append(array)
        layouts.append(layout)
    reader.what = "name list"
    names = _read_names(reader, count)
    if reader.pos != reader.size:
        logger.warning("%s: %d trailing bytes after the name list ignored", path, reader.size - reader.pos)
    return NDArrayFile(path, arrays, names, layouts, buf)


def _read_shape(reader: _Reader, magic: int) -> tuple[tuple[int, ...] | None, str]:
    """(shape or None for a "none" array, layout); reads the storage type for v2/v3."""
    if magic in (V2_MAGIC, V3_MAGIC):
        layout = "v2" if magic == V2_MAGIC else "v3"
        stype = reader.i32("storage type")
        if stype not in (0, -1):
            raise reader.fail(f"{STORAGE_TYPES.get(stype, f'unknown storage type {stype}')} storage is not supported",
                              offset=reader.pos - 4,
                              hint="only dense arrays can be converted; save them with .tostype('default')")
        ndim = reader.i32("ndim")
        if ndim == -1 and layout == "v3":
            return None, layout
        if ndim < 0:
            raise reader.fail(f"negative ndim {ndim}", offset=reader.pos - 4)
        reader.need(8 * ndim, f"{ndim} int64 dims")
        dims = reader.unpack(f"<{ndim}q", "dims")
        if ndim == 0 and layout == "v2" or any(d == -1 for d in dims) and layout == "v3":
            return None, layout
    elif magic == V1_MAGIC:
        layout, ndim = "v1", reader.i32("ndim")
        if ndim < 0:
            raise reader.fail(f"negative ndim {ndim}", offset=reader.pos - 4)
        reader.need(8 * ndim, f"{ndim} int64 dims")
        dims = reader.unpack(f"<{ndim}q", "dims")
    else:
        layout, ndim = "v0", magic
        reader.need(4 * ndim, f"{ndim} uint32 dims (legacy layout, or an unknown array magic 0x{magic:x})")
        dims = reader.unpack(f"<{ndim}I", "dims")
    if layout in ("v0", "v1") and ndim == 0:
        return None, layout
    if any(d < 0 for d in dims):
        raise reader.fail(f"negative dimension in shape {tuple(dims)}")
    return tuple(int(d) for d in dims), layout


def _read_array(reader: _Reader) -> tuple[np.ndarray, str]:
    start = reader.pos
    magic = reader.u32("array magic")
    shape, layout = _read_shape(reader, magic)
    if shape is None:
        raise reader.fail("an empty (none) NDArray is not supported", offset=start,
                          hint="the file stores an uninitialised array; re-save it with real values")
    dev_type, dev_id = reader.unpack("<ii", "context")
    if dev_type not in DEVICE_TYPES or dev_id < 0:
        raise reader.fail(f"bad context (device type {dev_type}, id {dev_id})", offset=reader.pos - 8,
                          hint="the file is corrupt")
    flag = reader.i32("dtype flag")
    if flag not in DTYPE_FLAGS:
        what = "bfloat16 is not supported (numpy has no bfloat16)" if flag == 12 else f"unknown dtype flag {flag}"
        raise reader.fail(what, offset=reader.pos - 4)
    dtype = DTYPE_FLAGS[flag]
    count = 1
    for d in shape:
        count *= d
    reader.need(count * dtype.itemsize, f"data of shape {shape} {dtype.name}")
    if count == 0:
        array = np.zeros(shape, dtype)
    else:
        array = np.frombuffer(reader.buf, dtype=dtype, count=count, offset=reader.pos).reshape(shape)
    reader.pos += count * dtype.itemsize
    return array, layout


def _read_names(reader: _Reader, count: int) -> list[str]:
    if reader.pos == reader.size:
        raise reader.fail("truncated: the name list is missing")
    total = reader.u64("name count")
    if total not in (0, count):
        raise reader.fail(f"{total} names for {count} arrays", offset=reader.pos - 8, hint="the file is corrupt")
    names = []
    for index in range(total):
        reader.what = f"name of array #{index}"
        length = reader.u64("name length")
        reader.need(length, "name bytes")
        raw = bytes(reader.buf[reader.pos:reader.pos + length])
        try:
            names.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise reader.fail(f"name is not UTF-8: {raw[:40]!r}") from None
        reader.pos += length
    return names


def read_params(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """``{name: array}`` of a named NDArray file (names as stored, prefixes kept)."""
    return load_ndarrays(path).as_dict()


# ---------------------------------------------------------------------------------------------------------- writer
def _header(array: np.ndarray, path: str, name: str) -> bytes:
    flag = FLAG_OF_DTYPE.get(array.dtype.newbyteorder("<").str)
    if flag is None:
        raise FormatError(path, f"array {name!r} has dtype {array.dtype}, which MXNet cannot store",
                          hint="supported: " + ", ".join(d.name for d in DTYPE_FLAGS.values()))
    shape = array.shape
    return struct.pack(f"<Iii{len(shape)}qiii", V2_MAGIC, 0, len(shape), *shape, 1, 0, flag)


def save_ndarrays(
    path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray] | Sequence[np.ndarray]
) -> None:
    """Write an NDArray file as MXNet 1.9.1 does (v2 records), streaming each array's memory, atomically.

    A mapping writes names (keep ``arg:``/``aux:`` prefixes in the keys for Module checkpoints); a sequence writes
    an unnamed list. 0-d arrays are stored with shape ``(1,)`` (MXNet's legacy shape semantics have no 0-d arrays).
    """
    path = os.fspath(path)
    if isinstance(arrays, Mapping):
        names, values = [str(k) for k in arrays], list(arrays.values())
    else:
        names, values = [], list(arrays)
    prepared = []
    for i, value in enumerate(values):
        name = names[i] if names else f"#{i}"
        array = np.asarray(value)
        if array.ndim == 0:
            logger.warning("%s: 0-d array %r stored with shape (1,)", path, name)
            array = array.reshape(1)
        if array.dtype.byteorder == ">":
            array = array.astype(array.dtype.newbyteorder("<"))
        prepared.append((_header(array, path, name), np.ascontiguousarray(array)))
    with atomic_write(path, "wb") as handle:
        handle.write(struct.pack("<QQQ", LIST_MAGIC, 0, len(prepared)))
        for header, array in prepared:
            handle.write(header)
            if array.size:
                write_array(handle, array)  # file to file for views of a mapped file, else from memory
        handle.write(struct.pack("<Q", len(names)))
        for name in names:
            raw = name.encode("utf-8")
            handle.write(struct.pack("<Q", len(raw)))
            handle.write(raw)


# --------------------------------------------------------------------------------------------------------- names
def split_prefixed(
    params: Mapping[str, np.ndarray], path: str | None = None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``{"arg:w": a, "aux:m": b}`` -> ``({"w": a}, {"m": b})`` as ``mx.model.load_checkpoint`` does.

    Unprefixed names (Gluon ``save_parameters``) are an error here: use
    :func:`nnbridge.mxnet.formats.checkpoint.split_params` with the graph to tell aux states from arguments.
    """
    arg: dict[str, np.ndarray] = {}
    aux: dict[str, np.ndarray] = {}
    bare = [name for name in params if not name.startswith((ARG_PREFIX, AUX_PREFIX))]
    if bare:
        raise FormatError(path, f"{len(bare)} parameter names lack an arg:/aux: prefix, e.g. {bare[:3]}",
                          hint="a Gluon save_parameters file: split it with the symbol graph (checkpoint.split_params)")
    for name, value in params.items():
        (arg if name.startswith(ARG_PREFIX) else aux)[name[4:]] = value
    return arg, aux


def join_prefixed(arg: Mapping[str, np.ndarray], aux: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The inverse of :func:`split_prefixed`: ``arg:``/``aux:`` keys as Module checkpoints store them."""
    joined = {f"{ARG_PREFIX}{k}": v for k, v in arg.items()}
    joined.update({f"{AUX_PREFIX}{k}": v for k, v in aux.items()})
    return joined
