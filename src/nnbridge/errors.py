"""Errors nnbridge raises on purpose.

Every error a user can cause (bad file, unsupported layer, shape mismatch) is an :class:`NNBridgeError`.
The CLI prints ``str(error)`` on one line and exits non-zero; a traceback only appears with ``--debug``.
Messages name the file, the layer/node and what to do.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass


class NNBridgeError(Exception):
    """Base class of all errors raised on purpose by nnbridge."""


class FormatError(NNBridgeError):
    """A model file is malformed (truncated, corrupt, syntax error, contradictory)."""

    def __init__(self, path: str | None, message: str, *, location: str | None = None, hint: str | None = None):
        self.path = path
        self.location = location
        self.hint = hint
        where = path or "<memory>"
        if location:
            where = f"{where}:{location}"
        text = f"{where}: {message}"
        if hint:
            text += f" ({hint})"
        super().__init__(text)


class ConversionError(NNBridgeError):
    """A model is well-formed but cannot be converted as asked (e.g. a dialect cannot express an op)."""


class MissingExtraError(NNBridgeError):
    """An optional dependency is not installed."""


@dataclass(frozen=True)
class Unsupported:
    """One unsupported op/layer occurrence."""

    op: str
    node: str
    reason: str = ""


class UnsupportedOpsError(ConversionError):
    """Every unsupported op of a model, found by scanning the whole model before failing."""

    def __init__(self, what: str, items: Iterable[Unsupported], hint: str | None = None):
        self.items = list(items)
        counts = Counter(item.op for item in self.items)
        parts = []
        for op, count in sorted(counts.items()):
            nodes = [item.node for item in self.items if item.op == op]
            reasons = sorted({item.reason for item in self.items if item.op == op and item.reason})
            shown = ", ".join(nodes[:3]) + (", ..." if len(nodes) > 3 else "")
            reason = f": {'; '.join(reasons)}" if reasons else ""
            parts.append(f"{op} x{count} ({shown}){reason}")
        text = f"{what}: {len(self.items)} unsupported: " + "; ".join(parts)
        if hint:
            text += f" ({hint})"
        super().__init__(text)
