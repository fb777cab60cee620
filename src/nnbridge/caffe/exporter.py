"""Hub -> Caffe: lower the hub model with rewrite passes, then export one node at a time.

0. A clone of the model (new nodes and values, the same weight tensors: nothing is copied) first goes
   through :class:`~nnbridge.caffe.export.restore.RestoreCaffeLayers`: every group of nodes the Caffe
   importer made of one layer, still intact, becomes that layer again with its original parameters and
   blobs (exact by construction; only layer types the dialect allows).
1. The model then goes through :func:`nnbridge.hub.passes.caffe_lowering` (constant folding,
   Identity/Dropout removal, Pad folding, Gemm/MatMul -> InnerProduct, Mul+Add -> Scale, weighted sums
   -> Eltwise with coefficients...). Fused groups become internal nodes of
   :data:`~nnbridge.hub.passes.graph.CAFFE_DOMAIN`, exported field by field.
2. Every remaining node is given to its registered exporter (:mod:`nnbridge.caffe.export`); all failures
   are collected first and raised as one :class:`~nnbridge.errors.UnsupportedOpsError` (ops nobody can
   export), or, if only the dialect is at fault, one listing the dialect refusals.
3. The deploy net declares its inputs with ``input`` + ``input_shape``; layers carry no blobs (they are
   returned separately, in Caffe shapes). Caffe top names are the hub value names; an earlier version
   ``B@layer`` of an in-place blob is written back in place as ``B`` whenever the layer order allows it.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx_ir as ir

from nnbridge.caffe.dialects import Dialect, get_dialect
from nnbridge.caffe.export.context import CAFFE_EXPORTERS, ExportContext, Layer, Refusal, node_key
from nnbridge.caffe.export.restore import RestoreCaffeLayers
from nnbridge.errors import ConversionError, Unsupported, UnsupportedOpsError
from nnbridge.hub.passes import caffe_lowering
from nnbridge.hub.passes.affine import input_preprocessing
from nnbridge.hub.passes.graph import CAFFE_DOMAIN, attr, shape_of

logger = logging.getLogger(__name__)


@dataclass
class CaffeExport:
    net: Any  # caffe_pb2.NetParameter
    blobs: dict[str, list[np.ndarray]]
    notes: list[str] = field(default_factory=list)
    layers: list[Layer] = field(default_factory=list)  # the same layers, protobuf-free (for tests, reports)


def _load_exporters() -> None:
    import nnbridge.caffe.export as package

    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{info.name}")


def _caffe_layer_node(ctx: ExportContext) -> list[Layer]:
    """Internal nodes made by passes: type = op_type, fields = attributes, const inputs = blobs.
    Restored layers (:mod:`nnbridge.caffe.export.restore`) carry their parameters as text instead."""
    node = ctx.node
    text = attr(node, "caffe_text")
    if text is not None:
        count = int(attr(node, "num_bottoms", 0))
        bottoms = [ctx.x(i) for i in range(count)]
        kept = [ctx.need_const(i, "a blob") for i in range(count, len(node.inputs))]
        if ctx.dialect.options.get("scalar_blobs_1d"):
            kept = [b.reshape(1) if b.ndim == 0 else b for b in kept]
        layer = ctx.layer(node.op_type, bottoms, [str(v.name) for v in node.outputs], blobs=kept)
        layer.text = text
        return [layer]
    bottoms = [ctx.x(i) for i, v in enumerate(node.inputs) if v is not None and v.const_value is None]
    blobs = [ctx.const(i) for i, v in enumerate(node.inputs) if v is not None and v.const_value is not None]
    fields = {k: attr(node, k) for k in node.attributes if k != "param"}
    param = attr(node, "param")
    return [ctx.layer(node.op_type, bottoms, [str(v.name) for v in node.outputs], param, fields,
                      blobs=[b for b in blobs if b is not None])]


def export_layers(model: ir.Model, dialect: Dialect) -> tuple[list[Layer], list[str]]:
    """Run the exporters on an already lowered model; raise one error listing every failure."""
    _load_exporters()
    names: set[str] = set()
    layers: list[Layer] = []
    missing: list[Unsupported] = []
    refused: list[Unsupported] = []
    for node in model.graph:
        key = node_key(node)
        ctx = ExportContext(node, dialect, names)
        exporter = _caffe_layer_node if node.domain == CAFFE_DOMAIN else CAFFE_EXPORTERS.get(key)
        if exporter is None:
            missing.append(Unsupported(key, ctx.name, "no Caffe exporter"))
            continue
        try:
            layers.extend(exporter(ctx))
        except Refusal as refusal:
            (refused if refusal.dialect else missing).append(Unsupported(key, ctx.name, refusal.reason))
    if missing:
        hint = f"{len(refused)} more node(s) need layers dialect {dialect.name!r} lacks" if refused else None
        raise UnsupportedOpsError(f"hub -> Caffe ({dialect.name})", missing, hint=hint)
    if refused:
        raise UnsupportedOpsError(f"Caffe dialect {dialect.name!r}", refused,
                                  hint="try another dialect (see nnbridge.caffe.dialects)")
    return layers, []


def export_caffe(model: ir.Model, *, dialect: str | Dialect = "bvlc") -> CaffeExport:
    """Export a hub model to a Caffe deploy net + blobs (see docs/ARCHITECTURE.md)."""
    from google.protobuf import text_format

    from nnbridge.caffe.proto import caffe_pb2

    target = get_dialect(dialect)
    _check_static_inputs(model.graph)
    work = model.clone()  # new nodes and values, shared tensors (memory-mapped weights are not copied)
    restore = RestoreCaffeLayers(target.allows)
    restore.run(work)
    manager = caffe_lowering(target)
    manager.run(work)
    logger.debug("lowering passes fired: %s", manager.fired)
    graph = work.graph
    _check_outputs(graph)
    layers, notes = export_layers(work, target)
    inputs = [str(v.name) for v in graph.inputs if v.const_value is None]
    _inplace(layers, inputs, [str(v.name) for v in graph.outputs])

    net = caffe_pb2.NetParameter()
    net.name = graph.name or "net"
    for value in graph.inputs:
        if value.const_value is not None:
            continue
        shape = shape_of(value)
        if shape is None:
            raise ConversionError(f"graph input {value.name!r} has no static shape; Caffe needs one")
        net.input.append(str(value.name))
        net.input_shape.add().dim.extend(shape)
    blobs: dict[str, list[np.ndarray]] = {}
    for layer in layers:
        message = net.layer.add()
        message.name = layer.name
        message.type = layer.type
        if layer.text:
            text_format.Merge(layer.text, message)
        message.bottom.extend(layer.bottoms)
        message.top.extend(layer.tops)
        for param, fields in layer.params.items():
            _fill(getattr(message, param), fields, f"layer {layer.name!r} {param}")
        if layer.blobs:
            blobs[layer.name] = layer.blobs
    if restore.restored:
        notes.append(f"restored {len(restore.restored)} original Caffe layer(s) exactly")
    if manager.fired:
        notes.append("passes: " + ", ".join(f"{k} x{v}" for k, v in sorted(manager.fired.items())))
    notes.extend(input_preprocessing(model))
    return CaffeExport(net, blobs, notes, layers)


def _check_static_inputs(graph: ir.Graph) -> None:
    """Caffe declares every input with a fixed shape; without one, the shape arithmetic of a dynamic
    export (Shape -> Gather -> ...) cannot be folded and every node after it looks unsupported, so this
    is checked first, with the fix in the message."""
    dynamic = [v for v in graph.inputs if v.const_value is None and shape_of(v) is None]
    if not dynamic:
        return
    shown = ", ".join(f"{v.name} [{', '.join(_dims(v, symbolic=True))}]" for v in dynamic)
    fixes = " ".join(f"--input-shape {v.name}={','.join(_dims(v))}" for v in dynamic)
    given = ", ".join(f"{v.name!r}: [{', '.join(_dims(v))}]" for v in dynamic)
    raise ConversionError(
        f"graph {graph.name or 'net'!r}: input(s) without a static shape: {shown}; a Caffe net needs fixed "
        f"input shapes: give them with `{fixes}` on the command line or input_shapes={{{given}}} in the API "
        f"(symbolic dimensions shown as 1 here; any size the model accepts works)")


def _dims(value: ir.Value, *, symbolic: bool = False) -> list[str]:
    """The dimensions of ``value``: symbolic or unknown ones by name (``symbolic``) or as 1."""
    if value.shape is None:
        return ["D", "..."]
    return [str(d) if isinstance(d, int) else (str(d.value or "?") if symbolic else "1") for d in value.shape]


def _check_outputs(graph: ir.Graph) -> None:
    bad = [Unsupported("Output", str(v.name), "a graph output that is a graph input or a constant")
           for v in graph.outputs if v.is_graph_input() or v.const_value is not None]
    if bad:
        raise UnsupportedOpsError("hub -> Caffe", bad, hint="Caffe nets only output computed blobs")


def _fill(message: Any, fields: dict[str, Any], where: str) -> None:
    """Set protobuf fields from plain values: lists extend repeated fields, dicts fill sub-messages
    (lists of dicts add repeated messages), strings name enum values."""
    for key, value in fields.items():
        desc = message.DESCRIPTOR.fields_by_name.get(key)
        if desc is None:
            raise ConversionError(f"{where}: the Caffe schema has no field {key!r}")
        if isinstance(value, dict):
            _fill(getattr(message, key), value, f"{where}.{key}")
        elif isinstance(value, (list, tuple)):
            target = getattr(message, key)
            for item in value:
                if isinstance(item, dict):
                    _fill(target.add(), item, f"{where}.{key}")
                else:
                    target.append(_enum(desc, item))
        else:
            setattr(message, key, _enum(desc, value))


def _enum(desc: Any, value: Any) -> Any:
    if isinstance(value, str) and desc.enum_type is not None:
        return desc.enum_type.values_by_name[value].number
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    return value


def _inplace(layers: Sequence[Layer], inputs: Sequence[str], outputs: Sequence[str]) -> None:
    """Rename blob ``B@L`` to ``B`` (computation in place, as in the original Caffe net) when safe.

    Each version of a blob lives from its write to its last read (graph outputs: to the end). Versions
    sharing one Caffe name must not overlap: with writes ``wa < wb`` the first must be read for the last
    time no later than ``wb`` (a layer may read and overwrite a blob in place)."""
    end = len(layers) + 1
    write: dict[str, int] = {name: -1 for name in inputs}
    last: dict[str, int] = {}
    for i, layer in enumerate(layers):
        for top in layer.tops:
            write.setdefault(top, i)
        for bottom in layer.bottoms:
            last[bottom] = i
    life = {name: (w, end if name in outputs else last.get(name, w)) for name, w in write.items()}
    groups: dict[str, list[tuple[int, int]]] = {}
    renames: dict[str, str] = {}
    for name in sorted(life, key=lambda n: life[n][0]):
        if "@" not in name:
            groups.setdefault(name, []).append(life[name])
    for name in sorted(life, key=lambda n: life[n][0]):
        base = name.rsplit("@", 1)[0]
        if "@" not in name or name in outputs or base not in groups:
            continue
        w, r = life[name]
        if all(rb <= w if wb < w else r <= wb for wb, rb in groups[base]):
            groups[base].append((w, r))
            renames[name] = base
    for layer in layers:
        layer.tops = [renames.get(t, t) for t in layer.tops]
        layer.bottoms = [renames.get(b, b) for b in layer.bottoms]
