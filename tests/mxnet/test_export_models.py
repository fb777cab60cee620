"""Whole Caffe models -> hub -> MXNet in REAL MXNet 1.9.1 against REAL Caffe, every shared blob by name.

MTCNN det1-det4 with their trained weights; the classic prototxts of ``../shared/models/caffe/prototxt``
with realistic random weights, batch 1. MobileNet-SSD is refused with a message naming the SSD layers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nnbridge.errors import UnsupportedOpsError
from support.mxnet_export_check import check_caffe_to_mxnet

CLASSIC = {
    "squeezenet_v1.1.prototxt": (1, 3, 227, 227),
    "squeezenet_v1.0.prototxt": (1, 3, 227, 227),
    "mobilenet_v1.prototxt": (1, 3, 224, 224),
    "mobilenet_v2.prototxt": (1, 3, 224, 224),
    "bvlc_alexnet.prototxt": (1, 3, 227, 227),
    "bvlc_reference_caffenet.prototxt": (1, 3, 227, 227),
    "bvlc_googlenet.prototxt": (1, 3, 224, 224),
    "resnet50.prototxt": (1, 3, 224, 224),
}
SLOW = {"resnet50.prototxt", "bvlc_alexnet.prototxt", "bvlc_reference_caffenet.prototxt"}  # > 5 s each


@pytest.mark.parametrize("net", ["det1", "det2", "det3", "det4"])
def test_mtcnn_trained(shared_models: Path, net: str) -> None:
    folder = shared_models / "caffe" / "mtcnn"
    check_caffe_to_mxnet(folder / f"{net}.prototxt", caffemodel=folder / f"{net}.caffemodel")


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.slow] if n in SLOW else []) for n in CLASSIC])
def test_classic_prototxt_random_weights(shared_models: Path, name: str) -> None:
    rng = np.random.default_rng(1)
    data = rng.uniform(-1.0, 1.0, CLASSIC[name]).astype(np.float32)
    check_caffe_to_mxnet(shared_models / "caffe" / "prototxt" / name, inputs={"data": data})


def test_mobilenet_ssd_refused_clearly(shared_models: Path) -> None:
    from nnbridge.caffe.formats.net import load_caffe
    from nnbridge.caffe.importer import import_layers
    from nnbridge.caffe.weights import RandomWeights
    from nnbridge.mxnet.exporter import export_mxnet

    path = shared_models / "caffe" / "prototxt" / "mobilenet_ssd_voc.prototxt"
    loaded = load_caffe(path)
    model = import_layers(list(loaded.net.layer), loaded.inputs, RandomWeights(0), source=str(path))
    with pytest.raises(UnsupportedOpsError) as info:
        export_mxnet(model)
    text = str(info.value)
    assert "PriorBox" in text and "DetectionOutput" in text and "later step" in text
    # every PriorBox is listed; DetectionOutput reads their Concat, so it is skipped, not reported again
    assert {item.op for item in info.value.items} == {"ai.nnbridge::PriorBox"}
    assert len(info.value.items) == 6
