"""Loaders behind :func:`nnbridge.tensorflow.formats.load_tf`: each TensorFlow source -> a :class:`TfGraph`.

TensorFlow, Keras and tf2onnx are imported lazily (the ``tensorflow`` extra). Keras files are scanned for
Lambda layers *before* loading (their config is JSON: ``config.json`` in a ``.keras`` zip, the
``model_config`` attribute of an ``.h5``), so that no Python code stored in a model file is ever run without
``allow_lambda``; ``safe_mode`` stays on unless Lambda layers are explicitly allowed. TFLite files:
:mod:`nnbridge.tensorflow.tflite`.
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nnbridge.errors import ConversionError, FormatError
from nnbridge.extras import require
from nnbridge.tensorflow.formats import InputShapes, TfGraph, TfInput, check_given, static_shape

logger = logging.getLogger(__name__)

_NOT_OUTPUTS = {"Const", "Placeholder", "PlaceholderWithDefault", "NoOp", "VariableV2", "VarHandleOp",
                "Variable", "Assert", "SaveV2", "RestoreV2", "MergeV2Checkpoints"}
_VARIABLE_OPS = {"VariableV2", "VarHandleOp", "Variable"}


def tf() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    module = require("tensorflow", "loading TensorFlow/Keras models")
    module.get_logger().setLevel(logging.ERROR)  # tf2onnx's freezing calls deprecated TF1 APIs
    return module


def freeze(function: Callable[..., Any], specs: Sequence[Any], path: str, kind: str, name: str) -> TfGraph:
    """Trace ``function`` (returning ``{hub output name: tensor}``) with ``specs`` and freeze its variables."""
    tfm = tf()
    require("tf2onnx", "converting TensorFlow/Keras models")
    from tf2onnx import tf_loader

    concrete = tfm.function(function, input_signature=list(specs)).get_concrete_function()
    # the signature's tensors come first; the rest are captures (variables, and constants such as a Keras
    # Normalization's mean), which freezing turns into constants
    inputs = [t.name for t in concrete.inputs[:len(specs)]]
    outputs = [(str(key), value.name) for key, value in concrete.structured_outputs.items()]
    with tfm.device("/cpu:0"):
        graph_def = tf_loader.from_function(concrete, inputs, [t for _, t in outputs])
    tf_inputs = [TfInput(str(s.name), tensor, tuple(int(d) for d in s.shape), s.dtype.name)
                 for s, tensor in zip(specs, inputs, strict=True)]
    return TfGraph(path, kind, graph_def, tf_inputs, outputs, name=name)


# -- Keras ---------------------------------------------------------------------------------------------------
def keras_config(path: str) -> dict[str, Any]:
    """The model config stored in a ``.keras`` zip or an ``.h5`` file (JSON; nothing is executed)."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                return dict(json.loads(archive.read("config.json")))
        h5py = require("h5py", "reading Keras .h5 files")
        with h5py.File(path, "r") as handle:
            text = handle.attrs.get("model_config")
            if text is None:
                raise FormatError(path, "an HDF5 file without a Keras model config (weights only?)",
                                  hint="save the whole model with model.save('model.keras')")
            return dict(json.loads(text.decode() if isinstance(text, bytes) else text))
    except FormatError:
        raise
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise FormatError(path, f"not a readable Keras model file ({type(exc).__name__}: {exc})",
                          hint="is the file complete? re-save it with model.save()") from exc


def lambda_layers_in(config: Any) -> list[str]:
    """Names of the ``Lambda`` layers anywhere in a Keras config."""
    found: list[str] = []
    if isinstance(config, dict):
        if config.get("class_name") == "Lambda":
            found.append(str(config.get("config", {}).get("name", "?")))
        for value in config.values():
            found.extend(lambda_layers_in(value))
    elif isinstance(config, list):
        for value in config:
            found.extend(lambda_layers_in(value))
    return found


def lambda_refusal(where: str, names: Sequence[str]) -> ConversionError:
    return ConversionError(f"{where}: the model has Keras Lambda layers {list(names)}: their Python code would "
                           "be run; convert it only if you trust it (--allow-lambda, API allow_lambda=True)")


def keras_file(path: str, given: InputShapes, allow_lambda: bool) -> TfGraph:
    lambdas = lambda_layers_in(keras_config(path))
    if lambdas and not allow_lambda:
        raise lambda_refusal(path, lambdas)
    tf()
    keras = require("keras", "loading Keras models")
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=not allow_lambda)
    except Exception as exc:  # Keras raises ValueError/TypeError/OSError and more for bad files
        raise FormatError(path, f"Keras cannot load the model ({type(exc).__name__}: {exc})",
                          hint="custom layers or objects are not supported; is the file complete?") from exc
    return keras_model(model, path, given)


