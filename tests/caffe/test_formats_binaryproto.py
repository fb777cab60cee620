"""Mean files (BlobProto .binaryproto) against pycaffe's own reading and writing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from nnbridge.caffe.formats.binaryproto import read_binaryproto, write_binaryproto
from nnbridge.errors import FormatError


def _pycaffe():  # type: ignore[no-untyped-def]
    os.environ.setdefault("GLOG_minloglevel", "2")
    return pytest.importorskip("caffe", reason="real BVLC Caffe (pycaffe) is not installed")


@pytest.fixture
def imagenet_mean(shared_models: Path) -> np.ndarray:
    return np.load(shared_models / "mean/ilsvrc_2012_mean.npy")[None].astype(np.float32)  # 1x3x256x256


@pytest.mark.parametrize("legacy", [False, True])
def test_ours_written_read_by_pycaffe(tmp_path: Path, imagenet_mean: np.ndarray, legacy: bool) -> None:
    caffe = _pycaffe()
    path = tmp_path / "mean.binaryproto"
    write_binaryproto(path, imagenet_mean, legacy=legacy)
    blob = caffe.proto.caffe_pb2.BlobProto()
    blob.ParseFromString(path.read_bytes())
    theirs = caffe.io.blobproto_to_array(blob)
    assert theirs.shape == imagenet_mean.shape
    np.testing.assert_array_equal(theirs.astype(np.float32), imagenet_mean)
    np.testing.assert_array_equal(read_binaryproto(path), imagenet_mean)


def test_pycaffe_written_read_by_ours(tmp_path: Path, imagenet_mean: np.ndarray) -> None:
    caffe = _pycaffe()
    pb = caffe.proto.caffe_pb2
    path = tmp_path / "mean.binaryproto"
    path.write_bytes(caffe.io.array_to_blobproto(imagenet_mean).SerializeToString())
    np.testing.assert_array_equal(read_binaryproto(path), imagenet_mean)
    # the legacy layout compute_image_mean wrote (num/channels/height/width), with double values
    values = np.random.default_rng(0).normal(size=(1, 3, 4, 5))
    legacy = pb.BlobProto(num=1, channels=3, height=4, width=5, double_data=values.ravel().tolist())
    path.write_bytes(legacy.SerializeToString())
    ours = read_binaryproto(path)
    assert ours.shape == (1, 3, 4, 5) and ours.dtype == np.float32
    # (pycaffe's blobproto_to_array ignores double_data; Caffe's Blob::FromProto casts it to float)
    np.testing.assert_array_equal(ours, values.astype(np.float32))


def test_bad_binaryproto(tmp_path: Path) -> None:
    path = tmp_path / "bad.binaryproto"
    write_binaryproto(path, np.ones((2, 3), np.float32))
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(FormatError, match="bad.binaryproto.*truncated"):
        read_binaryproto(path)
