"""Run many converted models in ONE process per runtime: real pycaffe, or real MXNet 1.9.1 in its environment.

``run_batch(target, jobs, workdir) -> BatchResult`` with ``target`` ``"caffe"`` or ``"mxnet"`` and ``jobs`` a list of
:class:`Job` (a key, the model and weights files, ``{input name: array}``). One interpreter runs every job with
nnbridge's own runtimes (:func:`nnbridge.verify.runtimes.caffe_pycaffe.run_net`,
:func:`nnbridge.verify.runtimes.mxnet_rt.run_net`): every blob / internal output by hub name. A job that raises
is recorded in ``errors``; a crash of the process (Caffe aborts on a failed CHECK) leaves the jobs after it
without results and ``crash`` says why (re-run them one by one to find the culprit). Start-up costs (pycaffe,
MXNet: seconds each) are paid once per batch instead of once per model. Missing runtimes skip the test.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

logger = logging.getLogger(__name__)
SRC = str(Path(__file__).resolve().parents[2] / "src")

_SCRIPT = r'''
import json, os, sys
sys.path.insert(0, sys.argv[2])
os.environ.setdefault("GLOG_minloglevel", "2")
from nnbridge.verify.worker import load_arrays, save_arrays
if sys.argv[3] == "caffe":
    from nnbridge.verify.runtimes.caffe_pycaffe import run_net
else:
    from nnbridge.verify.runtimes.mxnet_rt import run_net
jobs = json.load(open(os.path.join(sys.argv[1], "jobs.json")))
for job in jobs:
    inputs, _ = load_arrays(job["inputs"])
    try:
        blobs, _ = run_net(job["model"], job["weights"], inputs)
        save_arrays(job["out"], blobs)
    except Exception as exc:
        with open(job["out"] + ".err", "w") as f:
            f.write("%s: %s" % (type(exc).__name__, exc))
'''


@dataclass
class Job:
    key: str
    model: str
    weights: str | None
    inputs: Mapping[str, np.ndarray]


@dataclass
class BatchResult:
    blobs: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # job key -> every blob
    errors: dict[str, str] = field(default_factory=dict)  # job key -> the runtime's exception
    crash: str | None = None  # exit status and end of stderr when the process died


def interpreter(target: str) -> str:
    """The Python that runs ``target`` (pytest skip when it is not installed)."""
    if target == "mxnet":
        from support.mxnet_env import mxnet_python

        return mxnet_python()
    from nnbridge.verify.worker import caffe_python

    python = caffe_python()
    probe = subprocess.run([python, "-c", "import caffe"], capture_output=True, env=_env(), check=False)
    if probe.returncode != 0:
        pytest.skip("real BVLC Caffe (pycaffe) is not installed; run .ci/run to build it")
    return python


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.update(GLOG_minloglevel="2", MXNET_SUBGRAPH_VERBOSE="0", OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "2"))
    return env


def run_batch(target: str, jobs: Sequence[Job], workdir: str | Path) -> BatchResult:
    """Run every job of ``target`` in one process (see the module docstring)."""
    from nnbridge.verify.worker import load_arrays, save_arrays

    result = BatchResult()
    if not jobs:
        return result
    batch_dir = Path(tempfile.mkdtemp(prefix=f"{target}-", dir=workdir))
    specs = []
    for i, job in enumerate(jobs):
        save_arrays(str(batch_dir / f"{i}.in.npz"), job.inputs)
        specs.append({"model": job.model, "weights": job.weights, "inputs": str(batch_dir / f"{i}.in.npz"),
                      "out": str(batch_dir / f"{i}.out.npz")})
    (batch_dir / "jobs.json").write_text(json.dumps(specs))
    (batch_dir / "run.py").write_text(_SCRIPT)
    start = time.perf_counter()
    proc = subprocess.run([interpreter(target), str(batch_dir / "run.py"), str(batch_dir), SRC, target],
                          capture_output=True, text=True, env=_env(), timeout=1800, check=False)
    logger.info("real %s ran %d models in %.1f s", target, len(jobs), time.perf_counter() - start)
    result.crash = None if proc.returncode == 0 else f"exit {proc.returncode}: {proc.stderr[-3000:]}"
    for job, spec in zip(jobs, specs, strict=True):
        if os.path.exists(spec["out"]):
            result.blobs[job.key] = load_arrays(spec["out"])[0]
        elif os.path.exists(spec["out"] + ".err"):
            result.errors[job.key] = Path(spec["out"] + ".err").read_text()
    return result


__all__ = ["BatchResult", "Job", "interpreter", "run_batch"]
