"""Run a Caffe net with real BVLC Caffe (pycaffe) and return every blob (``net.blobs``), copied.

``net.blobs`` holds one array per blob name; for in-place layers it is the final version of the blob,
which is exactly the hub value named like the blob (earlier versions are ``"blob@layer"`` in the hub and
are not observable in Caffe). Inputs are set by reshaping the input blobs to the given shapes.

This module only needs numpy and ``caffe``, so it can run in another interpreter
(``NNBRIDGE_CAFFE_PYTHON``). Caffe refuses to parse caffemodels larger than :data:`CAFFE_READ_LIMIT`;
such nets are built from the prototxt alone and their weights are copied into ``net.params`` from
nnbridge's own (memory-mapped) caffemodel reader.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: Caffe refuses larger caffemodels; ``$NNBRIDGE_CAFFE_READ_LIMIT`` (bytes) overrides it (tests use 0).
CAFFE_READ_LIMIT = int(os.environ.get("NNBRIDGE_CAFFE_READ_LIMIT", 512 << 20))


def _import_caffe() -> Any:
    os.environ.setdefault("GLOG_minloglevel", "2")
    import caffe

    caffe.set_mode_cpu()
    return caffe


def run(prototxt: str, caffemodel: str | None, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every blob of the net after a forward pass on ``inputs``."""
    return run_net(prototxt, caffemodel, inputs)[0]


def run_net(prototxt: str, caffemodel: str | None,
            inputs: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], list[str]]:
    """(every blob, the net's output blob names) after a forward pass on ``inputs``."""
    caffe = _import_caffe()
    for path in (prototxt, caffemodel):
        if path is not None and not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such file")
    if caffemodel is not None and os.path.getsize(caffemodel) <= CAFFE_READ_LIMIT:
        net = caffe.Net(prototxt, caffemodel, caffe.TEST)
    else:
        net = caffe.Net(prototxt, caffe.TEST)
        if caffemodel is not None:
            _copy_weights(net, prototxt, caffemodel)
    missing = [name for name in net.inputs if name not in inputs]
    unknown = [name for name in inputs if name not in net.inputs]
    if missing or unknown:
        raise ValueError(f"{prototxt}: net inputs are {list(net.inputs)}; missing {missing}, unknown {unknown}")
    for name, array in inputs.items():
        if tuple(net.blobs[name].data.shape) != tuple(array.shape):
            net.blobs[name].reshape(*array.shape)
    net.reshape()
    for name, array in inputs.items():
        net.blobs[name].data[...] = array
    net.forward()
    hidden = _auto_split_blobs(net)
    blobs = {name: np.array(blob.data, copy=True) for name, blob in net.blobs.items() if name not in hidden}
    return blobs, list(net.outputs)


def _auto_split_blobs(net: Any) -> set[str]:
    """Copies made by the Split layers Caffe inserts where a blob feeds several layers (``B_L_i_split_j``)."""
    hidden: set[str] = set()
    for name, layer in zip(net._layer_names, net.layers, strict=True):
        tops = list(net.top_names[name])
        if layer.type == "Split" and name.endswith("_split") and all(t.startswith(name + "_") for t in tops):
            hidden.update(tops)
    return hidden


def _copy_weights(net: Any, prototxt: str, caffemodel: str) -> None:
    from nnbridge.caffe.formats.net import load_caffe

    logger.info("%s is larger than Caffe's read limit: copying weights with nnbridge's reader", caffemodel)
    weights = load_caffe(prototxt, caffemodel).weights
    assert weights is not None
    for layer, blobs in net.params.items():
        for index, blob in enumerate(blobs):
            blob.data[...] = weights.get(layer, index, tuple(blob.data.shape), "weight")
