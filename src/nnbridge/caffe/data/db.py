"""Caffe key-value databases (``data_param.source``): LMDB through the ``lmdb`` package, LevelDB through ``plyvel``.

:class:`DatumDB` reads one database: its keys in Caffe's cursor order (byte order, what ``SeekToFirst`` +
``Next`` walks), the values by index. The handle is opened lazily and again in every process that uses it
(a forked ``DataLoader`` worker must not share an LMDB environment with its parent).

:func:`write_lmdb` writes a new LMDB atomically: into a private directory beside the target, renamed on
success (a failed or interrupted write leaves nothing at the target).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nnbridge.errors import FormatError, MissingExtraError

logger = logging.getLogger(__name__)

BACKENDS = ("LMDB", "LEVELDB")
# one handle per (process, database) and its user count: lmdb refuses a second open of an environment in a
# process, and LevelDB locks its directory
_OPEN: dict[tuple[int, str], list[Any]] = {}


def _forget_parent_handles() -> None:
    """In a forked child: close the handles inherited from the parent (lmdb refuses to open a second one while
    they exist, and an LMDB environment must not be used across fork); the child's users reopen on demand."""
    for handle, _ in _OPEN.values():
        with contextlib.suppress(Exception):
            handle.close()
    _OPEN.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_parent_handles)


def _import(module: str, backend: str, path: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        raise MissingExtraError(
            f"{path}: reading a {backend} database needs the Python package {module!r}; install it with: "
            f"pip install {module}" + (" (or pip install 'nnbridge[data]')" if module == "lmdb" else "")) from None


class DatumDB:
    """A read-only Caffe database: ``len(db)``, ``db.keys`` (cursor order), ``db.value(index)``."""

    def __init__(self, path: str | os.PathLike[str], backend: str = "LMDB"):
        self.path = os.fspath(path)
        self.backend = backend.upper()
        if self.backend not in BACKENDS:
            raise FormatError(self.path, f"unknown database backend {backend!r}", hint="use LMDB or LEVELDB")
        if not os.path.isdir(self.path):
            what = "does not exist" if not os.path.exists(self.path) else "is not a database directory"
            raise FormatError(self.path, f"the {self.backend} database {what}",
                              hint="check data_param.source (relative paths are taken from the current "
                                   "directory, as Caffe does), or build one with: nnbridge data make-lmdb")
        self._pid = -1
        self._handle: Any = None
        self._keys: list[bytes] | None = None

    # ---------------------------------------------------------------------------------- handles
    def _open(self) -> Any:
        if self._handle is not None and self._pid == os.getpid():
            return self._handle
        self._handle = None  # inherited from a parent process: never reuse it
        slot = (os.getpid(), os.path.realpath(self.path))
        if slot in _OPEN:
            _OPEN[slot][1] += 1
        else:
            _OPEN[slot] = [self._connect(), 1]
        self._handle, self._pid = _OPEN[slot][0], os.getpid()
        return self._handle

    def _connect(self) -> Any:
        if self.backend == "LMDB":
            lmdb = _import("lmdb", "LMDB", self.path)
            try:
                return lmdb.open(self.path, readonly=True, lock=False, readahead=False, meminit=False,
                                 max_readers=512, subdir=True)
            except lmdb.Error as exc:
                raise FormatError(self.path, f"cannot open the LMDB database: {exc}",
                                  hint="is it an LMDB directory (data.mdb)? for LevelDB set backend: LEVELDB"
                                  ) from None
        plyvel = _import("plyvel", "LevelDB", self.path)
        try:
            return plyvel.DB(self.path, create_if_missing=False)
        except Exception as exc:  # plyvel raises its own Error classes and IOError
            raise FormatError(self.path, f"cannot open the LevelDB database: {exc}",
                              hint="is it a LevelDB directory? for LMDB set backend: LMDB") from None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_handle"] = None
        state["_pid"] = -1
        return state

    @property
    def keys(self) -> list[bytes]:
        if self._keys is None:
            handle = self._open()
            if self.backend == "LMDB":
                with handle.begin(buffers=False) as txn:
                    self._keys = [bytes(k) for k in txn.cursor().iternext(keys=True, values=False)]
            else:
                self._keys = [bytes(k) for k in handle.iterator(include_value=False)]
        return self._keys

    def __len__(self) -> int:
        return len(self.keys)

    def value(self, index: int) -> tuple[bytes, bytes]:
        """(key, value) of entry ``index`` in cursor order."""
        key = self.keys[index]
        handle = self._open()
        if self.backend == "LMDB":
            with handle.begin(buffers=False) as txn:
                value = txn.get(key)
        else:
            value = handle.get(key)
        if value is None:  # pragma: no cover - the database changed under us
            raise FormatError(self.path, f"key {key!r} vanished while reading", hint="was the database rewritten?")
        return key, bytes(value)

    def values(self, indices: list[int]) -> list[tuple[bytes, bytes]]:
        """(key, value) of several entries in one transaction; a run of consecutive indices is one cursor walk."""
        keys = self.keys
        handle = self._open()
        values: list[bytes] = []
        if self.backend == "LMDB":
            with handle.begin(buffers=False) as txn:
                cursor = txn.cursor()
                start = 0
                while start < len(indices):
                    stop = start + 1
                    while stop < len(indices) and indices[stop] == indices[stop - 1] + 1:
                        stop += 1
                    if cursor.set_key(keys[indices[start]]):
                        values.extend(itertools.islice(cursor.iternext(keys=False, values=True), stop - start))
                    start = stop
        else:
            values = [handle.get(keys[index]) for index in indices]
        if len(values) != len(indices) or (self.backend != "LMDB" and None in values):  # pragma: no cover
            raise FormatError(self.path, "keys vanished while reading", hint="was the database rewritten?")
        return [(keys[index], value) for index, value in zip(indices, values, strict=True)]

    def close(self) -> None:
        if self._handle is not None and self._pid == os.getpid():
            slot = (self._pid, os.path.realpath(self.path))
            _OPEN[slot][1] -= 1
            if _OPEN[slot][1] == 0:
                _OPEN.pop(slot)[0].close()
        self._handle = None


def write_lmdb(path: str | os.PathLike[str], items: Iterable[tuple[bytes, bytes]], *, commit_every: int = 1000) -> int:
    """Write ``(key, value)`` pairs into a new LMDB directory ``path`` atomically; returns the entry count."""
    lmdb = _import("lmdb", "LMDB", os.fspath(path))
    target = Path(path)
    if target.exists():
        raise FormatError(str(target), "the output database already exists",
                          hint="remove it or choose another -o (Caffe's convert_imageset refuses too)")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    count = 0
    map_size = 64 * 2**20
    try:
        env = lmdb.open(str(tmp), map_size=map_size, subdir=True, meminit=False)
        pending: list[tuple[bytes, bytes]] = []

        def flush() -> None:
            nonlocal map_size
            while True:
                try:
                    with env.begin(write=True) as txn:
                        for key, value in pending:
                            txn.put(key, value)
                    break
                except lmdb.MapFullError:
                    map_size *= 2
                    env.set_mapsize(map_size)
            pending.clear()

        for key, value in items:
            pending.append((key, value))
            count += 1
            if len(pending) >= commit_every:
                flush()
        flush()
        env.sync()
        env.close()
        os.rename(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
        raise
    logger.info("%s: wrote %d entries", target, count)
    return count
