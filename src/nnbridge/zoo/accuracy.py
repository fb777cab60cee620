"""Classification accuracy of a source model and its conversions on a labelled image set.

Every model runs in its real runtime (the verify worker processes) on the same preprocessed batches
(:func:`nnbridge.verify.inputs.load_image`). Converted models have a fixed batch size, so the evaluation
converts the source once more per target with the batch size of the evaluation (``REPORT/models/NAME/
TARGET/eval/``); the last batch is padded with zeros and the padding's outputs dropped. Reported: top-1 and
top-5 of the source and of each target, and per target the agreement with the source (share of identical
top-1) and the largest difference of any class probability. Outputs that are not probabilities (negative or
rows not summing to 1) are turned into probabilities with a softmax, and the result says so.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nnbridge.errors import NNBridgeError
from nnbridge.zoo.manifest import Dataset, ModelSpec

logger = logging.getLogger(__name__)
progress = logging.getLogger("nnbridge.zoo.progress")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm")


def list_images(dataset: Dataset) -> list[tuple[str, int]]:
    """``[(image path, label)]``: class sub-folders (sorted names -> 0, 1, ..) or a 'path label' list file."""
    items: list[tuple[str, int]] = []
    if dataset.images:
        root = Path(dataset.images)
        if not root.is_dir():
            raise NNBridgeError(f"{root}: the dataset folder does not exist")
        classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        for label, name in enumerate(classes):
            items += [(str(p), label) for p in sorted((root / name).iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    elif dataset.list_file:
        base = Path(dataset.list_file).parent
        for number, line in enumerate(Path(dataset.list_file).read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            path, _, text = line.strip().rpartition(" ")
            if not path or not text.lstrip("-").isdigit():
                raise NNBridgeError(f"{dataset.list_file}:{number}: expected 'path label', got {line!r}")
            items.append((str(base / path.strip()), int(text)))
    if not items:
        raise NNBridgeError(f"{dataset.images or dataset.list_file}: no images found")
    return items[: dataset.limit] if dataset.limit else items


def class_names(dataset: Dataset) -> list[str] | None:
    """Class names by index: the ``labels`` file (one a line), else the class folder names."""
    if dataset.labels and os.path.isfile(dataset.labels):
        lines = Path(dataset.labels).read_text(encoding="utf-8").splitlines()
        return [line.strip() for line in lines if line.strip()]
    if dataset.images and os.path.isdir(dataset.images):
        return sorted(p.name for p in Path(dataset.images).iterdir() if p.is_dir())
    return None


def per_class(labels: np.ndarray, ref: np.ndarray, targets: dict[str, np.ndarray],
              names: list[str] | None) -> list[dict[str, Any]]:
    """Per class present in the labels: its name, image count, source top-1 and each target's top-1."""
    rows: list[dict[str, Any]] = []
    for label in sorted({int(v) for v in labels}):
        mask = labels == label
        rows.append({"label": label, "name": names[label] if names and 0 <= label < len(names) else str(label),
                     "images": int(mask.sum()), "top1_source": float(np.mean(ref[mask].argmax(1) == label)),
                     "top1": {k: float(np.mean(p[mask].argmax(1) == label)) for k, p in targets.items()}})
    return rows


def _probabilities(array: np.ndarray) -> tuple[np.ndarray, bool]:
    scores = array.reshape(array.shape[0], -1).astype(np.float64)
    if scores.min() >= 0 and np.allclose(scores.sum(axis=1), 1.0, atol=1e-3):
        return scores, False
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True), True


def _topk(probs: np.ndarray, labels: np.ndarray, k: int) -> float:
    k = min(k, probs.shape[1])
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return float(np.mean([label in row for row, label in zip(top, labels, strict=True)]))


def _run(runtime: str, paths: list[str | None], name: str, batches: list[np.ndarray], count: int,
         options: dict[str, str] | None = None, model: str = "") -> np.ndarray:
    from nnbridge.verify.worker import run_in_worker

    outs: list[np.ndarray] = []
    for number, batch in enumerate(batches, 1):
        result = run_in_worker(runtime, paths, {name: batch}, intermediates=False, options=options)
        outs.append(np.asarray(result[result.outputs[0]]))
        progress.info("%s: %s evaluation batch %d/%d", model, runtime.split("=")[0], number, len(batches))
    return np.concatenate(outs)[:count]


@dataclass(frozen=True)
class Batches:
    """Dataset images preprocessed for a model's one image input, in zero-padded batches of ``size``."""
    source: Any  # nnbridge.verify.api model files
    name: str
    size: int
    eval_shape: tuple[int, ...]  # the input shape to convert the targets with (NHWC for TensorFlow sources)
    batches: list[np.ndarray]


def with_drawn_weights(spec: ModelSpec, folder: Path) -> ModelSpec:
    """A weightless Caffe source converted with ``random_weights = SEED``: the same seeded blobs the converter
    draws, written once as ``folder/source/NAME.caffemodel`` so that real Caffe runs the source too."""
    if spec.weights is not None or spec.random_weights is None or not spec.source.endswith(".prototxt"):
        return spec
    from dataclasses import replace

    from nnbridge.caffe.formats.caffemodel import write_caffemodel
    from nnbridge.caffe.formats.net import load_caffe
    from nnbridge.caffe.importer import import_layers
    from nnbridge.caffe.weights import RandomWeights

    drawn = folder / "source" / (Path(spec.source).stem + ".caffemodel")
    if not drawn.is_file():
        net = load_caffe(spec.source, None, input_shapes=spec.input_shapes or None)
        weights = RandomWeights(spec.random_weights)
        import_layers(net.net.layer, net.inputs, weights, name=net.net.name or spec.name, source=spec.source)
        drawn.parent.mkdir(parents=True, exist_ok=True)
        write_caffemodel(drawn, net.net, dict(weights.served))
    return replace(spec, weights=str(drawn))


