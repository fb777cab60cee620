"""nnbridge: move trained neural networks between Caffe and ONNX exactly, and prove it.

``convert(source, output, ...)`` converts a model file; ``verify(source, converted, ...)`` runs both
on the same input and compares every blob. Heavy modules are imported only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["ConvertResult", "__version__", "convert", "verify"]

if TYPE_CHECKING:
    from nnbridge.api import ConvertResult, convert, verify


def __getattr__(name: str) -> Any:
    if name == "verify":  # the package nnbridge.verify, callable as the function verify()
        import nnbridge.verify

        return nnbridge.verify
    if name in ("convert", "ConvertResult"):
        from nnbridge import api

        return getattr(api, name)
    raise AttributeError(f"module 'nnbridge' has no attribute {name!r}")
