"""Hub -> MXNet 1.x: symbol JSON + ``.params`` (Module-checkpoint style), exported one node at a time.

1. A clone of the model (shared weight tensors) goes through constant folding
   (:class:`~nnbridge.hub.passes.FoldConstants`), so shape subgraphs become constants, and loses the
   nodes no graph output depends on (Gluon's ``SymbolBlock`` refuses parameters its graph does not
   use). Nothing else is rewritten: Identity/Dropout survive as ``_copy`` nodes so that every hub value
   keeps an MXNet node of the same name.
2. Every node goes to its registered exporter (:mod:`nnbridge.mxnet.export`); all failures are
   collected and raised at once as one :class:`~nnbridge.errors.UnsupportedOpsError` (nodes reading
   the output of a failed node are skipped, not reported: they are not at fault).
3. Graph inputs become variables with their hub names; parameters become variables named
   ``{node}_{role}`` and are returned in ``arg_params`` / ``aux_params`` (BatchNorm moving statistics
   are auxiliary states, as MXNet requires); the heads are the graph outputs, in order.

:func:`save_mxnet` writes ``prefix-symbol.json`` and ``prefix-EPOCH.params`` (``arg:``/``aux:``
prefixed names, loadable by ``mx.model.load_checkpoint`` and ``gluon.SymbolBlock.imports``); both files
appear together or not at all.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx_ir as ir

from nnbridge.errors import ConversionError, Unsupported, UnsupportedOpsError
from nnbridge.hub.passes import FoldConstants, PassManager, degenerate_shapes
from nnbridge.hub.passes.affine import input_preprocessing
from nnbridge.hub.passes.graph import remove_unused, shape_of
from nnbridge.mxnet.export.context import (
    MXNET_EXPORTERS,
    ExportContext,
    Refusal,
    SymbolBuilder,
    node_key,
)
from nnbridge.mxnet.formats.symbol import MxGraph, make_graph, symbol_to_dict

logger = logging.getLogger(__name__)

@dataclass
class MxExport:
    graph: MxGraph
    arg_params: dict[str, np.ndarray]
    aux_params: dict[str, np.ndarray]
    notes: list[str] = field(default_factory=list)
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def symbol_json(self) -> dict[str, Any]:
        """The symbol as the dict MXNet 1.9.1 would write (``Symbol.tojson()``)."""
        return symbol_to_dict(self.graph)


def _load_exporters() -> None:
    import nnbridge.mxnet.export as package

    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{info.name}")


def export_nodes(model: ir.Model) -> SymbolBuilder:
    """Run the exporters on an already lowered model; raise one error listing every failure."""
    _load_exporters()
    builder = SymbolBuilder()
    graph = model.graph
    builder.reserved.update(str(v.name) for v in graph.inputs)
    builder.reserved.update(str(v.name) for node in graph for v in node.outputs)
    for value in graph.inputs:
        if value.const_value is not None:
            continue
        builder.values[str(value.name)] = builder.add("null", builder.unique(str(value.name), hub_value=True))
    missing: list[Unsupported] = []
    blocked: set[str] = set()  # outputs of failed nodes: their readers are not reported again
    for node in graph:
        key = node_key(node)
        ctx = ExportContext(node, builder)
        if any(v is not None and v.name in blocked for v in node.inputs):
            blocked.update(str(v.name) for v in node.outputs)
            continue
        exporter = MXNET_EXPORTERS.get(key)
        try:
            if exporter is None:
                raise Refusal("no MXNet exporter")
            exporter(ctx)
        except Refusal as refusal:
            missing.append(Unsupported(key, ctx.name, refusal.reason))
            blocked.update(str(v.name) for v in node.outputs)
    if missing:
        raise UnsupportedOpsError("hub -> MXNet", missing)
    return builder


def export_mxnet(model: ir.Model) -> MxExport:
    """Export a hub model to an MXNet symbol + arg/aux params (see the module docstring)."""
    graph = model.graph
    dynamic = [str(v.name) for v in graph.inputs if v.const_value is None and shape_of(v) is None]
    if dynamic:
        raise ConversionError(f"graph {graph.name or 'net'!r}: input(s) {dynamic} have no static shape; "
                              "give them (--input-shape name=1,3,224,224 or input_shapes= in the API)")
    work = model.clone()
    manager = PassManager([FoldConstants(), *degenerate_shapes()])
    manager.run(work)
    remove_unused(work.graph)  # e.g. a Caffe Crop's reference branch: MXNet would keep unused params
    bad = [Unsupported("Output", str(v.name), "a graph output that is a graph input or a constant")
           for v in work.graph.outputs if v.is_graph_input() or v.const_value is not None]
    if bad:
        raise UnsupportedOpsError("hub -> MXNet", bad, hint="MXNet symbols only output computed values")
    builder = export_nodes(work)
    heads = [builder.values[str(v.name)] for v in work.graph.outputs]
    shapes = {str(v.name): shape_of(v) or () for v in work.graph.inputs if v.const_value is None}
    notes = []
    if manager.fired:
        notes.append("passes: " + ", ".join(f"{k} x{v}" for k, v in sorted(manager.fired.items())))
    notes.extend(input_preprocessing(model))
    return MxExport(make_graph(builder.nodes, heads), builder.arg_params, builder.aux_params, notes, shapes)


def save_mxnet(export: MxExport, prefix: str | Path, epoch: int = 0) -> tuple[Path, Path]:
    """Write ``prefix-symbol.json`` and ``prefix-%04d.params`` (``arg:``/``aux:`` names) atomically:
    both files appear together or not at all."""
    from nnbridge.mxnet.formats.checkpoint import save_checkpoint

    symbol_path, params_path = save_checkpoint(prefix, epoch, export.graph, export.arg_params, export.aux_params)
    return Path(symbol_path), Path(params_path)
