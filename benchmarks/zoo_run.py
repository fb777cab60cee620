#!/usr/bin/env python3
"""Benchmark: wall time of the bundled zoo manifest (``nnbridge zoo run example``) with 1 and 2 workers, a
resumed second run, and the harness overhead against bare ``convert(..., verify=True)`` calls.

Every timed zoo run is a fresh ``nnbridge zoo run`` child process writing a new report directory (no resume),
except the "resumed" run, which repeats the 1-worker run in its directory (no model is redone). The bare
baseline converts and verifies the same (model, target) pairs one after the other in one child process, with
the manifest's options, timing each model. Per model, the table sets the harness's own time for the model
(``seconds`` in its result: hashing, logging, convert + verify of every target, evaluation, result files;
measured inside the worker) against the bare time, with the evaluation (top-1/top-5, detection agreement,
which bare convert+verify does not do) shown apart: overhead = harness - evaluation - bare. The whole-run
average ((1-worker wall time - bare total) / models) also counts the process pool and the report.
MTCNN models are included when ``NNBRIDGE_SHARED_MODELS`` names ../shared/models; MXNet targets need
``NNBRIDGE_MXNET_PYTHON`` (without it they fail in both, so the figures stay comparable).

Usage: python benchmarks/zoo_run.py [--workdir DIR] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger("zoo_run")

BARE = r"""
import json, sys, time
from importlib import resources
from nnbridge.api import convert
from nnbridge.zoo.manifest import load_manifest
manifest = load_manifest(str(resources.files("nnbridge.zoo").joinpath("examples/example.toml")))
out, mx = sys.argv[1], sys.argv[2] or None
start = time.perf_counter()
per_model = {}
for spec in manifest.models:
    try:
        open(spec.source).close()
    except OSError:
        continue
    began = time.perf_counter()
    for target in spec.targets:
        try:
            suffix = {"onnx": ".onnx", "caffe": ".prototxt"}.get(target, "")
            convert(spec.source, f"{out}/{spec.name}-{target}{suffix}",
                    weights=spec.weights, to=target, input_shapes=spec.input_shapes or None, verify=True,
                    random_weights=spec.random_weights, runtimes=(f"mxnet={mx}",) if mx else None)
        except Exception as exc:
            print("failed:", spec.name, target, exc, file=sys.stderr)
    per_model[spec.name] = time.perf_counter() - began
print(json.dumps({"seconds": time.perf_counter() - start, "models": per_model}))
"""


def zoo_run(report: Path, workers: int) -> float:
    start = time.perf_counter()
    cli = "import sys; from nnbridge.cli import main; sys.exit(main())"
    proc = subprocess.run([sys.executable, "-c", cli, "zoo", "run", "example", "-o", str(report),
                           "--workers", str(workers)], capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    logger.info("%s", proc.stdout.strip().splitlines()[0] if proc.stdout.strip() else proc.stderr[-500:])
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="nnbridge-zoo-bench-"))
    figures: dict[str, float] = {}
    for workers in args.workers:
        figures[f"workers={workers} s"] = zoo_run(work / f"report-w{workers}", workers)
    first = work / f"report-w{args.workers[0]}"
    figures["resumed s"] = zoo_run(first, args.workers[0])
    report = json.loads((first / "report.json").read_text(encoding="utf-8"))
    ran = [m for m in report["models"] if m["status"] != "skipped"]
    bare_dir = work / "bare"
    bare_dir.mkdir(exist_ok=True)
    proc = subprocess.run([sys.executable, "-c", BARE, str(bare_dir), os.environ.get("NNBRIDGE_MXNET_PYTHON", "")],
                          capture_output=True, text=True, check=True)
    bare = json.loads(proc.stdout.strip().splitlines()[-1])
    figures["bare convert+verify s"] = bare["seconds"]
    one = figures[f"workers={args.workers[0]} s"]
    figures["harness overhead per model s"] = (one - bare["seconds"]) / max(len(ran), 1)
    for name, value in figures.items():
        print(f"{name:32s} {value:8.2f}")
    print(f"models run: {len(ran)} (of {len(report['models'])}); files in {work}\n")
    print(per_model_table(ran, bare["models"]))
    return 0


def per_model_table(ran: list[dict[str, Any]], bare: dict[str, float]) -> str:
    """Markdown: per model, bare convert+verify against the harness's time for it (see the docstring)."""
    lines = ["| model | targets | bare convert+verify s | harness s | evaluation s | overhead s | overhead % |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for model in ran:
        alone = bare.get(model["name"])
        harness = float(model.get("seconds", 0.0))
        evaluation = float(model.get("evaluation_seconds", 0.0))
        if alone is None:
            lines.append(f"| {model['name']} | {len(model['targets'])} | - | {harness:.2f} | {evaluation:.2f} "
                         "| - | - |")
            continue
        extra = harness - evaluation - alone
        lines.append(f"| {model['name']} | {len(model['targets'])} | {alone:.2f} | {harness:.2f} | "
                     f"{evaluation:.2f} | {extra:+.2f} | {100 * extra / alone:+.0f}% |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
