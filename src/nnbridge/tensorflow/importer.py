"""TensorFlow / Keras -> hub.

tf2onnx is the front end (it knows TensorFlow's op set); nnbridge then treats its output like any foreign
ONNX model and makes it native to NCHW targets:

1. every source (:mod:`nnbridge.tensorflow.formats`) becomes one frozen GraphDef with a fixed input
   signature (batch 1 unless ``input_shapes`` says otherwise); rank-4 inputs and outputs are declared
   NCHW (``inputs_as_nchw``/``outputs_as_nchw``), so tf2onnx's transpose optimiser pushes the layout
   transposes through the graph and cancels them, and convolution weights are transposed once;
2. outputs are named after the model's output names (Keras output layers, signature keys), inputs after
   the Keras Input layers / signature keys / Placeholders; tf2onnx keeps TensorFlow tensor names
   (``model/conv1/Relu:0``) on the other values, which lets verify compare intermediates;
3. the ONNX proto is normalised like any foreign ONNX file (:mod:`nnbridge.onnx.normalize`: constants folded,
   opset 17, static shapes), then :func:`nnbridge.hub.passes.nhwc.nchw_cleanup` removes what is left of the
   NHWC layout (e.g. the flatten order before the first dense layer).

The hub model records ``nnbridge.source_format = tensorflow`` and, per rank-4 input and output,
``nnbridge.input_layout.NAME`` / ``nnbridge.output_layout.NAME = NCHW (transposed from NHWC)`` in its
metadata: the converted model takes and gives NCHW where TensorFlow takes and gives NHWC (the verification
runtime, :mod:`nnbridge.verify.runtimes.tensorflow_rt`, transposes accordingly).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import onnx_ir as ir

from nnbridge.errors import ConversionError, Unsupported, UnsupportedOpsError
from nnbridge.extras import require
from nnbridge.tensorflow.formats import TfGraph

logger = logging.getLogger(__name__)

OPSET = 17
InputShapes = Mapping[str, Sequence[int]]


def _tf2onnx() -> Any:
    from nnbridge.tensorflow.sources import tf

    tf()
    require("tf2onnx", "converting TensorFlow/Keras models")
    import tf2onnx.convert

    # tf2onnx logs every unconverted op at ERROR level; nnbridge reports them all in one error instead
    logging.getLogger("tf2onnx").setLevel(logging.DEBUG if logger.isEnabledFor(logging.DEBUG) else logging.CRITICAL)
    return tf2onnx.convert


def lambda_layers(model: Any) -> list[str]:
    """Names of the Keras ``Lambda`` layers of ``model`` and its nested models."""
    keras = require("keras", "converting Keras models")
    found: list[str] = []
    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.layers.Lambda):
            found.append(layer.name)
        elif hasattr(layer, "layers"):
            found.extend(lambda_layers(layer))
    return found


def import_tf(path: str | os.PathLike[str], *, input_shapes: InputShapes | None = None,
              outputs: Sequence[str] | None = None, signature: str | None = None,
              allow_lambda: bool = False) -> ir.Model:
    """Any TensorFlow source file or SavedModel directory (:func:`nnbridge.tensorflow.formats.load_tf`)
    as a hub model; ``input_shapes`` are NHWC, as TensorFlow sees them."""
    from nnbridge.tensorflow.formats import load_tf

    return import_graph(load_tf(path, input_shapes=input_shapes, outputs=outputs, signature=signature,
                                allow_lambda=allow_lambda))


def import_keras(model: Any, input_shapes: InputShapes | None = None, *, allow_lambda: bool = False,
                 name: str | None = None) -> ir.Model:
    """A live ``keras.Model`` as a hub model (NCHW image inputs; shapes in ``input_shapes`` are NHWC).

    Inputs are named after the model's Input layers (``input_layer``, not Keras 3's ``keras_tensor``),
    outputs after its output layers."""
    from nnbridge.tensorflow.sources import keras_model, lambda_refusal

    lambdas = lambda_layers(model)
    if lambdas and not allow_lambda:
        raise lambda_refusal(str(getattr(model, "name", "the model")), lambdas)
    graph = keras_model(model, name or str(getattr(model, "name", "keras_model")), dict(input_shapes or {}))
    return import_graph(graph)


def import_function(function: Any, input_signature: Sequence[Any], *, name: str = "tf_function",
                    source: str | None = None) -> ir.Model:
    """A ``tf.function`` traced with ``input_signature`` (named ``tf.TensorSpec`` list) as a hub model; it
    returns a tensor, a list of tensors (outputs ``output_0``...) or a ``{name: tensor}`` dict."""
    from nnbridge.tensorflow.sources import freeze

    def serve(*xs: Any) -> dict[str, Any]:
        out = function(*xs)
        if isinstance(out, dict):
            return dict(out)
        outs = out if isinstance(out, (list, tuple)) else [out]
        return {f"output_{i}": o for i, o in enumerate(outs)}

    return import_graph(freeze(serve, input_signature, source or name, "function", name))


def output_ranks(graph: TfGraph) -> dict[str, int | None]:
    """Rank of each output (tensor name -> rank) of a :class:`TfGraph`."""
    from nnbridge.tensorflow.sources import tf
    from nnbridge.tensorflow.tflite import tflite_interpreter

    if graph.kind == "tflite":
        details = {d["name"]: len(d["shape"]) for d in tflite_interpreter(graph.path).get_output_details()}
        return {t: details.get(t) for _, t in graph.outputs}
    tfm = tf()
    with tfm.Graph().as_default() as g:
        tfm.import_graph_def(graph.graph_def, name="")
        return {t: g.get_tensor_by_name(t).shape.rank for _, t in graph.outputs}


def import_graph(graph: TfGraph) -> ir.Model:
    """A :class:`~nnbridge.tensorflow.formats.TfGraph` through tf2onnx: rank-4 inputs and outputs are
    declared NCHW (``inputs_as_nchw``/``outputs_as_nchw``), so the whole hub model is NCHW."""
    convert = _tf2onnx()
    nchw = [i.tensor for i in graph.inputs if i.nchw]
    try:
        nchw_out = [t for t, rank in output_ranks(graph).items() if rank == 4]
        if graph.kind == "tflite":
            overrides = {i.tensor: list(i.shape) for i in graph.inputs}
            proto, _ = convert.from_tflite(graph.path, input_names=[i.tensor for i in graph.inputs],
                                           output_names=[t for _, t in graph.outputs], opset=OPSET,
                                           inputs_as_nchw=nchw, outputs_as_nchw=nchw_out, shape_override=overrides)
        else:
            proto, _ = convert.from_graph_def(graph.graph_def, name=graph.name,
                                              input_names=[i.tensor for i in graph.inputs],
                                              output_names=[t for _, t in graph.outputs], opset=OPSET,
                                              inputs_as_nchw=nchw, outputs_as_nchw=nchw_out,
                                              tensors_to_rename=graph.renames)
    except Exception as exc:  # tf2onnx (and TensorFlow under it) raise many kinds of errors while converting
        raise ConversionError(f"{graph.path}: tf2onnx could not convert the graph: {type(exc).__name__}: "
                              f"{exc}") from exc
    renames = graph.renames
    model = from_onnx_proto(proto, source=graph.path, nchw_inputs=[i.name for i in graph.inputs if i.nchw],
                            name=graph.name, renames=renames, input_shapes={i.name: i.hub_shape for i in graph.inputs})
    for tensor in nchw_out:
        model.metadata_props[f"nnbridge.output_layout.{renames.get(tensor, tensor)}"] = "NCHW (transposed from NHWC)"
    if graph.notes:
        model.metadata_props["nnbridge.notes"] = "\n".join(graph.notes)
    return model


def unconverted_ops(model: ir.Model) -> list[Unsupported]:
    """Nodes tf2onnx left as TensorFlow ops (``continue_on_error``): not a known ONNX op of their domain."""
    import onnx.defs

    from nnbridge.hub import custom

    found = []
    for node in model.graph.all_nodes():
        if node.domain == custom.CUSTOM_DOMAIN and custom.get_custom_op(node.op_type) is not None:
            continue
        if node.domain in ("", "ai.onnx") and onnx.defs.has(node.op_type):
            continue
        found.append(Unsupported(node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}",
                                 node.name or "?", "no ONNX equivalent in tf2onnx"))
    return found


def from_onnx_proto(proto: Any, *, source: str, nchw_inputs: Sequence[str] = (), name: str | None = None,
                    renames: Mapping[str, str] | None = None, input_shapes: InputShapes | None = None
                    ) -> ir.Model:
    """tf2onnx's ``ModelProto`` -> a normalised, NCHW-native hub model; graph inputs and outputs named by
    ``renames`` (tensor name -> hub name) are renamed, inputs in ``input_shapes`` (hub layout) get those
    shapes. TensorFlow ops tf2onnx could not convert are all listed in one
    :class:`~nnbridge.errors.UnsupportedOpsError`."""
    from nnbridge.hub.passes.nhwc import nchw_cleanup
    from nnbridge.onnx import normalize

    model = ir.serde.deserialize_model(proto)
    if name:
        model.graph.name = name
    for value in [*model.graph.inputs, *model.graph.outputs]:
        if renames and value.name and value.name in renames:
            value.name = renames[value.name]
    for value in model.graph.inputs:
        if input_shapes and value.name and value.name in input_shapes:  # TFLite inputs keep their dynamic batch
            value.shape = ir.Shape([int(d) for d in input_shapes[value.name]])
    missing = unconverted_ops(model)
    if missing:
        raise UnsupportedOpsError(f"{source}: TensorFlow ops without an ONNX conversion", missing,
                                  hint="nnbridge converts what tf2onnx converts; replace these ops in the model")
    normalize.fold_constants(model)
    model = normalize.convert_opset(model)
    normalize.infer_shapes(model, strict=False)
    nchw_cleanup().run(model)
    normalize.infer_shapes(model, strict=False)
    model.metadata_props["nnbridge.source_format"] = "tensorflow"
    model.metadata_props["nnbridge.source"] = source
    for input_name in nchw_inputs:
        model.metadata_props[f"nnbridge.input_layout.{input_name}"] = "NCHW (transposed from NHWC)"
    return model


__all__ = ["from_onnx_proto", "import_function", "import_graph", "import_keras", "import_tf", "lambda_layers",
           "unconverted_ops"]
