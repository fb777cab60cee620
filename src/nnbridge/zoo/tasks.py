"""One independent task per model: fetch (optional), convert to each target, verify blob by blob, record.

A task writes only inside ``REPORT/models/NAME/``: converted files (atomic, by :func:`nnbridge.api.convert`),
``log.txt`` and ``result.json`` (atomic). ``result.json`` carries a content hash of the source and weights
bytes, the model's options and the nnbridge version; a later run finding the same hash reuses it (resume).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
import urllib.request
from dataclasses import asdict
from pathlib import Path
from typing import Any

from nnbridge.fileio import atomic_write
from nnbridge.zoo.builders import BUILD_VERSION, BuilderUnavailable, build, builder_of
from nnbridge.zoo.manifest import ModelSpec

logger = logging.getLogger(__name__)
#: one line per model step on stderr (and in the model's log), whichever process runs the task
progress = logging.getLogger("nnbridge.zoo.progress")

_EXTENSION = {"onnx": ".onnx", "caffe": ".prototxt", "mxnet": ""}


def nnbridge_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nnbridge")
    except PackageNotFoundError:  # pragma: no cover - source checkout without install
        return "unknown"


def _hash_path(digest: Any, path: str) -> None:
    """Bytes of a file, or of every file under a directory (sorted, with relative names)."""
    if os.path.isdir(path):
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                digest.update(os.path.relpath(full, path).encode())
                _hash_path(digest, full)
        return
    if not os.path.exists(path) and os.path.isfile(path + "-symbol.json"):
        path += "-symbol.json"
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)


def content_hash(spec: ModelSpec) -> str:
    """sha256 of (source, weights, mean file and dataset bytes, options, nnbridge version)."""
    digest = hashlib.sha256()
    if builder_of(spec.source):  # built at run time: the builder, its options and seed (in options()) say it all
        digest.update(f"builder:{spec.source}:{BUILD_VERSION}".encode())
    else:
        _hash_path(digest, spec.source)
    if spec.weights:
        _hash_path(digest, spec.weights)
    elif spec.format in (None, "mxnet") and not builder_of(spec.source):
        from nnbridge.api import mxnet_files

        if spec.source.endswith(".json") or os.path.isfile(spec.source + "-symbol.json"):
            _hash_path(digest, mxnet_files(spec.source)[1])
    if spec.preprocess.mean_file and os.path.isfile(spec.preprocess.mean_file):
        _hash_path(digest, spec.preprocess.mean_file)
    if spec.dataset:
        for path in (spec.dataset.images, spec.dataset.list_file, spec.dataset.labels):
            if path and os.path.exists(path):
                _hash_path(digest, path)
    options = json.dumps(spec.options(), sort_keys=True, default=str)
    digest.update(options.encode())
    digest.update(nnbridge_version().encode())
    return digest.hexdigest()


def fetch(spec: ModelSpec, folder: Path, offline: bool) -> str:
    """The local source file of a model with a ``url`` (downloaded and checked against ``sha256``)."""
    from nnbridge.errors import NNBridgeError

    assert spec.url and spec.sha256
    target = folder / "downloads" / (os.path.basename(spec.url.split("?")[0]) or "model")
    if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == spec.sha256:
        return str(target)
    if offline:
        raise NNBridgeError(f"{spec.name}: {spec.url} is not downloaded and --offline forbids fetching it")
    with urllib.request.urlopen(spec.url, timeout=60) as response:  # noqa: S310 - the manifest names it
        data = response.read()
    found = hashlib.sha256(data).hexdigest()
    if found != spec.sha256:
        raise NNBridgeError(f"{spec.name}: {spec.url} has sha256 {found}, the manifest expects {spec.sha256}")
    with atomic_write(target) as handle:
        handle.write(data)
    return str(target)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 400 else text[:397] + "..."


def run_model(spec: ModelSpec, report_dir: str, offline: bool = False, mxnet_python: str | None = None,
              retry_failed: bool = False) -> dict[str, Any]:
    """Convert and verify one model (resumable); never raises: failures are recorded in the result."""
    folder = Path(report_dir) / "models" / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    result_file = folder / "result.json"
    handler = logging.FileHandler(folder / "log.txt", mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    console = _console()
    start = time.perf_counter()
    result: dict[str, Any] = {"name": spec.name, "task": spec.task, "source": spec.source, "targets": [],
                              "status": "failed", "reason": "", "hash": "", "resumed": False, "rtol": spec.rtol}
    try:
        if spec.url:
            spec = _with_source(spec, fetch(spec, Path(report_dir), offline))
        built = builder_of(spec.source)
        if built:
            result["hash"] = content_hash(spec)
            old = _previous(result_file)
            if old and old.get("hash") == result["hash"] and (old.get("status") == "passed" or not retry_failed):
                old["resumed"] = True
                logger.info("%s: unchanged (hash %s), reusing the previous result", spec.name, result["hash"][:12])
                return old
            progress.info("%s: building %s", spec.name, spec.source)
            try:
                spec = _with_source(spec, build(*built, spec.build, folder, mxnet_python))
            except BuilderUnavailable as exc:
                if not spec.optional:
                    raise
                result.update(status="skipped", reason=f"{exc} (optional)")
                return result
        if not os.path.exists(spec.source) and not os.path.isfile(spec.source + "-symbol.json"):
            if spec.optional:
                result.update(status="skipped", reason=f"source {spec.source} not present (optional)")
                return result
            raise FileNotFoundError(f"{spec.source}: no such model file")
        result["hash"] = result["hash"] or content_hash(spec)
        old = None if built else _previous(result_file)
        if old and old.get("hash") == result["hash"] and (old.get("status") == "passed" or not retry_failed):
            old["resumed"] = True
            logger.info("%s: unchanged (hash %s), reusing the previous result", spec.name, result["hash"][:12])
            return old
        result["source_bytes"] = _size(spec.source) + (_size(spec.weights) if spec.weights else 0)
        for target in spec.targets:
            result["targets"].append(_convert_one(spec, target, folder, mxnet_python))
        evaluating = time.perf_counter()
        if spec.task == "classification" and spec.dataset is not None:
            from nnbridge.zoo.accuracy import evaluate

            result["accuracy"] = evaluate(spec, [t for t in result["targets"] if t.get("output")], folder,
                                          mxnet_python)
        if spec.task == "detection" and spec.dataset is not None:
            from nnbridge.zoo.detection import evaluate_detection

            result["detection"] = evaluate_detection(spec, [t for t in result["targets"] if t.get("output")],
                                                     folder, mxnet_python)
        result["evaluation_seconds"] = round(time.perf_counter() - evaluating, 3)
        failed = [t for t in result["targets"] if t["status"] != "passed"]
        result["status"] = "failed" if failed else "passed"
        result["reason"] = "; ".join(f"{t['target']}: {t['reason']}" for t in failed)
    except Exception as exc:  # noqa: BLE001 - every failure is recorded, the other models still run
        logger.exception("%s failed", spec.name)
        result.update(status="failed", reason=_one_line(exc))
    finally:
        result["seconds"] = round(time.perf_counter() - start, 3)
        root.removeHandler(handler)
        handler.close()
        if console is not None:
            progress.removeHandler(console)
    if result["status"] != "skipped" and result["hash"]:
        with atomic_write(result_file, "w") as out:
            json.dump(result, out, indent=1, default=str)
    return result


def _console() -> logging.Handler | None:
    from nnbridge.zoo.progressbar import forwarding

    if forwarding() or any(isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
           for h in progress.handlers + logging.getLogger().handlers):
        return None
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("  %(message)s"))
    progress.addHandler(console)
    progress.setLevel(logging.INFO)
    return console


def _with_source(spec: ModelSpec, source: str) -> ModelSpec:
    fields = asdict(spec)
    fields.update(source=source, preprocess=spec.preprocess, dataset=spec.dataset, detection=spec.detection)
    return ModelSpec(**fields)


def _previous(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def _size(path: str | None) -> int:
    if not path:
        return 0
    if os.path.isdir(path):
        return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())
    for candidate in (path, path + "-symbol.json"):
        if os.path.isfile(candidate):
            return os.path.getsize(candidate)
    return 0


def _convert_one(spec: ModelSpec, target: str, folder: Path, mxnet_python: str | None) -> dict[str, Any]:
    from nnbridge.api import convert

    mx_prefix = spec.source.removesuffix("-symbol.json")
    stem = (os.path.basename(mx_prefix) if mx_prefix != spec.source else Path(spec.source).stem) or spec.name
    output = folder / target / (stem + _EXTENSION[target])
    row: dict[str, Any] = {"target": target, "status": "failed", "reason": "", "blobs": []}
    start = time.perf_counter()
    progress.info("%s -> %s: converting and verifying", spec.name, target)
    try:
        runtimes = (f"mxnet={mxnet_python}",) if mxnet_python else None
        done = convert(spec.source, output, weights=spec.weights, to=target, dialect=spec.caffe_dialect,
                       input_shapes=spec.input_shapes or None, verify=True, random_weights=spec.random_weights,
                       rtol=spec.rtol, atol=spec.atol, runtimes=runtimes)
        report = done.verification
        data = report.to_dict()
        row["blobs"] = [{k: (_finite(v) if isinstance(v, float) else v) for k, v in blob.items()}
                        for blob in data.get("blobs", [])]
        worst = report.comparison.worst
        row.update(output=done.output, output_weights=done.output_weights, notes=done.notes,
                   inputs=report.inputs, worst_blob=worst.name if worst else None,
                   worst_rel=_finite(worst.max_rel) if worst else None,
                   worst_abs=_finite(worst.max_abs) if worst else None,
                   size=_size(done.output) + _size(done.output_weights),
                   source_runtime=report.source_runtime, converted_runtime=report.converted_runtime)
        if report.passed:
            row["status"] = "passed"
        else:
            failing = report.comparison.failures
            row["reason"] = f"{len(failing)} blob(s) differ, first {failing[0].name}: {failing[0].reason}"
    except Exception as exc:  # noqa: BLE001 - recorded; the next target still runs
        logger.exception("%s -> %s failed", spec.name, target)
        row["reason"] = _one_line(exc)
    row["seconds"] = round(time.perf_counter() - start, 3)
    progress.info("%s -> %s: %s in %.1f s %s", spec.name, target, row["status"], row["seconds"], row["reason"])
    return row


def _finite(value: float) -> float | None:
    return None if value != value else float(value)
