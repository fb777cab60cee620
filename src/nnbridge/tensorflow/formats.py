"""Recognise and load every TensorFlow source as one frozen graph: :class:`TfGraph`.

Sources (:func:`tf_kind` tells them apart by name):

- ``savedmodel``: a SavedModel directory (``saved_model.pb`` inside); its serving signature
  (``serving_default``, or the one named by ``signature``) is traced with fixed shapes and frozen;
- ``keras``: a Keras ``.keras`` / ``.h5`` file, loaded with ``compile=False`` and ``safe_mode`` on; Lambda layers
  (Python code stored in the file) are refused before loading unless ``allow_lambda`` is given;
- ``frozen``: a frozen ``GraphDef`` (``.pb``): inputs are its Placeholders, outputs the nodes nobody consumes
  (or ``outputs``);
- ``checkpoint``: a TF1 checkpoint: ``model.meta`` or the prefix ``model`` (``.meta``/``.index``/``.data-*``);
- ``tflite``: a TensorFlow Lite flatbuffer (converted by tf2onnx directly; no GraphDef).

Every source ends as a frozen GraphDef with static NHWC input shapes (batch 1 unless ``input_shapes`` says
otherwise) and hub names for inputs and outputs, so that the converter (:mod:`nnbridge.tensorflow.importer`)
and the verification runtime (:mod:`nnbridge.verify.runtimes.tensorflow_rt`) see exactly the same graph.
Loading code lives in :mod:`nnbridge.tensorflow.sources`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnbridge.errors import ConversionError, FormatError

logger = logging.getLogger(__name__)

InputShapes = Mapping[str, Sequence[int]]
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
KINDS = ("savedmodel", "keras", "frozen", "checkpoint", "tflite")


@dataclass(frozen=True)
class TfInput:
    name: str  # hub name
    tensor: str  # tensor name in the graph ("img:0"), or the TFLite tensor name
    shape: tuple[int, ...]  # static, as TensorFlow sees it (NHWC for images)
    dtype: str = "float32"

    @property
    def nchw(self) -> bool:
        """Rank-4 inputs are images in NHWC; the hub (and nnbridge's runtimes) take them NCHW."""
        return len(self.shape) == 4

    @property
    def hub_shape(self) -> tuple[int, ...]:
        n, h, w, c = self.shape if self.nchw else (0, 0, 0, 0)
        return (n, c, h, w) if self.nchw else self.shape


@dataclass
class TfGraph:
    """A TensorFlow model frozen to one GraphDef (``graph_def`` is None for TFLite files)."""

    path: str
    kind: str
    graph_def: Any
    inputs: list[TfInput]
    outputs: list[tuple[str, str]]  # (hub name, tensor name)
    name: str = "tf_model"
    notes: list[str] = field(default_factory=list)

    @property
    def renames(self) -> dict[str, str]:
        """Tensor name -> hub name, for tf2onnx's ``tensors_to_rename``."""
        return {**{i.tensor: i.name for i in self.inputs}, **{t: n for n, t in self.outputs}}


def is_checkpoint_prefix(path: str) -> bool:
    return os.path.isfile(path + ".meta") and not os.path.isdir(path)


def tf_kind(path: str | os.PathLike[str]) -> str | None:
    """``savedmodel``, ``keras``, ``frozen``, ``checkpoint``, ``tflite`` or None (not a TF source)."""
    text = os.fspath(path)
    p = Path(text)
    suffix = p.suffix.lower()
    if p.is_dir():
        return "savedmodel" if (p / "saved_model.pb").is_file() or (p / "saved_model.pbtxt").is_file() else None
    if p.name == "saved_model.pb":
        return "savedmodel"
    if suffix in KERAS_SUFFIXES:
        return "keras"
    if suffix == ".pb":
        return "frozen"
    if suffix == ".tflite":
        return "tflite"
    if suffix == ".meta" or is_checkpoint_prefix(text):
        return "checkpoint"
    return None


def static_shape(path: str, name: str, dims: Sequence[int | None], given: InputShapes) -> tuple[int, ...]:
    """``dims`` with the batch set to 1 (or ``given[name]``, NHWC); other unknown dimensions are an error
    naming the exact ``--input-shape`` flag to add."""
    if name in given:
        shape = tuple(int(d) for d in given[name])
        if len(shape) != len(dims):
            raise ConversionError(f"{path}: input {name!r} has rank {len(dims)} ({_dims(dims)}), --input-shape "
                                  f"gives {len(shape)} dimensions (give the shape TensorFlow uses, NHWC for images)")
        return shape
    fixed = [1 if i == 0 and d is None else d for i, d in enumerate(dims)]
    if any(d is None or d < 0 for d in fixed):
        example = ",".join(str(d) for d in _example(dims))
        raise ConversionError(f"{path}: input {name!r} has dynamic dimensions {_dims(dims)}; add "
                              f"--input-shape {name}={example} with the real sizes (NHWC; API: input_shapes="
                              f"{{{name!r}: ({example})}})")
    return tuple(int(d) for d in fixed)  # type: ignore[arg-type]


def _example(dims: Sequence[int | None]) -> list[int]:
    """A plausible shape for an error message: batch 1, unknown image sides 224, other unknowns 1."""
    out = []
    for i, d in enumerate(dims):
        if d is not None and d >= 0:
            out.append(int(d))
        elif i == 0:
            out.append(1)
        else:
            out.append(224 if len(dims) == 4 and i in (1, 2) else 1)
    return out


def _dims(dims: Sequence[int | None]) -> str:
    return "(" + ", ".join("?" if d is None or d < 0 else str(d) for d in dims) + ")"


def check_given(path: str, given: InputShapes, names: Sequence[str]) -> None:
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ConversionError(f"{path}: --input-shape names unknown inputs {unknown}; the model's inputs are "
                              f"{list(names)}")


def load_tf(path: str | os.PathLike[str], *, input_shapes: InputShapes | None = None,
            outputs: Sequence[str] | None = None, signature: str | None = None,
            allow_lambda: bool = False) -> TfGraph:
    """Load any TensorFlow source (see the module docstring) as a :class:`TfGraph`."""
    from nnbridge.tensorflow import sources

    text = os.fspath(path)
    kind = tf_kind(text)
    if kind is None:
        if not os.path.exists(text):
            raise FormatError(text, "no such file or directory")
        raise FormatError(text, "not a TensorFlow model", hint="give a SavedModel directory, .pb, .keras, .h5, "
                          ".tflite, or a TF1 checkpoint (.meta or its prefix)")
    if kind != "checkpoint" and not os.path.exists(text):
        raise FormatError(text, "no such file or directory")
    sources.tf()  # a missing TensorFlow is reported (naming the extra) before the file is read
    given = dict(input_shapes or {})
    if outputs and kind in ("savedmodel", "keras", "tflite"):
        raise ConversionError(f"{text}: --outputs is only for frozen graphs and checkpoints (a {kind} model "
                              "names its own outputs)")
    if signature and kind != "savedmodel":
        raise ConversionError(f"{text}: --signature is only for SavedModel directories")
    if kind == "savedmodel":
        return sources.saved_model(text, given, signature)
    if kind == "keras":
        return sources.keras_file(text, given, allow_lambda)
    if kind == "frozen":
        return sources.frozen_graph(text, given, outputs)
    if kind == "checkpoint":
        return sources.checkpoint(text, given, outputs)
    from nnbridge.tensorflow import tflite

    return tflite.tflite(text, given)
