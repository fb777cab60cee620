"""Forward AND backward of one Caffe layer in REAL Caffe (pycaffe), for the CaffeOp/CaffeLayer tests.

``caffe_layer_grads(layer_text, bottoms, weights=None, seed=0)``:
builds ``force_backward: true`` + one ``input`` per bottom + the layer (its bottoms renamed to the given
names, its top to ``top``), fills the parameter blobs with realistic random values (or ``weights``), runs
``net.forward()``, sets the top diff to seeded N(0, 1) values (a loss layer keeps the diff Caffe set: its
loss_weight), runs ``net.backward()`` and returns::

    {"top": ..., "top.diff": ..., "<bottom>.diff": ..., "blob{i}": ..., "blob{i}.after": ..., "blob{i}.diff": ...}

(``phase="TRAIN"`` builds the net in Caffe's TRAIN phase; ``blob{i}.after`` is the blob after the forward pass.)

(bottom diffs stay zero where Caffe does not back-propagate, e.g. to a label).

``tops=n`` (n > 1) names the tops ``top0 .. top{n-1}`` (keys ``top{i}``, ``top{i}.diff``: Slice/Split);
``force_backward=False`` leaves Caffe's own choice (Embed refuses a diff for its index bottom: it stays zero),
seeding the backward with a loss ``0.5 * sum(top^2)`` instead (so ``top.diff = top``; one top only);
``backward=False`` skips Caffe's backward (layers whose backward Caffe refuses: Threshold, ArgMax) and
reports zero diffs (a candidate must give no gradient either).
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


def top_names(tops: int) -> list[str]:
    return ["top"] if tops == 1 else [f"top{i}" for i in range(tops)]


def net_text(layer_text: str, bottoms: Mapping[str, np.ndarray], tops: int = 1, force_backward: bool = True) -> str:
    """A one-layer net around ``layer_text`` reading ``bottoms`` and writing ``top``."""
    from nnbridge.caffe.formats.prototxt import format_prototxt
    from nnbridge.caffe.proto import caffe_pb2
    from nnbridge.caffe.single_layer import one_layer_net, parse_single_layer

    layer = parse_single_layer(layer_text)
    net = one_layer_net(layer, {n: tuple(a.shape) for n, a in bottoms.items()}, top_names(tops))
    net.force_backward = force_backward
    if not force_backward:  # a loss 0.5 * sum(top^2) makes Caffe back-propagate with top.diff = top exactly
        loss = net.layer.add()
        loss.name, loss.type = "seed_loss", "Reduction"
        loss.bottom.append("top")
        loss.top.append("seed_loss")
        loss.reduction_param.operation = caffe_pb2.ReductionParameter.SUMSQ
        loss.reduction_param.coeff = 0.5
        loss.loss_weight.append(1.0)
    return format_prototxt(net)


def caffe_layer_grads(layer_text: str, bottoms: Mapping[str, np.ndarray], *,
                      weights: Sequence[np.ndarray] | None = None, seed: int = 0,
                      phase: str = "TEST", tops: int = 1, backward: bool = True,
                      force_backward: bool = True) -> dict[str, np.ndarray]:
    caffe = caffe_module()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "layer.prototxt"
        path.write_text(net_text(layer_text, bottoms, tops, force_backward))
        net = caffe.Net(str(path), caffe.TRAIN if phase == "TRAIN" else caffe.TEST)
    rng = np.random.default_rng(seed)
    (layer_name,) = [n for n in net._layer_names if net.layer_dict[n].type != "Input" and n != "seed_loss"] or ["?"]
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
    names = top_names(tops)
    for top in names:
        result[top] = net.blobs[top].data.copy()
    for i, param in enumerate(params):  # what forward left in the blobs (BatchNorm's TRAIN-phase averages)
        result[f"blob{i}.after"] = param.data.copy()
    for top in names:
        if layer_type not in LOSS_TYPES and force_backward:
            net.blobs[top].diff[...] = rng.standard_normal(net.blobs[top].data.shape).astype(np.float32)
        result[f"{top}.diff"] = net.blobs[top].diff.copy()
    if backward:
        net.backward()
    if not force_backward:
        result["top.diff"] = net.blobs["top"].diff.copy()
    for name in bottoms:  # zeros where Caffe does not back-propagate (a label): the candidate must agree
        result[f"{name}.diff"] = net.blobs[name].diff.copy() if backward else np.zeros_like(bottoms[name])
    for i, param in enumerate(params):
        result[f"blob{i}.diff"] = param.diff.copy() if backward else np.zeros_like(param.data)
    return result


def hub_layer_forward(layer_text: str, bottoms: Mapping[str, np.ndarray], *, tops: int = 1,
                      seed: int = 0) -> dict[str, np.ndarray]:
    """For fork layers pycaffe lacks (Clip, Swish, Axpy, ShuffleChannel...): the layer's forward through
    nnbridge's Caffe importer (the hub model) in onnxruntime, and seeded N(0, 1) top diffs; no bottom diffs
    (the caller checks its backward by finite differences). Parameterless layers only."""
    from nnbridge.caffe.formats.net import load_caffe
    from nnbridge.caffe.importer import import_layers
    from nnbridge.caffe.weights import DictWeights
    from support.layer_check import run_hub

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "layer.prototxt"
        path.write_text(net_text(layer_text, bottoms, tops))
        loaded = load_caffe(path, None, input_shapes={n: a.shape for n, a in bottoms.items()})
        model = import_layers(list(loaded.net.layer), loaded.inputs, DictWeights({}), source=str(path))
    values = run_hub(model, dict(bottoms))
    rng = np.random.default_rng(seed)
    result: dict[str, np.ndarray] = {}
    for top in top_names(tops):
        result[top] = np.asarray(values[top])
        result[f"{top}.diff"] = rng.standard_normal(result[top].shape).astype(np.float32)
    return result
