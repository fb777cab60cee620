"""``nnbridge inspect``: what a model holds, layer by layer, without failing on unsupported layers.

Caffe nets are walked layer by layer with the registered importers (so shapes are the ones a conversion
would produce); a layer without importer is listed as unsupported and the layers that depend on it are
shown without shapes. ONNX models are loaded and normalised like ``convert`` does; nodes without a
Caffe exporter are listed as unsupported for ONNX -> Caffe.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx_ir as ir

from nnbridge.errors import NNBridgeError

Shape = tuple[int | str | None, ...]


@dataclass
class Row:
    name: str
    type: str
    outputs: list[str]
    shapes: list[Shape | None]
    params: int = 0
    status: str = ""  # "" (fine), "unsupported", "dropped: ...", "not evaluated: ...", "error: ..."


@dataclass
class Summary:
    source: str
    format: str
    inputs: list[tuple[str, Shape | None]] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    unsupported_what: str = "unsupported"

    @property
    def unsupported(self) -> Counter[str]:
        return Counter(row.type for row in self.rows if row.status == "unsupported")

    @property
    def params(self) -> int:
        return sum(row.params for row in self.rows)

    def text(self) -> str:
        lines = [f"{self.source} ({self.format}): {len(self.rows)} layers/nodes, {self.params:,} parameters"]
        for name, shape in self.inputs:
            lines.append(f"  input {name}: {_fmt(shape)}")
        table = [("name", "type", "outputs", "params", "status")]
        for row in self.rows:
            outs = ", ".join(f"{o} {_fmt(s)}" for o, s in zip(row.outputs, row.shapes, strict=True))
            table.append((row.name, row.type, outs, f"{row.params:,}" if row.params else "", row.status))
        widths = [max(len(r[i]) for r in table) for i in range(4)]
        for r in table:
            lines.append("  " + "  ".join([c.ljust(w) for c, w in zip(r[:4], widths, strict=True)] + [r[4]]).rstrip())
        counts = self.unsupported
        if counts:
            listed = ", ".join(f"{op} x{n}" for op, n in sorted(counts.items()))
            lines.append(f"{self.unsupported_what}: {sum(counts.values())} ({listed})")
        else:
            lines.append(f"{self.unsupported_what}: none")
        return "\n".join(lines)


def _fmt(shape: Shape | None) -> str:
    if shape is None:
        return "?"
    return "x".join("?" if d is None else str(d) for d in shape) or "scalar"


def _shape(value: ir.Value) -> Shape | None:
    if value.shape is None:
        return None
    return tuple(d if isinstance(d, int) else (str(d) if d is not None and str(d) else None) for d in value.shape)


def summarize(path: str | os.PathLike[str], *, weights: str | os.PathLike[str] | None = None,
              input_shapes: Mapping[str, Sequence[int]] | None = None) -> Summary:
    from nnbridge.api import format_of
    from nnbridge.errors import FormatError

    source = os.fspath(path)
    if Path(source).exists() and format_of(source) == "tensorflow":
        return _summarize_tensorflow(source, input_shapes)
    if not Path(source).is_file():
        raise FormatError(source, "no such file")
    if format_of(source) == "onnx":
        return _summarize_onnx(source, input_shapes)
    return _summarize_caffe(source, weights, input_shapes)


class _CountingWeights:
    """Delegates to a real source, or makes constant blobs; counts the elements a layer asked for."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.counted = 0

    def count(self, layer: str) -> int | None:
        return None if self.inner is None else self.inner.count(layer)

    def get(self, layer: str, index: int, shape: tuple[int, ...], kind: str) -> np.ndarray:
        self.counted += int(np.prod(shape, dtype=np.int64))
        if self.inner is not None:
            return np.asarray(self.inner.get(layer, index, shape, kind))
        return np.full(shape, 0.5, dtype=np.float32)


