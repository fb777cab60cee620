"""What a per-op hub -> MXNet exporter gets and returns.

Contract::

    @mxnet_exporter("Relu")
    def relu(ctx: ExportContext) -> None:
        ctx.emit("Activation", [ctx.x(0)], {"act_type": "relu"})

An exporter turns one hub node into MXNet operator nodes. :meth:`ExportContext.emit` appends one node;
the node that produces hub output ``i`` is named exactly like that hub value (``out=i``, the default
for the first output), so MXNet's internal output ``{name}_output`` is the hub value ``name`` and verify
compares them by name. Intermediate nodes get ``{node}/{suffix}`` names. Parameters become variables
(``op == "null"``) named ``{node}_{role}`` (``conv1_weight``, ``bn1_moving_var``), stored as ``arg`` or
``aux`` params. Failures are ``raise ctx.fail(reason)``; the driver collects all of them before failing.

Attribute values are written the way MXNet 1.x writes them: tuples ``"(3, 3)"``, booleans
``"True"``/``"False"``, floats with ``repr`` of the float32 value widened to double (MXNet parses them as
double and narrows back to float32 exactly).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx_ir as ir

from nnbridge.hub.nodeview import NodeView
from nnbridge.hub.passes.graph import const_array
from nnbridge.mxnet.formats.symbol import MxNode
from nnbridge.registry import Registry

#: One input of an MXNet node: (node index, output index).
Entry = tuple[int, int]


class Refusal(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


Exporter = Callable[["ExportContext"], None]
MXNET_EXPORTERS: Registry[Exporter] = Registry("hub -> MXNet op exporters")


def mxnet_exporter(*keys: str, notes: str = "") -> Callable[[Exporter], Exporter]:
    """Register an exporter for ``op_type`` keys (``domain::op_type`` for non-standard domains)."""
    return MXNET_EXPORTERS.register(*keys, notes=notes)


def node_key(node: ir.Node) -> str:
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"


def fmt(value: Any) -> str:
    """An attribute value as MXNet 1.x writes it in symbol JSON."""
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (list, tuple)):
        items = ["None" if v is None else fmt(v) for v in value]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    return str(value)


@dataclass
class SymbolBuilder:
    """The MXNet graph under construction, shared by all exporters of one export."""

    nodes: list[MxNode] = field(default_factory=list)
    arg_params: dict[str, np.ndarray] = field(default_factory=dict)
    aux_params: dict[str, np.ndarray] = field(default_factory=dict)
    values: dict[str, Entry] = field(default_factory=dict)  # hub value name -> MXNet entry
    names: set[str] = field(default_factory=set)
    reserved: set[str] = field(default_factory=set)  # hub value names: only their own node may take them
    _params_by_id: dict[tuple[int, str], Entry] = field(default_factory=dict)

    def unique(self, base: str, *, hub_value: bool = False) -> str:
        """``base`` or ``base_1``, ``base_2``...: a name no node has (nor, unless it names
        ``hub_value``, any hub value)."""
        candidate, i = base, 0
        while candidate in self.names or (not hub_value and candidate in self.reserved):
            i += 1
            candidate = f"{base}_{i}"
        self.names.add(candidate)
        return candidate

    def add(self, op: str, name: str, inputs: Sequence[Entry] = (), attrs: dict[str, Any] | None = None) -> Entry:
        text = {k: fmt(v) for k, v in (attrs or {}).items() if v is not None}
        self.nodes.append(MxNode(op, name, text, list(inputs)))
        return (len(self.nodes) - 1, 0)

    def variable(self, name: str) -> Entry:
        return self.add("null", self.unique(name))

    def param(self, name: str, array: np.ndarray, *, aux: bool = False) -> Entry:
        """A parameter variable holding ``array`` (float32 unless integral); the same array object used
        twice in one role shares one variable."""
        key = (id(array), "aux" if aux else "arg")
        if key in self._params_by_id:
            return self._params_by_id[key]
        data = np.asarray(array)
        if data.ndim == 0:  # an NDArray file cannot hold a 0-D array
            data = data.reshape(1)
        entry = self.variable(name)
        # broadcast_* and friends cannot infer the shape of an operand variable: state it, as mx.sym.var(shape=)
        self.nodes[entry[0]].attrs["__shape__"] = fmt(tuple(data.shape))
        if data.dtype != np.float32 and data.dtype.kind == "f":
            data = data.astype(np.float32)
        (self.aux_params if aux else self.arg_params)[self.nodes[entry[0]].name] = np.ascontiguousarray(data)
        self._params_by_id[key] = entry
        return entry


@dataclass
class ExportContext(NodeView):
    builder: SymbolBuilder

    # -- reading the node -----------------------------------------------------------------------
    def x(self, i: int = 0) -> Entry:
        """The MXNet entry computing hub input ``i`` (a constant becomes an arg param)."""
        value = self.input(i)
        if value is None or not value.name:
            raise self.fail(f"input {i} is missing")
        if value.name in self.builder.values:
            return self.builder.values[value.name]
        array = const_array(value)
        if array is None:
            raise self.fail(f"input {i} ({value.name}) is not computed by any exported node")
        return self.param(f"{self.name}_const{i}", array)

    def y(self, i: int = 0) -> str:
        return str(self.node.outputs[i].name)

    # -- producing nodes -------------------------------------------------------------------------
    def fail(self, reason: str) -> Refusal:
        return Refusal(reason)

    def param(self, role: str, array: np.ndarray, *, aux: bool = False) -> Entry:
        return self.builder.param(role if role.startswith(self.name) else f"{self.name}_{role}", array, aux=aux)

    def emit(self, op: str, inputs: Sequence[Entry], attrs: dict[str, Any] | None = None, *,
             out: int | None = 0, suffix: str | None = None) -> Entry:
        """Append one MXNet node. With ``out=i`` it is named after hub output ``i`` and computes it;
        with ``out=None`` it is an intermediate node named ``{node}/{suffix}``."""
        if out is None:
            name = self.builder.unique(f"{self.name}/{suffix or op}")
        else:
            name = self.builder.unique(self.y(out), hub_value=True)
        entry = self.builder.add(op, name, inputs, attrs)
        if out is not None:
            self.builder.values[self.y(out)] = entry
        return entry

    def tmp(self, op: str, inputs: Sequence[Entry], attrs: dict[str, Any] | None = None,
            suffix: str | None = None) -> Entry:
        return self.emit(op, inputs, attrs, out=None, suffix=suffix)


def spatial_pads(ctx: ExportContext, rank: int) -> tuple[list[int], list[int]]:
    """(begin, end) pads of a Conv/Pool node over its ``rank - 2`` spatial axes (auto_pad refused)."""
    auto = ctx.attr("auto_pad", "NOTSET")
    n = rank - 2
    if auto == "VALID":
        return [0] * n, [0] * n
    if auto != "NOTSET":
        raise ctx.fail(f"auto_pad {auto} is not exported; give explicit pads")
    pads = [int(p) for p in ctx.attr("pads", [0] * (2 * n))]
    return pads[:n], pads[n:]


def pad_width(begin: Sequence[int], end: Sequence[int]) -> tuple[int, ...]:
    """MXNet ``Pad`` ``pad_width`` for an (N, C, spatial...) tensor: (b0, e0, b1, e1, ...)."""
    widths = [0, 0, 0, 0]
    for b, e in zip(begin, end, strict=True):
        widths += [int(b), int(e)]
    return tuple(widths)
