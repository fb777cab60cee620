"""What a per-op exporter gets and returns.

Contract::

    @caffe_exporter("Relu")
    def relu(ctx: ExportContext) -> list[Layer]:
        return [ctx.layer("ReLU", [ctx.x(0)], [ctx.y(0)])]

An exporter turns one hub node into Caffe layers (bottoms/tops are blob names = hub value names;
intermediate blobs come from :meth:`ExportContext.tmp`) or raises ``ctx.fail(reason)`` /
``ctx.refuse(layer_type)`` (the dialect lacks a layer); the driver collects all of them before failing.
Registry keys are ``op_type`` for the standard domain and ``domain::op_type`` otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx_ir as ir

from nnbridge.caffe.dialects import Dialect
from nnbridge.hub.nodeview import NodeView
from nnbridge.registry import Registry


@dataclass
class Layer:
    """One Caffe layer, independent of the protobuf module (the driver builds the message)."""

    type: str
    name: str
    bottoms: list[str]
    tops: list[str]
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # e.g. {"scale_param": {"axis": 1}}
    blobs: list[np.ndarray] = field(default_factory=list)
    text: str = ""  # extra fields as protobuf text (a restored layer's original parameters)


class Refusal(Exception):
    """Raised by exporters; ``dialect`` marks 'expressible, but not in this dialect'."""

    def __init__(self, reason: str, *, dialect: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.dialect = dialect


Exporter = Callable[["ExportContext"], Sequence[Layer]]
CAFFE_EXPORTERS: Registry[Exporter] = Registry("hub -> Caffe op exporters")


def caffe_exporter(*keys: str, notes: str = "") -> Callable[[Exporter], Exporter]:
    """Register an exporter for ``op_type`` keys (``domain::op_type`` for non-standard domains)."""
    return CAFFE_EXPORTERS.register(*keys, notes=notes)


def node_key(node: ir.Node) -> str:
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"


@dataclass
class ExportContext(NodeView):
    dialect: Dialect
    names: set[str]  # layer names already taken (shared by the whole export)

    # -- reading the node -----------------------------------------------------------------------
    def x(self, i: int = 0) -> str:
        value = self.input(i)
        if value is None or not value.name:
            raise self.fail(f"input {i} is missing")
        if value.const_value is not None:
            raise self.fail(f"input {i} ({value.name}) is a constant; Caffe layers read blobs only")
        return value.name

    def y(self, i: int = 0) -> str:
        return str(self.node.outputs[i].name)

    # -- producing layers -------------------------------------------------------------------------
    def fail(self, reason: str) -> Refusal:
        return Refusal(reason)

    def refuse(self, layer_type: str, reason: str = "") -> Refusal:
        text = f"needs Caffe layer {layer_type}, which dialect {self.dialect.name!r} lacks"
        return Refusal(text + (f"; {reason}" if reason else ""), dialect=True)

    def require(self, layer_type: str, reason: str = "") -> None:
        if not self.dialect.allows(layer_type):
            raise self.refuse(layer_type, reason)

    def tmp(self, suffix: str) -> str:
        """Name of an intermediate blob (no hub value has it)."""
        return f"{self.name}/{suffix}"

    def layer_name(self, suffix: str | None = None) -> str:
        base = self.name if suffix is None else f"{self.name}/{suffix}"
        candidate, i = base, 0
        while candidate in self.names:
            i += 1
            candidate = f"{base}_{i}"
        self.names.add(candidate)
        return candidate

    def layer(self, layer_type: str, bottoms: Sequence[str], tops: Sequence[str], param: str | None = None,
              fields: dict[str, Any] | None = None, *, blobs: Sequence[np.ndarray] = (),
              suffix: str | None = None) -> Layer:
        self.require(layer_type)
        params = {param: {k: v for k, v in (fields or {}).items() if v is not None}} if param else {}
        blob_arrays = [np.asarray(b, dtype=np.float32, order="C") for b in blobs]  # 0-D stays 0-D
        return Layer(layer_type, self.layer_name(suffix), list(bottoms), list(tops), params, blob_arrays)
