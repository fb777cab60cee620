"""The Python API: :func:`convert` one model file into another; :func:`verify` re-exported.

The source format comes from the file name (``.prototxt`` with a ``.caffemodel``: Caffe; ``.onnx``:
ONNX; ``prefix-symbol.json`` (any ``.json``) or a checkpoint ``prefix`` with its ``.params``: MXNet); the
target from ``to`` or the output's extension (``.onnx``; ``.prototxt``, whose weights go to the
``.caffemodel`` of the same stem beside it; ``.json``/``-symbol.json`` or a prefix with ``to="mxnet"``:
``prefix-symbol.json`` + ``prefix-0000.params``). Every conversion goes through the hub (an ``onnx_ir``
model) and output files appear atomically: a failed conversion leaves nothing behind.

TensorFlow sources (``load_model``/``convert`` only; see :mod:`nnbridge.tensorflow.formats`): a SavedModel
directory, a frozen ``.pb``, a Keras ``.keras``/``.h5``, a TF1 checkpoint (``.meta`` or its prefix) or a
``.tflite`` file; their ``input_shapes`` are NHWC, as TensorFlow sees them; Keras Lambda layers only with
``allow_lambda=True``.

MXNet sources: the params default to the highest epoch ``prefix-NNNN.params`` beside the symbol; data
inputs are the variables that are neither parameters nor loss labels, shaped by ``input_shapes`` or by the
``__shape__`` attribute MXNet stores for ``mx.sym.var(name, shape=...)``.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx_ir as ir

from nnbridge.errors import ConversionError, FormatError

logger = logging.getLogger(__name__)

FORMATS = ("onnx", "caffe", "mxnet", "tensorflow")
TARGETS = ("onnx", "caffe", "mxnet")
_EXTENSIONS = {".onnx": "onnx", ".prototxt": "caffe", ".pt": "caffe", ".json": "mxnet"}
SYMBOL_SUFFIX = "-symbol.json"
#: MXNet operators whose inputs after the first are parameters (weights, biases, gammas, moving statistics).
_PARAM_OPERANDS = ("Convolution", "Deconvolution", "FullyConnected", "BatchNorm", "LeakyReLU", "Embedding",
                   "InstanceNorm", "LayerNorm", "GroupNorm", "_contrib_SyncBatchNorm")
InputShapes = Mapping[str, Sequence[int]]


@dataclass
class ConvertResult:
    """What :func:`convert` wrote, with the importer's and exporter's notes and the optional verification."""

    source: str
    output: str
    source_format: str
    target_format: str
    output_weights: str | None = None  # the .caffemodel beside a .prototxt output, the .params of MXNet
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    verification: Any = None  # nnbridge.verify.api report, when verify=True

    @property
    def passed(self) -> bool:
        """False only when a verification ran and failed."""
        return self.verification is None or bool(getattr(self.verification, "passed", True))


def format_of(path: str | os.PathLike[str], explicit: str | None = None, *, role: str = "source") -> str:
    """'onnx', 'caffe', 'mxnet' or (sources only) 'tensorflow' from ``explicit``, the file extension, an MXNet
    checkpoint prefix, or a TensorFlow source (SavedModel directory, .pb, .keras, .h5, .tflite, checkpoint)."""
    allowed = FORMATS if role == "source" else TARGETS
    if explicit is not None:
        if explicit not in allowed:
            raise ConversionError(f"unknown {role} format {explicit!r}; choose one of {', '.join(allowed)}")
        return explicit
    if role == "source":
        from nnbridge.tensorflow.formats import tf_kind

        if tf_kind(path) is not None:
            return "tensorflow"
    kind = _EXTENSIONS.get(Path(path).suffix.lower())
    if kind is None and role == "source" and os.path.isfile(os.fspath(path) + SYMBOL_SUFFIX):
        kind = "mxnet"
    if kind is None:
        raise ConversionError(
            f"{os.fspath(path)}: cannot tell the {role} format from the extension "
            f"{Path(path).suffix or '(none)'!r}; use .onnx, .prototxt or -symbol.json"
            + ("" if role == "output" else " (TensorFlow: a SavedModel directory, .pb, .keras, .h5, .tflite, .meta)")
            + (" (or --to onnx|caffe|mxnet)" if role == "output" else " (or an MXNet checkpoint prefix)")
        )
    return kind


def mxnet_prefix(path: str | os.PathLike[str]) -> str:
    """The checkpoint prefix of ``prefix-symbol.json``, ``name.json`` or ``prefix`` itself."""
    text = os.fspath(path)
    if text.endswith(SYMBOL_SUFFIX):
        return text[: -len(SYMBOL_SUFFIX)]
    return text[:-5] if text.lower().endswith(".json") else text


def mxnet_files(path: str | os.PathLike[str],
                weights: str | os.PathLike[str] | None = None) -> tuple[str, str]:
    """``(symbol JSON, params file)`` of an MXNet model given as a symbol file or a checkpoint prefix;
    without ``weights``, the highest epoch ``prefix-NNNN.params`` beside it (MXNet's naming)."""
    text = os.fspath(path)
    symbol = text if text.lower().endswith(".json") else text + SYMBOL_SUFFIX
    if not os.path.isfile(symbol):
        raise FormatError(symbol, "no such file")
    if weights is not None:
        if not os.path.isfile(os.fspath(weights)):
            raise FormatError(os.fspath(weights), "no such file")
        return symbol, os.fspath(weights)
    prefix = mxnet_prefix(symbol)
    folder, stem = os.path.split(prefix)
    pattern = re.compile(re.escape(stem) + r"-(\d+)\.params")
    epochs = sorted((int(m.group(1)), name) for name in os.listdir(folder or ".")
                    if (m := pattern.fullmatch(name)))
    if not epochs:
        raise FormatError(symbol, f"no parameters beside it ({prefix}-NNNN.params)",
                          hint="give the .params file with --weights (API: weights=)")
    found = os.path.join(folder, epochs[-1][1])
    if len(epochs) > 1:
        logger.info("%s: using the highest epoch %d of %d checkpoints", symbol, epochs[-1][0], len(epochs))
    return symbol, found


def mxnet_input_shapes(graph: Any, params: Mapping[str, Any], given: InputShapes | None,
                       path: str | None = None) -> dict[str, tuple[int, ...]]:
    """Shapes of the data inputs of an MXNet graph (variables that are neither params nor loss labels):
    ``given`` first, else the variable's ``__shape__`` attribute; an input with neither is an error."""
    from nnbridge.mxnet.formats.symbol import parse_tuple
    from nnbridge.mxnet.importer import LABEL_INPUTS

    names = {str(k).split(":", 1)[-1] if str(k).startswith(("arg:", "aux:")) else str(k) for k in params}
    readers: dict[int, list[tuple[str, int]]] = {}
    for node in graph.nodes:
        for position, (source, _) in enumerate(node.inputs):
            readers.setdefault(source, []).append((node.op, position))
    shapes: dict[str, tuple[int, ...]] = {}
    missing: list[str] = []
    absent: list[str] = []
    for index, node in enumerate(graph.nodes):
        if not node.is_variable or node.name in names:
            continue
        uses = readers.get(index, [])
        if not uses or all(LABEL_INPUTS.get(op) == pos for op, pos in uses):
            continue
        if any(op in _PARAM_OPERANDS and pos > 0 for op, pos in uses):
            absent.append(node.name)
            continue
        if given and node.name in given:
            shapes[node.name] = tuple(int(d) for d in given[node.name])
            continue
        text = node.attrs.get("__shape__")
        shape = tuple(int(d) for d in parse_tuple(text)) if text else ()
        if shape and all(d > 0 for d in shape):
            shapes[node.name] = shape
        else:
            missing.append(node.name)
    if absent:
        raise FormatError(path, f"the symbol needs parameters the params file does not hold: {absent[:10]}"
                          + (f" and {len(absent) - 10} more" if len(absent) > 10 else ""),
                          hint="give the .params file saved with this symbol")
    if missing:
        example = " ".join(f"--input-shape {n}=1,3,224,224" for n in missing)
        raise ConversionError(f"{path or '<symbol>'}: input(s) {missing} have no shape in the symbol; give them: "
                              f"{example} (API: input_shapes={{{missing[0]!r}: (1, 3, 224, 224)}})")
    return shapes


def load_model(
    source: str | os.PathLike[str],
    *,
    weights: str | os.PathLike[str] | None = None,
    input_shapes: InputShapes | None = None,
    optimize: bool = True,
    random_weights: int | None = None,
    allow_lambda: bool = False,
    outputs: Sequence[str] | None = None,
    signature: str | None = None,
) -> tuple[ir.Model, Any]:
    """Load any supported model file as a hub model; returns (model, weight source or None).

    ``allow_lambda``, ``outputs`` (frozen graphs, checkpoints) and ``signature`` (SavedModels) are options of
    TensorFlow sources."""
    path = os.fspath(source)
    if (not Path(path).is_file() and not Path(path + SYMBOL_SUFFIX).is_file() and not Path(path).is_dir()
            and not Path(path + ".meta").is_file()):
        raise FormatError(path, "no such file")
    kind = format_of(path)
    if kind == "tensorflow":
        if weights is not None:
            raise ConversionError(f"{path}: --weights is not for TensorFlow sources (they hold their weights)")
        from nnbridge.tensorflow.importer import import_tf

        return import_tf(path, input_shapes=input_shapes, outputs=outputs, signature=signature,
                         allow_lambda=allow_lambda), None
    if outputs or signature or allow_lambda:
        raise ConversionError(f"{path}: --outputs, --signature and --allow-lambda are for TensorFlow sources")
    if kind == "mxnet":
        return _load_mxnet(path, weights, input_shapes), None
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


def _load_mxnet(path: str, weights: str | os.PathLike[str] | None, input_shapes: InputShapes | None) -> ir.Model:
    from nnbridge.mxnet.formats.checkpoint import load_mxnet
    from nnbridge.mxnet.importer import import_mxnet

    symbol, params = mxnet_files(path, weights)
    loaded = load_mxnet(symbol, params)
    shapes = mxnet_input_shapes(loaded.graph, loaded.params, input_shapes, symbol)
    return import_mxnet(loaded.graph, loaded.params, shapes, source=symbol,
                        name=Path(mxnet_prefix(symbol)).name or "mxnet_net")


def output_path(output: str | os.PathLike[str], target: str) -> str:
    """The model file a conversion writes: for MXNet ``prefix-symbol.json`` (``-o prefix`` or ``-o x.json``)."""
    return mxnet_prefix(output) + SYMBOL_SUFFIX if target == "mxnet" else os.fspath(output)


def save_model(model: ir.Model, output: str | os.PathLike[str], *, to: str | None = None,
               dialect: str = "bvlc") -> tuple[str | None, list[str]]:
    """Write a hub model; returns (weights file beside the model (.caffemodel/.params) or None, exporter notes)."""
    out = Path(output)
    kind = format_of(out, to, role="output")
    if kind == "mxnet":
        from nnbridge.mxnet.exporter import export_mxnet, save_mxnet

        exported_mx = export_mxnet(model)
        Path(mxnet_prefix(out)).parent.mkdir(parents=True, exist_ok=True)
        _, params = save_mxnet(exported_mx, mxnet_prefix(out))
        return str(params), list(exported_mx.notes)
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
    swap_input_channels: bool = False,
    runtimes: Sequence[str | None] | None = None,
    allow_lambda: bool = False,
    outputs: Sequence[str] | None = None,
    signature: str | None = None,
) -> ConvertResult:
    """Convert ``source`` (``.prototxt`` + ``weights``, ``.onnx``, or MXNet ``prefix-symbol.json`` +
    ``weights``) into ``output`` (``.onnx``, ``.prototxt``, or an MXNet prefix / ``-symbol.json``).

    ``random_weights=SEED`` converts a weightless prototxt with seeded random weights of realistic
    statistics. ``swap_input_channels=True`` makes the converted model expect the image input's colour
    channels reversed (RGB <-> BGR) by permuting the weights of the convolutions reading it
    (:class:`nnbridge.hub.passes.input_channels.SwapInputChannels`). With ``verify=True`` both models are
    run on the same input (reversed for the converted one when swapped) and compared blob by blob (see
    :func:`nnbridge.verify`); the result is in ``ConvertResult.verification``. ``runtimes`` is passed to
    it (e.g. ``("mxnet=/venv-mx/bin/python",)``).

    TensorFlow sources (SavedModel directory, ``.pb``, ``.keras``/``.h5``, TF1 checkpoint, ``.tflite``) take
    ``input_shapes`` in NHWC, ``allow_lambda`` (run the Python code of Keras Lambda layers), ``outputs``
    (output nodes of a frozen graph or checkpoint) and ``signature`` (of a SavedModel; default
    ``serving_default``); verification runs the original model in TensorFlow.
    """
    start = time.perf_counter()
    src, out = os.fspath(source), os.fspath(output)
    target = format_of(out, to, role="output")
    written = output_path(out, target)
    if os.path.abspath(src) in (os.path.abspath(out), os.path.abspath(written)):
        raise ConversionError(f"{out}: the output would overwrite the source; choose another name")
    tf_opts: dict[str, Any] = {"allow_lambda": allow_lambda, "outputs": outputs, "signature": signature}
    model, source_weights = load_model(
        src, weights=weights, input_shapes=input_shapes, optimize=optimize, random_weights=random_weights,
        **tf_opts,
    )
    notes = [n for n in model.metadata_props.get("nnbridge.notes", "").split("\n") if n]
    swapped: list[str] = []
    if swap_input_channels:
        from nnbridge.hub.passes.input_channels import SwapInputChannels

        swap = SwapInputChannels()
        swap.run(model)
        swapped = sorted({name for name, _ in swap.swapped})
        notes.append("input colour channels swapped (RGB <-> BGR) for " + ", ".join(
            f"{name} (in {node})" for name, node in swap.swapped))
    out_weights, export_notes = save_model(model, out, to=target, dialect=dialect)
    notes += export_notes
    result = ConvertResult(src, written, format_of(src), target, out_weights, notes)
    if verify:
        result.verification = _verify_conversion(src, weights, written, out_weights, source_weights,
                                                 random_weights, input_shapes, rtol, atol,
                                                 swapped=swapped, runtimes=runtimes, tf_opts=tf_opts)
    result.seconds = time.perf_counter() - start
    return result


def _verify_conversion(src: str, weights: Any, out: str, out_weights: str | None, source_weights: Any,
                       random_weights: int | None, input_shapes: InputShapes | None,
                       rtol: float, atol: float, *, swapped: Sequence[str] = (),
                       runtimes: Sequence[str | None] | None = None,
                       tf_opts: Mapping[str, Any] | None = None) -> Any:
    from functools import partial

    from nnbridge.verify.api import verify

    opts = dict(tf_opts or {})
    run_verify = partial(verify, swapped_inputs=tuple(swapped), runtimes=runtimes,
                         allow_lambda=bool(opts.get("allow_lambda")), outputs=opts.get("outputs"),
                         signature=opts.get("signature"))

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
