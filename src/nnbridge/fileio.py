"""Atomic output files: write to a temporary file beside the target, then rename.

A failed conversion never leaves a half-written model behind.

:class:`AtomicGroup` hands out paths of files that do not exist yet (in a private ``.NAME.XXXX.partial``
directory beside the target): opening an existing file with ``"wb"`` truncates it, and ext4 (``auto_da_alloc``)
then flushes the whole file to disk on ``close``, which for a weights file of hundreds of MB costs more than
writing it.

Zero-copy weights: :func:`map_readonly` memory-maps an input file as a :class:`MappedFile` (an ``mmap.mmap``
that remembers its path and identity). Numpy views of it keep that map as ``base`` (via a ``memoryview``),
so :func:`file_range` can tell, for an array about to be written, the exact byte range of the input file
holding its bytes: ``offset = array data pointer - map base pointer``, valid only for C-contiguous arrays
whose in-memory bytes are the bytes to write (no byte-swap, no conversion). :func:`copy_range` then copies
that range into the output with ``os.copy_file_range`` (the kernel copies file to file, or shares extents on
filesystems with reflinks), falling back to ``os.sendfile`` and then to ``pread``/``pwrite``.
:func:`write_array` picks the copy or a plain ``write(memoryview)`` per array.

Alignment (measured on ext4, Linux 6.18, copying a 528 MiB file whose pages are cached): ``copy_file_range``
costs ~40% more CPU when the destination offset differs from the source offset modulo 64 KiB (0.15 s when
they agree, or differ by any multiple of 64 KiB; 0.18 s shifted by 16 KiB; 0.21-0.22 s shifted by 4 KiB or by
5 bytes), and as much when a copy starts away from a 64 KiB boundary of the source even if both offsets agree
(0.19 s from byte 8632): without reflinks the kernel copies through a 16-page pipe, 64 KiB per round from the
first byte asked for, and rounds that straddle the page-cache folios cost more. :func:`copy_range` therefore
copies the bytes up to the source's next 64 KiB boundary first, and :func:`copy_phase` tells a writer where
(modulo :data:`COPY_ALIGN`) an array's bytes sit in their source, so that formats able to carry padding
(caffemodel) put them at the same phase: the copy then costs what ``cp`` of the whole file costs. Formats that
cannot (.params) or do not (ONNX, whose external data could) pay the extra on their weight copies.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import mmap
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple

import numpy as np

from nnbridge.errors import FormatError

logger = logging.getLogger(__name__)

COPY_MIN_BYTES = 64 * 1024  # below this a buffered write beats flush + copy syscalls
COPY_ALIGN = 64 * 1024  # file-to-file copies are cheapest when source and destination offsets agree modulo this
# False (or env NNBRIDGE_COPY_FILE_RANGE=0): always write arrays from memory, the pre-copy_file_range path
fast_copy = os.environ.get("NNBRIDGE_COPY_FILE_RANGE", "1") != "0"
_CHUNK = 64 * 2**20  # bytes per write / per copy call (a multiple of COPY_ALIGN)
_FALLBACK_ERRNOS = frozenset(
    code for code in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF,
                      getattr(errno, "ENOTSUP", None), errno.EPERM) if code is not None
)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mkstemp_for(target: Path) -> tuple[int, str]:
    """A temporary file beside ``target`` with the permissions a plain ``open(target, "w")`` would give."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600 files
    return fd, tmp


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO]:  # type: ignore[type-arg]
    """Open a temporary file next to ``path``; on success rename it over ``path``, on error delete it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _mkstemp_for(target)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class AtomicGroup:
    """Several output files that appear together or not at all (e.g. .prototxt + .caffemodel).

    Use ``group.path(final)`` to get a temporary path to write; ``commit()`` renames them all.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []

    def path(self, final: str | os.PathLike[str]) -> Path:
        """A not yet existing path (same name as ``final``, in a private directory beside it) to write."""
        target = Path(final)
        target.parent.mkdir(parents=True, exist_ok=True)
        folder = tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
        tmp = Path(folder) / target.name
        self._pending.append((tmp, target))
        return tmp

    def commit(self) -> None:
        for tmp, target in self._pending:
            os.replace(tmp, target)
            os.rmdir(tmp.parent)
        self._pending.clear()

    def abort(self) -> None:
        for tmp, _ in self._pending:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            with contextlib.suppress(OSError):
                os.rmdir(tmp.parent)
        self._pending.clear()

    def __enter__(self) -> AtomicGroup:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


