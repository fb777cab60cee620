"""A live PyTorch ``nn.Module`` -> hub model, and on to Caffe, MXNet or ONNX files (PyTorch imported lazily).

``import_module(module, example_inputs, exporter="dynamo")``:

1. the module runs once in PyTorch in ``eval()`` mode under ``torch.no_grad()`` on ``example_inputs`` (a
   tensor or a tuple of tensors; their shapes become the model's fixed input shapes). A module in training
   mode is switched to eval mode for the conversion (with a warning) and switched back afterwards. A module
   that fails on the example inputs is refused with its error (wrong shape, wrong count...);
2. ``torch.onnx.export`` at opset 17 into a temporary folder: ``exporter="dynamo"`` (torch.export based;
   data-dependent control flow is refused by torch.export itself) or ``"torchscript"`` (the tracer; any
   ``TracerWarning``, e.g. a Python ``if`` on a tensor value, is refused: the trace would hold one branch
   only, which no comparison on the same example input could reveal);
3. the file is read by :func:`nnbridge.onnx.formats.load_onnx` (functions inlined, constants folded, opset 17,
   static shapes: the same normalisation as any foreign ONNX file) and its weights are read into memory.

Names: inputs are the ``forward`` parameter names (``input_names=`` overrides), outputs ``output`` (one) or
``output0, output1, ...`` (``output_names=`` overrides); these are the blob names of the converted model.

``convert_module(module, example_inputs, output, to=..., verify=True)`` writes the files like
:func:`nnbridge.api.convert` (through :func:`nnbridge.api.save_model`) and, with ``verify``, runs the written
model in its real runtime in a worker process (:func:`nnbridge.verify.worker.run_in_worker`: pycaffe, or
OpenCV for the ``opencv`` dialect; MXNet 1.9.1 in its own interpreter; onnxruntime) on the example inputs and
compares every output with PyTorch's (:func:`nnbridge.verify.compare.compare`), in a
:class:`nnbridge.verify.api.VerifyReport`.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import os
import re
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx_ir as ir

from nnbridge.errors import ConversionError
from nnbridge.extras import require

logger = logging.getLogger(__name__)

EXPORTERS = ("dynamo", "torchscript")
OPSET = 17
_NOISY_LOGGERS = ("torch", "onnxscript")  # the exporters log every step and opset choice at WARNING


@dataclass
class Traced:
    """One run of the module in PyTorch: the names it is exported with, its inputs and outputs as numpy."""

    what: str  # "ClassName (PyTorch module)"
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]


def _torch() -> Any:
    return require("torch", "converting a PyTorch module")


@contextlib.contextmanager
def _eval_mode(module: Any) -> Iterator[None]:
    """Eval mode for the duration; a module (or submodule) in training mode is warned about, and every
    submodule's own mode is restored afterwards."""
    modes = [(m, bool(m.training)) for m in module.modules()]
    if any(training for _, training in modes):
        warnings.warn(f"{type(module).__name__} is in training mode; converting it in eval mode (dropout off, "
                      "BatchNorm running statistics); call module.eval() first to silence this",
                      UserWarning, stacklevel=5)
    module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Exporter chatter off: its loggers to ERROR; what it prints (torch.export prints the partial graph of a
    failed capture to stderr) goes to this module's DEBUG log."""
    levels = {name: logging.getLogger(name).level for name in _NOISY_LOGGERS}
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        if printed.getvalue().strip():
            logger.debug("the exporter printed:\n%s", printed.getvalue())


def _as_tuple(torch: Any, example_inputs: Any, what: str) -> tuple[Any, ...]:
    items = (example_inputs,) if isinstance(example_inputs, torch.Tensor) else example_inputs
    if not isinstance(items, (tuple, list)) or not items or not all(isinstance(t, torch.Tensor) for t in items):
        raise ConversionError(f"{what}: example_inputs must be a tensor or a non-empty tuple of tensors (the "
                              f"positional arguments of forward), not {type(example_inputs).__name__}")
    return tuple(t.detach() for t in items)


def _names(given: Sequence[str] | None, default: list[str], role: str, what: str) -> list[str]:
    names = list(given) if given is not None else default
    if len(names) != len(default):
        raise ConversionError(f"{what}: {len(names)} {role} names {names} for {len(default)} {role}s")
    if len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
        raise ConversionError(f"{what}: {role} names must be distinct non-empty strings, not {names}")
    return names


