"""The zoo manifest: a TOML file listing models to convert, verify and evaluate.

One ``[[model]]`` table per model::

    [[model]]
    name = "tiny"                      # unique; names the model's folder in the report
    source = "nets/tiny.prototxt"      # relative to the manifest, "package:nnbridge/examples/x.prototxt",
                                       # or an absolute path ("~" and $VARS are expanded); or built at run
                                       # time: "keras.applications:MobileNetV2" / "gluoncv:mobilenet0.25"
                                       # with [model.build] options (see nnbridge/zoo/builders.py)
    weights = "nets/tiny.caffemodel"   # optional (Caffe, MXNet); random_weights = SEED instead for Caffe
    url = "https://..."                # optional: fetch source from here (checked with sha256), not --offline
    sha256 = "..."
    format = "caffe"                   # optional; default: told by the file name
    targets = ["onnx", "caffe", "mxnet"]
    caffe_dialect = "bvlc"
    input_shapes = { data = [1, 3, 32, 32] }
    optional = true                    # a missing source skips the model instead of failing it
    task = "classification"            # classification | detection | other
    rtol = 1e-4
    atol = 1e-6
    [model.preprocess]                 # how dataset images become inputs
    channel_order = "BGR"; mean = [104, 117, 123]; mean_file = "mean.npy"; raw_scale = 255; scale = 1.0
    [model.dataset]                    # classification: an image folder (one sub-folder per class) or a list
    images = "digits/"                 # file of "path label" lines (list = "val.txt"); labels = "labels.txt"
    limit = 200                        # detection: images = a folder of images (or list = a file of paths),
    annotations = "boxes.json"         # optional ground truth for mAP (format: nnbridge/zoo/detection.py)
    [model.detection]                  # task = "detection" only
    layout = "caffe_ssd"; output = "detection_out"; iou = 0.5; ap = "voc11"; score_threshold = 0.0
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnbridge.errors import FormatError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

TARGETS = ("onnx", "caffe", "mxnet")
TASKS = ("classification", "detection", "other")
DIALECTS = ("bvlc", "opencv", "ssd")
_MODEL_KEYS = {"name", "source", "weights", "url", "sha256", "format", "targets", "caffe_dialect", "input_shapes",
               "optional", "task", "rtol", "atol", "preprocess", "dataset", "random_weights", "weights_url",
               "weights_sha256", "detection", "build"}
_PREP_KEYS = {"channel_order", "mean", "mean_file", "raw_scale", "scale"}
_DATA_KEYS = {"images", "list", "labels", "limit", "batch", "annotations"}
_DET_KEYS = {"layout", "output", "iou", "ap", "score_threshold"}
LAYOUTS = ("caffe_ssd", "mxnet_multibox")


@dataclass(frozen=True)
class Preprocessing:
    channel_order: str = "BGR"
    mean: tuple[float, ...] | None = None
    mean_file: str | None = None
    raw_scale: float = 255.0
    scale: float = 1.0


@dataclass(frozen=True)
class Dataset:
    images: str | None = None  # a folder with one sub-folder per class (sorted names = class indices)
    list_file: str | None = None  # lines "relative/path.png LABEL"
    labels: str | None = None  # optional class names, one a line
    limit: int = 0  # 0: all
    batch: int = 64
    annotations: str | None = None  # detection: a JSON file of ground-truth boxes (see zoo/detection.py)


@dataclass(frozen=True)
class Detection:
    layout: str = "caffe_ssd"  # caffe_ssd: (1, 1, N, 7) rows; mxnet_multibox: (B, A, 6) rows
    output: str | None = None  # the detection blob (default: the model's first output)
    iou: float = 0.5  # boxes of the same class match from this IoU on
    ap: str = "voc11"  # voc11 (VOC2007 11-point) or all (all-points area, VOC2010+)
    score_threshold: float = 0.0  # detections below are ignored


@dataclass(frozen=True)
class ModelSpec:
    name: str
    source: str  # resolved path (or the local file a url is fetched to)
    weights: str | None = None
    url: str | None = None
    sha256: str | None = None
    format: str | None = None
    targets: tuple[str, ...] = ("onnx",)
    caffe_dialect: str = "bvlc"
    input_shapes: dict[str, list[int]] = field(default_factory=dict)
    optional: bool = False
    task: str = "other"
    rtol: float = 1e-4
    atol: float = 1e-6
    random_weights: int | None = None
    preprocess: Preprocessing = Preprocessing()
    dataset: Dataset | None = None
    detection: Detection = Detection()
    line: int = 0  # where the [[model]] table starts in the manifest
    build: dict[str, Any] = field(default_factory=dict)  # keras.applications:/gluoncv: sources (zoo/builders.py)

    def options(self) -> dict[str, Any]:
        """Everything that changes the result except the files (part of the resume hash)."""
        return {"format": self.format, "targets": list(self.targets), "caffe_dialect": self.caffe_dialect,
                "input_shapes": self.input_shapes, "task": self.task, "rtol": self.rtol, "atol": self.atol,
                "random_weights": self.random_weights, "preprocess": repr(self.preprocess),
                "dataset": repr(self.dataset), "detection": repr(self.detection), "build": self.build}


@dataclass(frozen=True)
class Manifest:
    path: str
    models: list[ModelSpec]


def resolve_path(text: str, base: Path) -> str:
    """A manifest path: ``package:pkg/sub/file`` (a file shipped in an installed package), else ``~``/$VARS
    expanded and taken relative to the manifest's folder."""
    if text.startswith("package:"):
        from importlib import resources

        package, _, rest = text[len("package:"):].partition("/")
        return str(resources.files(package).joinpath(rest))
    expanded = os.path.expandvars(os.path.expanduser(text))
    return str((base / expanded).resolve()) if not os.path.isabs(expanded) else expanded


