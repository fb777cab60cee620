"""``nnbridge.mxnet.CaffeDataIter`` in real MXNet 1.9.1 (its own environment): batches against the independent
transcription of Caffe's transform (caffe_data_ref), epochs and padding, and the original plugin's MLP example
(sklearn's digits through an LMDB, trained in MXNet)."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from caffe_data_ref import caffe_batches, caffe_transform, class_folder_files, make_class_folders, make_lmdb, max_rel

from nnbridge.caffe.formats.binaryproto import write_binaryproto
from support.mxnet_env import run_mxnet

lmdb = pytest.importorskip("lmdb", reason="Caffe LMDBs need the lmdb package (pip install 'nnbridge[data]')")

ITERATE = r'''
from nnbridge.mxnet import CaffeDataIter
it = CaffeDataIter(prototxt=args["prototxt"], flat=args["flat"], num_examples=args["num_examples"])
assert isinstance(it, mx.io.DataIter)
result["provide_data"] = [[d.name, list(d.shape)] for d in it.provide_data]
result["provide_label"] = [[d.name, list(d.shape)] for d in it.provide_label]
for epoch in range(2):
    batches = [[b.data[0].asnumpy(), b.label[0].asnumpy(), b.pad] for b in it]
    result["epoch%d" % epoch] = batches
    it.reset()
short = CaffeDataIter(prototxt=args["prototxt"], num_examples=6, last_batch_handle="discard", prefetch=0)
result["discard"] = [[b.label[0].asnumpy(), b.pad] for b in short]
'''


@pytest.mark.parametrize("flat", [False, True], ids=["nchw", "flat"])
def test_caffe_data_iter_matches_caffe_transform(tmp_path: Path, flat: bool) -> None:
    images = make_class_folders(tmp_path / "images", classes=2, per_class=5, size=(20, 24))
    db = make_lmdb(images, tmp_path / "db")
    files = class_folder_files(images)
    mean = np.random.default_rng(1).uniform(0, 255, (3, 20, 24)).astype(np.float32)
    write_binaryproto(tmp_path / "mean.binaryproto", mean[None])
    prototxt = (f'layer {{ name: "d" type: "Data" top: "data" top: "label" data_param {{ source: "{db}" '
                f'batch_size: 4 backend: LMDB }} transform_param {{ crop_size: 15 scale: 0.017 '
                f'mean_file: "{tmp_path / "mean.binaryproto"}" }} }}')
    samples = [caffe_transform(cv2.imread(str(f)).transpose(2, 0, 1), crop=15, mean=mean, scale=0.017)
               for f, _ in files]
    reference = caffe_batches(samples, [k for _, k in files], 4, 3)  # 10 samples: the third batch wraps (pad 2)
    out = run_mxnet(ITERATE, prototxt=prototxt, flat=flat, num_examples=-1)
    shape = [4, 3 * 15 * 15] if flat else [4, 3, 15, 15]
    assert out["provide_data"] == [["data", shape]] and out["provide_label"] == [["softmax_label", [4]]]
    for epoch in ("epoch0", "epoch1"):  # reset() rewinds: both epochs are Caffe's first three forward passes
        assert [pad for _, _, pad in out[epoch]] == [0, 0, 2]
        for (data, label, _), (ref_data, ref_label) in zip(out[epoch], reference, strict=True):
            assert max_rel(data, ref_data.reshape(shape)) == 0.0  # bit-exact
            np.testing.assert_array_equal(label, ref_label)
    # 6 examples, batch 4, no prefetch thread: the partial batch dropped
    assert len(out["discard"]) == 1 and out["discard"][0][1] == 0
    np.testing.assert_array_equal(out["discard"][0][0], reference[0][1])


def test_nnbridge_mxnet_imports_without_mxnet() -> None:
    code = ("import sys, nnbridge.mxnet\nassert 'mxnet' not in sys.modules\n"
            "try:\n    nnbridge.mxnet.CaffeDataIter\nexcept Exception as e:\n    print(type(e).__name__, e)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    try:
        import mxnet  # noqa: F401
    except ImportError:
        assert proc.stdout.startswith("MissingExtraError") and "mxnet" in proc.stdout


TRAIN_MLP = r'''
from nnbridge.mxnet import CaffeDataIter
mx.random.seed(0)
np.random.seed(0)
train = CaffeDataIter(prototxt=args["train"], flat=True, phase="TRAIN")
test = CaffeDataIter(prototxt=args["test"], flat=True)
net = mx.sym.Variable("data")
for i, hidden in enumerate((64, 64)):
    net = mx.sym.Activation(mx.sym.FullyConnected(net, num_hidden=hidden, name="fc%d" % i), act_type="tanh")
net = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(net, num_hidden=10, name="fc_out"), name="softmax")
mod = mx.mod.Module(net, context=mx.cpu())
mod.fit(train, num_epoch=args["epochs"], optimizer="sgd", initializer=mx.init.Xavier(),
        optimizer_params={"learning_rate": 0.1, "momentum": 0.9}, eval_metric="acc")
result["accuracy"] = mod.score(test, "acc")[0][1]
result["test_examples"] = test.num_examples
'''


def test_digits_mlp_trains(tmp_path: Path) -> None:
    datasets = pytest.importorskip("sklearn.datasets", reason="the MLP example needs scikit-learn")
    digits = datasets.load_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))
    (tmp_path / "png").mkdir()
    lines = []
    for n, i in enumerate(order):
        name = f"{n:04d}.png"
        cv2.imwrite(str(tmp_path / "png" / name), np.round(digits.images[i] * (255 / 16)).astype(np.uint8))
        lines.append(f"{name} {digits.target[i]}\n")
    (tmp_path / "train.txt").write_text("".join(lines[:1400]))
    (tmp_path / "test.txt").write_text("".join(lines[1400:]))
    for split in ("train", "test"):
        make_lmdb(tmp_path / f"{split}.txt", tmp_path / f"{split}_lmdb", "--gray", "--root", str(tmp_path / "png"))
    layer = ('layer {{ name: "digits" type: "Data" top: "data" top: "label" include {{ phase: {phase} }} '
             'data_param {{ source: "{source}" batch_size: 50 backend: LMDB }} '
             'transform_param {{ scale: 0.00390625 }} }}')
    out = run_mxnet(TRAIN_MLP, timeout=120, epochs=10,
                    train=layer.format(phase="TRAIN", source=tmp_path / "train_lmdb"),
                    test=layer.format(phase="TEST", source=tmp_path / "test_lmdb"))
    assert out["test_examples"] == len(lines) - 1400
    logging.getLogger(__name__).info("digits MLP test accuracy %.4f", out["accuracy"])
    assert out["accuracy"] >= 0.9, out
