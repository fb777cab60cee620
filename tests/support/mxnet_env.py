"""Run code in the separate MXNet 1.9.1 environment from tests that run under the main virtualenv.

MXNet 1.9.1 needs numpy < 1.24, so it lives in its own Python environment. Tests reach it through subprocesses:

``mxnet_python() -> str``
    The MXNet interpreter: env ``NNBRIDGE_MXNET_PYTHON`` (set by CI to ``.venv-mxnet/bin/python``), else
    ``<repo>/.venv-mxnet/bin/python``. No interpreter found -> ``pytest.skip`` with the reason. An interpreter named by
    the environment variable that cannot ``import mxnet`` is a test failure (a broken CI setup must not skip silently).

``run_mxnet(script, arrays=None, timeout=300, **json_args) -> dict``
    Runs ``script`` (Python source) in the MXNet environment. The script sees these globals:

    - ``mx`` (mxnet), ``np`` (numpy), ``json``, ``os``;
    - ``args``: ``json_args`` decoded from JSON (``pathlib.Path`` values become ``str``);
    - ``arrays``: ``{name: numpy array}`` from the ``arrays`` argument (exchanged through an ``.npz`` file);
    - ``workdir``: a scratch directory (``str``) that is deleted afterwards;
    - ``result``: an empty dict the script fills.

    ``result`` is returned to the caller. Values may be JSON types, numpy arrays, ``mx.nd.NDArray`` (converted with
    ``asnumpy()``), numpy scalars, tuples, and nested dicts/lists of these; arrays travel through an ``.npz`` file so
    their dtype and bits are kept exactly. A failing script raises ``AssertionError`` with its stderr.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import tempfile
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV_VAR = "NNBRIDGE_MXNET_PYTHON"

_PRELUDE = r'''
import json, os, sys, warnings
warnings.filterwarnings("ignore")
import numpy as np
import mxnet as mx

_work = sys.argv[1]
with open(os.path.join(_work, "args.json")) as _f:
    args = json.load(_f)
_npz = np.load(os.path.join(_work, "in.npz"), allow_pickle=False)
arrays = {k: _npz[k] for k in _npz.files}
workdir = os.path.join(_work, "scratch")
os.makedirs(workdir, exist_ok=True)
result = {}


def realistic_params(out, shape, seed, skip=("data", "softmax_label")):
    """Seeded random parameters of realistic scale for symbol ``out`` with data ``shape``: He-normal weights,
    gammas and running variances in [0.5, 1.5], small biases, betas and running means (mx.nd arrays)."""
    rng = np.random.RandomState(seed)
    arg_shapes, _, aux_shapes = out.infer_shape(data=shape)
    arg, aux = {}, {}
    for name, s in zip(out.list_arguments(), arg_shapes):
        if name in skip:
            continue
        if name.endswith("weight"):
            arg[name] = rng.randn(*s) * np.sqrt(2.0 / np.prod(s[1:]))
        elif name.endswith("gamma"):
            arg[name] = rng.uniform(0.5, 1.5, s)
        else:
            arg[name] = rng.randn(*s) * 0.1
    for name, s in zip(out.list_auxiliary_states(), aux_shapes):
        aux[name] = rng.uniform(0.5, 1.5, s) if name.endswith("var") else rng.randn(*s) * 0.1
    as_nd = lambda d: {k: mx.nd.array(v.astype(np.float32)) for k, v in d.items()}  # noqa: E731
    return as_nd(arg), as_nd(aux)
'''

_EPILOGUE = r'''
_out_arrays = {}
def _encode(value):
    if isinstance(value, mx.nd.NDArray):
        value = value.asnumpy()
    if isinstance(value, np.ndarray):
        key = "a%d" % len(_out_arrays)
        _out_arrays[key] = value
        return {"__npz__": key}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    return value
_encoded = _encode(result)
np.savez(os.path.join(_work, "out.npz"), **_out_arrays)
with open(os.path.join(_work, "out.json"), "w") as _f:
    json.dump(_encoded, _f)
'''


def _candidate() -> tuple[str | None, bool]:
    """(interpreter path or None, whether it was named explicitly by the environment variable)."""
    named = os.environ.get(ENV_VAR)
    if named:
        return named, True
    local = ROOT / ".venv-mxnet" / "bin" / "python"
    return (str(local), False) if local.exists() else (None, False)


@functools.lru_cache(maxsize=1)
def _probe(python: str) -> str | None:
    """None when ``python`` imports mxnet, else the reason it does not."""
    try:
        proc = subprocess.run(
            [python, "-c", "import mxnet; print(mxnet.__version__)"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{python}: {exc}"
    if proc.returncode != 0:
        return f"{python} cannot import mxnet: {proc.stderr.strip().splitlines()[-1:]}"
    return None


def mxnet_python() -> str:
    """The MXNet environment's interpreter, or a pytest skip (a failure if ``NNBRIDGE_MXNET_PYTHON`` is broken)."""
    python, explicit = _candidate()
    if python is None:
        pytest.skip(f"no MXNet environment: set {ENV_VAR} or build {ROOT / '.venv-mxnet'} (see README)")
    problem = _probe(python)
    if problem is not None:
        if explicit:
            pytest.fail(f"{ENV_VAR}={python} is not a working MXNet environment: {problem}")
        pytest.skip(f"MXNet environment not usable: {problem}")
    return python


def _decode(value: Any, arrays: Mapping[str, np.ndarray]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__npz__"}:
            return arrays[value["__npz__"]]
        return {k: _decode(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, arrays) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def run_mxnet(
    script: str,
    arrays: Mapping[str, np.ndarray] | None = None,
    timeout: float = 300,
    **json_args: Any,
) -> dict[str, Any]:
    """Run ``script`` in the MXNet environment and return its ``result`` dict (see the module docstring)."""
    python = mxnet_python()
    with tempfile.TemporaryDirectory(prefix="nnbridge-mx-") as work:
        workdir = Path(work)
        (workdir / "args.json").write_text(json.dumps(_jsonable(json_args)))
        payload: dict[str, Any] = {k: np.asarray(v) for k, v in (arrays or {}).items()}
        np.savez(workdir / "in.npz", **payload)
        source = _PRELUDE + "\n" + textwrap.dedent(script) + "\n" + _EPILOGUE
        (workdir / "script.py").write_text(source)
        env = dict(os.environ)
        env.setdefault("MXNET_SUBGRAPH_VERBOSE", "0")
        env.setdefault("OMP_NUM_THREADS", "1")
        env.pop("PYTHONPATH", None)
        proc = subprocess.run(
            [python, str(workdir / "script.py"), str(workdir)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=str(workdir),
        )
        if proc.returncode != 0:
            raise AssertionError(f"MXNet script failed (exit {proc.returncode}) in {python}:\n{proc.stderr[-6000:]}")
        with np.load(workdir / "out.npz", allow_pickle=False) as npz:
            out_arrays = {k: npz[k] for k in npz.files}
        result = json.loads((workdir / "out.json").read_text())
    decoded = _decode(result, out_arrays)
    assert isinstance(decoded, dict)
    return decoded


__all__ = ["ENV_VAR", "mxnet_python", "run_mxnet"]
