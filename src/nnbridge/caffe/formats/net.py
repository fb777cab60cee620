"""Loading and saving a Caffe net: prototxt (+ caffemodel) -> :class:`CaffeNet`, and back.

Loading = parse, upgrade to V2 (:mod:`.upgrade`), keep the layers of the wanted state, turn the
``Input`` layers into :class:`~nnbridge.caffe.importer.InputSpec` entries, attach the weights.

Phase filtering is Caffe's ``Net::FilterNet``: a layer with neither rule is kept; a layer with
``include`` rules is kept iff some rule is met; a layer with ``exclude`` rules is kept iff none is met
(both kinds on one layer is an error). A rule is met (``Net::StateMeetsRule``) when its ``phase`` (if
set) equals the state's, ``state.level >= min_level`` and ``<= max_level`` (if set), the state has *all*
the rule's ``stage`` values and *none* of its ``not_stage`` values. As in ``caffe.Net(file, phase)``
the state is the file's ``state`` with the phase replaced, the level replaced (default 0) and the
given stages added.

Input layers: an ``Input`` layer gives its tops the shapes ``input_param.shape[i]``, or
``shape[0]`` for every top when only one shape is given (Caffe's InputLayer).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from nnbridge.caffe.formats.caffemodel import read_caffemodel, stream_caffemodel
from nnbridge.caffe.formats.prototxt import format_prototxt, read_prototxt
from nnbridge.caffe.formats.upgrade import upgrade_net
from nnbridge.caffe.proto import caffe_pb2
from nnbridge.errors import FormatError
from nnbridge.fileio import AtomicGroup

if TYPE_CHECKING:  # imported where used: saving a net (e.g. MXNet -> Caffe) needs neither
    from nnbridge.caffe.importer import InputSpec, WeightSource

logger = logging.getLogger(__name__)

MAX_ELEMENTS = 2**31 - 1  # Caffe's Blob::Reshape limit (INT_MAX elements)


@dataclass
class CaffeNet:
    net: caffe_pb2.NetParameter  # upgraded to V2, phase-filtered, Input layers removed
    inputs: list[InputSpec]
    weights: WeightSource | None
    prototxt_path: str | None
    caffemodel_path: str | None


def _phase(phase: str | int) -> int:
    if isinstance(phase, int):
        return phase
    try:
        return int(caffe_pb2.Phase.Value(phase.upper()))
    except ValueError:
        raise ValueError(f"unknown Caffe phase {phase!r}; use 'TRAIN' or 'TEST'") from None


def make_state(net: caffe_pb2.NetParameter, phase: str | int = "TEST", level: int = 0,
               stages: Sequence[str] = ()) -> caffe_pb2.NetState:
    state = caffe_pb2.NetState()
    state.CopyFrom(net.state)
    state.phase = _phase(phase)  # type: ignore[assignment]
    state.level = level
    state.stage.extend(stages)
    return state


def state_meets_rule(state: caffe_pb2.NetState, rule: caffe_pb2.NetStateRule) -> bool:
    """Caffe's Net::StateMeetsRule."""
    if rule.HasField("phase") and rule.phase != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    if any(stage not in state.stage for stage in rule.stage):
        return False
    return not any(stage in state.stage for stage in rule.not_stage)


def filter_net(net: caffe_pb2.NetParameter, state: caffe_pb2.NetState,
               source: str | None = None) -> caffe_pb2.NetParameter:
    """A copy of ``net`` with the layers Caffe's Net::FilterNet keeps for ``state``."""
    kept = []
    for layer in net.layer:
        if len(layer.include) and len(layer.exclude):
            raise FormatError(source, f"layer {layer.name!r} has both include and exclude rules",
                              hint="Caffe accepts either include rules or exclude rules, not both")
        included = not len(layer.include)
        if any(state_meets_rule(state, rule) for rule in layer.exclude):
            included = False
        if any(state_meets_rule(state, rule) for rule in layer.include):
            included = True
        if included:
            kept.append(layer)
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    del out.layer[:]
    out.layer.extend(kept)
    return out


def check_shape(shape: Sequence[int], what: str, source: str | None) -> tuple[int, ...]:
    dims = tuple(int(d) for d in shape)
    if not dims or any(d < 1 for d in dims) or math.prod(dims) > MAX_ELEMENTS:
        raise FormatError(source, f"{what} has an impossible shape {list(dims)}",
                          hint="every dimension must be >= 1 and the total at most 2**31 - 1 elements; "
                               "override it with input_shapes / --input-shape")
    return dims


def extract_inputs(net: caffe_pb2.NetParameter, source: str | None,
                   overrides: Mapping[str, Sequence[int]] | None = None) -> list[InputSpec]:
    """Remove the Input layers of ``net`` (in place) and return their tops with shapes."""
    from nnbridge.caffe.importer import InputSpec

    overrides = dict(overrides or {})
    specs: list[InputSpec] = []
    others = []
    for layer in net.layer:
        if layer.type in DATA_LAYERS:
            data_specs = _data_layer_inputs(layer, overrides, source)
            if data_specs is None:
                others.append(layer)  # dropped by the importer; a reader of its tops gets a clear error
            else:
                specs.extend(data_specs)
            continue
        if layer.type != "Input":
            others.append(layer)
            continue
        shapes = list(layer.input_param.shape)
        if len(shapes) not in (0, 1, len(layer.top)):
            raise FormatError(source, f"Input layer {layer.name!r} has {len(layer.top)} tops but "
                              f"{len(shapes)} shapes", hint="give one shape, or one per top")
        for i, top in enumerate(layer.top):
            if top in overrides:
                dims = overrides.pop(top)
            elif shapes:
                dims = list(shapes[i if len(shapes) > 1 else 0].dim)
            else:
                raise FormatError(source, f"input {top!r} has no shape",
                                  hint="pass its shape with input_shapes={name: shape} / --input-shape")
            specs.append(InputSpec(str(top), check_shape(dims, f"input {top!r}", source)))
    if overrides:
        raise FormatError(source, f"input_shapes names unknown inputs: {', '.join(sorted(overrides))}",
                          hint="the net's inputs are: " + ", ".join(s.name for s in specs))
    del net.layer[:]
    net.layer.extend(others)
    return specs


