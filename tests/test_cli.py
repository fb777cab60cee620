"""The ``nnbridge`` command line: one-line errors and exit codes, atomic outputs, every subcommand."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import pytest
from onnx import TensorProto

from nnbridge.cli import main
from nnbridge.examples import write_example_caffe
from nnbridge.verify import worker

SMALL_NET = """name: "small"
input: "data"
input_shape { dim: 1 dim: 2 dim: 6 dim: 6 }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "fc" type: "InnerProduct" bottom: "conv" top: "fc" inner_product_param { num_output: 3 } }
"""

UNSUPPORTED_NET = SMALL_NET + """
layer { name: "f1" type: "FooLayer" bottom: "fc" top: "f1" }
layer { name: "f2" type: "FooLayer" bottom: "f1" top: "f2" }
layer { name: "b1" type: "BarLayer" bottom: "f2" top: "b1" }
layer { name: "after" type: "ReLU" bottom: "b1" top: "after" }
"""


def run(args: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(args)
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nnbridge: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.fixture
def small(tmp_path: Path) -> Path:
    path = tmp_path / "small.prototxt"
    path.write_text(SMALL_NET)
    return path


def test_missing_file(tmp_path, capsys):
    code, out, err = run(["convert", str(tmp_path / "nope.prototxt"), "-o", str(tmp_path / "x.onnx"),
                          "--weights", "w.caffemodel"], capsys)
    assert code == 1
    assert_one_line_error(err, "nope.prototxt", "no such file")
    assert not (tmp_path / "x.onnx").exists()


def test_prototxt_syntax_error(tmp_path, capsys):
    bad = tmp_path / "bad.prototxt"
    bad.write_text('name: "x"\nlayer { name: "a" type: "ReLU" bottom: "data" top: "a" \n')
    code, _, err = run(["convert", str(bad), "-o", str(tmp_path / "x.onnx"), "--random-weights", "0"], capsys)
    assert code == 1
    assert_one_line_error(err, "bad.prototxt")
    assert list(tmp_path.iterdir()) == [bad]


def test_unknown_layers_listed_at_once(tmp_path, capsys):
    net = tmp_path / "odd.prototxt"
    net.write_text(UNSUPPORTED_NET)
    code, _, err = run(["convert", str(net), "-o", str(tmp_path / "odd.onnx"), "--random-weights", "1"], capsys)
    assert code == 1
    assert_one_line_error(err, "odd.prototxt", "3 unsupported", "BarLayer x1 (b1)", "FooLayer x2 (f1, f2)")
    assert list(tmp_path.iterdir()) == [net], "a failed convert left files behind"


def test_debug_shows_traceback(tmp_path):
    missing = tmp_path / "nope.onnx"
    cmd = [sys.executable, "-m", "nnbridge.cli", "--debug", "inspect", str(missing)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode != 0
    assert "Traceback (most recent call last)" in proc.stderr and "FormatError" in proc.stderr
    proc = subprocess.run([c for c in cmd if c != "--debug"], capture_output=True, text=True, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert_one_line_error(proc.stderr, "nope.onnx")


def test_usage_errors_exit_2(small, tmp_path, capsys):
    assert run(["convert", str(small)], capsys)[0] == 2  # no -o
    assert run(["frobnicate"], capsys)[0] == 2
    code, _, err = run(["convert", str(small), "-o", str(tmp_path / "o.onnx"), "--random-weights", "0",
                        "--input-shape", "data=1,a,3"], capsys)
    assert code == 2 and "NAME=D,D" in err


def test_prototxt_without_weights_is_refused(small, tmp_path, capsys):
    code, _, err = run(["convert", str(small), "-o", str(tmp_path / "o.onnx")], capsys)
    assert code == 1
    assert_one_line_error(err, "--weights", "--random-weights")


def test_unknown_output_extension(small, tmp_path, capsys):
    code, _, err = run(["convert", str(small), "-o", str(tmp_path / "o.pb"), "--random-weights", "0"], capsys)
    assert code == 1
    assert_one_line_error(err, "o.pb", "--to")


def test_convert_and_verify(tmp_path, capsys):
    prototxt, caffemodel = write_example_caffe(tmp_path)
    out = tmp_path / "net.onnx"
    code, text, err = run(["convert", str(prototxt), "--weights", str(caffemodel), "-o", str(out), "--verify"],
                          capsys)
    assert code == 0, err
    assert "PASS" in text and out.is_file()
    onnx.checker.check_model(str(out), full_check=True)
    back = tmp_path / "back.prototxt"
    code, text, err = run(["convert", str(out), "-o", str(back), "--caffe-dialect", "bvlc"], capsys)
    assert code == 0, err
    assert back.with_suffix(".caffemodel").is_file()
    code, text, err = run(["verify", str(out), str(back), "--rtol", "1e-4"], capsys)
    assert code == 0, err
    assert "PASS" in text and "conv1" in text


def test_verify_detects_a_different_model(tmp_path, capsys):
    prototxt, caffemodel = write_example_caffe(tmp_path / "a", seed=0)
    other_proto, other_model = write_example_caffe(tmp_path / "b", seed=1)
    out = tmp_path / "other.onnx"
    assert run(["convert", str(other_proto), "--weights", str(other_model), "-o", str(out)], capsys)[0] == 0
    code, text, err = run(["verify", str(prototxt), str(out), "--weights", str(caffemodel)], capsys)
    assert code == 1
    assert "FAIL" in text
    assert_one_line_error(err, "verification failed")


def test_convert_random_weights_with_verify(small, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(worker, "_pycaffe_importable", lambda python: False)  # OpenCV stands in: fast
    out = tmp_path / "small.onnx"
    code, text, err = run(["convert", str(small), "-o", str(out), "--random-weights", "3", "--verify"], capsys)
    assert code == 0, err + text
    assert "PASS" in text


def test_failed_onnx_to_caffe_leaves_nothing(tmp_path, capsys):
    graph = oh.make_graph([oh.make_node("Einsum", ["x", "x"], ["y"], equation="ij,ij->i")], "g",
                          [oh.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                          [oh.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    src = tmp_path / "einsum.onnx"
    onnx.save(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], ir_version=8), str(src))
    code, _, err = run(["convert", str(src), "-o", str(tmp_path / "out.prototxt")], capsys)
    assert code == 1
    assert_one_line_error(err, "Einsum")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["einsum.onnx"]


def test_inspect_lists_unsupported_without_failing(tmp_path, capsys):
    net = tmp_path / "odd.prototxt"
    net.write_text(UNSUPPORTED_NET)
    code, text, err = run(["inspect", str(net)], capsys)
    assert code == 0, err
    assert "unsupported layers: 3 (BarLayer x1, FooLayer x2)" in text
    assert "fc 1x3" in text and "not evaluated: needs b1" in text
    assert "conv 1x4x6x6" in text and "76" in text  # 4*2*3*3 + 4 parameters


def test_inspect_onnx(tmp_path, capsys):
    prototxt, caffemodel = write_example_caffe(tmp_path)
    out = tmp_path / "net.onnx"
    assert run(["convert", str(prototxt), "--weights", str(caffemodel), "-o", str(out)], capsys)[0] == 0
    code, text, err = run(["inspect", str(out)], capsys)
    assert code == 0, err
    assert "Conv" in text and "conv1 1x16x32x32" in text and "refuses: none" in text


def test_ops(capsys):
    code, text, _ = run(["ops", "--format", "md"], capsys)
    assert code == 0 and "| `Convolution` |" in text and "ONNX -> Caffe" in text
    code, text, _ = run(["ops"], capsys)
    assert code == 0 and "Caffe -> ONNX layer types" in text


def test_mean_round_trip(tmp_path, capsys):
    mean = np.random.default_rng(0).uniform(0, 255, (3, 4, 5)).astype(np.float32)
    np.save(tmp_path / "mean.npy", mean)
    assert run(["mean", str(tmp_path / "mean.npy"), "-o", str(tmp_path / "mean.binaryproto")], capsys)[0] == 0
    assert run(["mean", str(tmp_path / "mean.binaryproto"), "-o", str(tmp_path / "back.npy")], capsys)[0] == 0
    back = np.load(tmp_path / "back.npy")
    np.testing.assert_array_equal(back.reshape(mean.shape), mean)
    code, _, err = run(["mean", str(tmp_path / "nope.binaryproto"), "-o", str(tmp_path / "x.npy")], capsys)
    assert code == 1 and "nope.binaryproto" in err


def test_mean_file_readable_by_pycaffe(tmp_path, capsys):
    if not worker.available_runtimes()["pycaffe"]:
        pytest.skip("pycaffe is not importable")
    mean = np.random.default_rng(1).uniform(0, 255, (3, 4, 5)).astype(np.float32)
    np.save(tmp_path / "mean.npy", mean)
    assert run(["mean", str(tmp_path / "mean.npy"), "-o", str(tmp_path / "mean.binaryproto")], capsys)[0] == 0
    script = ("import sys, numpy as np, caffe\n"
              "b = caffe.proto.caffe_pb2.BlobProto.FromString(open(sys.argv[1], 'rb').read())\n"
              "np.save(sys.argv[2], caffe.io.blobproto_to_array(b))\n")
    env = dict(os.environ, GLOG_minloglevel="2")
    subprocess.run([worker.caffe_python(), "-c", script, str(tmp_path / "mean.binaryproto"),
                    str(tmp_path / "caffe.npy")], check=True, env=env)
    np.testing.assert_array_equal(np.load(tmp_path / "caffe.npy").reshape(mean.shape), mean)
