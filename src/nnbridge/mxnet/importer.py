"""MXNet -> hub: walk a symbol graph (:class:`nnbridge.mxnet.formats.symbol.MxGraph`) and call one registered
importer per operator node.

Contract of an operator importer (see :mod:`nnbridge.mxnet.ops`)::

    @mxnet_op("Activation")
    def activation(ctx: NodeContext) -> list[ir.Value]:
        ...
        return [one value per visible output]

Inputs: variables (``op == "null"``) found in ``params`` become initializers named exactly like the variable
(``arg:``/``aux:`` prefixes of Module checkpoints are stripped), created when an importer first asks for them
(:meth:`NodeContext.value`); the other variables are data inputs and need a shape in ``input_shapes``.
Label variables of loss heads (``softmax_label`` of SoftmaxOutput...) are not needed at inference: without a
shape they are left out.

Naming (verify maps MXNet's ``get_internals()`` names onto hub names with :func:`hub_name`):

- graph inputs and parameters keep their variable names (``data``, ``conv0_weight``);
- an operator node ``N`` with one visible output writes value ``N`` (MXNet: ``N_output``); with several
  visible outputs it writes ``N:0``, ``N:1``... (MXNet: ``N_output0``, ``N_output1``...);
- hub nodes are named ``N`` or ``N/suffix`` and carry ``metadata_props["mxnet.op"]`` and ``["mxnet.node"]``.

Omitted attributes take MXNet 1.9.1's defaults (the ``DMLC_DECLARE_FIELD ... set_default`` of each operator's
parameter struct); they are spelled out in each importer through :class:`Attrs`. The whole graph is scanned
for operators without an importer before anything is built; all of them are reported in one
:class:`~nnbridge.errors.UnsupportedOpsError`.
"""

from __future__ import annotations

import ast
import builtins
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx_ir as ir

from nnbridge.errors import ConversionError, FormatError, Unsupported, UnsupportedOpsError
from nnbridge.hub.builder import GraphBuilder, static_shape
from nnbridge.registry import Registry

logger = logging.getLogger(__name__)

OpImporter = Callable[["NodeContext"], Sequence[ir.Value]]
MXNET_IMPORTERS: Registry[OpImporter] = Registry("MXNet -> hub operator importers")

#: Loss heads whose label input (index 1) is ignored at inference.
LABEL_INPUTS: dict[str, int] = {
    "SoftmaxOutput": 1, "Softmax": 1, "LinearRegressionOutput": 1, "LogisticRegressionOutput": 1,
    "MAERegressionOutput": 1, "SVMOutput": 1,
}


def mxnet_op(*op_names: str, notes: str = "") -> Callable[[OpImporter], OpImporter]:
    """Register an importer for one or more MXNet operator names (aliases included)."""
    return MXNET_IMPORTERS.register(*op_names, notes=notes)


def hub_name(mxnet_output: str) -> str:
    """The hub value name of an MXNet internal output name: ``conv0_output`` -> ``conv0``,
    ``split0_output1`` -> ``split0:1``; variable names (``data``, ``conv0_weight``) are unchanged."""
    match = re.fullmatch(r"(.*)_output(\d*)", mxnet_output)
    if match is None:
        return mxnet_output
    return match.group(1) if match.group(2) == "" else f"{match.group(1)}:{match.group(2)}"


# -- attributes ------------------------------------------------------------------------------------
_MISSING = object()