def load_batches(spec: ModelSpec, paths: list[str]) -> Batches:
    """Preprocess ``paths`` for ``spec``'s single N x C x H x W input (:func:`nnbridge.verify.inputs.load_image`)."""
    from nnbridge.verify.api import input_specs, model_files
    from nnbridge.verify.inputs import Preprocess, load_image

    assert spec.dataset is not None
    source = model_files(spec.source, spec.weights)
    specs = input_specs(source, spec.input_shapes or None)
    images = [(n, s) for n, s in specs if len(s) == 4 and s[1] in (1, 3)]
    if len(specs) != 1 or not images:
        raise NNBridgeError(f"{spec.name}: evaluation needs exactly one N x C x H x W image input, got {specs}")
    name, shape = images[0]
    size = max(1, min(spec.dataset.batch, len(paths)))
    prep = Preprocess(spec.preprocess.channel_order, spec.preprocess.mean, spec.preprocess.mean_file,
                      spec.preprocess.raw_scale, spec.preprocess.scale)
    arrays = np.concatenate([load_image(path, (1, *shape[1:]), prep) for path in paths])
    batches = []
    for start in range(0, len(paths), size):
        chunk = arrays[start:start + size]
        pad = np.zeros((size - len(chunk), *chunk.shape[1:]), np.float32)
        batches.append(np.ascontiguousarray(np.concatenate([chunk, pad])))
    # TensorFlow sources take NHWC shapes when converting
    eval_shape = (size, *shape[2:], shape[1]) if source.kind == "tensorflow" else (size, *shape[1:])
    return Batches(source, name, size, tuple(eval_shape), batches)


def evaluate(spec: ModelSpec, targets: list[dict[str, Any]], folder: Path,
             mxnet_python: str | None) -> dict[str, Any]:
    """Top-1/top-5 of the source and each converted model, and their agreement (see the module docstring)."""
    from nnbridge.api import convert

    spec = with_drawn_weights(spec, folder)
    assert spec.dataset is not None
    items = list_images(spec.dataset)
    labels = np.array([label for _, label in items])
    feed = load_batches(spec, [path for path, _ in items])
    name, size = feed.name, feed.size
    batches = feed.batches
    mx = f"mxnet={mxnet_python}" if mxnet_python else "mxnet"
    source = feed.source
    src_rt = mx if source.kind == "mxnet" else source.kind
    progress.info("%s: evaluating %d images in the source and %d target(s)",
                                                    spec.name, len(items), len(targets))
    ref = _run(src_rt, source.paths, name, batches, len(items), options=dict(source.options) or None,
               model=spec.name)
    ref_probs, softmaxed = _probabilities(ref)
    result: dict[str, Any] = {"images": len(items), "batch": size, "softmax_applied": softmaxed,
                              "source": {"top1": _topk(ref_probs, labels, 1), "top5": _topk(ref_probs, labels, 5)},
                              "targets": {}}
    eval_shape = feed.eval_shape
    target_probs: dict[str, np.ndarray] = {}
    for target in targets:
        kind = target["target"]
        out = folder / kind / "eval" / (Path(target["output"]).name.removesuffix("-symbol.json"))
        try:
            done = convert(spec.source, out, weights=spec.weights, to=kind, dialect=spec.caffe_dialect,
                           input_shapes={name: list(eval_shape)}, random_weights=spec.random_weights)
            runtime = mx if kind == "mxnet" else kind
            got = _run(runtime, [done.output, done.output_weights], name, batches, len(items), model=spec.name)
            probs, _ = _probabilities(got)
            target_probs[kind] = probs
            result["targets"][kind] = {
                "top1": _topk(probs, labels, 1), "top5": _topk(probs, labels, 5),
                "agreement": float(np.mean(probs.argmax(1) == ref_probs.argmax(1))),
                "max_prob_diff": float(np.max(np.abs(probs - ref_probs)))}
        except Exception as exc:  # noqa: BLE001 - recorded per target
            logger.exception("%s: evaluating %s failed", spec.name, kind)
            result["targets"][kind] = {"error": " ".join(str(exc).split())[:300]}
    result["classes"] = per_class(labels, ref_probs, target_probs, class_names(spec.dataset))
    logger.info("%s: accuracy %s", spec.name, result)
    return result


def write_image_folder(folder: str | os.PathLike[str], images: np.ndarray, labels: np.ndarray) -> None:
    """Write uint8 images (N x H x W or N x H x W x 3) as ``folder/<label>/<index>.png`` (for tests, examples)."""
    import cv2

    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        target = Path(folder) / f"{int(label):02d}"
        target.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(target / f"{index:05d}.png"), np.asarray(image, np.uint8)):
            raise NNBridgeError(f"{target}: cannot write an image")
