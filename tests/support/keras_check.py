"""Keras -> hub -> Caffe / MXNet checks against REAL Caffe, REAL MXNet 1.9.1 and TensorFlow itself.

``run_cases(cases, targets)`` takes :class:`KerasCase` objects (a name and a function building a ``keras.Model``)
and, in this (TensorFlow) process:

1. builds each model, gives it realistic random parameters (:func:`realistic_weights`: He-normal kernels, small
   biases, BatchNormalization moving mean ~N(0, 0.2), moving variance ~U(0.5, 1.5), gamma ~U(0.5, 1.5),
   beta ~N(0, 0.1); an adaptable Normalization layer's mean ~U(0.3, 0.6), variance ~U(0.04, 0.09)) and runs
   TensorFlow on a seeded input (NHWC): the reference;
2. imports it with :func:`nnbridge.tensorflow.import_keras` (NCHW image inputs and 4-D outputs, as recorded in
   the model's ``nnbridge.output_layout.NAME`` metadata; a trailing NHWC ``Transpose`` that only restores Keras'
   layout of a 4-D output is dropped too): such outputs are compared with TensorFlow's transposed to NCHW (the
   converted nets compute NCHW end to end);
3. exports to Caffe (``export_caffe`` + ``save_caffe``) and MXNet (``export_mxnet`` + ``save_mxnet``); a failure
   is recorded for that case and target (the other cases still run);

then runs ALL converted Caffe nets in ONE pycaffe process and ALL MXNet checkpoints in ONE process of the MXNet
environment (:mod:`support.batch_run`), the two side by side (TensorFlow, Caffe and MXNet never share a
process; process start-up is paid once per runtime). A Caffe crash (a failed CHECK aborts the process) re-runs
the nets one per process to name the culprit.

``CaseResult.check(target)`` then compares every output with TensorFlow's (:func:`nnbridge.verify.compare`,
default rel err <= 1e-4 per output) and asserts that the reference output is not near-uniform;
``CaseResult.cross_check()`` compares every blob Caffe and MXNet both have (hub value names) with each other.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

logger = logging.getLogger(__name__)
TARGETS = ("caffe", "mxnet")


@dataclass
class KerasCase:
    name: str
    build: Callable[[], Any]  # -> keras.Model
    seed: int = 0
    dialect: str = "bvlc"
    rtol: float = 1e-4
    atol: float = 1e-5
    input_range: tuple[float, float] | None = None  # uniform inputs in [lo, hi); default N(0, 1)
    refused: dict[str, str] = field(default_factory=dict)  # target -> regex of the expected (exact) refusal


@dataclass
class CaseResult:
    case: KerasCase
    reference: dict[str, np.ndarray] = field(default_factory=dict)  # hub output name -> TF output (NCHW)
    inputs: dict[str, np.ndarray] = field(default_factory=dict)  # hub input name -> NCHW array
    errors: dict[str, str] = field(default_factory=dict)  # target (or "tensorflow") -> what went wrong
    runs: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # target -> every blob
    notes: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, tuple[str, str]] = field(default_factory=dict)  # target -> (model file, weights file)
    hub: Any = None  # the imported hub model (ir.Model), for further exports
    skipped: dict[str, str] = field(default_factory=dict)  # target -> why its runtime is unavailable here

    def compare(self, target: str) -> Any:
        from nnbridge.verify.compare import compare

        self.require(target)
        return compare(self.reference, self.runs[target], outputs=list(self.reference), rtol=self.case.rtol,
                       atol=self.case.atol)

    def require(self, target: str) -> None:
        if target in self.skipped:
            pytest.skip(self.skipped[target])
        for key in ("tensorflow", target):
            if key in self.errors:
                pytest.fail(f"{self.case.name} -> {target}: {self.errors[key]}")

    def check(self, target: str) -> float:
        """Assert every output equals TensorFlow's (rel err <= rtol); return the worst relative error. A target
        in ``case.refused`` must instead have refused the conversion with a matching message (returns 0)."""
        if target in self.case.refused:
            assert "tensorflow" not in self.errors, self.errors["tensorflow"]
            assert re.search(self.case.refused[target], self.errors.get(target, "")), \
                f"{self.case.name} -> {target}: expected a refusal matching {self.case.refused[target]!r}, got " \
                f"{self.errors.get(target, 'a successful conversion')!r}"
            return 0.0
        result = self.compare(target)
        compared = [row for row in result.rows if row.max_abs is not None]
        assert result.passed, f"{self.case.name}: TensorFlow vs {target}:\n{result.table()}"
        assert len(compared) == len(self.reference), f"{self.case.name}: not every output compared"
        for name, ref in self.reference.items():
            spread = float(np.ptp(ref))
            assert spread > 1e-3 * max(float(np.abs(ref).max()), 1e-12) and np.abs(ref).max() > 1e-6, \
                f"{self.case.name}: TensorFlow's output {name!r} is near-uniform (ptp {spread:g}): a weak test"
        return max(float(row.max_rel or 0.0) for row in compared)

    def cross_check(self, rtol: float | None = None) -> tuple[int, float]:
        """Every blob real Caffe and real MXNet both computed (by hub value name) agrees; (count, worst rel)."""
        from nnbridge.verify.compare import compare

        for target in TARGETS:
            self.require(target)
        caffe, mx = self.runs["caffe"], self.runs["mxnet"]
        shared = {k: v for k, v in caffe.items() if k in mx and k not in self.inputs}
        result = compare(shared, mx, outputs=[], rtol=rtol or self.case.rtol, atol=self.case.atol)
        rows = [row for row in result.rows if row.max_abs is not None]
        assert result.passed, f"{self.case.name}: real Caffe vs real MXNet blobs:\n{result.table()}"
        return len(rows), max((float(row.max_rel or 0.0) for row in rows), default=0.0)


# -- realistic parameters ---------------------------------------------------------------------------------------

def realistic_weights(model: Any, seed: int = 0) -> None:
    """Seeded realistic values for every weight of ``model`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        name = str(getattr(variable, "path", None) or variable.name).rsplit("/", 1)[-1].split(":")[0]
        shape = tuple(int(d) for d in variable.shape)
        if name in ("kernel", "depthwise_kernel", "pointwise_kernel"):
            fan_in = int(np.prod(shape[:-1])) if name != "depthwise_kernel" else int(np.prod(shape[:-2]))
            if len(shape) == 4 and name == "kernel" and "transpose" in str(getattr(variable, "path", "")):
                fan_in = int(np.prod(shape[:2])) * shape[3]  # Conv2DTranspose: (kh, kw, out, in)
            value = rng.normal(0.0, np.sqrt(2.0 / max(fan_in, 1)), shape)
        elif name in ("bias", "beta"):
            value = rng.normal(0.0, 0.1, shape)
        elif name == "moving_mean":
            value = rng.normal(0.0, 0.2, shape)
        elif name in ("moving_variance", "gamma"):
            value = rng.uniform(0.5, 1.5, shape)
        elif name == "alpha":  # PReLU
            value = rng.uniform(0.1, 0.4, shape)
        elif name == "mean":  # Normalization (adapted state): image statistics after Rescaling(1/255)
            value = rng.uniform(0.3, 0.6, shape)
        elif name == "variance":
            value = rng.uniform(0.04, 0.09, shape)
        else:
            continue
        variable.assign(value.astype(np.float32))
    for layer in _all_layers(model):
        if type(layer).__name__ == "Normalization" and hasattr(layer, "adapt_mean"):
            layer.finalize_state()  # Keras computes mean/variance tensors from the adapted state here


def _all_layers(model: Any) -> list[Any]:
    found = []
    for layer in getattr(model, "layers", []):
        found.append(layer)
        found.extend(_all_layers(layer))
    return found


# -- conversion (TensorFlow process) -------------------------------------------------------------------------------

def _nchw_outputs(model: Any) -> set[str]:
    """Drop graph-output Transposes (0, 2, 3, 1) that only restore NHWC; the outputs keep their names."""
    graph = model.graph
    dropped = set()
    for i, value in enumerate(list(graph.outputs)):
        node = value.producer()
        perm = node.attributes.get("perm") if node is not None else None
        if node is None or node.op_type != "Transpose" or perm is None or list(perm.value) != [0, 2, 3, 1]:
            continue
        src = node.inputs[0]
        if src is None or src.is_graph_input() or src.is_graph_output() or len(src.uses()) != 1:
            continue
        name = str(value.name)
        graph.outputs[i] = src
        graph.remove(node, safe=True)
        src.name = name
        dropped.add(name)
    return dropped


def _inputs(model: Any, case: KerasCase) -> list[np.ndarray]:
    rng = np.random.default_rng(case.seed + 1000)
    arrays = []
    for tensor in model.inputs:
        shape = [1 if d is None else int(d) for d in tensor.shape]
        if case.input_range is None:
            arrays.append(rng.standard_normal(shape).astype(np.float32))
        else:
            arrays.append(rng.uniform(*case.input_range, size=shape).astype(np.float32))
    return arrays


def prepare(case: KerasCase, workdir: Path, targets: Sequence[str]) -> CaseResult:
    """Build, run in TensorFlow, import and export one case (errors recorded, not raised)."""
    from nnbridge.tensorflow import import_keras

    result = CaseResult(case)
    start = time.perf_counter()
    try:
        keras_model = case.build()
        realistic_weights(keras_model, case.seed)
        feeds = _inputs(keras_model, case)
        outs = keras_model(feeds if len(feeds) > 1 else feeds[0], training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        built = time.perf_counter()
        hub = import_keras(keras_model)
        logger.info("%s: built and run by TensorFlow in %.1f s, imported in %.1f s", case.name, built - start,
                    time.perf_counter() - built)
    except Exception as exc:  # noqa: BLE001 - recorded per case
        result.errors["tensorflow"] = f"{type(exc).__name__}: {exc}"
        return result
    result.hub = hub
    transposed = _nchw_outputs(hub) | {key.split(".", 2)[2] for key, text in hub.metadata_props.items()
                                       if key.startswith("nnbridge.output_layout.") and text.startswith("NCHW")}
    for value, array in zip(hub.graph.inputs, feeds, strict=True):
        result.inputs[str(value.name)] = np.ascontiguousarray(array.transpose(0, 3, 1, 2)) if array.ndim == 4 \
            else array
    for value, out in zip(hub.graph.outputs, outs, strict=True):
        array = np.asarray(out, dtype=np.float32)
        name = str(value.name)
        result.reference[name] = np.ascontiguousarray(array.transpose(0, 3, 1, 2)) if name in transposed else array
    for target in targets:
        start = time.perf_counter()
        try:
            result.files[target], result.notes[target] = _export(hub, target, case, workdir)
            logger.info("%s: exported to %s in %.1f s", case.name, target, time.perf_counter() - start)
        except Exception as exc:  # noqa: BLE001 - recorded per case and target
            result.errors[target] = f"{type(exc).__name__}: {exc}"
    return result


def _export(hub: Any, target: str, case: KerasCase, workdir: Path) -> tuple[tuple[str, str], list[str]]:
    stem = workdir / case.name.replace("/", "_")
    if target == "caffe":
        from nnbridge.caffe.exporter import export_caffe
        from nnbridge.caffe.formats.net import save_caffe

        export = export_caffe(hub, dialect=case.dialect)
        save_caffe(export.net, export.blobs, f"{stem}.prototxt", f"{stem}.caffemodel")
        return (f"{stem}.prototxt", f"{stem}.caffemodel"), list(export.notes)
    from nnbridge.mxnet.exporter import export_mxnet, save_mxnet

    mx_export = export_mxnet(hub)
    symbol, params = save_mxnet(mx_export, stem)
    return (str(symbol), str(params)), list(mx_export.notes)


# -- running (one process per runtime: support.batch_run) ---------------------------------------------------------

def _run_batch(target: str, results: Sequence[CaseResult], workdir: Path) -> str | None:
    """Run every exported model of ``target`` in one process; None, or the crash message."""
    from support.batch_run import Job, run_batch

    todo = {r.case.name: r for r in results if target in r.files and target not in r.errors}
    jobs = [Job(name, *r.files[target], r.inputs) for name, r in todo.items()]
    batch = run_batch(target, jobs, workdir)
    for name, result in todo.items():
        if name in batch.blobs:
            result.runs[target] = batch.blobs[name]
        elif name in batch.errors:
            result.errors[target] = f"real {target}: {batch.errors[name]}"
        elif batch.crash is not None:
            result.errors[target] = f"real {target} crashed (this net or an earlier one): {batch.crash}"
    return batch.crash


def run_cases(cases: Sequence[KerasCase], targets: Sequence[str] = TARGETS,
              workdir: str | Path | None = None) -> dict[str, CaseResult]:
    """Prepare every case, then run each target once for all of them (see the module docstring)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    pytest.importorskip("tensorflow", reason="TensorFlow is not installed (pip install 'nnbridge[tensorflow]')")
    pytest.importorskip("tf2onnx", reason="tf2onnx is not installed (pip install 'nnbridge[tensorflow]')")
    work = Path(workdir or tempfile.mkdtemp(prefix="nnbridge-keras-"))
    results = {case.name: prepare(case, work, targets) for case in cases}
    def run(target: str) -> str | None:
        try:
            return _run_batch(target, list(results.values()), work)
        except pytest.skip.Exception as exc:  # this runtime is missing: skip its tests only
            for result in results.values():
                result.skipped[target] = str(exc.msg)
            return None

    with ThreadPoolExecutor(max_workers=len(targets) or 1) as pool:  # the runtimes run side by side
        crashes = dict(zip(targets, pool.map(run, targets), strict=True))
    for target, crash in crashes.items():
        if crash is not None:  # name the culprit: one process per net
            for result in results.values():
                if target in result.errors and "crashed" in result.errors[target]:
                    del result.errors[target]
                    _run_batch(target, [result], work)
    return results


def worst_table(rows: dict[str, dict[str, float | str]]) -> str:
    """Markdown table model x target -> worst per-output relative error (or the failure)."""
    columns = sorted({c for row in rows.values() for c in row})
    lines = ["| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, row in rows.items():
        cells = [f"{row[c]:.2e}" if isinstance(row.get(c), float) else str(row.get(c, "-")) for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


__all__ = ["CaseResult", "KerasCase", "TARGETS", "prepare", "realistic_weights", "run_cases", "worst_table"]