def keras_name(tensor: Any) -> str:
    """The name of the layer that produced a Keras 3 symbolic tensor (``input_layer`` rather than the
    auto-generated ``keras_tensor`` of the tensor itself)."""
    history = getattr(tensor, "_keras_history", None)
    operation = getattr(history, "operation", None) or getattr(history, "layer", None)
    return str(getattr(operation, "name", None) or str(tensor.name).split(":")[0])


def _unique(names: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        count = seen.get(name, 0)
        seen[name] = count + 1
        out.append(name if count == 0 else f"{name}_{count}")
    return out


def keras_model(model: Any, path: str, given: InputShapes) -> TfGraph:
    """A live ``keras.Model``: inputs named after its Input layers, outputs after its output layers."""
    tfm = tf()
    names = _unique([keras_name(t) for t in model.inputs])
    check_given(path, given, names)
    specs = [tfm.TensorSpec(static_shape(path, n, list(t.shape), given), t.dtype, name=n)
             for n, t in zip(names, model.inputs, strict=True)]
    out_names = _unique([keras_name(t) for t in model.outputs])

    def serve(*xs: Any) -> dict[str, Any]:
        out = model(list(xs) if len(xs) > 1 else xs[0], training=False)
        outs = out if isinstance(out, (list, tuple)) else [out]
        return dict(zip(out_names, outs, strict=True))

    return freeze(serve, specs, path, "keras", str(getattr(model, "name", None) or Path(path).stem))


# -- SavedModel ----------------------------------------------------------------------------------------------
def saved_model(path: str, given: InputShapes, signature: str | None) -> TfGraph:
    tfm = tf()
    folder = str(Path(path).parent) if Path(path).name == "saved_model.pb" else path
    try:
        loaded = tfm.saved_model.load(folder)
    except Exception as exc:  # TF raises OSError, ValueError, DecodeError, ... for damaged SavedModels
        raise FormatError(folder, f"TensorFlow cannot load the SavedModel ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''})", hint="is the directory complete?"
                          ) from exc
    signatures = dict(getattr(loaded, "signatures", {}) or {})
    if not signatures:
        raise FormatError(folder, "the SavedModel has no serving signature",
                          hint="export it with model.export(dir) or tf.saved_model.save(obj, dir, signatures=...)")
    if signature is None:
        if "serving_default" not in signatures:
            raise ConversionError(f"{folder}: the SavedModel has no 'serving_default' signature; it has "
                                  f"{sorted(signatures)}: choose one with --signature NAME")
        signature = "serving_default"
    if signature not in signatures:
        raise ConversionError(f"{folder}: no signature {signature!r}; the SavedModel has {sorted(signatures)} "
                              "(choose one with --signature NAME)")
    function = signatures[signature]
    _, kwargs = function.structured_input_signature
    names = list(kwargs)
    check_given(folder, given, names)
    specs = [tfm.TensorSpec(static_shape(folder, n, list(kwargs[n].shape), given), kwargs[n].dtype, name=n)
             for n in names]

    def serve(*xs: Any) -> dict[str, Any]:
        return dict(function(**dict(zip(names, xs, strict=True))))

    result = freeze(serve, specs, folder, "savedmodel", Path(folder).name or "saved_model")
    result.notes.append(f"SavedModel signature {signature!r}")
    return result


# -- GraphDef based: frozen .pb, TF1 checkpoints -------------------------------------------------------------
def _producer(name: str) -> str:
    return name.lstrip("^").split(":")[0]


def graph_io(graph_def: Any, path: str, outputs: Sequence[str] | None, skip_scope: str | None = None,
             float_outputs: Callable[[str], bool] | None = None) -> tuple[list[Any], list[str]]:
    """(Placeholder nodes, output tensor names): the given ``outputs`` or the nodes nobody consumes."""
    nodes = {n.name: n for n in graph_def.node}
    placeholders = [n for n in graph_def.node if n.op == "Placeholder"]
    if outputs:
        missing = [o for o in outputs if _producer(o) not in nodes]
        if missing:
            raise ConversionError(f"{path}: --outputs names unknown nodes {missing}")
        return placeholders, [o if ":" in o else f"{o}:0" for o in outputs]
    consumed = {_producer(i) for n in graph_def.node for i in n.input}
    sinks = [n.name for n in graph_def.node if n.name not in consumed and n.op not in _NOT_OUTPUTS
             and not (skip_scope and n.name.startswith(skip_scope))
             and (float_outputs is None or float_outputs(n.name))]
    if not sinks:
        raise ConversionError(f"{path}: cannot tell the graph's outputs (no unconsumed nodes); give them with "
                              "--outputs NAME[,NAME...]")
    return placeholders, [f"{s}:0" for s in sinks]


def _inputs(path: str, placeholders: Sequence[Any], given: InputShapes) -> list[TfInput]:
    tfm = tf()
    names = [p.name for p in placeholders]
    check_given(path, given, names)
    inputs = []
    for node in placeholders:
        proto = node.attr["shape"].shape
        if proto.unknown_rank and node.name not in given:
            raise ConversionError(f"{path}: input {node.name!r} has an unknown rank; add --input-shape "
                                  f"{node.name}=D,D,... (NHWC for images)")
        dims = [None if d.size < 0 else int(d.size) for d in proto.dim] if not proto.unknown_rank else \
            [None] * len(given[node.name])
        shape = static_shape(path, node.name, dims, given)
        dtype = tfm.dtypes.as_dtype(node.attr["dtype"].type).name
        inputs.append(TfInput(node.name, f"{node.name}:0", shape, dtype))
    return inputs


def fix_placeholder_shapes(graph_def: Any, inputs: Sequence[TfInput]) -> None:
    tfm = tf()
    shapes = {i.name: i.shape for i in inputs}
    for node in graph_def.node:
        if node.op == "Placeholder" and node.name in shapes:
            node.attr["shape"].shape.CopyFrom(tfm.TensorShape(shapes[node.name]).as_proto())


def frozen_graph(path: str, given: InputShapes, outputs: Sequence[str] | None) -> TfGraph:
    tfm = tf()
    graph_def = tfm.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(Path(path).read_bytes())
    except Exception as exc:  # google.protobuf.message.DecodeError and friends
        raise FormatError(path, f"not a readable TensorFlow GraphDef ({type(exc).__name__}: {exc})",
                          hint="is the file complete? a SavedModel's saved_model.pb needs its directory") from exc
    if not graph_def.node:
        raise FormatError(path, "the GraphDef holds no nodes", hint="is it a frozen TensorFlow graph?")
    variables = [n.name for n in graph_def.node if n.op in _VARIABLE_OPS]
    if variables:
        raise FormatError(path, f"the graph is not frozen: it has variables {variables[:5]}",
                          hint="freeze it, or convert the checkpoint (.meta) or SavedModel it came from")
    placeholders, out_tensors = graph_io(graph_def, path, outputs)
    inputs = _inputs(path, placeholders, given)
    fix_placeholder_shapes(graph_def, inputs)
    return TfGraph(path, "frozen", graph_def, inputs, [(_producer(t) if t.endswith(":0") else t, t)
                                                       for t in out_tensors], name=Path(path).stem)


def checkpoint(path: str, given: InputShapes, outputs: Sequence[str] | None) -> TfGraph:
    tfm = tf()
    from tf2onnx import tf_loader

    meta = path if path.endswith(".meta") else path + ".meta"
    if not os.path.isfile(meta):
        raise FormatError(meta, "no such file", hint="a TF1 checkpoint needs its .meta graph")
    graph = tfm.Graph()
    try:
        with graph.as_default():
            tfm.compat.v1.train.import_meta_graph(meta, clear_devices=True)
    except Exception as exc:  # DecodeError, ValueError, KeyError for damaged or foreign files
        raise FormatError(meta, f"not a readable TF1 meta graph ({type(exc).__name__}: {exc})") from exc

    def floating(name: str) -> bool:
        return any(t.dtype.is_floating for t in graph.get_operation_by_name(name).outputs)

    placeholders, out_tensors = graph_io(graph.as_graph_def(), meta, outputs, "save/", floating)
    in_tensors = [f"{p.name}:0" for p in placeholders]
    try:
        frozen, _, _ = tf_loader.from_checkpoint(meta, in_tensors, out_tensors)
    except Exception as exc:  # NotFoundError/DataLossError for missing or damaged .index/.data files
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise FormatError(meta[:-5], f"cannot restore the checkpoint ({type(exc).__name__}: {first})",
                          hint="the .index and .data-* files must sit beside the .meta") from exc
    inputs = _inputs(meta, [n for n in frozen.node if n.op == "Placeholder"], given)
    fix_placeholder_shapes(frozen, inputs)
    return TfGraph(meta, "checkpoint", frozen, inputs, [(_producer(t), t) for t in out_tensors],
                   name=Path(meta).stem)
