"""Caffe -> hub: walk a (V2, phase-filtered) NetParameter and call one registered importer per layer.

Contract of a layer importer (see :mod:`nnbridge.caffe.ops`)::

    @caffe_layer("ReLU")
    def relu(ctx: LayerContext) -> list[ir.Value]:
        ...
        return [output_value_for_each_top]

Naming (the verify step depends on it):
- graph inputs are named after the input blobs;
- the *final* value written to a Caffe blob is named exactly like the blob (what ``net.blobs[name]``
  holds after a forward pass); earlier versions of an in-place blob are named ``"{blob}@{layer}"``,
  where ``layer`` is the layer that wrote that version;
- nodes are named after the layer (``"{layer}"`` or ``"{layer}/{suffix}"`` for multi-node expansions) and
  carry ``metadata_props["caffe.layer"]``; initializers are named ``"{layer}.{kind}"``.

The whole net is scanned for unsupported layer types before anything is built, and all of them are
reported in one :class:`~nnbridge.errors.UnsupportedOpsError`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

import numpy as np
import onnx_ir as ir

from nnbridge.errors import ConversionError, FormatError, Unsupported, UnsupportedOpsError
from nnbridge.hub.builder import GraphBuilder, static_shape
from nnbridge.registry import Registry

logger = logging.getLogger(__name__)

LayerImporter = Callable[["LayerContext"], Sequence[ir.Value]]
CAFFE_IMPORTERS: Registry[LayerImporter] = Registry("Caffe -> hub layer importers")

#: Layer types that only matter for training (data sources, losses, metrics): dropped with a note.
TRAINING_LAYERS: dict[str, str] = {}


def caffe_layer(*layer_types: str, notes: str = "") -> Callable[[LayerImporter], LayerImporter]:
    """Register an importer for one or more Caffe layer type names."""
    return CAFFE_IMPORTERS.register(*layer_types, notes=notes)


def training_layer(*layer_types: str, note: str) -> None:
    """Declare layer types that are recognised and dropped for inference."""
    for layer_type in layer_types:
        if layer_type in TRAINING_LAYERS:
            raise ValueError(f"training layer {layer_type!r} declared twice")
        TRAINING_LAYERS[layer_type] = note


class WeightSource(Protocol):
    """Where a layer's parameter blobs come from (a caffemodel, random weights, a dict...)."""

    def get(self, layer: str, index: int, shape: tuple[int, ...], kind: str) -> np.ndarray:
        """Blob ``index`` of ``layer`` reshaped to ``shape`` (float32); raise FormatError if impossible."""
        ...

    def count(self, layer: str) -> int | None:
        """How many blobs the source has for ``layer`` (None when the source makes them up)."""
        ...


@dataclass
class LayerContext:
    """Everything a layer importer needs; helpers keep the naming conventions in one place."""

    builder: GraphBuilder
    layer: Any  # caffe_pb2.LayerParameter
    inputs: list[ir.Value]
    weights: WeightSource
    source: str | None = None  # model file name, for messages
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.layer.name)

    @property
    def type(self) -> str:
        return str(self.layer.type)

    @cached_property
    def provenance(self) -> dict[str, str]:
        """Node metadata that lets the Caffe exporter re-emit this layer as it was
        (:mod:`nnbridge.caffe.export.restore`): the layer's text without name, type and blobs, and the hub
        names of its bottoms."""
        from google.protobuf import text_format

        clean = type(self.layer)()
        clean.CopyFrom(self.layer)
        for name in ("blobs", "name", "type"):
            clean.ClearField(name)
        return {"caffe.param": text_format.MessageToString(clean, as_one_line=True),
                "caffe.bottoms": json.dumps([str(v.name) for v in self.inputs])}

    def in_shape(self, index: int = 0) -> tuple[int, ...]:
        return static_shape(self.inputs[index])

    def fail(self, message: str, hint: str | None = None) -> ConversionError:
        """Build (not raise) an error naming the file and layer: ``raise ctx.fail("...")``."""
        text = f"{self.source or '<net>'}: layer {self.name!r} ({self.type}): {message}"
        if hint:
            text += f" ({hint})"
        return ConversionError(text)

    def blob_array(self, index: int, shape: Sequence[int], kind: str) -> np.ndarray:
        return self.weights.get(self.name, index, tuple(int(d) for d in shape), kind)

    def blob(self, index: int, shape: Sequence[int], kind: str, *, reshape: Sequence[int] | None = None) -> ir.Value:
        """Blob ``index`` as an initializer named ``{layer}.{kind}``, optionally viewed with another shape."""
        array = self.blob_array(index, shape, kind)
        if reshape is not None:
            array = array.reshape(tuple(reshape))
        return self.builder.const(f"{self.name}.{kind}", array)

    def const(self, suffix: str, array: np.ndarray) -> ir.Value:
        return self.builder.const(f"{self.name}.{suffix}", array)

    def int64s(self, suffix: str, values: Sequence[int]) -> ir.Value:
        return self.builder.int64s(f"{self.name}.{suffix}", values)

    def op(
        self,
        op_type: str,
        inputs: Sequence[ir.Value | None],
        attrs: Mapping[str, Any] | None = None,
        *,
        suffix: str | None = None,
        outputs: int = 1,
        domain: str = "",
    ) -> list[ir.Value]:
        name = self.name if suffix is None else f"{self.name}/{suffix}"
        return self.builder.op(
            op_type, inputs, attrs, name=name, outputs=outputs, domain=domain,
            metadata={"caffe.layer": self.name, "caffe.type": self.type, **self.provenance},
        )

    def op1(self, op_type: str, inputs: Sequence[ir.Value | None], attrs: Mapping[str, Any] | None = None,
            *, suffix: str | None = None, domain: str = "") -> ir.Value:
        return self.op(op_type, inputs, attrs, suffix=suffix, domain=domain)[0]


