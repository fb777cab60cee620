"""Run the ORIGINAL TensorFlow model (any source of :mod:`nnbridge.tensorflow.formats`) and return its blobs.

Layout contract (as for every nnbridge runtime): rank-4 inputs and blobs are NCHW. The inputs arrive NCHW
(what the converted model takes) and are transposed to NHWC for TensorFlow; every rank-4 tensor fetched from
TensorFlow, outputs included, is transposed back to NCHW (``nnbridge.input_layout.NAME`` and
``nnbridge.output_layout.NAME`` in the hub metadata record the same convention on the converted side).

The model is loaded exactly as the converter loads it (:func:`nnbridge.tensorflow.formats.load_tf`, input
shapes taken from the arrays), so the frozen GraphDef is the one tf2onnx converted, and it runs in a TF1
``Session`` on that GraphDef. Returned: the outputs under their hub names, the inputs, and, as
intermediates, the first output of every node whose op keeps its meaning through tf2onnx under the same
tensor name (:data:`COMPARABLE_OPS`: activations, pooling, concatenation), named like the hub values
(``model/conv1/Relu:0``). Ops tf2onnx fuses or rewrites are left out, since their names would not mean the
same tensor: a Conv2D followed by BatchNorm's Mul/Add becomes one Conv that keeps the *Mul*'s name;
BiasAdd and Mean (global pooling, then Squeeze) likewise.

TFLite files run in ``tf.lite.Interpreter``; only their outputs are returned (no intermediate tensors).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

COMPARABLE_OPS = frozenset({"Relu", "Relu6", "Elu", "Selu", "Sigmoid", "Tanh", "Softmax", "LeakyRelu", "MaxPool",
                            "AvgPool", "ConcatV2"})


def to_nhwc(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array.transpose(0, 2, 3, 1)) if array.ndim == 4 else array


def to_nchw(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array.transpose(0, 3, 1, 2)) if array.ndim == 4 else array


def parse_options(options: Mapping[str, str]) -> dict[str, Any]:
    """Worker ``--option`` strings -> :func:`load_tf` keyword arguments."""
    kwargs: dict[str, Any] = {}
    if options.get("allow_lambda") in ("1", "true", "True"):
        kwargs["allow_lambda"] = True
    if options.get("outputs"):
        kwargs["outputs"] = [o for o in options["outputs"].split(",") if o]
    if options.get("signature"):
        kwargs["signature"] = options["signature"]
    return kwargs


def run_net(path: str, inputs: Mapping[str, np.ndarray], *, intermediates: bool = True,
            options: Mapping[str, str] | None = None) -> tuple[dict[str, np.ndarray], list[str]]:
    """Run the model at ``path`` on NCHW ``inputs``; return (NCHW blobs by hub name, output names)."""
    from nnbridge.tensorflow.formats import load_tf

    nhwc = {name: to_nhwc(np.asarray(a)) for name, a in inputs.items()}
    graph = load_tf(path, input_shapes={n: a.shape for n, a in nhwc.items()}, **parse_options(options or {}))
    missing = [i.name for i in graph.inputs if i.name not in nhwc]
    if missing:
        raise ValueError(f"{path}: no value for inputs {missing} (given {sorted(nhwc)})")
    feeds = {i.tensor: nhwc[i.name].astype(i.dtype) for i in graph.inputs}
    tflite = graph.kind == "tflite"
    blobs = _run_tflite(path, graph, feeds) if tflite else _run_graph(graph, feeds, intermediates)
    result = {name: np.asarray(a) for name, a in inputs.items()}
    result.update({name: to_nchw(a) for name, a in blobs.items()})
    return result, [name for name, _ in graph.outputs]


def _run_graph(graph: Any, feeds: Mapping[str, np.ndarray], intermediates: bool) -> dict[str, np.ndarray]:
    from nnbridge.tensorflow.sources import tf

    tfm = tf()
    with tfm.Graph().as_default() as g:
        tfm.import_graph_def(graph.graph_def, name="")
        fetch = {name: g.get_tensor_by_name(tensor) for name, tensor in graph.outputs}
        if intermediates:
            inputs = {i.tensor for i in graph.inputs}
            for op in g.get_operations():
                if op.type in COMPARABLE_OPS and op.outputs and op.outputs[0].dtype.is_floating:
                    tensor = op.outputs[0]
                    if tensor.name not in inputs and tensor.name not in fetch:
                        fetch[tensor.name] = tensor
        with tfm.compat.v1.Session(graph=g) as session:
            values = session.run(fetch, feed_dict={g.get_tensor_by_name(t): a for t, a in feeds.items()})
    return {name: np.asarray(v) for name, v in values.items()}


def _run_tflite(path: str, graph: Any, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    from nnbridge.tensorflow.tflite import tflite_interpreter

    interpreter = tflite_interpreter(path)
    by_name = {d["name"]: d for d in interpreter.get_input_details()}
    for tensor, array in feeds.items():
        if tuple(by_name[tensor]["shape"]) != array.shape:
            interpreter.resize_tensor_input(by_name[tensor]["index"], list(array.shape))
    interpreter.allocate_tensors()
    for tensor, array in feeds.items():
        interpreter.set_tensor(by_name[tensor]["index"], array)
    interpreter.invoke()
    outs = {d["name"]: d["index"] for d in interpreter.get_output_details()}
    return {name: np.array(interpreter.get_tensor(outs[tensor])) for name, tensor in graph.outputs}
