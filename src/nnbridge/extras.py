"""Lazy imports of optional, heavy dependencies with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from nnbridge.errors import MissingExtraError

_EXTRA_OF = {
    "cv2": "verify",
    "tensorflow": "tensorflow",
    "tf2onnx": "tensorflow",
    "torch": "torch",
    "onnxscript": "optimize",
    "onnxsim": "optimize",
}


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise a one-line error naming the pip extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = _EXTRA_OF.get(module.split(".")[0])
        how = f"pip install 'nnbridge[{extra}]'" if extra else f"pip install {module}"
        raise MissingExtraError(f"{purpose} needs the Python package {module!r}; install it with: {how}") from exc