# ----------------------------------------------------------------------------------------- zero-copy weights
class MappedFile(mmap.mmap):
    """A read-only ``mmap`` of a whole file that remembers ``path`` and the file's identity."""

    path: str
    identity: tuple[int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns when mapped
    _address: int | None

    def base_address(self) -> int:
        """Address of the map's first byte (``np.frombuffer`` exposes it without copying)."""
        if self._address is None:
            self._address = int(np.frombuffer(self, np.uint8).ctypes.data)
        return self._address


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def map_readonly(path: str | os.PathLike[str], *, empty: str = "the file is empty",
                 unreadable: str = "cannot read the file: {strerror}") -> MappedFile:
    """Memory-map ``path`` read-only; FormatError(``empty``) for an empty file, FormatError(``unreadable``) when
    it cannot be opened (``unreadable`` is formatted with ``exc`` and ``strerror`` of the OSError)."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as handle:
            st = os.fstat(handle.fileno())
            if st.st_size == 0:
                raise FormatError(name, empty)
            mapped = MappedFile(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as exc:
        raise FormatError(name, unreadable.format(exc=exc, strerror=exc.strerror or exc)) from None
    mapped.path, mapped.identity, mapped._address = name, _identity(st), None
    return mapped


class FileRange(NamedTuple):
    """``nbytes`` bytes at ``offset`` of the file ``path``."""

    path: str
    offset: int
    nbytes: int


def _mapped_file_of(array: np.ndarray) -> MappedFile | None:
    base: Any = array
    while base is not None:
        if isinstance(base, MappedFile):
            return base
        if isinstance(base, memoryview):
            base = base.obj
        elif isinstance(base, np.ndarray):
            base = base.base
        else:
            return None
    return None


def file_range(array: np.ndarray) -> FileRange | None:
    """Where in a :func:`map_readonly` file ``array``'s bytes are, or None (not a view of such a map,
    not C-contiguous, not little-endian, or the file has been replaced/changed since it was mapped)."""
    if not isinstance(array, np.ndarray) or not array.flags.c_contiguous or array.nbytes == 0:
        return None
    if array.dtype.hasobject or array.dtype.byteorder == ">" or (
            array.dtype.byteorder == "=" and sys.byteorder != "little"):
        return None
    mapped = _mapped_file_of(array)
    if mapped is None or mapped.closed:
        return None
    offset = int(array.ctypes.data) - mapped.base_address()
    if offset < 0 or offset + array.nbytes > len(mapped):
        return None
    try:
        if _identity(os.stat(mapped.path)) != mapped.identity:
            return None
    except OSError:
        return None
    return FileRange(mapped.path, offset, int(array.nbytes))


def copy_phase(array: np.ndarray) -> int | None:
    """Offset modulo :data:`COPY_ALIGN` of ``array``'s bytes in the :func:`map_readonly` file it views, when
    :func:`write_array` would copy it file to file (else None). Does not depend on :data:`fast_copy`, so a
    writer laying out its output by it writes the same bytes either way."""
    if array.nbytes < COPY_MIN_BYTES:
        return None
    where = file_range(array)
    return None if where is None else where.offset % COPY_ALIGN


def _copy_step(method: str, in_fd: int, out_fd: int, src: int, dst: int, count: int) -> int:
    """Copy up to ``count`` bytes from ``in_fd`` at ``src`` to ``out_fd`` at ``dst``; bytes copied (0 at EOF)."""
    if method == "copy_file_range":
        return os.copy_file_range(in_fd, out_fd, count, src, dst)
    if method == "sendfile":  # writes at (and advances) out_fd's file offset
        os.lseek(out_fd, dst, os.SEEK_SET)
        return os.sendfile(out_fd, in_fd, src, count)
    return _pread_pwrite(in_fd, out_fd, src, dst, count)


def copy_range(dst: IO[bytes], path: str | os.PathLike[str], offset: int, nbytes: int) -> None:
    """Append ``nbytes`` bytes at ``offset`` of ``path`` to the binary file ``dst`` at its current position.

    ``dst`` is flushed, the bytes are copied in the kernel (``copy_file_range``, which may copy less than
    asked, so it loops; ``sendfile`` or ``pread``/``pwrite`` when it is missing or refuses, e.g. ``EXDEV``),
    and ``dst`` is left positioned just after them (``dst.tell()`` and further writes continue there).
    """
    dst.flush()
    out_fd = dst.fileno()
    start = dst.tell()
    methods = [m for m in ("copy_file_range", "sendfile") if hasattr(os, m)] + ["pread"]
    done = 0
    head = -offset % COPY_ALIGN  # first up to a 64 KiB boundary of the source: see the module docstring
    with open(path, "rb") as source:
        in_fd = source.fileno()
        while done < nbytes:
            try:
                count = _copy_step(methods[0], in_fd, out_fd, offset + done, start + done,
                                   min(nbytes - done, head - done if done < head else _CHUNK))
            except OSError as exc:
                if exc.errno not in _FALLBACK_ERRNOS or len(methods) == 1:
                    raise
                logger.debug("%s refused (%s); falling back to %s", methods[0], exc, methods[1])
                methods.pop(0)
                continue
            if count == 0:
                raise FormatError(os.fspath(path), f"the file ended before byte {offset + nbytes} "
                                  f"(copied {done} of {nbytes} bytes from offset {offset})",
                                  hint="was the input file truncated while converting?")
            done += count
    dst.seek(start + nbytes)  # re-syncs the BufferedWriter's position with the fd's


def _pread_pwrite(in_fd: int, out_fd: int, src: int, dst: int, count: int) -> int:
    data = os.pread(in_fd, count, src)
    view = memoryview(data)
    written = 0
    while written < len(data):
        written += os.pwrite(out_fd, view[written:], dst + written)
    return len(data)


def _has_fd(handle: IO[bytes]) -> bool:
    try:
        handle.fileno()
    except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation (BytesIO...) is both
        return False
    return True


def write_array(handle: IO[bytes], array: np.ndarray) -> None:
    """Write ``array``'s bytes (C-contiguous, already in the byte order to store) to ``handle``.

    Large arrays that are views of a :func:`map_readonly` file are copied file to file (:func:`copy_range`);
    the others are written from memory, in chunks, without copying them first.
    """
    if fast_copy and array.nbytes >= COPY_MIN_BYTES and _has_fd(handle):
        where = file_range(array)
        if where is not None:
            copy_range(handle, *where)
            return
    flat = np.ascontiguousarray(array).reshape(-1).view(np.uint8).data
    for begin in range(0, len(flat), _CHUNK):
        handle.write(flat[begin:begin + _CHUNK])
