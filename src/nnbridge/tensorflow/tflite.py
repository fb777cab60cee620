"""TFLite flatbuffers -> :class:`~nnbridge.tensorflow.formats.TfGraph` (no GraphDef: tf2onnx reads the file).

Inputs and outputs are named after the signature keys the TFLite user sees (``img``, ``output_0``) rather
than the flatbuffer's tensor names (``serving_default_img:0``).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from nnbridge.errors import FormatError
from nnbridge.tensorflow.formats import InputShapes, TfGraph, TfInput, check_given, static_shape
from nnbridge.tensorflow.sources import tf


def tflite_interpreter(path: str) -> Any:
    tfm = tf()
    try:
        with warnings.catch_warnings():  # "tf.lite.Interpreter is deprecated": still TF 2.21's interpreter
            warnings.simplefilter("ignore")
            interpreter = tfm.lite.Interpreter(model_path=path)
    except Exception as exc:  # ValueError for a damaged flatbuffer
        raise FormatError(path, f"not a readable TFLite model ({type(exc).__name__}: {exc})",
                          hint="is the file complete?") from exc
    return interpreter


def tflite_names(interpreter: Any) -> dict[int, str]:
    """Tensor index -> the signature's input/output key (the names the TFLite user sees)."""
    names: dict[int, str] = {}
    try:
        signatures = interpreter._get_full_signature_list()  # noqa: SLF001 (public API lacks the indices)
    except AttributeError:
        return names
    for entry in signatures.values():
        for key in ("inputs", "outputs"):
            for name, index in entry.get(key, {}).items():
                names.setdefault(int(index), str(name))
    return names


def tflite(path: str, given: InputShapes) -> TfGraph:
    interpreter = tflite_interpreter(path)
    names = tflite_names(interpreter)
    details = interpreter.get_input_details()
    hub = [names.get(int(d["index"]), str(d["name"]).split(":")[0]) for d in details]
    check_given(path, given, hub)
    inputs = []
    for name, detail in zip(hub, details, strict=True):
        signature = [None if int(d) < 0 else int(d) for d in detail.get("shape_signature", detail["shape"])]
        inputs.append(TfInput(name, str(detail["name"]), static_shape(path, name, signature, given),
                              detail["dtype"].__name__))
    outputs = [(names.get(int(d["index"]), str(d["name"]).split(":")[0]), str(d["name"]))
               for d in interpreter.get_output_details()]
    return TfGraph(path, "tflite", None, inputs, outputs, name=Path(path).stem)
