"""Run the manifest's model tasks: a local process pool (default) or Ray, then write the report."""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, TextIO

from nnbridge.errors import MissingExtraError, NNBridgeError
from nnbridge.zoo.manifest import Manifest, ModelSpec
from nnbridge.zoo.progressbar import Progress, forward_to, listen
from nnbridge.zoo.tasks import run_model

logger = logging.getLogger(__name__)
EXECUTORS = ("local", "ray")


@dataclass
class ZooRun:
    manifest: str
    report_dir: str
    results: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.results if r["status"] == "failed"]

    @property
    def done_work(self) -> list[str]:
        """Names of the models actually (re)computed in this run (not resumed, not skipped)."""
        return [r["name"] for r in self.results if not r.get("resumed") and r["status"] != "skipped"]

    def summary(self) -> str:
        counts = {s: sum(r["status"] == s for r in self.results) for s in ("passed", "failed", "skipped")}
        resumed = sum(bool(r.get("resumed")) for r in self.results)
        lines = [f"zoo: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped "
                 f"({resumed} resumed) in {self.seconds:.1f} s; report in {self.report_dir}"]
        lines += [f"  FAILED {r['name']}: {r['reason']}" for r in self.failed]
        return "\n".join(lines)


def _progress(bar: Progress | None, result: dict[str, Any]) -> None:
    if bar is None:
        return
    targets = ", ".join(f"{t['target']} {t['status']}" for t in result.get("targets", []))
    how = "resumed" if result.get("resumed") else f"{result.get('seconds', 0):.1f} s"
    text = f"[{bar.done + 1}/{bar.total}] {result['name']}: {result['status']} ({how})"
    bar.model_done(text + (f" - {targets}" if targets else ""))


def run_zoo(manifest: Manifest, report_dir: str, *, workers: int = 1, executor: str = "local",
            offline: bool = False, retry_failed: bool = False,
            stream: TextIO | None = None) -> ZooRun:
    """Run every model of ``manifest`` (independent tasks), write ``report.json/.md/.html`` in ``report_dir``;
    progress goes to ``stream`` when given (a bar on a terminal, plain lines otherwise, see zoo/progressbar)."""
    from nnbridge.zoo.report import write_report

    if executor not in EXECUTORS:
        raise NNBridgeError(f"executor {executor!r}: choose one of {', '.join(EXECUTORS)}")
    if workers < 1:
        raise NNBridgeError(f"--workers {workers}: give at least 1")
    os.makedirs(report_dir, exist_ok=True)
    mx_python = _mxnet_python()
    start = time.perf_counter()
    run = ZooRun(manifest.path, os.path.abspath(report_dir))
    args = (os.path.abspath(report_dir), offline, mx_python, retry_failed)
    models = manifest.models
    bar = Progress(len(models), stream) if stream is not None else None
    if bar:
        bar.line(f"zoo: {len(models)} model(s), executor {executor}, {workers} worker(s)")
    run_tasks = _run_ray if executor == "ray" else _run_local
    try:
        results = run_tasks(models, args, workers, bar)
    finally:
        if bar:
            bar.close()
    order = {m.name: i for i, m in enumerate(models)}
    run.results = sorted(results, key=lambda r: order[r["name"]])
    run.seconds = time.perf_counter() - start
    write_report(run)
    return run


def _mxnet_python() -> str | None:
    from nnbridge.verify.worker import available_runtimes, mxnet_python

    try:
        return mxnet_python() if available_runtimes().get("mxnet") else None
    except NNBridgeError:
        return None


def _run_local(models: list[ModelSpec], args: tuple[Any, ...], workers: int,
               bar: Progress | None) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    # spawn: TensorFlow and onnxruntime do not survive fork; each task starts from a clean interpreter
    context = multiprocessing.get_context("spawn")
    queue = context.Queue() if bar else None
    listener = listen(queue, bar) if bar else None
    init: dict[str, Any] = {"initializer": forward_to, "initargs": (queue,)} if bar else {}
    try:
        _pool(models, args, workers, bar, context, init, results)
    finally:
        if listener is not None:
            listener.stop()
    return results


def _pool(models: list[ModelSpec], args: tuple[Any, ...], workers: int, bar: Progress | None, context: Any,
          init: dict[str, Any], results: list[dict[str, Any]]) -> None:
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, **init) as pool:
        futures = {pool.submit(run_model, model, *args): model for model in models}
        for future in as_completed(futures):
            model = futures[future]
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 - a crashed worker fails only its model
                result = {"name": model.name, "status": "failed", "reason": f"worker crashed: {exc}",
                          "targets": [], "task": model.task, "source": model.source}
            results.append(result)
            _progress(bar, result)


def _run_ray(models: list[ModelSpec], args: tuple[Any, ...], workers: int,
             bar: Progress | None) -> list[dict[str, Any]]:
    try:
        import ray  # type: ignore[import-not-found]
    except ImportError as exc:
        raise MissingExtraError("--executor ray needs Ray: pip install ray (or use --executor local)") from exc
    started = not ray.is_initialized()
    if started:
        address = os.environ.get("RAY_ADDRESS")
        ray.init(address=address, num_cpus=None if address else workers, include_dashboard=False,
                 log_to_driver=False)
    try:
        return _ray_tasks(ray, models, args, bar)
    finally:
        if started:
            ray.shutdown()


def _ray_tasks(ray: Any, models: list[ModelSpec], args: tuple[Any, ...],
               bar: Progress | None) -> list[dict[str, Any]]:
    remote = ray.remote(run_model)
    pending = {remote.remote(model, *args): model for model in models}
    results: list[dict[str, Any]] = []
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        model = pending.pop(ready[0])
        try:
            result = ray.get(ready[0])
        except Exception as exc:  # noqa: BLE001
            result = {"name": model.name, "status": "failed", "reason": f"ray task failed: {exc}", "targets": []}
        results.append(result)
        _progress(bar, result)
    return results
