"""Whole models, Caffe -> hub -> Caffe, every blob compared with REAL Caffe.

- MTCNN det1..det4 with their trained weights and a real face image as input;
- every classic prototxt in ../shared/models/caffe/prototxt with seeded random weights of realistic scale.

Tolerance: per blob, max|a - b| / max|ref| <= 1e-4 (float32, deep nets accumulate rounding).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from support.layer_check import caffe_module, check_net

MTCNN_SIZES = {"det1": (60, 80), "det2": (24, 24), "det3": (48, 48)}


def face_input(shared: Path, height: int, width: int, channels: int = 3) -> np.ndarray:
    """The MTCNN face image resized to (height, width), normalised as MTCNN does ((x - 127.5) / 128)."""
    cv2 = pytest.importorskip("cv2")
    image = cv2.imread(str(shared / "images" / "face_test1.jpg"))
    assert image is not None
    image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32)
    chw = ((image - 127.5) * 0.0078125).transpose(2, 0, 1)
    return np.ascontiguousarray(np.concatenate([chw] * (channels // 3))[None])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["det1", "det2", "det3"])
def test_mtcnn_trained(shared_models: Path, name: str) -> None:
    caffe_module()
    folder = shared_models / "caffe" / "mtcnn"
    height, width = MTCNN_SIZES[name]
    data = face_input(shared_models, height, width)
    check_net(folder / f"{name}.prototxt", caffemodel=folder / f"{name}.caffemodel", inputs={"data": data},
              rtol=1e-4, roundtrip=True)


@pytest.mark.slow
def test_mtcnn_det4_trained(shared_models: Path) -> None:
    caffe_module()
    folder = shared_models / "caffe" / "mtcnn"
    rng = np.random.default_rng(4)
    data = (rng.standard_normal((1, 15, 24, 24)) * 0.5).astype(np.float32)
    check_net(folder / "det4.prototxt", caffemodel=folder / "det4.caffemodel", inputs={"data": data},
              rtol=1e-4, roundtrip=True)


CLASSIC = [
    "bvlc_alexnet",
    "bvlc_reference_caffenet",
    "bvlc_googlenet",
    "squeezenet_v1.0",
    "squeezenet_v1.1",
    "mobilenet_v1",
    "mobilenet_v2",
    "resnet50",
]


@pytest.mark.slow
@pytest.mark.parametrize("name", CLASSIC)
def test_classic_random_weights(shared_models: Path, name: str) -> None:
    caffe_module()
    check_net(shared_models / "caffe" / "prototxt" / f"{name}.prototxt", seed=7, rtol=1e-4, roundtrip=True)


@pytest.mark.slow
def test_train_val_net_drops_training_layers(shared_models: Path) -> None:
    """CaffeNet's train_val (TEST phase): Data becomes an input, loss and accuracy are dropped, and the rest
    computes what the deploy net computes in real Caffe with the same weights."""
    from nnbridge.caffe.formats.net import load_caffe
    from nnbridge.caffe.importer import import_layers
    from nnbridge.caffe.weights import DictWeights
    from nnbridge.errors import FormatError
    from support.layer_check import assert_same, run_hub, run_real_caffe

    caffe_module()
    folder = shared_models / "caffe" / "prototxt"
    train_val = folder / "bvlc_reference_caffenet_train_val.prototxt"
    with pytest.raises(FormatError, match=r"reads blob 'data' from the Data layer .*--input-shape data="):
        loaded = load_caffe(train_val)
        import_layers(list(loaded.net.layer), loaded.inputs, DictWeights({}), source=str(train_val))
    rng = np.random.default_rng(11)
    data = rng.standard_normal((2, 3, 227, 227)).astype(np.float32)
    ref = run_real_caffe(folder / "bvlc_reference_caffenet.prototxt", inputs={"data": data}, seed=11)
    loaded = load_caffe(train_val, input_shapes={"data": data.shape})
    model = import_layers(list(loaded.net.layer), loaded.inputs, DictWeights(ref.weights), source=str(train_val))
    assert [v.name for v in model.graph.outputs] == ["fc8"]
    assert "dropped SoftmaxWithLoss layer 'loss'" in model.metadata_props["nnbridge.notes"]
    assert_same(ref.blobs, run_hub(model, ref.inputs), ["fc8"], rtol=1e-4, atol=1e-6,
                what="train_val in the hub vs deploy net in real Caffe")