#: Training data sources whose first top (the data) can become a graph input.
DATA_LAYERS = ("Data", "ImageData", "HDF5Data", "MemoryData", "WindowData", "DummyData", "AnnotatedData",
               "VideoData")


def _data_layer_inputs(layer: caffe_pb2.LayerParameter, overrides: dict[str, Sequence[int]],
                       source: str | None) -> list[InputSpec] | None:
    """The data top of a training data layer as an input, when its shape is given or known from the layer.

    Labels and other extra tops are left out: only losses and metrics read them, and those are dropped.
    Returns None when the shape is unknown (it lives in the database): the layer is then dropped.
    """
    if not layer.top:
        return None
    top = str(layer.top[0])
    dims: Sequence[int] | None = overrides.pop(top, None)
    if dims is None and layer.type == "MemoryData":
        p = layer.memory_data_param
        dims = [p.batch_size, p.channels, p.height, p.width]
    elif dims is None and layer.type == "DummyData":
        p = layer.dummy_data_param
        dims = list(p.shape[0].dim) if len(p.shape) else [p.num[0], p.channels[0], p.height[0], p.width[0]] \
            if len(p.num) else None
    if dims is None:
        return None
    logger.info("%s: data layer %r becomes input %r with shape %s", source, layer.name, top, list(dims))
    from nnbridge.caffe.importer import InputSpec

    return [InputSpec(top, check_shape(dims, f"input {top!r}", source))]


def prepare_net(net: caffe_pb2.NetParameter, source: str | None, *, phase: str | int = "TEST",
                level: int = 0, stages: Sequence[str] = (),
                input_shapes: Mapping[str, Sequence[int]] | None = None,
                ) -> tuple[caffe_pb2.NetParameter, list[InputSpec]]:
    """Upgrade, phase-filter and extract inputs (the structure part of :func:`load_caffe`)."""
    upgrade_net(net, source)
    filtered = filter_net(net, make_state(net, phase, level, stages), source)
    inputs = extract_inputs(filtered, source, input_shapes)
    return filtered, inputs


def load_caffe(prototxt: str | os.PathLike[str], caffemodel: str | os.PathLike[str] | None = None, *,
               phase: str | int = "TEST", level: int = 0, stages: Sequence[str] = (),
               input_shapes: Mapping[str, Sequence[int]] | None = None) -> CaffeNet:
    """Structure from the prototxt (upgraded, filtered), weights from the caffemodel when given."""
    path = os.fspath(prototxt)
    net, inputs = prepare_net(read_prototxt(path), path, phase=phase, level=level, stages=stages,
                              input_shapes=input_shapes)
    weights = None
    model_path = None
    if caffemodel is not None:
        model_path = os.fspath(caffemodel)
        from nnbridge.caffe.weights import CaffemodelWeights

        weights = CaffemodelWeights(read_caffemodel(model_path))
    return CaffeNet(net, inputs, weights, path, model_path)


def load_caffemodel_only(caffemodel: str | os.PathLike[str], *, phase: str | int = "TEST",
                         input_shapes: Mapping[str, Sequence[int]] | None = None) -> CaffeNet:
    """Structure and weights both from a caffemodel (which stores the training net's definition)."""
    path = os.fspath(caffemodel)
    file = read_caffemodel(path)
    net = caffe_pb2.NetParameter()
    net.CopyFrom(file.net)
    for layer in net.layer:
        layer.ClearField("blobs")
    filtered, inputs = prepare_net(net, path, phase=phase, input_shapes=input_shapes)
    if not inputs:
        logger.warning("%s: the caffemodel declares no inputs with shapes; give input_shapes", path)
    from nnbridge.caffe.weights import CaffemodelWeights

    return CaffeNet(filtered, inputs, CaffemodelWeights(file), None, path)


def deploy_net(net: caffe_pb2.NetParameter, inputs: Sequence[InputSpec]) -> caffe_pb2.NetParameter:
    """``net`` with its inputs declared as ``input`` + ``input_shape`` (what Caffe deploy files use)."""
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    if inputs:
        del out.input[:]
        del out.input_shape[:]
        for spec in inputs:
            out.input.append(spec.name)
            out.input_shape.add().dim.extend(spec.shape)
    return out


def save_caffe(net: caffe_pb2.NetParameter | CaffeNet, blobs: Mapping[str, Sequence[np.ndarray]],
               prototxt_path: str | os.PathLike[str], caffemodel_path: str | os.PathLike[str]) -> None:
    """Write the prototxt and the caffemodel together (both appear or neither does).

    A :class:`CaffeNet` is written with its inputs as ``input`` + ``input_shape``; the caffemodel gets
    the same net with the blobs streamed in.
    """
    param: Any = deploy_net(net.net, net.inputs) if isinstance(net, CaffeNet) else net
    with AtomicGroup() as group:
        text_path = group.path(prototxt_path)
        text_path.write_text(format_prototxt(param), encoding="utf-8")
        with open(group.path(caffemodel_path), "wb") as handle:
            stream_caffemodel(handle, param, blobs)
