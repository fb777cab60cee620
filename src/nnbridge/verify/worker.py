"""Run one runtime on one model in a separate process: ``python -m nnbridge.verify.worker``.

One process per runtime keeps Caffe's and TensorFlow's protobuf libraries apart and lets pycaffe live in
another interpreter (environment variable ``NNBRIDGE_CAFFE_PYTHON``). Exchange format:

- inputs: an ``.npz`` whose member ``__names__`` lists the input names and ``a0, a1, ...`` hold the arrays
  (blob names may contain ``/`` or ``@``, which zip member names do not carry reliably);
- result: the same layout, plus ``__meta__``: a JSON string ``{"runtime", "outputs"}``;
- failure: exit status 3 and a JSON file ``{"type", "message"}`` (``--error``). A crash (Caffe aborts on
  a failed CHECK) leaves no such file: the exit status and the end of stderr are reported instead.

Runtime names: ``pycaffe``, ``opencv`` (Caffe files), ``onnxruntime`` (ONNX files), ``mxnet`` (MXNet
checkpoints) and ``tensorflow`` (any TensorFlow source: SavedModel, .pb, .keras/.h5, checkpoint, .tflite;
NCHW in and out, see :mod:`nnbridge.verify.runtimes.tensorflow_rt`); ``--option KEY=VALUE`` passes loader
options (``allow_lambda``, ``outputs``, ``signature``) to the TensorFlow runtime; ``--plugin`` imports
modules (or .py files) first, e.g. ones declaring extra custom ops.

MXNet 1.9.1 needs numpy < 1.24 and so usually lives in its own environment: its interpreter is given as
``mxnet=/path/to/python`` (CLI ``--runtime``, API ``runtimes=``), else by ``$NNBRIDGE_MXNET_PYTHON``, else this
interpreter when it imports mxnet. This module and the runtimes it imports need only numpy (any version) and
the runtime itself.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nnbridge.errors import NNBridgeError

logger = logging.getLogger(__name__)

RUNTIMES = ("pycaffe", "opencv", "onnxruntime", "mxnet", "tensorflow")
ERROR_STATUS = 3
CAFFE_PYTHON_ENV = "NNBRIDGE_CAFFE_PYTHON"
MXNET_PYTHON_ENV = "NNBRIDGE_MXNET_PYTHON"
DEFAULT_TIMEOUT = 1800.0


class RunResult(dict[str, np.ndarray]):
    """``{blob name: array}`` from one worker run, plus which runtime ran and the model's outputs."""

    def __init__(self, arrays: Mapping[str, np.ndarray], runtime: str, outputs: Sequence[str]):
        super().__init__(arrays)
        self.runtime = runtime
        self.outputs = list(outputs)


def caffe_python() -> str:
    """The interpreter that runs pycaffe: ``$NNBRIDGE_CAFFE_PYTHON`` or this one."""
    return os.environ.get(CAFFE_PYTHON_ENV) or sys.executable


def _worker_env(python: str) -> dict[str, str]:
    env = dict(os.environ)
    env["GLOG_minloglevel"] = "2"
    if os.path.realpath(python) != os.path.realpath(sys.executable):
        # Let another interpreter import this very copy of nnbridge (only numpy + the runtime are needed).
        src = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    return env


