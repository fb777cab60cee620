"""Bring foreign ONNX into hub form: opset 17, functions inlined, constants folded, static shapes.

Exporters (PyTorch's TorchScript and dynamo exporters, tf2onnx, ...) emit shape-computing subgraphs
(``Shape -> Gather -> Unsqueeze -> Concat -> Reshape``), model-local functions and various opsets. With
fixed input shapes all of that is constant, and the Caffe exporter needs it folded. The steps:

1. inline model-local functions (``onnx_ir`` InlinePass);
2. fold constants: onnxscript's ``FoldConstantsPass`` (with ONNX shape inference) when onnxscript is
   installed; then, if some value still lacks a static shape, onnxsim (constant folding by onnxruntime)
   when installed; without either, :func:`fold_basic` evaluates nodes whose inputs are all constants
   (and ``Shape``/``Size`` of static-shaped values) with ``onnx.reference``, which covers the usual
   exporter patterns but not everything;
3. convert the default-domain opset to 17 with ``onnx.version_converter`` (adapters exist both ways,
   e.g. ReduceMean-18's ``axes`` input back to an attribute);
4. infer every node's output shape: ONNX shape inference for standard ops, the custom op's own
   ``infer`` for domain ``ai.nnbridge``.
"""

from __future__ import annotations

import importlib.util
import logging

import numpy as np
import onnx
import onnx_ir as ir
import onnx_ir.passes.common as common_passes
from onnx import reference

from nnbridge.errors import ConversionError
from nnbridge.hub import custom
from nnbridge.hub.builder import OPSET, infer_node

logger = logging.getLogger(__name__)

_FOLD_LIMIT = 1 << 20  # elements: larger constant subexpressions are left alone
_NEVER_FOLD = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
               "Bernoulli", "If", "Loop", "Scan", "SequenceConstruct"}


def has_static_shapes(model: ir.Model) -> bool:
    """True when every node output has a known type and an all-int shape."""
    return all(
        value.type is not None and value.shape is not None and all(isinstance(d, int) for d in value.shape)
        for node in model.graph for value in node.outputs if value.name
    )


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _uses_custom_domains(model: ir.Model) -> bool:
    return any(node.domain not in ("", "ai.onnx") for node in model.graph.all_nodes())


def fold_constants(model: ir.Model) -> list[str]:
    """Fold constant subgraphs in place with the best available tool; returns the tools used."""
    used: list[str] = []
    common_passes.InlinePass()(model)
    if _available("onnxscript"):
        from onnxscript.optimizer import _constant_folding

        _constant_folding.FoldConstantsPass(
            shape_inference=True, input_size_limit=_FOLD_LIMIT, output_size_limit=_FOLD_LIMIT
        )(model)
        used.append("onnxscript")
    else:
        infer_shapes(model, strict=False)  # Shape nodes fold only once their inputs' shapes are known
        fold_basic(model)
        used.append("basic")
    common_passes.RemoveUnusedNodesPass()(model)
    common_passes.LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0)(model)
    infer_shapes(model, strict=False)
    if not has_static_shapes(model) and _available("onnxsim") and not _uses_custom_domains(model):
        _onnxsim(model)
        used.append("onnxsim")
    if used == ["basic"]:
        log = logger.info if has_static_shapes(model) else logger.warning
        log("onnxscript/onnxsim are not installed: only basic constant folding and shape inference "
            "were done (pip install 'nnbridge[optimize]' for full normalisation)")
    return used


def _onnxsim(model: ir.Model) -> None:
    import onnxsim

    ir.external_data.load_to_model(model)  # onnxsim needs the weights in the proto
    proto = ir.serde.serialize_model(model)
    try:
        simplified, _ = onnxsim.simplify(proto, perform_optimization=False, skip_fuse_bn=True, check_n=0)
    except Exception as exc:  # onnxsim raises plain RuntimeErrors from onnxruntime
        logger.warning("onnxsim could not simplify the model (%s); continuing without it", exc)
        return
    new = ir.serde.deserialize_model(simplified)
    model.graph = new.graph
    model.functions.clear()


def fold_basic(model: ir.Model) -> int:
    """Evaluate nodes whose inputs are all constants with ``onnx.reference``; returns the count."""
    graph = model.graph
    opset = graph.opset_imports.get("", OPSET)
    folded = 0
    for node in list(graph):
        if node.domain not in ("", "ai.onnx") or node.op_type in _NEVER_FOLD:
            continue
        arrays = _constant_inputs(node)
        if arrays is None:
            continue
        try:
            results = _evaluate(node, arrays, opset)
        except Exception as exc:  # the reference runtime raises many kinds of errors
            logger.debug("not folding %s (%s): %s", node.name, node.op_type, exc)
            continue
        for value, array in zip(node.outputs, results, strict=False):
            const = ir.Value(name=f"{value.name}__folded", const_value=ir.tensor(np.asarray(array)),
                             type=ir.TensorType(ir.DataType.from_numpy(np.asarray(array).dtype)),
                             shape=ir.Shape(np.asarray(array).shape))
            graph.register_initializer(const)
            was_output = value.is_graph_output()
            ir.convenience.replace_all_uses_with(value, const, replace_graph_outputs=True)
            name = value.name
            value.name = f"{name}__dead"
            const.name = name
            assert const.const_value is not None
            const.const_value.name = name
            if was_output:
                logger.debug("graph output %s is constant", name)
        graph.remove(node, safe=True)
        folded += 1
    logger.info("basic constant folding: %d nodes", folded)
    return folded


