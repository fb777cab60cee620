"""MXNet: formats (symbol JSON, NDArray .params/.nd files, checkpoints), importer, exporter; no mxnet needed."""

from typing import Any


def __getattr__(name: str) -> Any:  # CaffeDataIter imports mxnet on first use only
    if name == "CaffeDataIter":
        from nnbridge.mxnet.caffe_data import CaffeDataIter

        return CaffeDataIter
    if name in ("CaffeOp", "CaffeLoss"):  # Caffe layers/losses as native MXNet symbols (caffe_op.py, caffe_loss.py)
        import importlib

        return getattr(importlib.import_module(f"nnbridge.mxnet.{'caffe_op' if name == 'CaffeOp' else 'caffe_loss'}"),
                       name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