class _Where:
    """Line numbers of ``[[model]]`` tables and their keys (tomllib keeps none)."""

    def __init__(self, text: str):
        self.lines = text.splitlines()
        self.starts = [i + 1 for i, line in enumerate(self.lines) if re.match(r"\s*\[\[\s*model\s*\]\]", line)]

    def of(self, index: int, key: str | None = None) -> int:
        start = self.starts[index] if index < len(self.starts) else 0
        end = self.starts[index + 1] if index + 1 < len(self.starts) else len(self.lines) + 1
        if key:
            head = key.split(".")[-1]
            for number in range(start, end):
                if re.match(rf"\s*{re.escape(head)}\s*=", self.lines[number - 1]) or \
                        re.match(rf"\s*\[\s*model\.{re.escape(head)}\s*\]", self.lines[number - 1]):
                    return number
        return start


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and check a manifest; any problem is one :class:`FormatError` naming the line and key."""
    file = Path(path)
    if not file.is_file():
        raise FormatError(str(file), "no such manifest file")
    text = file.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FormatError(str(file), f"not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - {"model"})
    if unknown:
        raise FormatError(str(file), f"unknown top-level key(s) {unknown}", hint="models go in [[model]] tables")
    tables = data.get("model")
    if not isinstance(tables, list) or not tables:
        raise FormatError(str(file), "no [[model]] tables", hint="add one [[model]] table per model")
    where = _Where(text)
    models: list[ModelSpec] = []
    for index, table in enumerate(tables):
        models.append(_model(table, index, file, where))
    seen: set[str] = set()
    for index, spec in enumerate(models):
        if spec.name in seen:
            raise FormatError(str(file), f"model name {spec.name!r} appears twice",
                              location=f"line {where.of(index, 'name')}", hint="names must be unique")
        seen.add(spec.name)
    return Manifest(str(file), models)


def _model(table: dict[str, Any], index: int, file: Path, where: _Where) -> ModelSpec:
    def fail(key: str, message: str, hint: str | None = None) -> FormatError:
        name = table.get("name", f"#{index + 1}")
        return FormatError(str(file), f"model {name!r}, key {key!r}: {message}",
                           location=f"line {where.of(index, key)}", hint=hint)

    unknown = sorted(set(table) - _MODEL_KEYS)
    if unknown:
        raise fail(unknown[0], f"unknown key(s) {unknown}", hint=f"known keys: {', '.join(sorted(_MODEL_KEYS))}")
    base = file.parent
    name = table.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
        raise fail("name", f"{name!r} is not a name (letters, digits, '_', '.', '-')")
    if not isinstance(table.get("source"), str):
        raise fail("source", "missing or not a string", hint="a model file path, relative to the manifest")
    targets = table.get("targets", ["onnx"])
    if isinstance(targets, str):
        targets = [targets]
    if not isinstance(targets, list) or not targets or any(t not in TARGETS for t in targets):
        raise fail("targets", f"{targets!r}: give a list of {', '.join(TARGETS)}")
    dialect = table.get("caffe_dialect", "bvlc")
    if dialect not in DIALECTS:
        raise fail("caffe_dialect", f"{dialect!r}: choose one of {', '.join(DIALECTS)}")
    task = table.get("task", "other")
    if task not in TASKS:
        raise fail("task", f"{task!r}: choose one of {', '.join(TASKS)}")
    shapes = table.get("input_shapes", {})
    if not isinstance(shapes, dict) or any(
            not isinstance(v, list) or not all(isinstance(d, int) and d > 0 for d in v) for v in shapes.values()):
        raise fail("input_shapes", f"{shapes!r}: give {{ name = [1, 3, 32, 32] }}")
    if ("url" in table) != ("sha256" in table):
        raise fail("url" if "url" in table else "sha256", "url and sha256 go together")
    for key in ("rtol", "atol"):
        if key in table and not isinstance(table[key], (int, float)):
            raise fail(key, f"{table[key]!r} is not a number")
    seed = table.get("random_weights")
    if seed is not None and not isinstance(seed, int):
        raise fail("random_weights", f"{seed!r} is not an integer seed")
    build = table.get("build", {})
    if not isinstance(build, dict):
        raise fail("build", f"{build!r}: give a [model.build] table of builder options")
    from nnbridge.zoo.builders import builder_of

    built = builder_of(table["source"]) is not None
    if build and not built:
        raise fail("build", "only for keras.applications:NAME or gluoncv:NAME sources")
    if built and "random_weights" in table:
        raise fail("random_weights", "a built source takes its seed from [model.build] seed = N")
    if not isinstance(build.get("seed", 0), int):
        raise fail("seed", f"{build['seed']!r} is not an integer seed")
    fmt = table.get("format")
    if fmt is not None and fmt not in ("caffe", "onnx", "mxnet", "tensorflow"):
        raise fail("format", f"{fmt!r}: choose caffe, onnx, mxnet or tensorflow")
    return ModelSpec(
        name=name, source=table["source"] if built else resolve_path(table["source"], base),
        weights=resolve_path(table["weights"], base) if isinstance(table.get("weights"), str) else None,
        url=table.get("url"), sha256=table.get("sha256"), format=fmt, targets=tuple(targets),
        caffe_dialect=dialect, input_shapes={k: list(v) for k, v in shapes.items()},
        optional=bool(table.get("optional", False)), task=task, rtol=float(table.get("rtol", 1e-4)),
        atol=float(table.get("atol", 1e-6)), random_weights=seed,
        preprocess=_preprocess(table.get("preprocess", {}), base, fail),
        dataset=_dataset(table.get("dataset"), base, fail), detection=_detection(table.get("detection", {}), fail),
        line=where.of(index), build=build)


def _preprocess(table: Any, base: Path, fail: Any) -> Preprocessing:
    if not isinstance(table, dict) or set(table) - _PREP_KEYS:
        raise fail("preprocess", f"known keys: {', '.join(sorted(_PREP_KEYS))}")
    order = str(table.get("channel_order", "BGR")).upper()
    if order not in ("BGR", "RGB"):
        raise fail("channel_order", f"{order!r}: use BGR or RGB")
    mean = table.get("mean")
    if mean is not None and (not isinstance(mean, list) or not all(isinstance(m, (int, float)) for m in mean)):
        raise fail("mean", f"{mean!r}: give per-channel values, e.g. [104, 117, 123]")
    mean_file = resolve_path(table["mean_file"], base) if "mean_file" in table else None
    return Preprocessing(order, tuple(float(m) for m in mean) if mean else None, mean_file,
                         float(table.get("raw_scale", 255.0)), float(table.get("scale", 1.0)))


def _dataset(table: Any, base: Path, fail: Any) -> Dataset | None:
    if table is None:
        return None
    if not isinstance(table, dict) or set(table) - _DATA_KEYS:
        raise fail("dataset", f"known keys: {', '.join(sorted(_DATA_KEYS))}")
    if ("images" in table) == ("list" in table):
        raise fail("dataset", "give either images (a folder of class folders) or list (a file of 'path label')")
    return Dataset(resolve_path(table["images"], base) if "images" in table else None,
                   resolve_path(table["list"], base) if "list" in table else None,
                   resolve_path(table["labels"], base) if "labels" in table else None,
                   int(table.get("limit", 0)), int(table.get("batch", 64)),
                   resolve_path(table["annotations"], base) if "annotations" in table else None)


def _detection(table: Any, fail: Any) -> Detection:
    if not isinstance(table, dict) or set(table) - _DET_KEYS:
        raise fail("detection", f"known keys: {', '.join(sorted(_DET_KEYS))}")
    layout, ap = table.get("layout", "caffe_ssd"), table.get("ap", "voc11")
    if layout not in LAYOUTS:
        raise fail("layout", f"{layout!r}: choose one of {', '.join(LAYOUTS)}")
    if ap not in ("voc11", "all"):
        raise fail("ap", f"{ap!r}: choose voc11 or all")
    for key in ("iou", "score_threshold"):
        if key in table and not isinstance(table[key], (int, float)):
            raise fail(key, f"{table[key]!r} is not a number")
    output = table.get("output")
    if output is not None and not isinstance(output, str):
        raise fail("output", f"{output!r} is not a blob name")
    return Detection(layout, output, float(table.get("iou", 0.5)), ap, float(table.get("score_threshold", 0.0)))
