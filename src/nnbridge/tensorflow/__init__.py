"""TensorFlow / Keras -> hub, through tf2onnx (imported lazily: ``pip install 'nnbridge[tensorflow]'``).

:func:`import_tf` (a SavedModel directory, ``.pb``, ``.keras``/``.h5``, TF1 checkpoint or ``.tflite``; see
:mod:`nnbridge.tensorflow.formats`), :func:`import_keras` (a live ``keras.Model``), :func:`import_function`
(a ``tf.function`` with an input signature) and :func:`from_onnx_proto` live in
:mod:`nnbridge.tensorflow.importer`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["from_onnx_proto", "import_function", "import_keras", "import_tf"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from nnbridge.tensorflow import importer

        return getattr(importer, name)
    raise AttributeError(f"module 'nnbridge.tensorflow' has no attribute {name!r}")
