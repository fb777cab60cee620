"""PyTorch bridges: a live ``torch.nn.Module`` -> hub model -> Caffe / MXNet / ONNX files, verified.

``import_module(module, example_inputs, exporter="dynamo")`` and ``convert_module(module, example_inputs,
output, to=..., verify=True)`` live in :mod:`nnbridge.torch.importer`. Names are exported lazily: importing
this package does not import torch; using a name without torch installed raises
:class:`nnbridge.errors.MissingExtraError` naming the extra ``nnbridge[torch]``. Other modules of this package
add their names to ``_EXPORTS``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from nnbridge.extras import require

if TYPE_CHECKING:
    from nnbridge.torch.importer import convert_module as convert_module
    from nnbridge.torch.importer import import_module as import_module

#: public name -> the module defining it (all of them need torch)
_EXPORTS: dict[str, str] = {
    "import_module": "nnbridge.torch.importer",
    "convert_module": "nnbridge.torch.importer",
    "CaffeDataset": "nnbridge.torch.data",
    "CaffeLayer": "nnbridge.torch.layers",
    "CaffeLoss": "nnbridge.torch.losses",
    "load_caffe": "nnbridge.torch.hub_module",
    "HubModule": "nnbridge.torch.hub_module",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        require("torch", f"nnbridge.torch.{name}")
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
