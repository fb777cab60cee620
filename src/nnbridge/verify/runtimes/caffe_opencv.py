"""Run a Caffe net with OpenCV's DNN Caffe importer and return every layer output under hub names.

Facts about OpenCV 4.14's Caffe importer this runner relies on:

- OpenCV layers are mostly named after the Caffe layers, but some (Convolution layers, always in 4.14)
  are named after their single top blob instead; each prototxt layer is therefore found by its name,
  else by its single top name, preferring an OpenCV layer of the same type (:func:`match_layers`).
- ``Net.forwardAndRetrieve([layer])`` returns the outputs of a layer in the order of its ``top`` list,
  but MAX Pooling may return one more blob than it has tops (values, then the argmax mask): only the
  first ``len(top)`` blobs are used. A Split layer returns its input once for all its tops (every top of
  a Caffe Split is a copy of the bottom).
- Layer fusion is disabled (``enableFusion(False)``) and requested outputs are never overwritten in
  place, so every Caffe layer keeps its own output.

Hub naming (see :mod:`nnbridge.caffe.importer`): the value layer ``L`` writes to top ``B`` is named
``B`` when ``L`` is the last layer writing ``B``, else ``B@L``. Layers OpenCV does not keep (dropped or
merged at import) are simply absent; layers whose OpenCV implementation is known to differ from Caffe's
by design (:data:`UNRELIABLE`) are left out, so only reliable values are returned.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from nnbridge.extras import require

logger = logging.getLogger(__name__)

#: Caffe layer types whose OpenCV outputs are not comparable to Caffe's, and why.
UNRELIABLE: dict[str, str] = {
    "DetectionOutput": "OpenCV orders and truncates detections differently",
}


def caffe_layers(prototxt: str) -> list[Any]:
    """The (upgraded, TEST-phase) layers of ``prototxt``, as caffe_pb2.LayerParameter messages."""
    from nnbridge.caffe.formats.net import load_caffe

    return list(load_caffe(prototxt).net.layer)


def hub_names(layers: list[Any]) -> dict[str, list[str]]:
    """Layer name -> hub value name of each of its tops."""
    last_writer: dict[str, str] = {}
    for layer in layers:
        for top in layer.top:
            last_writer[top] = layer.name
    return {layer.name: [top if last_writer[top] == layer.name else f"{top}@{layer.name}" for top in layer.top]
            for layer in layers}


def net_outputs(layers: list[Any], inputs: list[str]) -> list[str]:
    """Caffe's rule: blobs still available (produced, never consumed afterwards) at the end of the net."""
    available = dict.fromkeys(inputs)
    for layer in layers:
        for bottom in layer.bottom:
            available.pop(bottom, None)
        for top in layer.top:
            available[top] = None
    return list(available)


def match_layers(layers: list[Any], opencv: Mapping[str, str]) -> dict[str, str]:
    """Prototxt layer name -> OpenCV layer name, given OpenCV's ``{layer name: type}``.

    A layer is found under its own name or, failing that, its single top's name; an OpenCV layer of the
    same type is preferred, and each OpenCV layer is matched once."""
    matched: dict[str, str] = {}
    claimed: set[str] = set()
    for layer in layers:
        candidates = [layer.name] + ([layer.top[0]] if len(layer.top) == 1 else [])
        free = [c for c in dict.fromkeys(candidates) if c in opencv and c not in claimed]
        same_type = [c for c in free if opencv[c] == layer.type]
        if same_type or layer.name in free:
            found = same_type[0] if same_type else layer.name
            matched[layer.name] = found
            claimed.add(found)
    return matched


def run(prototxt: str, caffemodel: str | None, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    cv2 = require("cv2", "running Caffe models with OpenCV")
    for path in (prototxt, caffemodel):
        if path is not None and not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such file")
    layers = caffe_layers(prototxt)
    net = cv2.dnn.readNetFromCaffe(prototxt, caffemodel) if caffemodel else cv2.dnn.readNetFromCaffe(prototxt)
    net.enableFusion(False)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    for name, array in inputs.items():
        net.setInput(np.ascontiguousarray(array, dtype=np.float32), name)
    opencv = {name: net.getLayer(name).type for name in net.getLayerNames()}
    matched = match_layers(layers, opencv)
    names = hub_names(layers)
    wanted = []
    for layer in layers:
        if layer.name not in matched:
            logger.info("OpenCV has no layer %r (%s): its outputs are not compared", layer.name, layer.type)
        elif layer.type in UNRELIABLE:
            logger.info("layer %r: %s; not compared", layer.name, UNRELIABLE[layer.type])
        elif layer.top:
            wanted.append(layer)
    retrieved = net.forwardAndRetrieve([matched[layer.name] for layer in wanted]) if wanted else []
    result: dict[str, np.ndarray] = {name: np.array(array, copy=True) for name, array in inputs.items()}
    for layer, blobs in zip(wanted, retrieved, strict=True):
        blobs = list(blobs)
        if layer.type == "Split" and len(blobs) == 1:
            blobs = blobs * len(layer.top)
        if len(blobs) < len(layer.top):
            logger.info("layer %r: OpenCV gives %d outputs for %d tops; not compared",
                        layer.name, len(blobs), len(layer.top))
            continue
        for name, blob in zip(names[layer.name], blobs[:len(layer.top)], strict=True):
            result[name] = np.array(blob, copy=True)
    return result
