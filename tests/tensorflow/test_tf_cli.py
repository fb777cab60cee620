"""The ``nnbridge`` command line with TensorFlow sources: ``convert ... --verify`` to Caffe (real pycaffe),
MXNet (real MXNet 1.9.1) and ONNX, ``--input-shape`` in NHWC, ``--outputs`` for frozen graphs,
checkpoint prefixes, and ``nnbridge verify`` with a TensorFlow source."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

tf = pytest.importorskip("tensorflow")
pytest.importorskip("tf2onnx")

import tf_sources  # noqa: E402

from nnbridge.verify.worker import available_runtimes  # noqa: E402
from support.cli import run  # noqa: E402
from support.mxnet_env import mxnet_python  # noqa: E402


def assert_passed(code: int, out: str, err: str) -> None:
    assert code == 0, err + out
    assert "PASS:" in out and "FAIL" not in out, out
    assert "[TensorFlow]" in out, out


def needs_pycaffe() -> None:
    if not available_runtimes()["pycaffe"]:
        pytest.skip("pycaffe is not importable: the Caffe side of --verify would run in OpenCV")


def test_savedmodel_to_caffe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    needs_pycaffe()
    src = tf_sources.save_savedmodel(tf_sources.sequential(3), tmp_path / "saved")
    code, out, err = run(["convert", str(src), "-o", str(tmp_path / "out.prototxt"), "--verify"], capsys)
    assert_passed(code, out, err)
    assert (tmp_path / "out.prototxt").is_file() and (tmp_path / "out.caffemodel").is_file()
    assert "Caffe (pycaffe)" in out and "Relu:0" in out, out  # intermediates compared by TF tensor name


def test_keras_to_mxnet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tf_sources.save_keras(tf_sources.two_io(4), tmp_path / "two.keras")
    code, out, err = run(["convert", str(src), "--to", "mxnet", "-o", str(tmp_path / "out" / "two"), "--verify",
                          "--runtime", f"mxnet={mxnet_python()}"], capsys)
    assert_passed(code, out, err)
    assert (tmp_path / "out" / "two-symbol.json").is_file() and (tmp_path / "out" / "two-0000.params").is_file()
    assert "logits" in out and "embed" in out


def test_input_shape_is_nhwc_and_batch_can_change(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tf_sources.save_keras(tf_sources.sequential(5), tmp_path / "seq.h5")
    code, out, err = run(["convert", str(src), "-o", str(tmp_path / "seq.onnx"), "--input-shape", "img=2,32,32,3",
                          "--verify"], capsys)
    assert_passed(code, out, err)
    assert "img 2x3x32x32" in out and re.search(r"^fc2\s+2x10\s", out, re.M), out


def test_frozen_graph_outputs_and_verify_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tf_sources.save_frozen(tf_sources.two_io(6), tmp_path / "two.pb")
    code, out, err = run(["convert", str(src), "-o", str(tmp_path / "one.onnx"), "--outputs", "Identity_1"], capsys)
    assert code == 0, err
    code, out, err = run(["verify", str(src), str(tmp_path / "one.onnx"), "--outputs", "Identity_1"], capsys)
    assert_passed(code, out, err)
    assert "(outputs: Identity_1)" in out, out
    code, out, err = run(["convert", str(src), "-o", str(tmp_path / "x.onnx"), "--outputs", "nope"], capsys)
    assert code == 1 and "unknown nodes ['nope']" in err, err


def test_checkpoint_prefix_to_caffe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    needs_pycaffe()
    prefix = tf_sources.save_tf1_checkpoint(tmp_path / "ckpt" / "model", seed=7)
    code, out, err = run(["convert", str(prefix), "-o", str(tmp_path / "ck.prototxt"), "--verify"], capsys)
    assert_passed(code, out, err)
    assert "conv1/relu:0" in out and "logits" in out, out


def test_inspect_keras(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tf_sources.save_keras(tf_sources.sequential(8), tmp_path / "seq.keras")
    code, out, err = run(["inspect", str(src)], capsys)
    assert code == 0, err
    assert f"{src} (tensorflow)" in out and "input img: 1x3x32x32" in out, out
    assert re.search(r"Relu:0 1x8x32x32", out) and "refuses: none" in out, out