def _constant_inputs(node: ir.Node) -> list[np.ndarray | None] | None:
    if node.op_type in ("Shape", "Size") and node.inputs and node.inputs[0] is not None:
        shape = node.inputs[0].shape
        if shape is not None and all(isinstance(d, int) for d in shape):
            return [np.zeros(tuple(shape), dtype=np.float32)]  # type: ignore[arg-type]
        return None
    arrays: list[np.ndarray | None] = []
    for value in node.inputs:
        if value is None:
            arrays.append(None)
            continue
        tensor = value.const_value
        if tensor is None or tensor.size > _FOLD_LIMIT:
            return None
        arrays.append(tensor.numpy())
    return arrays if node.inputs or node.op_type == "Constant" else None


def _evaluate(node: ir.Node, arrays: list[np.ndarray | None], opset: int) -> list[np.ndarray]:
    proto = ir.serde.serialize_node(node)
    names = [f"in{i}" if a is not None else "" for i, a in enumerate(arrays)]
    del proto.input[:]
    proto.input.extend(names)
    outs = [f"out{i}" for i in range(len(node.outputs))]
    del proto.output[:]
    proto.output.extend(outs)
    feeds = {n: a for n, a in zip(names, arrays, strict=True) if a is not None}
    graph = onnx.helper.make_graph(
        [proto], "fold",
        [onnx.helper.make_tensor_value_info(n, onnx.helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
         for n, a in feeds.items()],
        [onnx.helper.make_empty_tensor_value_info(o) for o in outs],
    )
    fold_model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
    return list(reference.ReferenceEvaluator(fold_model).run(None, feeds))


def convert_opset(model: ir.Model, target: int = OPSET) -> ir.Model:
    """The model with its default-domain opset converted to ``target`` (same object if already there)."""
    current = model.opset_imports.get("", model.opset_imports.get("ai.onnx"))
    if current == target or current is None:
        if current is None:
            model.opset_imports[""] = target
        return model
    common_passes.InlinePass()(model)
    parked = _park_unchanged(model, current, target)
    proto = ir.serde.serialize_model(model)
    try:
        converted = onnx.version_converter.convert_version(proto, target)
    except Exception as exc:  # onnx raises RuntimeError/ConvertError with the adapter's message
        raise ConversionError(
            f"cannot convert the model from opset {current} to opset {target}: {exc}"
        ) from exc
    logger.info("converted opset %s -> %s", current, target)
    result = ir.serde.deserialize_model(converted)
    _unpark(result, parked)
    _keep_base_dir(model, result)
    return result


_PARK_DOMAIN = "nnbridge.opset-unchanged"


def _same_in_older_opset(node: ir.Node) -> bool:
    """Nodes whose newer version means exactly what the older one does, for which onnx's version converter
    has no down-adapter: ``Pad`` 18/19 without the ``axes`` input and not in ``wrap`` mode is ``Pad`` 13."""
    if node.domain not in ("", "ai.onnx") or node.op_type != "Pad":
        return False
    no_axes = len(node.inputs) < 4 or node.inputs[3] is None
    mode = node.attributes.get("mode")
    return no_axes and (mode is None or mode.value != "wrap")


def _park_unchanged(model: ir.Model, current: int, target: int) -> int:
    """Move such nodes to a private domain for the conversion (the converter leaves foreign domains alone)."""
    if target >= current or target < 13:
        return 0
    parked = 0
    for node in model.graph.all_nodes():
        if _same_in_older_opset(node):
            node.domain = _PARK_DOMAIN
            parked += 1
    if parked:
        model.opset_imports[_PARK_DOMAIN] = 1
    return parked


def _unpark(model: ir.Model, parked: int) -> None:
    if not parked:
        return
    for node in model.graph.all_nodes():
        if node.domain == _PARK_DOMAIN:
            node.domain = ""
    model.opset_imports.pop(_PARK_DOMAIN, None)


def _keep_base_dir(old: ir.Model, new: ir.Model) -> None:
    """Re-anchor external-data tensors of a re-deserialized model at the original file's folder."""
    base = next((t.base_dir for t in (v.const_value for v in old.graph.initializers.values())
                 if isinstance(t, ir.ExternalTensor)), None)
    if base is not None:
        ir.external_data.set_base_dir(new.graph, base)


def infer_shapes(model: ir.Model, *, strict: bool = True) -> None:
    """Fill in output shapes node by node; with ``strict`` a failure is an error naming the node."""
    opset = model.opset_imports.get("", OPSET)
    for node in model.graph:
        try:
            if node.domain == custom.CUSTOM_DOMAIN:
                _infer_custom(node)
            elif node.domain in ("", "ai.onnx") and all(
                v is None or v.type is not None for v in node.inputs
            ) and node.op_type not in ("If", "Loop", "Scan"):
                infer_node(node, opset)
        except ConversionError:
            if strict:
                raise
            logger.debug("shape inference failed for %s", node.name, exc_info=True)


def _infer_custom(node: ir.Node) -> None:
    from nnbridge.hub.builder import np_dtype, static_shape

    op = custom.get_custom_op(node.op_type)
    if op is None:
        raise ConversionError(f"node {node.name!r}: custom op {node.op_type!r} of domain {node.domain} "
                              "is not defined by this version of nnbridge")
    attrs = {k: a.value for k, a in node.attributes.items()}
    inputs = [v for v in node.inputs if v is not None]
    for value, (shape, dtype) in zip(node.outputs, op.infer(attrs, [static_shape(v) for v in inputs],
                                                             [np_dtype(v) for v in inputs]), strict=False):
        value.shape = ir.Shape(list(shape))
        value.type = ir.TensorType(ir.DataType.from_numpy(np.dtype(dtype)))