def _input_defaults(module: Any, count: int) -> list[str]:
    """The names of ``forward``'s first ``count`` positional parameters (``input0...`` when not named)."""
    try:
        params = [p for p in inspect.signature(module.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    names = [p.name for p in params[:count]]
    return names if len(names) == count else [f"input{i}" for i in range(count)]


def run_module(module: Any, example_inputs: Any, input_names: Sequence[str] | None = None,
               output_names: Sequence[str] | None = None) -> tuple[tuple[Any, ...], Traced]:
    """Run ``module`` (already in eval mode) on the example inputs; the tensors and a :class:`Traced`."""
    torch = _torch()
    what = f"{type(module).__name__} (PyTorch module)"
    xs = _as_tuple(torch, example_inputs, what)
    shapes = ", ".join(f"{tuple(x.shape)} {str(x.dtype).replace('torch.', '')}" for x in xs)
    try:
        with torch.no_grad():
            result = module(*xs)
    except Exception as exc:  # whatever the module raises on a wrong input
        raise ConversionError(f"{what}: forward fails on the example input(s) {shapes}: {type(exc).__name__}: "
                              f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''} (give example "
                              "inputs of the shapes and count forward expects)") from exc
    results = tuple(result) if isinstance(result, (tuple, list)) else (result,)
    if not results or not all(isinstance(r, torch.Tensor) for r in results):
        raise ConversionError(f"{what}: forward must return a tensor or a tuple/list of tensors, not "
                              f"{type(result).__name__} (wrap the module to return tensors)")
    ins = _names(input_names, _input_defaults(module, len(xs)), "input", what)
    outs = _names(output_names, ["output"] if len(results) == 1 else [f"output{i}" for i in range(len(results))],
                  "output", what)
    if set(ins) & set(outs):
        raise ConversionError(f"{what}: names {sorted(set(ins) & set(outs))} are both input and output names")
    traced = Traced(what, {n: x.cpu().numpy().copy() for n, x in zip(ins, xs, strict=True)},
                    {n: r.detach().cpu().numpy().copy() for n, r in zip(outs, results, strict=True)})
    return xs, traced


def _export(module: Any, xs: tuple[Any, ...], traced: Traced, path: Path, exporter: str) -> None:
    torch = _torch()
    options: dict[str, Any] = {"dynamo": exporter == "dynamo", "opset_version": OPSET,
                               "input_names": list(traced.inputs), "output_names": list(traced.outputs)}
    if exporter == "dynamo":
        options.update(verbose=False, external_data=True)
    with _quiet(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            torch.onnx.export(module, xs, str(path), **options)
        except Exception as exc:  # torch.export / the tracer raise many kinds of errors
            raise ConversionError(f"{traced.what}: the {exporter} exporter cannot export it: {_summary(exc)} "
                                  f"({_export_hint(exporter)})") from exc
    tracer = [str(w.message).split(". ")[0] for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
    if tracer:
        raise ConversionError(f"{traced.what}: the torchscript tracer recorded only what this example input did "
                              f"({len(tracer)} warning(s): {'; '.join(sorted(set(tracer)))}) (data-dependent "
                              "control flow or Python values cannot be converted exactly; remove them from "
                              "forward, or try exporter='dynamo', which refuses or captures them)")
    for w in caught:
        logger.debug("%s exporter: %s: %s", exporter, w.category.__name__, w.message)


def _summary(exc: BaseException) -> str:
    """The gist of an exporter error: torch.export's 'Exception summary' line, else its first line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if "## Exception summary" in lines:
        after = lines[lines.index("## Exception summary") + 1:]
        where = [lines[i + 1] for i, line in enumerate(lines[:-1]) if line.startswith("The following call raised")]
        gist = re.sub(r"<class '(?:[\w.]+\.)?(\w+)'>", r"\1", after[0]) if after else "torch.export failed"
        return f"{gist} at {where[0]}" if where else gist
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def _export_hint(exporter: str) -> str:
    if exporter == "dynamo":
        return "torch.export needs forward free of data-dependent Python control flow; see the exportdb in " \
               "PyTorch's documentation, or try exporter='torchscript'"
    return "try exporter='dynamo'"


def _import(module: Any, example_inputs: Any, exporter: str, input_names: Sequence[str] | None,
            output_names: Sequence[str] | None) -> tuple[ir.Model, Traced]:
    if exporter not in EXPORTERS:
        raise ConversionError(f"unknown exporter {exporter!r}; choose one of {', '.join(EXPORTERS)}")
    from nnbridge.onnx.formats import load_onnx

    if not isinstance(module, _torch().nn.Module):
        raise ConversionError(f"{type(module).__name__}: not a torch.nn.Module (convert_module/import_module "
                              "take a live module; use nnbridge.convert for ONNX files)")
    with _eval_mode(module):
        xs, traced = run_module(module, example_inputs, input_names, output_names)
        with tempfile.TemporaryDirectory(prefix="nnbridge-torch-") as tmp:
            path = Path(tmp) / f"{type(module).__name__}.onnx"
            _export(module, xs, traced, path, exporter)
            model = load_onnx(path)
            ir.external_data.load_to_model(model)  # the weights outlive the temporary folder
    names = ([str(v.name) for v in model.graph.inputs if v.name not in model.graph.initializers],
             [str(v.name) for v in model.graph.outputs])
    if names != (list(traced.inputs), list(traced.outputs)):
        raise ConversionError(f"{traced.what}: the {exporter} exporter named the inputs/outputs {names}, not "
                              f"{list(traced.inputs)} / {list(traced.outputs)} as asked (try the other exporter)")
    model.graph.name = type(module).__name__  # the Caffe net's name (the exporters say "main_graph")
    model.metadata_props["nnbridge.source_format"] = "torch"
    model.metadata_props["nnbridge.torch.exporter"] = exporter
    logger.info("%s: exported by the %s exporter, %d nodes", traced.what, exporter, len(model.graph))
    return model, traced


def import_module(module: Any, example_inputs: Any, *, exporter: str = "dynamo",
                  input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None) -> ir.Model:
    """A hub model (ONNX opset 17, static shapes) of ``module`` run on ``example_inputs`` (see the module doc)."""
    return _import(module, example_inputs, exporter, input_names, output_names)[0]


def convert_module(module: Any, example_inputs: Any, output: str | os.PathLike[str], *, to: str | None = None,
                   caffe_dialect: str = "bvlc", verify: bool = False, exporter: str = "dynamo",
                   input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None,
                   rtol: float = 1e-4, atol: float = 1e-6, runtimes: Sequence[str] | None = None) -> Any:
    """Convert ``module`` into ``output`` (``.prototxt`` + ``.caffemodel``, an MXNet prefix with ``to="mxnet"``,
    ``.onnx``); with ``verify``, compare every output of the written model, run in its real runtime, with
    PyTorch's. Returns a :class:`nnbridge.api.ConvertResult` (``.verification``: a ``VerifyReport``).

    ``runtimes``: ``NAME=PYTHON`` entries name interpreters (``"mxnet=/venv-mx/bin/python"``, else
    ``$NNBRIDGE_MXNET_PYTHON``); a bare name (``"opencv"``) picks the runtime of the written model.
    """
    from nnbridge.api import ConvertResult, format_of, output_path, save_model

    start = time.perf_counter()
    target = format_of(output, to, role="output")
    model, traced = _import(module, example_inputs, exporter, input_names, output_names)
    notes = [n for n in model.metadata_props.get("nnbridge.notes", "").split("\n") if n]
    out_weights, export_notes = save_model(model, output, to=target, dialect=caffe_dialect)
    written = output_path(output, target)
    result = ConvertResult(traced.what, written, "torch", target, out_weights, notes + export_notes)
    if verify:
        result.verification = verify_outputs(traced, written, out_weights, target, dialect=caffe_dialect,
                                             rtol=rtol, atol=atol, runtimes=runtimes)
    result.seconds = time.perf_counter() - start
    return result


def _runtime(target: str, dialect: str, runtimes: Sequence[str] | None) -> str:
    from nnbridge.verify.worker import split_runtime

    runtime = {"caffe": "opencv" if dialect == "opencv" else "caffe", "mxnet": "mxnet"}.get(target, "onnxruntime")
    pythons: dict[str, str] = {}
    for entry in runtimes or ():
        name, python = split_runtime(entry)
        if python is None:
            runtime = name
        else:
            pythons[name] = python
    return f"{runtime}={pythons[runtime]}" if runtime in pythons else runtime


def verify_outputs(traced: Traced, path: str, weights: str | None, target: str, *, dialect: str = "bvlc",
                   rtol: float = 1e-4, atol: float = 1e-6, runtimes: Sequence[str] | None = None) -> Any:
    """PyTorch's outputs vs the written model's, run in its runtime's worker; a ``VerifyReport``."""
    from nnbridge.verify.api import ModelFiles, VerifyReport
    from nnbridge.verify.compare import compare
    from nnbridge.verify.worker import run_in_worker

    got = run_in_worker(_runtime(target, dialect, runtimes), (path, weights), traced.inputs)
    comparison = compare(traced.outputs, got, outputs=list(traced.outputs), rtol=rtol, atol=atol)
    described = ", ".join(f"{n} {tuple(a.shape)}" for n, a in traced.inputs.items())
    notes = ["compared: the module's outputs (PyTorch exposes no intermediate blobs to compare)"]
    return VerifyReport(ModelFiles("torch", traced.what), ModelFiles(target, path, weights), "torch", got.runtime,
                        f"the example inputs: {described}", list(traced.outputs), comparison, notes)
