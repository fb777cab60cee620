"""Detection evaluation of a source model and its conversions (``task = "detection"``).

Images: ``[model.dataset] images`` = a folder of images (sorted file names; sub-folders are searched too), or
``list`` = a file with one image path a line (relative to the list file; a trailing label is ignored).
Like :mod:`nnbridge.zoo.accuracy`, every model runs in its real runtime on the same preprocessed batches, the
targets converted once more with the evaluation's batch size. The detection blob is parsed with
``[model.detection] layout`` (:mod:`nnbridge.zoo.boxes`); each target's boxes are compared with the source's
(matched share, mean/min matched IoU, max score difference, unmatched counts) and, when ``annotations`` is
given, the mAP of the source and of each target is reported (``ap = "voc11"`` or ``"all"``).

Annotations: a JSON object mapping an image's file name (or its path relative to the images folder / list
file) to a list of ``[label, x1, y1, x2, y2]`` boxes, in the coordinates the model outputs (SSD and MultiBox:
normalised to 0..1) and with the model's label numbering (Caffe SSD counts the background, MultiBox does not).
An image missing from the file has no objects. Example: ``{"cat.jpg": [[8, 0.1, 0.2, 0.6, 0.9]]}``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from nnbridge.errors import FormatError, NNBridgeError
from nnbridge.zoo.accuracy import IMAGE_SUFFIXES, load_batches, with_drawn_weights
from nnbridge.zoo.boxes import agreement, average_precision, parse_detections
from nnbridge.zoo.manifest import Dataset, ModelSpec

logger = logging.getLogger(__name__)
progress = logging.getLogger("nnbridge.zoo.progress")


def list_detection_images(dataset: Dataset) -> tuple[list[str], Path]:
    """The image paths and the folder their annotation keys are relative to."""
    paths: list[str] = []
    if dataset.images:
        root = Path(dataset.images)
        if not root.is_dir():
            raise NNBridgeError(f"{root}: the dataset folder does not exist")
        paths = [str(p) for p in sorted(root.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]
    elif dataset.list_file:
        root = Path(dataset.list_file).parent
        for line in Path(dataset.list_file).read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                first = line.split()[0]
                paths.append(str(root / first))
    if not paths:
        raise NNBridgeError(f"{dataset.images or dataset.list_file}: no images found")
    return (paths[: dataset.limit] if dataset.limit else paths), root


def load_annotations(file: str, paths: list[str], root: Path) -> list[np.ndarray]:
    """Ground truth per image, ``(m, 5)`` rows ``[label, x1, y1, x2, y2]`` (format: module docstring)."""
    try:
        data = json.loads(Path(file).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FormatError(file, f"cannot read the annotations: {exc}") from exc
    if not isinstance(data, dict):
        raise FormatError(file, "expected a JSON object {image file name: [[label, x1, y1, x2, y2], ...]}")
    truth: list[np.ndarray] = []
    used: set[str] = set()
    for path in paths:
        relative = Path(path).relative_to(root).as_posix() if Path(path).is_relative_to(root) else path
        key = relative if relative in data else Path(path).name
        boxes = data.get(key, [])
        used.add(key)
        try:
            rows = np.asarray(boxes, np.float64).reshape(-1, 5)
        except ValueError as exc:
            raise FormatError(file, f"image {key!r}: boxes must be [label, x1, y1, x2, y2] lists",
                              hint="one list of 5 numbers per object") from exc
        truth.append(rows)
    unknown = sorted(set(data) - used)
    if unknown:
        logger.warning("%s: %d annotated image(s) not in the dataset, e.g. %s", file, len(unknown), unknown[:3])
    return truth


def _run(runtime: str, paths: list[str | None], feed: Any, count: int, spec: ModelSpec,
         options: dict[str, str] | None = None) -> list[np.ndarray]:
    from nnbridge.verify.worker import run_in_worker

    config = spec.detection
    images: list[np.ndarray] = []
    for number, batch in enumerate(feed.batches, 1):
        result = run_in_worker(runtime, paths, {feed.name: batch}, intermediates=False, options=options)
        name = config.output or result.outputs[0]
        if name not in result.outputs:
            raise NNBridgeError(f"{spec.name}: no output {name!r} (outputs: {', '.join(result.outputs)}); "
                                "[model.detection] output names the detection blob")
        real = min(feed.size, count - (number - 1) * feed.size)
        images += parse_detections(np.asarray(result[name]), config.layout, real, config.score_threshold)
        progress.info("%s: %s evaluation batch %d/%d", spec.name, runtime.split("=")[0], number, len(feed.batches))
    return images


def evaluate_detection(spec: ModelSpec, targets: list[dict[str, Any]], folder: Path,
                       mxnet_python: str | None) -> dict[str, Any]:
    """Box agreement of each target with the source, and mAP when annotated (see the module docstring)."""
    from nnbridge.api import convert

    spec = with_drawn_weights(spec, folder)
    assert spec.dataset is not None
    config = spec.detection
    paths, root = list_detection_images(spec.dataset)
    feed = load_batches(spec, paths)
    if config.layout == "caffe_ssd" and feed.size > 1:
        logger.info("%s: Caffe SSD output holds the image index per row; batches of %d", spec.name, feed.size)
    truth = load_annotations(spec.dataset.annotations, paths, root) if spec.dataset.annotations else None
    mx = f"mxnet={mxnet_python}" if mxnet_python else "mxnet"
    source = feed.source
    progress.info("%s: detection on %d images in the source and %d target(s)", spec.name, len(paths), len(targets))
    ref = _run(mx if source.kind == "mxnet" else source.kind, source.paths, feed, len(paths), spec,
               options=dict(source.options) or None)
    result: dict[str, Any] = {"images": len(paths), "batch": feed.size, "layout": config.layout,
                              "source": {"boxes": sum(len(r) for r in ref)}, "targets": {}}
    if truth is not None:
        result["source"]["ap"] = average_precision(ref, truth, config.iou, config.ap)
    for target in targets:
        kind = target["target"]
        out = folder / kind / "eval" / (Path(target["output"]).name.removesuffix("-symbol.json"))
        try:
            done = convert(spec.source, out, weights=spec.weights, to=kind, dialect=spec.caffe_dialect,
                           input_shapes={feed.name: list(feed.eval_shape)}, random_weights=spec.random_weights)
            got = _run(mx if kind == "mxnet" else kind, [done.output, done.output_weights], feed, len(paths), spec)
            entry = agreement(ref, got, config.iou)
            if truth is not None:
                entry["ap"] = average_precision(got, truth, config.iou, config.ap)
            result["targets"][kind] = entry
        except Exception as exc:  # noqa: BLE001 - recorded per target
            logger.exception("%s: detection evaluation of %s failed", spec.name, kind)
            result["targets"][kind] = {"error": " ".join(str(exc).split())[:300]}
    logger.info("%s: detection %s", spec.name, result)
    return result
