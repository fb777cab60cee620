"""GluonCV SSD detectors -> Caffe SSD nets (weiliu89 ``ssd`` dialect) with exact priors.

The exported GluonCV graph (``SSD.hybrid_forward`` of gluoncv 0.10/0.11) is recognised, not imported op by op:

- class heads: ``Concat`` of ``Flatten(transpose(conv, (0, 2, 3, 1)))`` -> ``Reshape (0, -1, K)`` -> ``softmax``;
- box heads: the same ``Concat`` -> ``Reshape (0, -1, 4)`` -> input 0 of ``_contrib_box_decode``;
- anchors: ``slice_like(anchor_<i>, feature * 0)`` -> Reshapes -> ``Concat`` -> input 1 of ``box_decode``;
- ``MultiPerClassDecoder`` (``_greater_scalar`` threshold), ``_contrib_box_nms``, ``slice_axis`` (post NMS).

The backbone and the heads up to the two ``Concat`` blobs go through the MXNet importer and the Caffe exporter;
the tail is written as Caffe layers: ``Reshape (0, -1, K)``, ``Softmax`` (axis 2), ``Flatten`` for the scores,
one ``PriorBox`` per feature map (:func:`nnbridge.hub.passes.mxnet_ssd.priorbox_from_anchors`, proven equal to the
anchors), ``Concat`` (axis 2) and ``DetectionOutput`` (the exact relation to ``box_nms`` is stated in
:mod:`nnbridge.hub.passes.mxnet_ssd`). Caffe blob names: the class/box ``Concat`` keep their MXNet names,
``mbox_conf_softmax``, ``<anchor generator>_priorbox``, ``mbox_priorbox``, ``detection_out``.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnbridge.caffe.exporter import export_caffe
from nnbridge.caffe.formats.net import save_caffe
from nnbridge.caffe.proto import caffe_pb2
from nnbridge.errors import ConversionError
from nnbridge.hub.passes.mxnet_ssd import DetectionSpec, PriorBoxSpec, priorbox_from_anchors
from nnbridge.mxnet.formats.symbol import MxGraph, MxNode
from nnbridge.mxnet.importer import hub_name, import_mxnet

logger = logging.getLogger(__name__)


@dataclass
class SSDGraph:
    """What :func:`find_ssd` recognised in a GluonCV SSD symbol (node indices into the graph)."""

    cls_concat: int
    box_concat: int
    num_classes: int  # including the background
    anchor_params: list[str]
    features: list[int]
    variances: list[float]
    detection: DetectionSpec


@dataclass
class SSDConversion:
    net: caffe_pb2.NetParameter
    blobs: dict[str, list[np.ndarray]]
    priors: list[PriorBoxSpec]
    notes: list[str]


def _fail(graph: MxGraph, message: str) -> ConversionError:
    return ConversionError(f"{graph.path or '<symbol>'}: not a GluonCV SSD graph: {message} -- hint: "
                           "convert_ssd_model handles gluoncv.model_zoo SSD models (SSDAnchorGenerator, "
                                "box_decode, box_nms)")


def _one(graph: MxGraph, op: str) -> tuple[int, MxNode]:
    found = [(i, n) for i, n in enumerate(graph.nodes) if n.op == op]
    if len(found) != 1:
        raise _fail(graph, f"expected one {op} node, found {len(found)}")
    return found[0]


def _skip_reshapes(graph: MxGraph, index: int) -> int:
    while graph.nodes[index].op == "Reshape":
        index = graph.nodes[index].inputs[0][0]
    return index


def find_ssd(graph: MxGraph) -> SSDGraph:
    """Recognise the GluonCV SSD structure (module docstring) or raise a ConversionError saying what is missing."""
    _, decode = _one(graph, "_contrib_box_decode")
    if decode.get_str("format", "center") != "center" or decode.get_float("clip", -1.0) > 0:
        raise _fail(graph, "box_decode must use format 'center' without clip")
    variances = [decode.get_float(f"std{i}", d) for i, d in enumerate((0.1, 0.1, 0.2, 0.2))]
    box_concat = _skip_reshapes(graph, decode.inputs[0][0])
    anchor_concat = _skip_reshapes(graph, decode.inputs[1][0])
    if graph.nodes[box_concat].op != "Concat" or graph.nodes[anchor_concat].op != "Concat":
        raise _fail(graph, "box predictions and anchors must each be one Concat")
    anchor_params, features = [], []
    for ref in graph.nodes[anchor_concat].inputs:
        slice_node = graph.nodes[_skip_reshapes(graph, ref[0])]
        if slice_node.op != "slice_like" or graph.nodes[slice_node.inputs[0][0]].op != "null":
            raise _fail(graph, f"anchor input {graph.nodes[ref[0]].name!r} is not slice_like of a constant "
                               "(clipped anchors are not supported)")
        scaled = graph.nodes[slice_node.inputs[1][0]]
        if scaled.op != "_mul_scalar" or scaled.get_float("scalar", 1.0) != 0.0:
            raise _fail(graph, f"{slice_node.name!r} must slice like 'feature * 0'")
        anchor_params.append(graph.nodes[slice_node.inputs[0][0]].name)
        features.append(scaled.inputs[0][0])
    _, softmax = _one(graph, "softmax")
    reshape = graph.nodes[softmax.inputs[0][0]]
    shape = reshape.get_tuple("shape", ())
    if reshape.op != "Reshape" or len(shape) != 3 or shape[:2] != (0, -1) or softmax.get_int("axis", -1) not in (
            -1, 2):
        raise _fail(graph, "class scores must be softmax(axis=-1) of Reshape (0, -1, K)")
    cls_concat = reshape.inputs[0][0]
    _, greater = _one(graph, "_greater_scalar")
    nms_index, nms = _one(graph, "_contrib_box_nms")
    if nms.get_bool("force_suppress", False) or nms.get_int("id_index", -1) != 0 or \
            nms.get_int("score_index", -1) != 1 or nms.get_int("coord_start", -1) != 2:
        raise _fail(graph, "box_nms must suppress per class on rows [id, score, xmin, ymin, xmax, ymax]")
    post = [n for n in graph.nodes if n.op == "slice_axis" and n.inputs and n.inputs[0][0] == nms_index
            and n.get_int("axis", 0) == 1 and n.get_int("begin", 0) == 0]
    keep_top_k = int(post[0].get_int("end", -1)) if post else -1
    threshold = greater.get_float("scalar", 0.01)
    if nms.get_float("valid_thresh", 0.0) > threshold:
        raise _fail(graph, "box_nms valid_thresh above the decoder's threshold is not expressible")
    detection = DetectionSpec(num_classes=int(shape[2]), confidence_threshold=threshold,
                              nms_threshold=nms.get_float("overlap_thresh", 0.5), top_k=nms.get_int("topk", -1),
                              keep_top_k=keep_top_k)
    return SSDGraph(cls_concat, box_concat, int(shape[2]), anchor_params, features, variances, detection)


def prune(graph: MxGraph, heads: Sequence[int]) -> MxGraph:
    """The sub-graph computing ``heads`` (output 0 of each), nodes renumbered in their original order."""
    keep: set[int] = set()
    stack = list(heads)
    while stack:
        i = stack.pop()
        if i not in keep:
            keep.add(i)
            stack.extend(ref[0] for ref in graph.nodes[i].inputs)
    order = sorted(keep)
    new = {old: k for k, old in enumerate(order)}
    nodes = [MxNode(n.op, n.name, dict(n.attrs), [(new[a], b) for a, b in n.inputs], n.subgraphs)
             for n in (graph.nodes[i] for i in order)]
    return MxGraph(nodes, [new[i] for i in order if graph.nodes[i].is_variable], [(new[h], 0) for h in heads],
                   graph.version, graph.path)


def _layer(net: caffe_pb2.NetParameter, name: str, type_: str, bottoms: Sequence[str]) -> Any:
    layer = net.layer.add()
    layer.name, layer.type = name, type_
    layer.bottom.extend(bottoms)
    layer.top.append(name)
    return layer


def convert_ssd_symbol(graph: MxGraph, params: Mapping[str, np.ndarray], input_shape: Sequence[int], *,
                       input_name: str = "data") -> SSDConversion:
    """A GluonCV SSD symbol + parameters -> Caffe SSD net and blobs (no MXNet needed)."""
    if len(input_shape) != 4:
        raise ConversionError(f"input shape {tuple(input_shape)} must be (N, C, H, W)")
    ssd = find_ssd(graph)
    arrays = {k.split(":", 1)[-1]: v for k, v in params.items()}
    missing = [p for p in ssd.anchor_params if p not in arrays]
    if missing:
        raise ConversionError(f"anchor constants {missing} are not in the parameters -- hint: pass the .params "
                              "file written by net.export()")
    heads = [ssd.cls_concat, ssd.box_concat, *dict.fromkeys(ssd.features)]
    sub = prune(graph, heads)
    model = import_mxnet(sub, {k: v for k, v in arrays.items() if k not in ssd.anchor_params},
                         {input_name: [int(d) for d in input_shape]}, source=graph.path, name="gluoncv_ssd")
    shapes = {v.name: tuple(int(d) for d in v.shape.numpy()) for v in model.graph.outputs if v.shape is not None}
    feature_names = [hub_name(graph.nodes[i].name) for i in ssd.features]
    feature_hw = [(shapes[n][2], shapes[n][3]) for n in feature_names]
    image_hw = (int(input_shape[2]), int(input_shape[3]))
    priors = priorbox_from_anchors([arrays[p] for p in ssd.anchor_params], feature_hw, image_hw, ssd.variances)
    exported = export_caffe(model, dialect="ssd")
    net = exported.net
    cls_name, box_name = hub_name(graph.nodes[ssd.cls_concat].name), hub_name(graph.nodes[ssd.box_concat].name)
    reshape = _layer(net, "mbox_conf_reshape", "Reshape", [cls_name])
    reshape.reshape_param.shape.dim.extend([0, -1, ssd.num_classes])
    _layer(net, "mbox_conf_softmax", "Softmax", ["mbox_conf_reshape"]).softmax_param.axis = 2
    _layer(net, "mbox_conf_flatten", "Flatten", ["mbox_conf_softmax"])
    prior_tops = []
    for param_name, feature, spec in zip(ssd.anchor_params, feature_names, priors, strict=True):
        layer = _layer(net, f"{param_name}_priorbox", "PriorBox", [feature, input_name])
        p = layer.prior_box_param
        p.min_size.append(spec.min_size)
        p.max_size.append(spec.max_size)
        p.aspect_ratio.extend(spec.aspect_ratios)
        p.flip, p.clip = True, False
        p.variance.extend(spec.variances)
        p.img_h, p.img_w, p.step_h, p.step_w, p.offset = spec.img_h, spec.img_w, spec.step, spec.step, spec.offset
        prior_tops.append(layer.top[0])
    _layer(net, "mbox_priorbox", "Concat", prior_tops).concat_param.axis = 2
    det = _layer(net, "detection_out", "DetectionOutput", [box_name, "mbox_conf_flatten", "mbox_priorbox"])
    d, spec_d = det.detection_output_param, ssd.detection
    d.num_classes, d.share_location, d.background_label_id = spec_d.num_classes, True, 0
    d.nms_param.nms_threshold = spec_d.nms_threshold
    if spec_d.top_k > 0:
        d.nms_param.top_k = spec_d.top_k
    d.code_type = caffe_pb2.PriorBoxParameter.CENTER_SIZE
    d.keep_top_k = spec_d.keep_top_k
    d.confidence_threshold = spec_d.confidence_threshold
    notes = [*exported.notes, "DetectionOutput: boxes are normalized to [0, 1] (GluonCV: input pixels); labels "
             "are GluonCV ids + 1; Caffe may append lower-scored boxes that box_nms's topk cut before NMS"]
    return SSDConversion(net, exported.blobs, priors, notes)


def convert_ssd_model(net: Any, input_shape: Sequence[int] = (1, 3, 512, 512), *,
                      input_name: str = "data") -> tuple[str, bytes]:
    """A GluonCV SSD ``HybridBlock`` -> ``(prototxt text, caffemodel bytes)`` in the ``ssd`` dialect.

    Needs MXNet (imported lazily): the net is hybridized, run once on zeros of ``input_shape`` and exported.
    """
    from nnbridge.extras import require
    mx = require("mxnet", "converting Gluon models")
    from nnbridge.mxnet.formats.checkpoint import load_mxnet
    with tempfile.TemporaryDirectory(prefix="nnbridge-ssd-") as tmp:
        prefix = os.path.join(tmp, "net")
        net.hybridize()
        net(mx.nd.zeros(tuple(input_shape)))
        net.export(prefix, epoch=0)
        loaded = load_mxnet(f"{prefix}-symbol.json", f"{prefix}-0000.params")
        result = convert_ssd_symbol(loaded.graph, loaded.params, input_shape, input_name=input_name)
        text, model = os.path.join(tmp, "net.prototxt"), os.path.join(tmp, "net.caffemodel")
        save_caffe(result.net, result.blobs, text, model)
        with open(text, encoding="utf-8") as handle, open(model, "rb") as binary:
            return handle.read(), binary.read()