class Attrs:
    """An MXNet node's attributes (strings such as ``"(3, 3)"``, ``"True"``, ``"None"``) with typed getters.

    Each getter takes MXNet's default; ``required=True`` (default omitted) makes a missing attribute an error.
    """

    def __init__(self, raw: Mapping[str, str], where: str) -> None:
        self.raw = {str(k): str(v) for k, v in raw.items()}
        self.where = where

    def _get(self, name: builtins.str, default: Any) -> builtins.str | object:
        if name in self.raw:
            return self.raw[name]
        if default is _MISSING:
            raise ConversionError(f"{self.where}: required attribute {name!r} is missing")
        return _MISSING

    def has(self, name: builtins.str) -> builtins.bool:
        return name in self.raw

    def _literal(self, name: builtins.str, text: str) -> Any:
        cleaned = text.strip()
        if cleaned.startswith("[") or cleaned.startswith("("):
            cleaned = cleaned.replace("L", "")  # Python 2 longs in old files: (3L, 3L)
        try:
            return ast.literal_eval(cleaned)
        except (ValueError, SyntaxError) as exc:
            raise ConversionError(f"{self.where}: attribute {name}={text!r} is not a valid value") from exc

    def str(self, name: builtins.str, default: Any = _MISSING) -> builtins.str:
        text = self._get(name, default)
        return default if text is _MISSING else str(text)

    def bool(self, name: builtins.str, default: Any = _MISSING) -> builtins.bool:
        text = self._get(name, default)
        if text is _MISSING:
            return bool(default)
        low = str(text).strip().lower()
        if low in ("true", "1"):
            return True
        if low in ("false", "0"):
            return False
        raise ConversionError(f"{self.where}: attribute {name}={text!r} is not a boolean")

    def float(self, name: builtins.str, default: Any = _MISSING) -> builtins.float:
        text = self._get(name, default)
        if text is _MISSING:
            return float(default)
        try:
            return float(str(text))
        except ValueError as exc:
            raise ConversionError(f"{self.where}: attribute {name}={text!r} is not a number") from exc

    def int(self, name: builtins.str, default: Any = _MISSING) -> builtins.int:
        value = self.float(name, default)
        if value != int(value):
            raise ConversionError(f"{self.where}: attribute {name}={self.raw.get(name)!r} is not an integer")
        return int(value)

    def opt_int(self, name: builtins.str, default: builtins.int | None = None) -> builtins.int | None:
        text = self.raw.get(name)
        if text is None or text.strip() == "None":
            return default
        return self.int(name)

    def opt_float(self, name: builtins.str, default: builtins.float | None = None) -> builtins.float | None:
        text = self.raw.get(name)
        if text is None or text.strip() == "None":
            return default
        return self.float(name)

    def ints(self, name: builtins.str, default: Any = _MISSING) -> tuple[builtins.int, ...]:
        """A shape/tuple attribute; ``None`` entries are an error (see :meth:`opt_ints`)."""
        values = self.opt_ints(name, default)
        if any(v is None for v in values):
            raise ConversionError(f"{self.where}: attribute {name}={self.raw.get(name)!r} has None entries")
        return tuple(int(v) for v in values if v is not None)

    def opt_ints(self, name: builtins.str, default: Any = _MISSING) -> tuple[builtins.int | None, ...]:
        text = self._get(name, default)
        if text is _MISSING:
            return tuple(default) if default is not None else ()
        value = self._literal(name, str(text))
        if value is None:
            return ()
        if isinstance(value, (int, float)):
            value = (value,)
        if not isinstance(value, (tuple, list)) or not all(v is None or isinstance(v, (int, float)) for v in value):
            raise ConversionError(f"{self.where}: attribute {name}={text!r} is not a tuple of integers")
        return tuple(None if v is None else int(v) for v in value)

    def floats(self, name: builtins.str, default: Any = _MISSING) -> tuple[builtins.float, ...]:
        text = self._get(name, default)
        if text is _MISSING:
            return tuple(float(v) for v in default)
        value = self._literal(name, str(text))
        if isinstance(value, (int, float)):
            value = (value,)
        if not isinstance(value, (tuple, list)) or not all(isinstance(v, (int, float)) for v in value):
            raise ConversionError(f"{self.where}: attribute {name}={text!r} is not a tuple of numbers")
        return tuple(float(v) for v in value)


# -- the per-node context ----------------------------------------------------------------------------
@dataclass
class Source:
    """One input of a node: a value already in the graph, a parameter array, or an unused label (None)."""

    value: ir.Value | None = None
    param: str | None = None
    array: np.ndarray | None = None


