"""``verify()``: run the source and the converted model in real runtimes and compare every blob.

Model kinds are told by the file name: ``.prototxt`` (weights from ``source_weights`` /
``converted_weights``, else the ``.caffemodel`` with the same stem), ``.onnx``, and MXNet's
``prefix-symbol.json`` (any ``.json``) or checkpoint ``prefix`` (weights: the given ``.params``, else the
highest epoch ``prefix-NNNN.params``). Each model runs in its own worker process
(:mod:`nnbridge.verify.worker`): Caffe files with pycaffe when importable (else OpenCV's DNN importer),
ONNX files with onnxruntime (custom-domain nodes by their numpy references), MXNet checkpoints with MXNet
1.9.1 in the interpreter named by ``runtimes`` (``"mxnet=/path/to/python"``) or ``$NNBRIDGE_MXNET_PYTHON``.

Both runs get the same inputs (:mod:`nnbridge.verify.inputs`). Compared are every graph output of the
source (it must exist, by name, in the converted model) and every intermediate blob whose name exists on
both sides (Caffe blob names are hub value names, see docs/ARCHITECTURE.md), with
:func:`nnbridge.verify.compare.compare`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnbridge.errors import FormatError, NNBridgeError
from nnbridge.verify.compare import Comparison, compare
from nnbridge.verify.inputs import InputSet, Preprocess, given_inputs, make_inputs
from nnbridge.verify.worker import run_in_worker

logger = logging.getLogger(__name__)

RUNTIME_LABELS = {
    "pycaffe": "Caffe (pycaffe)",
    "opencv": "Caffe via OpenCV DNN",
    "onnxruntime": "onnxruntime",
    "mxnet": "MXNet",
    "tensorflow": "TensorFlow",
}


@dataclass(frozen=True)
class ModelFiles:
    kind: str  # "caffe" | "onnx" | "mxnet" | "tensorflow"
    path: str
    weights: str | None = None
    #: loader options of a TensorFlow source (allow_lambda, outputs, signature), passed to its runtime
    options: tuple[tuple[str, str], ...] = ()

    @property
    def paths(self) -> list[str | None]:
        return [self.path, self.weights]


@dataclass
class VerifyReport:
    source: ModelFiles
    converted: ModelFiles
    source_runtime: str
    converted_runtime: str
    inputs: str
    outputs: list[str]
    comparison: Comparison
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.comparison.passed

    def render(self) -> str:
        rows = self.comparison.rows
        failed = len(self.comparison.failures)
        lines = [
            f"source:    {self.source.path} [{RUNTIME_LABELS.get(self.source_runtime, self.source_runtime)}]",
            f"converted: {self.converted.path} "
            f"[{RUNTIME_LABELS.get(self.converted_runtime, self.converted_runtime)}]",
            f"inputs:    {self.inputs}",
            f"tolerance: max rel err <= {self.comparison.rtol:g} or max abs err <= {self.comparison.atol:g}",
            "",
            self.comparison.table(),
            "",
            *self.notes,
            f"{'PASS' if self.passed else 'FAIL'}: {len(rows) - failed}/{len(rows)} blobs match "
            f"(outputs: {', '.join(self.outputs)})",
        ]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": {"path": self.source.path, "weights": self.source.weights, "runtime": self.source_runtime},
            "converted": {"path": self.converted.path, "weights": self.converted.weights,
                          "runtime": self.converted_runtime},
            "inputs": self.inputs,
            "outputs": self.outputs,
            "notes": self.notes,
            **self.comparison.to_dict(),
        }


def model_files(path: str | os.PathLike[str], weights: str | os.PathLike[str] | None = None) -> ModelFiles:
    """Tell the kind of a model by its file name; find the caffemodel next to a prototxt, the params of
    an MXNet symbol (or checkpoint prefix)."""
    text = os.fspath(path)
    suffix = Path(text).suffix.lower()
    from nnbridge.tensorflow.formats import tf_kind

    if tf_kind(text) is not None:
        if not os.path.exists(text) and not os.path.isfile(text + ".meta"):
            raise NNBridgeError(f"{text}: no such model file or directory")
        return ModelFiles("tensorflow", text)
    if suffix == ".json" or (not os.path.isfile(text) and os.path.isfile(text + "-symbol.json")):
        from nnbridge.api import mxnet_files

        try:
            return ModelFiles("mxnet", *mxnet_files(text, weights))
        except FormatError as exc:
            raise NNBridgeError(str(exc)) from exc
    if not os.path.isfile(text):
        raise NNBridgeError(f"{text}: no such model file")
    if suffix == ".onnx":
        return ModelFiles("onnx", text)
    if suffix in (".prototxt", ".pbtxt", ".pt"):
        found = os.fspath(weights) if weights is not None else str(Path(text).with_suffix(".caffemodel"))
        if not os.path.isfile(found):
            hint = "give its weights (.caffemodel)" if weights is None else "check the path"
            raise NNBridgeError(f"{text}: weights {found} not found ({hint})")
        return ModelFiles("caffe", text, found)
    raise NNBridgeError(f"{text}: cannot tell the model kind from the name (use .prototxt, .onnx, "
                        "-symbol.json, or a TensorFlow SavedModel/.pb/.keras/.h5/.tflite/checkpoint)")


def input_specs(model: ModelFiles,
                input_shapes: Mapping[str, Sequence[int]] | None = None) -> list[tuple[str, tuple[int, ...]]]:
    """``[(name, shape)]`` of the model's inputs (symbolic ONNX dimensions become 1). TensorFlow images are
    given NCHW here (``input_shapes`` are NHWC, as TensorFlow sees them): the TensorFlow runtime takes and
    returns rank-4 tensors NCHW, like the converted model."""
    if model.kind == "tensorflow":
        from nnbridge.tensorflow.formats import load_tf
        from nnbridge.verify.runtimes.tensorflow_rt import parse_options

        loaded_tf = load_tf(model.path, input_shapes=input_shapes, **parse_options(dict(model.options)))
        return [(i.name, i.hub_shape) for i in loaded_tf.inputs]
    if model.kind == "caffe":
        from nnbridge.caffe.formats.net import load_caffe

        return [(spec.name, tuple(spec.shape)) for spec in load_caffe(model.path, input_shapes=input_shapes).inputs]
    if model.kind == "mxnet":
        from nnbridge.api import mxnet_input_shapes
        from nnbridge.mxnet.formats.checkpoint import load_mxnet

        loaded = load_mxnet(model.path, model.weights)
        return list(mxnet_input_shapes(loaded.graph, loaded.params, input_shapes, model.path).items())
    import onnx_ir as ir

    graph = ir.load(model.path).graph
    specs = []
    for value in graph.inputs:
        if value.name in graph.initializers:
            continue
        name = value.name or ""
        if input_shapes and name in input_shapes:
            specs.append((name, tuple(int(d) for d in input_shapes[name])))
            continue
        dims = list(value.shape) if value.shape is not None else []
        if value.shape is None or not all(isinstance(d, int) for d in dims):
            logger.info("input %s has symbolic dimensions %s: using 1 for them", name, value.shape)
        specs.append((name, tuple(d if isinstance(d, int) else 1 for d in dims)))
    return specs


def nhwc_intermediates(ref: dict[str, np.ndarray], got: Mapping[str, np.ndarray]) -> list[str]:
    """The TensorFlow runtime gives rank-4 blobs NCHW; an intermediate the converted model still holds NHWC
    (a layout transpose tf2onnx could not push past it) is compared NHWC: ``ref`` is changed in place."""
    outputs = set(getattr(ref, "outputs", ()))
    kept = []
    for name, array in list(ref.items()):
        other = got.get(name)
        if name in outputs or other is None or array.ndim != 4 or other.shape == array.shape:
            continue
        if other.shape == array.transpose(0, 2, 3, 1).shape:
            ref[name] = np.ascontiguousarray(array.transpose(0, 2, 3, 1))
            kept.append(name)
    if not kept:
        return []
    shown = ", ".join(kept[:5]) + (", ..." if len(kept) > 5 else "")
    return [f"compared in NHWC, as the converted model holds them ({len(kept)}): {shown}"]


def tf_options(model: ModelFiles, allow_lambda: bool, outputs: Sequence[str] | None,
               signature: str | None) -> ModelFiles:
    """``model`` with the TensorFlow loader options (ignored for other kinds)."""
    if model.kind != "tensorflow":
        return model
    options = [("allow_lambda", "1")] if allow_lambda else []
    if outputs:
        options.append(("outputs", ",".join(outputs)))
    if signature:
        options.append(("signature", signature))
    return ModelFiles(model.kind, model.path, model.weights, tuple(options))


def choose_runtimes(runtimes: Sequence[str | None] | None, source_kind: str, converted_kind: str) -> tuple[str, str]:
    """The runtime of each side (see :func:`verify`): positional entries, ``name=python`` applied by name."""
    from nnbridge.verify.worker import split_runtime

    entries = list(runtimes or ())
    if any(entry and "=" not in entry for entry in entries[2:]):
        raise NNBridgeError(f"runtimes {entries!r}: give at most (source runtime, converted runtime) and any "
                            "number of NAME=PYTHON interpreters")
    pythons: dict[str, str] = {}
    chosen: list[str | None] = [None, None]
    kinds = (source_kind, converted_kind)
    for index, entry in enumerate(entries):
        if not entry:
            continue
        name, python = split_runtime(entry)
        if python is None:
            chosen[index] = name
        else:
            pythons[name] = python
            if index < 2 and name == kinds[index]:
                chosen[index] = name
    picked = [chosen[i] or kinds[i] for i in range(2)]
    return tuple(f"{rt}={pythons[rt]}" if rt in pythons else rt for rt in picked)  # type: ignore[return-value]


def verify(
    source: str | os.PathLike[str],
    converted: str | os.PathLike[str],
    *,
    source_weights: str | os.PathLike[str] | None = None,
    converted_weights: str | os.PathLike[str] | None = None,
    inputs: Mapping[str, np.ndarray] | str | None = None,
    seed: int = 0,
    image: str | None = None,
    preprocess: Preprocess | None = None,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    rtol: float = 1e-4,
    atol: float = 1e-6,
    runtimes: Sequence[str | None] | None = None,
    intermediates: bool = True,
    timeout: float | None = None,
    swapped_inputs: Sequence[str] = (),
    allow_lambda: bool = False,
    outputs: Sequence[str] | None = None,
    signature: str | None = None,
) -> VerifyReport:
    """Run ``source`` and ``converted`` on the same inputs and compare outputs and shared intermediates.

    ``runtimes`` = (source runtime, converted runtime), each ``pycaffe``, ``opencv``, ``onnxruntime``,
    ``mxnet`` or ``None`` for the default of the file kind (Caffe: pycaffe if importable, else OpenCV).
    An entry ``name=/path/to/python`` (e.g. ``"mxnet=/venv-mx/bin/python"``) names the interpreter of that
    runtime wherever it runs, so ``runtimes=("mxnet=/venv-mx/bin/python",)`` serves either side.
    ``swapped_inputs``: inputs whose colour channels the converted model expects reversed (RGB <-> BGR,
    ``convert(swap_input_channels=True)``): it gets them reversed, and they are not compared.

    A TensorFlow source (SavedModel directory, ``.pb``, ``.keras``/``.h5``, checkpoint, ``.tflite``) runs in
    TensorFlow (runtime ``tensorflow``) on the NHWC transpose of the NCHW inputs the converted model gets;
    ``allow_lambda``, ``outputs`` and ``signature`` are its loader options (as for ``convert``).
    """
    src = tf_options(model_files(source, source_weights), allow_lambda, outputs, signature)
    dst = model_files(converted, converted_weights)
    specs = input_specs(src, input_shapes)
    inset: InputSet = given_inputs(inputs, specs) if inputs is not None else \
        make_inputs(specs, seed=seed, image=image, preprocess=preprocess)
    src_rt, dst_rt = choose_runtimes(runtimes, src.kind, dst.kind)
    kwargs: dict[str, Any] = {"intermediates": intermediates}
    if timeout is not None:
        kwargs["timeout"] = timeout
    converted_inputs = dict(inset.arrays)
    notes: list[str] = []
    if swapped_inputs:
        from nnbridge.hub.passes.input_channels import channel_permutation

        for name in swapped_inputs:
            array = converted_inputs[name]
            converted_inputs[name] = np.ascontiguousarray(array[:, channel_permutation(array.shape[1])])
        notes.append(f"converted model fed {', '.join(swapped_inputs)} with the colour channels reversed")
    ref = run_in_worker(src_rt, src.paths, inset.arrays, options=dict(src.options), **kwargs)
    got = run_in_worker(dst_rt, dst.paths, converted_inputs, **kwargs)
    for name in swapped_inputs:
        got.pop(name, None)
    if src.kind == "tensorflow":
        notes.extend(nhwc_intermediates(ref, got))
    comparison = compare(ref, got, outputs=ref.outputs, rtol=rtol, atol=atol)
    only_ref = [name for name in ref if name not in got]
    if only_ref:
        shown = ", ".join(only_ref[:8]) + (", ..." if len(only_ref) > 8 else "")
        notes.append(f"not compared ({len(only_ref)} blobs only in the source): {shown}")
    report = VerifyReport(src, dst, ref.runtime, got.runtime, inset.description, ref.outputs, comparison, notes)
    logger.info("verify %s vs %s: %s", src.path, dst.path, "pass" if report.passed else "FAIL")
    return report
