"""Atomic output files: write to a temporary file beside the target, then rename.

A failed conversion never leaves a half-written model behind.

:class:`AtomicGroup` hands out paths of files that do not exist yet (in a private ``.NAME.XXXX.partial``
directory beside the target): opening an existing file with ``"wb"`` truncates it, and ext4 (``auto_da_alloc``)
then flushes the whole file to disk on ``close``, which for a weights file of hundreds of MB costs more than
writing it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


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