def _load_ops() -> None:
    """Import every module of :mod:`nnbridge.caffe.ops` so that all importers are registered."""
    import importlib
    import pkgutil

    import nnbridge.caffe.ops as ops

    for info in pkgutil.iter_modules(ops.__path__):
        importlib.import_module(f"{ops.__name__}.{info.name}")


def scan_unsupported(layers: Sequence[Any], source: str | None) -> None:
    """Raise one error listing every layer whose type has no importer (Python layers included)."""
    _load_ops()
    missing: list[Unsupported] = []
    for layer in layers:
        if layer.type in CAFFE_IMPORTERS or layer.type in TRAINING_LAYERS:
            continue
        reason = ""
        if layer.type == "Python":
            param = layer.python_param
            reason = (f"custom Python layer {param.module}.{param.layer}; its code is never imported, "
                      "replace it or implement it as a custom op")
        missing.append(Unsupported(layer.type, layer.name, reason))
    if missing:
        raise UnsupportedOpsError(
            f"{source or '<net>'}", missing,
            hint="see `nnbridge ops` for the supported layers",
        )


@dataclass
class InputSpec:
    name: str
    shape: tuple[int, ...]


def import_layers(
    layers: Sequence[Any],
    inputs: Sequence[InputSpec],
    weights: WeightSource,
    *,
    name: str = "caffe_net",
    source: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> ir.Model:
    """Convert phase-filtered V2 layers (input layers already turned into ``inputs``) into a hub model."""
    scan_unsupported(layers, source)
    builder = GraphBuilder(name)
    blobs: dict[str, ir.Value] = {spec.name: builder.input(spec.name, spec.shape) for spec in inputs}

    last_writer: dict[str, int] = {}
    for i, layer in enumerate(layers):
        for top in layer.top:
            last_writer[str(top)] = i
    builder.reserve([top for top in last_writer])
    builder.reserve([f"{top}@{layer.name}" for i, layer in enumerate(layers) for top in layer.top
                     if last_writer[str(top)] != i])
    available: dict[str, None] = dict.fromkeys(blobs)
    notes: list[str] = []

    dropped: dict[str, Any] = {}  # blob -> the dropped training layer that produced it
    for i, layer in enumerate(layers):
        if layer.type in TRAINING_LAYERS:
            notes.append(f"dropped {layer.type} layer {layer.name!r}: {TRAINING_LAYERS[layer.type]}")
            dropped.update((str(top), layer) for top in layer.top)
            continue  # what a loss or metric read stays a net output
        bottoms: list[ir.Value] = []
        for bottom in layer.bottom:
            if str(bottom) not in blobs and str(bottom) in dropped:
                origin = dropped[str(bottom)]
                raise FormatError(source, f"layer {layer.name!r} ({layer.type}) reads blob {bottom!r} from the "
                                  f"{origin.type} layer {origin.name!r}, a training data source dropped for "
                                  "inference", hint=f"give its shape to make it an input: --input-shape "
                                  f"{bottom}=N,C,H,W (Python: input_shapes={{{str(bottom)!r}: (N, C, H, W)}})")
            if str(bottom) not in blobs:
                later = next((other.name for other in layers[i:] if str(bottom) in other.top), None)
                why = (f"which only the later layer {later!r} writes (a cycle, or layers out of order)"
                       if later is not None else "which no layer or input produces")
                raise FormatError(source, f"layer {layer.name!r} ({layer.type}) reads blob {bottom!r}, {why}",
                                  hint="check the bottom names and the layer order")
            bottoms.append(blobs[str(bottom)])
            available.pop(str(bottom), None)
        ctx = LayerContext(builder, layer, bottoms, weights, source, notes)
        importer = CAFFE_IMPORTERS.get(str(layer.type))
        assert importer is not None  # scan_unsupported checked
        outputs = list(importer(ctx))
        if len(outputs) != len(layer.top):
            raise ctx.fail(f"importer produced {len(outputs)} outputs for {len(layer.top)} tops")
        for top, value in zip(layer.top, outputs, strict=True):
            top = str(top)
            final = last_writer[top] == i
            wanted = top if final else f"{top}@{layer.name}"
            if value.producer() is None or any(value is v for v in blobs.values()):
                value = builder.op1("Identity", [value], name=f"{layer.name}/{top}")
            builder.claim(value, wanted)
            blobs[top] = value
            available[top] = None
    if notes:
        for note in notes:
            logger.info(note)
    for name_ in available:
        if name_ in blobs and not blobs[name_].is_graph_input():
            builder.output(blobs[name_])
    meta = {"nnbridge.source_format": "caffe"}
    meta.update(metadata or {})
    if notes:
        meta["nnbridge.notes"] = "\n".join(notes)
    return builder.model(meta)