@functools.cache
def _importable(python: str, module: str) -> bool:
    try:
        probe = subprocess.run([python, "-c", f"import {module}"], env=_worker_env(python), capture_output=True,
                               timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def _pycaffe_importable(python: str) -> bool:
    return _importable(python, "caffe")


def split_runtime(spec: str) -> tuple[str, str | None]:
    """``"mxnet=/venv/bin/python"`` -> ``("mxnet", "/venv/bin/python")``; ``"onnx"`` -> ``("onnx", None)``."""
    name, sep, python = spec.partition("=")
    if sep and not python:
        raise NNBridgeError(f"runtime {spec!r}: give the interpreter after '=' (e.g. mxnet=/venv/bin/python)")
    return name, (python or None)


def mxnet_python(explicit: str | None = None) -> str:
    """The interpreter that runs MXNet: ``explicit``, else ``$NNBRIDGE_MXNET_PYTHON``, else this one if it
    imports mxnet; otherwise an error naming both ways to give it."""
    python = explicit or os.environ.get(MXNET_PYTHON_ENV)
    if python:
        if not _importable(python, "mxnet"):
            how = "--runtime mxnet=" if explicit else f"{MXNET_PYTHON_ENV}="
            raise NNBridgeError(f"{how}{python}: this Python cannot import mxnet (or does not run); point it at "
                                "an environment with mxnet==1.9.1 numpy==1.23.5")
        return python
    if importlib.util.find_spec("mxnet") is not None and _importable(sys.executable, "mxnet"):
        return sys.executable
    raise NNBridgeError(f"no MXNet runtime: mxnet is not importable here; set {MXNET_PYTHON_ENV}=/path/to/python "
                        "or pass --runtime mxnet=/path/to/python (API: runtimes=('mxnet=/path/to/python', ...)) "
                        "naming a Python with mxnet==1.9.1 numpy==1.23.5")


def available_runtimes() -> dict[str, bool]:
    """Which runtimes can run here (pycaffe is probed in the interpreter given by ``$NNBRIDGE_CAFFE_PYTHON``)."""
    return {
        "pycaffe": _pycaffe_importable(caffe_python()),
        "opencv": importlib.util.find_spec("cv2") is not None,
        "onnxruntime": importlib.util.find_spec("onnxruntime") is not None,
        "mxnet": _mxnet_available(),
        "tensorflow": importlib.util.find_spec("tensorflow") is not None,
    }


def _mxnet_available() -> bool:
    try:
        mxnet_python()
    except NNBridgeError:
        return False
    return True


def resolve_runtime(runtime: str) -> str:
    """``caffe`` means pycaffe when importable, else OpenCV; ``onnx`` means onnxruntime."""
    if runtime == "caffe":
        if _pycaffe_importable(caffe_python()):
            return "pycaffe"
        if importlib.util.find_spec("cv2") is not None:
            logger.info("pycaffe is not importable by %s: running Caffe models with OpenCV", caffe_python())
            return "opencv"
        raise NNBridgeError("no Caffe runtime: pycaffe is not importable (set NNBRIDGE_CAFFE_PYTHON to a "
                            "Python with pycaffe) and OpenCV is not installed (pip install 'nnbridge[verify]')")
    if runtime == "onnx":
        return "onnxruntime"
    if runtime not in RUNTIMES:
        raise NNBridgeError(f"unknown runtime {runtime!r}; choose caffe, onnx, mxnet or one of "
                            f"{', '.join(RUNTIMES)} (mxnet=/path/to/python names MXNet's interpreter)")
    return runtime


def run_in_worker(runtime: str, model_paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str] | None],
                  inputs: Mapping[str, np.ndarray], *, python: str | None = None,
                  timeout: float | None = DEFAULT_TIMEOUT, intermediates: bool = True,
                  plugins: Sequence[str | os.PathLike[str]] = (),
                  options: Mapping[str, str] | None = None) -> RunResult:
    """Run ``runtime`` on a model (``path`` or ``(model, weights)``) in a fresh process; return every blob.

    ``runtime`` may name its interpreter: ``mxnet=/path/to/python`` (as ``python=`` does).
    ``plugins`` (module names or .py files) are imported in the worker first, e.g. to declare custom ops.
    ``options`` are loader options of the TensorFlow runtime (``allow_lambda``, ``outputs``, ``signature``).
    """
    runtime, named_python = split_runtime(runtime)
    runtime = resolve_runtime(runtime)
    python = python or named_python
    paths = [model_paths] if isinstance(model_paths, (str, os.PathLike)) else list(model_paths)
    if not paths or paths[0] is None or len(paths) > 2:
        raise NNBridgeError(f"give a model path or (model, weights), not {model_paths!r}")
    model = os.path.abspath(paths[0])
    weights = os.path.abspath(paths[1]) if len(paths) > 1 and paths[1] is not None else None
    if runtime == "mxnet":
        python = mxnet_python(python)
    python = python or (caffe_python() if runtime == "pycaffe" else sys.executable)
    with tempfile.TemporaryDirectory(prefix="nnbridge-verify-") as tmp:
        in_path, out_path, err_path = (os.path.join(tmp, n) for n in ("inputs.npz", "out.npz", "error.json"))
        save_arrays(in_path, inputs)
        command = [python, "-m", "nnbridge.verify.worker", runtime, "--model", model, "--inputs", in_path,
                   "--out", out_path, "--error", err_path]
        if weights:
            command += ["--weights", weights]
        if not intermediates:
            command.append("--outputs-only")
        for plugin in plugins:
            text = os.fspath(plugin)
            command += ["--plugin", os.path.abspath(text) if text.endswith(".py") else text]
        for key, value in (options or {}).items():
            command += ["--option", f"{key}={value}"]
        logger.debug("running %s", " ".join(command))
        try:
            proc = subprocess.run(command, env=_worker_env(python), capture_output=True, text=True,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise NNBridgeError(f"{runtime} on {model}: no result within {timeout:g} s") from exc
        except OSError as exc:
            raise NNBridgeError(f"{runtime}: cannot start worker {python!r}: {exc}") from exc
        if proc.returncode == 0 and os.path.exists(out_path):
            arrays, meta = load_arrays(out_path)
            return RunResult(arrays, str(meta.get("runtime", runtime)), list(meta.get("outputs", [])))
        if os.path.exists(err_path):
            with open(err_path, encoding="utf-8") as handle:
                error = json.load(handle)
            raise NNBridgeError(f"{runtime} on {model}: {error['type']}: {error['message']}")
        raise NNBridgeError(f"{runtime} on {model}: {_crash_message(proc.returncode, proc.stderr)}")


def _crash_message(status: int, stderr: str) -> str:
    """Exit status (or signal) and the meaningful end of stderr (glog's F-lines first)."""
    how = f"worker exited with status {status}"
    if status < 0:
        try:
            how = f"worker killed by {signal.Signals(-status).name}"
        except ValueError:
            how = f"worker killed by signal {-status}"
    lines = [line for line in stderr.strip().splitlines()
             if line.strip() and not line.startswith(("WARNING: Logging before", "*** ", "    @ "))]
    fatal = [line for line in lines if line.startswith("F") and "] " in line]
    shown = [line.split("] ", 1)[1] for line in fatal] or lines[-5:]
    return how + (": " + " | ".join(shown) if shown else " (no output)")


def save_arrays(path: str, arrays: Mapping[str, np.ndarray], meta: dict[str, object] | None = None) -> None:
    names = list(arrays)
    members: dict[str, np.ndarray] = {f"a{i}": np.asarray(arrays[name]) for i, name in enumerate(names)}
    members["__names__"] = np.array(json.dumps(names))
    if meta is not None:
        members["__meta__"] = np.array(json.dumps(meta))
    with open(path, "wb") as handle:
        np.savez(handle, **members)  # type: ignore[arg-type]


def load_arrays(path: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    with np.load(path, allow_pickle=False) as data:
        names = json.loads(str(data["__names__"]))
        meta = json.loads(str(data["__meta__"])) if "__meta__" in data.files else {}
        return {name: data[f"a{i}"] for i, name in enumerate(names)}, meta


def run_runtime(runtime: str, model: str, weights: str | None, inputs: Mapping[str, np.ndarray], *,
                intermediates: bool = True, options: Mapping[str, str] | None = None
                ) -> tuple[dict[str, np.ndarray], list[str]]:
    """Run in this process; return (all blobs, names of the model's outputs)."""
    if runtime == "pycaffe":
        from nnbridge.verify.runtimes import caffe_pycaffe

        blobs, outputs = caffe_pycaffe.run_net(model, weights, inputs)
    elif runtime == "opencv":
        from nnbridge.verify.runtimes import caffe_opencv

        blobs = caffe_opencv.run(model, weights, inputs)
        outputs = caffe_opencv.net_outputs(caffe_opencv.caffe_layers(model), list(inputs))
    elif runtime == "onnxruntime":
        from nnbridge.verify.runtimes import onnxruntime_rt

        ir_model = onnxruntime_rt.load_model(model)
        outputs = [v.name or "" for v in ir_model.graph.outputs]
        blobs = onnxruntime_rt.run(ir_model, inputs, intermediates=intermediates)
    elif runtime == "mxnet":
        from nnbridge.verify.runtimes import mxnet_rt

        blobs, outputs = mxnet_rt.run_net(model, weights, inputs, intermediates=intermediates)
    elif runtime == "tensorflow":
        from nnbridge.verify.runtimes import tensorflow_rt

        blobs, outputs = tensorflow_rt.run_net(model, inputs, intermediates=intermediates, options=options)
    else:
        raise ValueError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    if not intermediates:
        blobs = {name: blobs[name] for name in outputs if name in blobs}
    return blobs, outputs


def load_plugin(plugin: str | os.PathLike[str]) -> None:
    """Import a module by name, or a Python file by path (its custom ops register on import)."""
    text = os.fspath(plugin)
    if not text.endswith(".py"):
        importlib.import_module(text)
        return
    name = "nnbridge_plugin_" + Path(text).stem
    spec = importlib.util.spec_from_file_location(name, text)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import plugin {text}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nnbridge.verify.worker", description=__doc__.split("\n")[0])
    parser.add_argument("runtime", choices=RUNTIMES)
    parser.add_argument("--model", required=True)
    parser.add_argument("--weights")
    parser.add_argument("--inputs", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--error", required=True)
    parser.add_argument("--outputs-only", action="store_true")
    parser.add_argument("--plugin", action="append", default=[],
                        help="module name or .py file to import first (e.g. to declare custom ops)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a loader option of the runtime (tensorflow: allow_lambda, outputs, signature)")
    args = parser.parse_args(argv)
    os.environ.setdefault("GLOG_minloglevel", "2")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        for plugin in args.plugin:
            load_plugin(plugin)
        inputs, _ = load_arrays(args.inputs)
        options = dict(item.partition("=")[::2] for item in args.option)
        blobs, outputs = run_runtime(args.runtime, args.model, args.weights, inputs,
                                     intermediates=not args.outputs_only, options=options)
        save_arrays(args.out, blobs, {"runtime": args.runtime, "outputs": outputs})
    except Exception as exc:  # reported to the parent, which raises a clean NNBridgeError
        with open(args.error, "w", encoding="utf-8") as handle:
            json.dump({"type": type(exc).__name__, "message": str(exc)}, handle)
        logger.debug("worker failed", exc_info=True)
        return ERROR_STATUS
    return 0


if __name__ == "__main__":
    sys.exit(main())
