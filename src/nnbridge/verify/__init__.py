"""Prove a conversion: run both models in real runtimes (in worker processes) and compare every blob.

Public API (imported lazily, so that ``python -m nnbridge.verify.worker`` stays light in another
interpreter): :func:`verify`, :class:`VerifyReport`, :func:`compare`, :class:`Comparison`,
:func:`run_in_worker`, :func:`available_runtimes`, :class:`Preprocess`.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

_EXPORTS = {
    "verify": "nnbridge.verify.api",
    "VerifyReport": "nnbridge.verify.api",
    "compare": "nnbridge.verify.compare",
    "Comparison": "nnbridge.verify.compare",
    "BlobResult": "nnbridge.verify.compare",
    "run_in_worker": "nnbridge.verify.worker",
    "available_runtimes": "nnbridge.verify.worker",
    "Preprocess": "nnbridge.verify.inputs",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _CallableModule(types.ModuleType):
    """``nnbridge.verify`` is both this package and the function: ``nnbridge.verify(source, converted)``.

    Importing a submodule (``nnbridge.verify.compare``) binds the package as the attribute ``verify`` of
    ``nnbridge``, so the package itself forwards calls to :func:`nnbridge.verify.api.verify`.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return importlib.import_module("nnbridge.verify.api").verify(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
