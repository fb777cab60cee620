"""The Python API: :func:`convert` one model file into another; :func:`verify` re-exported.

The source format comes from the file name (``.prototxt`` with a ``.caffemodel``: Caffe; ``.onnx``:
ONNX); the target from ``to`` or the output's extension (``.onnx`` or ``.prototxt``, whose weights go to
the ``.caffemodel`` of the same stem beside it). Every conversion goes through the hub (an ``onnx_ir``
model) and output files appear atomically: a failed conversion leaves nothing behind.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx_ir as ir

from nnbridge.errors import ConversionError, FormatError

logger = logging.getLogger(__name__)

FORMATS = ("onnx", "caffe")
_EXTENSIONS = {".onnx": "onnx", ".prototxt": "caffe", ".pt": "caffe"}
InputShapes = Mapping[str, Sequence[int]]


@dataclass
class ConvertResult:
    """What :func:`convert` wrote, with the importer's and exporter's notes and the optional verification."""

    source: str
    output: str
    source_format: str
    target_format: str
    output_weights: str | None = None  # the .caffemodel written beside a .prototxt output
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    verification: Any = None  # nnbridge.verify.api report, when verify=True

    @property
    def passed(self) -> bool:
        """False only when a verification ran and failed."""
        return self.verification is None or bool(getattr(self.verification, "passed", True))


def format_of(path: str | os.PathLike[str], explicit: str | None = None, *, role: str = "source") -> str:
    """'onnx' or 'caffe' from ``explicit`` or the file extension."""
    if explicit is not None:
        if explicit not in FORMATS:
            raise ConversionError(f"unknown format {explicit!r}; choose one of {', '.join(FORMATS)}")
        return explicit
    kind = _EXTENSIONS.get(Path(path).suffix.lower())
    if kind is None:
        raise ConversionError(
            f"{os.fspath(path)}: cannot tell the {role} format from the extension "
            f"{Path(path).suffix or '(none)'!r}; use .onnx or .prototxt"
            + (" (or --to onnx|caffe)" if role == "output" else "")
        )
    return kind


def load_model(
    source: str | os.PathLike[str],
    *,
    weights: str | os.PathLike[str] | None = None,
    input_shapes: InputShapes | None = None,
    optimize: bool = True,
    random_weights: int | None = None,
) -> tuple[ir.Model, Any]:
    """Load any supported model file as a hub model; returns (model, weight source or None)."""
    path = os.fspath(source)
    if not Path(path).is_file():
        raise FormatError(path, "no such file")
    kind = format_of(path)
    if kind == "onnx":
        if weights is not None:
            raise ConversionError(f"{path}: --weights is only for Caffe sources (ONNX files hold their weights)")
        from nnbridge.onnx.formats import load_onnx

        return load_onnx(path, optimize=optimize, input_shapes=input_shapes), None
    from nnbridge.caffe.formats.net import load_caffe
    from nnbridge.caffe.importer import import_layers

    if weights is None and random_weights is None:
        raise ConversionError(
            f"{path}: a .prototxt holds no weights; give its .caffemodel with --weights, or ask for "
            "seeded random weights with random_weights=SEED (CLI: --random-weights SEED)"
        )
    net = load_caffe(path, None if weights is None else os.fspath(weights), input_shapes=input_shapes)
    source_weights = net.weights
    if source_weights is None:
        from nnbridge.caffe.weights import RandomWeights

        source_weights = RandomWeights(int(random_weights or 0))
    model = import_layers(
        net.net.layer, net.inputs, source_weights, name=net.net.name or Path(path).stem, source=path
    )
    return model, source_weights


def save_model(model: ir.Model, output: str | os.PathLike[str], *, to: str | None = None,
               dialect: str = "bvlc") -> tuple[str | None, list[str]]:
    """Write a hub model; returns (caffemodel path or None, exporter notes)."""
    out = Path(output)
    kind = format_of(out, to, role="output")
    if kind == "onnx":
        from nnbridge.onnx.formats import save_onnx

        save_onnx(model, out)
        return None, []
    from nnbridge.caffe.exporter import export_caffe
    from nnbridge.caffe.formats.net import save_caffe

    exported = export_caffe(model, dialect=dialect)
    caffemodel = out.with_suffix(".caffemodel")
    save_caffe(exported.net, exported.blobs, out, caffemodel)
    return str(caffemodel), list(exported.notes)


def convert(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    weights: str | os.PathLike[str] | None = None,
    to: str | None = None,
    dialect: str = "bvlc",
    input_shapes: InputShapes | None = None,
    verify: bool = False,
    optimize: bool = True,
    random_weights: int | None = None,
    rtol: float = 1e-4,
    atol: float = 1e-6,
) -> ConvertResult:
    """Convert ``source`` (``.prototxt`` + ``weights``, or ``.onnx``) into ``output`` (``.onnx``/``.prototxt``).

    ``random_weights=SEED`` converts a weightless prototxt with seeded random weights of realistic
    statistics. With ``verify=True`` both models are run on the same input and compared blob by blob
    (see :func:`nnbridge.verify`); the result is in ``ConvertResult.verification``.
    """
    start = time.perf_counter()
    src, out = os.fspath(source), os.fspath(output)
    target = format_of(out, to, role="output")
    if os.path.abspath(src) == os.path.abspath(out):
        raise ConversionError(f"{out}: the output would overwrite the source; choose another name")
    model, source_weights = load_model(
        src, weights=weights, input_shapes=input_shapes, optimize=optimize, random_weights=random_weights
    )
    notes = [n for n in model.metadata_props.get("nnbridge.notes", "").split("\n") if n]
    out_weights, export_notes = save_model(model, out, to=target, dialect=dialect)
    notes += export_notes
    result = ConvertResult(src, out, format_of(src), target, out_weights, notes)
    if verify:
        result.verification = _verify_conversion(src, weights, out, out_weights, source_weights,
                                                 random_weights, input_shapes, rtol, atol)
    result.seconds = time.perf_counter() - start
    return result


def _verify_conversion(src: str, weights: Any, out: str, out_weights: str | None, source_weights: Any,
                       random_weights: int | None, input_shapes: InputShapes | None,
                       rtol: float, atol: float) -> Any:
    from nnbridge.verify.api import verify as run_verify

    if weights is None and random_weights is not None:
        # the random blobs the importer drew become a caffemodel, so that Caffe runs the same weights
        from nnbridge.caffe.formats.caffemodel import write_caffemodel
        from nnbridge.caffe.formats.net import load_caffe

        net = load_caffe(src)
        with tempfile.TemporaryDirectory(prefix="nnbridge-verify-") as tmp:
            drawn = Path(tmp) / (Path(src).stem + ".caffemodel")
            write_caffemodel(drawn, net.net, dict(source_weights.served))
            return run_verify(src, out, source_weights=drawn, converted_weights=out_weights,
                              input_shapes=input_shapes, rtol=rtol, atol=atol)
    return run_verify(src, out, source_weights=weights, converted_weights=out_weights,
                      input_shapes=input_shapes, rtol=rtol, atol=atol)


def verify(*args: Any, **kwargs: Any) -> Any:
    """Run a source model and its conversion on the same input and compare them blob by blob.

    See :func:`nnbridge.verify.api.verify` for the arguments.
    """
    from nnbridge.verify.api import verify as run_verify

    return run_verify(*args, **kwargs)