@dataclass
class NodeContext:
    """Everything an operator importer needs; helpers keep the naming conventions in one place."""

    builder: GraphBuilder
    op_type: str  # the MXNet operator name
    name: str
    attrs: Attrs
    sources: list[Source]
    param_values: dict[str, ir.Value]
    source: str | None = None
    notes: list[str] = field(default_factory=list)

    # inputs
    @property
    def num_inputs(self) -> int:
        return len(self.sources)

    def value(self, index: int = 0) -> ir.Value:
        """Input ``index`` as a hub value (a parameter becomes its initializer on first use)."""
        if index >= len(self.sources):
            raise self.fail(f"needs at least {index + 1} inputs, has {len(self.sources)}")
        src = self.sources[index]
        if src.value is not None:
            return src.value
        if src.param is None or src.array is None:
            raise self.fail(f"input {index} is an unused label input")
        if src.param not in self.param_values:
            self.param_values[src.param] = self.builder.const(src.param, np.ascontiguousarray(src.array))
        return self.param_values[src.param]

    def is_param(self, index: int) -> bool:
        return index < len(self.sources) and self.sources[index].array is not None

    def array(self, index: int, shape: Sequence[int] | None = None) -> np.ndarray:
        """Input ``index`` as a parameter array, optionally checked against ``shape``."""
        src = self.sources[index] if index < len(self.sources) else None
        if src is None or src.array is None:
            raise self.fail(f"input {index} must be a parameter (a variable found in the params)")
        if shape is not None and tuple(src.array.shape) != tuple(int(d) for d in shape):
            raise FormatError(self.source, f"node {self.name!r} ({self.op_type}): parameter {src.param!r} has shape "
                              f"{tuple(src.array.shape)}, expected {tuple(int(d) for d in shape)}",
                              hint="the params file does not match the symbol")
        return src.array

    def check_param(self, index: int, shape: Sequence[int]) -> ir.Value:
        """Input ``index``; if it is a parameter its shape must be ``shape``."""
        if self.is_param(index):
            self.array(index, shape)
        elif tuple(self.in_shape(index)) != tuple(shape):
            raise self.fail(f"input {index} has shape {self.in_shape(index)}, expected {tuple(shape)}")
        return self.value(index)

    def in_shape(self, index: int = 0) -> tuple[int, ...]:
        src = self.sources[index]
        if src.array is not None:
            return tuple(int(d) for d in src.array.shape)
        return static_shape(self.value(index))

    # errors
    def fail(self, message: str, hint: str | None = None) -> ConversionError:
        """Build (not raise) an error naming the file and node: ``raise ctx.fail("...")``."""
        text = f"{self.source or '<symbol>'}: node {self.name!r} ({self.op_type}): {message}"
        if hint:
            text += f" ({hint})"
        return ConversionError(text)

    # building
    def const(self, suffix: str, array: np.ndarray) -> ir.Value:
        return self.builder.const(f"{self.name}.{suffix}", array)

    def f32(self, suffix: str, value: float | Sequence[float] | np.ndarray) -> ir.Value:
        return self.const(suffix, np.asarray(value, dtype=np.float32))

    def int64s(self, suffix: str, values: Sequence[int]) -> ir.Value:
        return self.builder.int64s(f"{self.name}.{suffix}", values)

    def op(self, op_type: str, inputs: Sequence[ir.Value | None], attrs: Mapping[str, Any] | None = None, *,
           suffix: str | None = None, outputs: int = 1, domain: str = "") -> list[ir.Value]:
        name = self.name if suffix is None else f"{self.name}/{suffix}"
        return self.builder.op(op_type, inputs, attrs, name=name, outputs=outputs, domain=domain,
                               metadata={"mxnet.op": self.op_type, "mxnet.node": self.name,
                                         "mxnet.attrs": repr(sorted(self.attrs.raw.items()))})

    def op1(self, op_type: str, inputs: Sequence[ir.Value | None], attrs: Mapping[str, Any] | None = None, *,
            suffix: str | None = None, domain: str = "") -> ir.Value:
        return self.op(op_type, inputs, attrs, suffix=suffix, domain=domain)[0]


# -- the driver ----------------------------------------------------------------------------------------
def _load_ops() -> None:
    """Import every module of :mod:`nnbridge.mxnet.ops` so that all importers are registered."""
    import importlib
    import pkgutil

    import nnbridge.mxnet.ops as ops

    for info in pkgutil.iter_modules(ops.__path__):
        importlib.import_module(f"{ops.__name__}.{info.name}")


def _entry(ref: Any) -> tuple[int, int]:
    """(node id, output index) of an input/head entry (a list ``[id, index, version]`` or an object)."""
    if hasattr(ref, "node"):
        return int(ref.node), int(getattr(ref, "index", 0))
    return int(ref[0]), int(ref[1]) if len(ref) > 1 else 0


def _attrs_of(node: Any) -> Mapping[str, str]:
    return getattr(node, "attrs", None) or {}


def scan_unsupported(nodes: Sequence[Any], source: str | None) -> None:
    """Raise one error listing every operator node without an importer."""
    _load_ops()
    missing = [Unsupported(str(n.op), str(n.name)) for n in nodes if n.op != "null" and n.op not in MXNET_IMPORTERS]
    if missing:
        raise UnsupportedOpsError(source or "<symbol>", missing, hint="see `nnbridge ops` for the supported operators")


def strip_prefix(name: str) -> str:
    return name.split(":", 1)[1] if name.startswith(("arg:", "aux:")) else name


