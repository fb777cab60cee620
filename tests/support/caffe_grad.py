"""Forward AND backward of one Caffe layer in REAL Caffe (pycaffe), for the CaffeOp/CaffeLayer tests.

``caffe_layer_grads(layer_text, bottoms, weights=None, seed=0)``:
builds ``force_backward: true`` + one ``input`` per bottom + the layer (its bottoms renamed to the given
names, its top to ``top``), fills the parameter blobs with realistic random values (or ``weights``), runs
``net.forward()``, sets the top diff to seeded N(0, 1) values (a loss layer keeps the diff Caffe set: its
loss_weight), runs ``net.backward()`` and returns::

    {"top": ..., "top.diff": ..., "<bottom>.diff": ..., "blob{i}": ..., "blob{i}.after": ..., "blob{i}.diff": ...}

(``phase="TRAIN"`` builds the net in Caffe's TRAIN phase; ``blob{i}.after`` is the blob after the forward pass.)

(bottom diffs stay zero where Caffe does not back-propagate, e.g. to a label).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from support.layer_check import BLOB_KINDS, caffe_module, realistic_blob

os.environ.setdefault("GLOG_minloglevel", "2")

LOSS_TYPES = {"SoftmaxWithLoss", "SigmoidCrossEntropyLoss", "EuclideanLoss", "HingeLoss", "ContrastiveLoss"}


def net_text(layer_text: str, bottoms: Mapping[str, np.ndarray]) -> str:
    """A one-layer net around ``layer_text`` reading ``bottoms`` and writing ``top``."""
    from nnbridge.caffe.formats.prototxt import format_prototxt
    from nnbridge.caffe.proto import caffe_pb2
    from nnbridge.caffe.single_layer import parse_single_layer

    layer = parse_single_layer(layer_text)
    net = caffe_pb2.NetParameter()
    net.force_backward = True
    for name, array in bottoms.items():
        net.input.append(name)
        net.input_shape.add().dim.extend(int(d) for d in array.shape)
    copy = net.layer.add()
    copy.CopyFrom(layer)
    copy.name = layer.name or "layer"
    del copy.bottom[:]
    del copy.top[:]
    copy.bottom.extend(bottoms)
    copy.top.append("top")
    return format_prototxt(net)


def caffe_layer_grads(layer_text: str, bottoms: Mapping[str, np.ndarray], *,
                      weights: Sequence[np.ndarray] | None = None, seed: int = 0,
                      phase: str = "TEST") -> dict[str, np.ndarray]:
    caffe = caffe_module()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "layer.prototxt"
        path.write_text(net_text(layer_text, bottoms))
        net = caffe.Net(str(path), caffe.TRAIN if phase == "TRAIN" else caffe.TEST)
    rng = np.random.default_rng(seed)
    (layer_name,) = [n for n in net._layer_names if net.layer_dict[n].type != "Input"] or ["?"]
    layer_type = net.layer_dict[layer_name].type
    result: dict[str, np.ndarray] = {}
    params = net.params.get(layer_name, [])
    kinds = BLOB_KINDS.get(layer_type, ())
    for i, param in enumerate(params):
        if weights is not None:
            array = np.asarray(weights[i], dtype=np.float32).reshape(param.data.shape)
        else:
            array = realistic_blob(rng, kinds[i] if i < len(kinds) else "other", tuple(param.data.shape))
        param.data[...] = array
        result[f"blob{i}"] = array.copy()
    for name, array in bottoms.items():
        net.blobs[name].data[...] = array
    net.forward()
    result["top"] = net.blobs["top"].data.copy()
    for i, param in enumerate(params):  # what forward left in the blobs (BatchNorm's TRAIN-phase averages)
        result[f"blob{i}.after"] = param.data.copy()
    if layer_type not in LOSS_TYPES:
        net.blobs["top"].diff[...] = rng.standard_normal(net.blobs["top"].data.shape).astype(np.float32)
    result["top.diff"] = net.blobs["top"].diff.copy()
    net.backward()
    for name in bottoms:  # zeros where Caffe does not back-propagate (a label): the candidate must agree
        result[f"{name}.diff"] = net.blobs[name].diff.copy()
    for i, param in enumerate(params):
        result[f"blob{i}.diff"] = param.diff.copy()
    return result