def _summarize_caffe(source: str, weights: Any, input_shapes: Any) -> Summary:
    from nnbridge.caffe.formats.net import load_caffe
    from nnbridge.caffe.importer import CAFFE_IMPORTERS, TRAINING_LAYERS, LayerContext, _load_ops
    from nnbridge.hub.builder import GraphBuilder

    _load_ops()
    net = load_caffe(source, None if weights is None else os.fspath(weights), input_shapes=input_shapes)
    counter = _CountingWeights(net.weights)
    builder = GraphBuilder("inspect")
    blobs: dict[str, ir.Value | None] = {s.name: builder.input(s.name, s.shape) for s in net.inputs}
    summary = Summary(source, "caffe", [(s.name, tuple(s.shape)) for s in net.inputs],
                      unsupported_what="unsupported layers")
    for layer in net.net.layer:
        row = Row(str(layer.name), str(layer.type), [str(t) for t in layer.top], [None] * len(layer.top))
        summary.rows.append(row)
        values: list[ir.Value] | None = None
        missing = [str(b) for b in layer.bottom if blobs.get(str(b)) is None]
        if layer.type in TRAINING_LAYERS:
            row.status = f"dropped: {TRAINING_LAYERS[layer.type]}"
        elif layer.type not in CAFFE_IMPORTERS:
            row.status = "unsupported"
        elif missing:
            row.status = f"not evaluated: needs {', '.join(missing)}"
        else:
            ctx = LayerContext(builder, layer, [blobs[str(b)] for b in layer.bottom],  # type: ignore[misc]
                               counter, source)
            counter.counted = 0
            try:
                importer = CAFFE_IMPORTERS.get(str(layer.type))
                assert importer is not None
                values = list(importer(ctx))
                row.params = counter.counted
            except NNBridgeError as exc:
                row.status = f"error: {' '.join(str(exc).split())}"
        for i, top in enumerate(row.outputs):
            value = values[i] if values is not None and i < len(values) else None
            blobs[top] = value
            row.shapes[i] = None if value is None else _shape(value)
    return summary


def _summarize_tensorflow(source: str, input_shapes: Any) -> Summary:
    """A TensorFlow source, summarised as the hub model the importer makes of it (NHWC ``input_shapes``)."""
    import tempfile

    from nnbridge.onnx.formats import save_onnx
    from nnbridge.tensorflow.importer import import_tf

    with tempfile.TemporaryDirectory(prefix="nnbridge-inspect-") as tmp:
        hub = os.path.join(tmp, "hub.onnx")
        save_onnx(import_tf(source, input_shapes=input_shapes), hub)
        summary = _summarize_onnx(hub, None)
    summary.source, summary.format = source, "tensorflow"
    return summary


def _summarize_onnx(source: str, input_shapes: Any) -> Summary:
    from nnbridge.caffe.export.context import node_key
    from nnbridge.caffe.exporter import export_caffe
    from nnbridge.errors import UnsupportedOpsError
    from nnbridge.onnx.formats import load_onnx

    model = load_onnx(source, input_shapes=input_shapes)
    graph = model.graph
    summary = Summary(source, "onnx", [(str(v.name), _shape(v)) for v in graph.inputs
                                       if v.name not in graph.initializers],
                      unsupported_what="ops the Caffe exporter (bvlc) refuses")
    refused: dict[str, str] = {}
    try:
        export_caffe(model, dialect="bvlc")
    except UnsupportedOpsError as exc:
        refused = {item.node: item.reason for item in exc.items}
    except NNBridgeError as exc:
        summary.unsupported_what += f" (export failed: {' '.join(str(exc).split())})"
    model = load_onnx(source, input_shapes=input_shapes)  # the exporter may have rewritten the graph
    for node in model.graph:
        params = sum(v.const_value.size for v in node.inputs
                     if v is not None and v.const_value is not None and v.is_initializer())
        name = str(node.name or "")
        summary.rows.append(Row(
            name, node_key(node), [str(v.name) for v in node.outputs], [_shape(v) for v in node.outputs],
            int(params), "unsupported" if name in refused else "",
        ))
    return summary