def import_mxnet(graph: Any, params: Mapping[str, np.ndarray], input_shapes: Mapping[str, Sequence[int]], *,
                 source: str | None = None, name: str = "mxnet_net") -> ir.Model:
    """Convert an MXNet symbol graph with its parameters into a hub model (see the module docstring)."""
    nodes = list(graph.nodes)
    scan_unsupported(nodes, source)
    arrays = {strip_prefix(str(k)): v for k, v in params.items()}
    builder = GraphBuilder(name)
    builder.reserve([str(n.name) for n in nodes if n.op != "null"])
    consumers: dict[int, list[tuple[Any, int]]] = {}
    for node in nodes:
        for position, ref in enumerate(node.inputs):
            consumers.setdefault(_entry(ref)[0], []).append((node, position))
    unknown = sorted(set(input_shapes) - {str(n.name) for n in nodes if n.op == "null"})
    if unknown:
        raise ConversionError(f"{source or '<symbol>'}: input shapes given for {unknown}, which are not "
                              "variables of the symbol")

    outputs: dict[int, list[ir.Value]] = {}
    labels: set[int] = set()
    param_values: dict[str, ir.Value] = {}
    notes: list[str] = []
    for node_id, node in enumerate(nodes):
        node_name = str(node.name)
        if node.op != "null":
            continue
        if node_name in arrays:
            continue
        if node_name in input_shapes:
            outputs[node_id] = [builder.input(node_name, [int(d) for d in input_shapes[node_name]])]
            continue
        uses = consumers.get(node_id, [])
        if uses and all(LABEL_INPUTS.get(str(c.op)) == pos for c, pos in uses):
            labels.add(node_id)
            notes.append(f"label input {node_name!r} is not needed for inference and was left out")
            continue
        if not uses:
            continue
        raise ConversionError(f"{source or '<symbol>'}: variable {node_name!r} is neither a parameter nor a given "
                              f"input (give its shape, input_shapes={{{node_name!r}: (N, C, H, W)}}, or add it to "
                              "the params)")

    for node_id, node in enumerate(nodes):
        if node.op == "null":
            continue
        node_name = str(node.name)
        sources: list[Source] = []
        for ref in node.inputs:
            src_id, index = _entry(ref)
            src_node = nodes[src_id]
            if src_node.op == "null":
                src_name = str(src_node.name)
                if src_id in labels:
                    sources.append(Source())
                elif src_name in arrays:
                    sources.append(Source(param=src_name, array=np.asarray(arrays[src_name])))
                else:
                    sources.append(Source(value=outputs[src_id][0]))
                continue
            produced = outputs.get(src_id)
            if produced is not None and index >= len(produced):
                raise ConversionError(f"{source or '<symbol>'}: node {node_name!r} ({node.op}) reads output {index} "
                                      f"of node {src_node.name!r} ({src_node.op}), which is not supported at inference")
            if produced is None:
                raise FormatError(source, f"node {node_name!r} ({node.op}) reads output {index} of node "
                                  f"{src_node.name!r}, which does not exist (or comes later)",
                                  hint="the symbol file is inconsistent")
            sources.append(Source(value=produced[index]))
        ctx = NodeContext(builder, str(node.op), node_name, Attrs(_attrs_of(node), f"{source or '<symbol>'}: node "
                          f"{node_name!r} ({node.op})"), sources, param_values, source, notes)
        importer = MXNET_IMPORTERS.get(str(node.op))
        assert importer is not None  # scan_unsupported checked
        values = list(importer(ctx))
        final: list[ir.Value] = []
        for i, value in enumerate(values):
            wanted = node_name if len(values) == 1 else f"{node_name}:{i}"
            taken = value.producer() is None or any(value is v for vs in outputs.values() for v in vs)
            if taken or value.name in param_values or (value.name or "").startswith(node_name + "."):
                value = builder.op1("Identity", [value], name=f"{node_name}/out{i}")
            builder.claim(value, wanted)
            final.append(value)
        outputs[node_id] = final
    for ref in graph.heads:
        head_id, index = _entry(ref)
        if nodes[head_id].op == "null":
            raise ConversionError(f"{source or '<symbol>'}: output {nodes[head_id].name!r} is a variable")
        if index >= len(outputs[head_id]):
            raise ConversionError(f"{source or '<symbol>'}: output {index} of node {nodes[head_id].name!r} "
                                  f"({nodes[head_id].op}) is not supported at inference")
        builder.output(outputs[head_id][index])
    for note in notes:
        logger.info(note)
    meta = {"nnbridge.source_format": "mxnet"}
    if notes:
        meta["nnbridge.notes"] = "\n".join(notes)
    return builder.model(meta)
