"""The ``nnbridge`` command line with MXNet: Caffe -> MXNet and MXNet -> Caffe/ONNX with ``--verify`` (real Caffe,
real MXNet 1.9.1, onnxruntime), ``--swap-input-channels``, ``nnbridge mean`` to/from ``.nd`` checked in real MXNet,
and bad MXNet input (one-line errors, exit 1, nothing written)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nnbridge.verify.worker import available_runtimes
from support.cli import run
from support.mxnet_env import mxnet_python, run_mxnet


def runtime() -> list[str]:
    return ["--runtime", f"mxnet={mxnet_python()}"]


def needs_pycaffe() -> None:
    if not available_runtimes()["pycaffe"]:
        pytest.skip("pycaffe is not importable: the Caffe side of --verify would run in OpenCV")


def assert_passed(code: int, out: str, err: str) -> None:
    assert code == 0, err + out
    assert "PASS:" in out and "FAIL" not in out, out


# -- Caffe -> MXNet ----------------------------------------------------------------------------------
@pytest.mark.parametrize("net", ["det1", "det2", "det3"])
def test_mtcnn_caffe_to_mxnet_verified(net: str, shared_models: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    needs_pycaffe()
    folder = shared_models / "caffe" / "mtcnn"
    code, out, err = run(["convert", str(folder / f"{net}.prototxt"), "--weights", str(folder / f"{net}.caffemodel"),
                          "-o", str(tmp_path / "out" / net), "--to", "mxnet", "--verify", *runtime()], capsys)
    assert_passed(code, out, err)
    assert sorted(os.listdir(tmp_path / "out")) == [f"{net}-0000.params", f"{net}-symbol.json"]
    assert "[MXNet]" in out and "conv1 " in out  # intermediates are compared too


POOL_NET = """
name: "pools"
input: "data"
input_shape { dim: 2 dim: 3 dim: 10 dim: 10 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "pool2" type: "Pooling" bottom: "pool1" top: "pool2"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 pad: 1 } }
layer { name: "pool3" type: "Pooling" bottom: "pool1" top: "pool3"
  pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "cat" type: "Concat" bottom: "pool2" bottom: "pool3" top: "cat" }
layer { name: "fc" type: "InnerProduct" bottom: "cat" top: "fc" inner_product_param { num_output: 10 } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
"""


def test_pooling_ceil_cases_verified(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """10 -> pool 3/2 -> 5 (ceil); 5 -> pool 2/2 pad 1 -> 3 in Caffe (MXNet "full" would give 4); AVE pad 1 -> 3."""
    needs_pycaffe()
    net = tmp_path / "pools.prototxt"
    net.write_text(POOL_NET)
    code, out, err = run(["convert", str(net), "--random-weights", "7", "-o", str(tmp_path / "pools"),
                          "--to", "mxnet", "--verify", *runtime()], capsys)
    assert_passed(code, out, err)
    for blob, shape in (("pool1", "2x8x5x5"), ("pool2", "2x8x3x3"), ("pool3", "2x8x3x3")):
        assert any(line.split()[:2] == [blob, shape] for line in out.splitlines()), out


# -- MXNet -> Caffe / ONNX ----------------------------------------------------------------------------
BUILD = r'''
S = mx.sym
shape = tuple(args["shape"])
data = S.var("data", shape=shape) if args["with_shape"] else S.var("data")
x = S.Convolution(data, kernel=(3, 3), pad=(1, 1), num_filter=8, name="conv0")
x = S.BatchNorm(x, fix_gamma=False, eps=2e-5, name="bn0")
x = S.Activation(x, act_type="relu", name="relu0")
x = S.Pooling(x, kernel=(3, 3), stride=(2, 2), pool_type="max", name="pool0")
x = S.Convolution(x, kernel=(3, 3), num_filter=16, name="conv1")
x = S.BatchNorm(x, name="bn1")
x = S.Activation(x, act_type="relu", name="relu1")
x = S.Pooling(x, kernel=(2, 2), stride=(2, 2), pool_type="avg", pooling_convention="full", name="pool1")
x = S.FullyConnected(x, num_hidden=10, name="fc0")
out = S.SoftmaxOutput(x, name="softmax")
arg, aux = realistic_params(out, shape, 5)
prefix = args["prefix"]
mx.model.save_checkpoint(prefix, 0, out, arg, aux)
mx.model.save_checkpoint(prefix, 2, out, arg, aux)  # the default --weights is the highest epoch
missing = {k: v for k, v in arg.items() if k != "fc0_weight"}
mx.nd.save(prefix + "-missing.params", {**{"arg:" + k: v for k, v in missing.items()},
                                         **{"aux:" + k: v for k, v in aux.items()}})
wrong = dict(arg, conv0_weight=mx.nd.zeros((8, 3, 5, 5)))
mx.nd.save(prefix + "-wrong.params", {**{"arg:" + k: v for k, v in wrong.items()},
                                       **{"aux:" + k: v for k, v in aux.items()}})
'''

SHAPE = [2, 3, 17, 17]


@pytest.fixture(scope="module")
def mx_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    mxnet_python()
    folder = tmp_path_factory.mktemp("mx_cli")
    found = {}
    for with_shape in (True, False):
        prefix = folder / ("shaped" if with_shape else "plain")
        run_mxnet(BUILD, prefix=str(prefix), shape=SHAPE, with_shape=with_shape)
        found["shaped" if with_shape else "plain"] = prefix
    return found


def test_mxnet_to_caffe_verified(mx_models: dict[str, Path], tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    needs_pycaffe()
    symbol = mx_models["shaped"].with_name("shaped-symbol.json")
    code, out, err = run(["convert", str(symbol), "-o", str(tmp_path / "net.prototxt"), "--verify", *runtime()],
                         capsys)
    assert_passed(code, out, err)
    from nnbridge.api import mxnet_files

    assert mxnet_files(symbol)[1].endswith("shaped-0002.params")  # the highest epoch is the default
    for blob in ("conv0", "bn0", "relu0", "pool0", "conv1", "pool1", "fc0", "softmax"):
        assert any(line.split()[:1] == [blob] for line in out.splitlines()), (blob, out)


def test_mxnet_prefix_needs_input_shape(mx_models: dict[str, Path], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    prefix = str(mx_models["plain"])
    out_file = tmp_path / "net.prototxt"
    code, _, err = run(["convert", prefix, "--weights", prefix + "-0000.params", "-o", str(out_file)], capsys)
    assert code == 1 and err.count("\n") == 1 and "--input-shape data=" in err, err
    assert not out_file.exists()
    needs_pycaffe()
    code, out, err = run(["convert", prefix, "-o", str(out_file), "--input-shape", "data=" + ",".join(map(str, SHAPE)),
                          "--verify", *runtime()], capsys)
    assert_passed(code, out, err)


def test_mxnet_to_onnx_verified(mx_models: dict[str, Path], tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    prefix = str(mx_models["shaped"])
    code, out, err = run(["convert", prefix + "-symbol.json", "--weights", prefix + "-0000.params",
                          "-o", str(tmp_path / "net.onnx"), "--verify", *runtime()], capsys)
    assert_passed(code, out, err)
    assert "[onnxruntime]" in out and "[MXNet]" in out


# -- --swap-input-channels ---------------------------------------------------------------------------
def test_swap_input_channels_caffe_to_mxnet(shared_models: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """verify feeds the converted model the input with its channels reversed; every blob must still match."""
    needs_pycaffe()
    folder = shared_models / "caffe" / "mtcnn"
    code, out, err = run(["convert", str(folder / "det1.prototxt"), "--weights", str(folder / "det1.caffemodel"),
                          "-o", str(tmp_path / "det1"), "--to", "mxnet", "--swap-input-channels", "--verify",
                          *runtime()], capsys)
    assert_passed(code, out, err)
    assert "colour channels swapped" in out and "channels reversed" in out
    # the swapped model on the original (unswapped) input differs from Caffe: the swap did something
    code, out, err = run(["verify", str(folder / "det1.prototxt"), str(tmp_path / "det1-symbol.json"),
                          "--weights", str(folder / "det1.caffemodel"), *runtime()], capsys)
    assert code == 1 and "FAIL" in out, out + err


def test_swap_input_channels_mxnet_to_caffe(mx_models: dict[str, Path], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    needs_pycaffe()
    code, out, err = run(["convert", str(mx_models["shaped"]) + "-symbol.json", "-o", str(tmp_path / "bgr.prototxt"),
                          "--swap-input-channels", "--verify", *runtime()], capsys)
    assert_passed(code, out, err)


def test_swap_input_channels_refused_when_not_only_convolutions(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    net = tmp_path / "mixed.prototxt"
    net.write_text(POOL_NET.replace('layer { name: "cat"', 'layer { name: "side" type: "Pooling" bottom: "data" '
                                    'top: "side" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n'
                                    'layer { name: "cat"'))
    code, _, err = run(["convert", str(net), "--random-weights", "0", "-o", str(tmp_path / "o" / "m"), "--to", "mxnet",
                        "--swap-input-channels"], capsys)
    assert code == 1 and err.count("\n") == 1, err
    assert "side" in err and "not by a convolution" in err
    assert not (tmp_path / "o").exists()


# -- mean files ---------------------------------------------------------------------------------------
def _binaryproto(path: Path, mean: np.ndarray) -> None:
    try:
        os.environ.setdefault("GLOG_minloglevel", "2")
        import caffe  # real Caffe writes the reference file when present
    except ImportError:
        from nnbridge.caffe.formats.binaryproto import write_binaryproto

        write_binaryproto(path, mean[None])
        return
    path.write_bytes(caffe.io.array_to_blobproto(mean[None]).SerializeToString())


MEAN_CHECK = r'''
loaded = {k: mx.nd.load(p) for k, p in args["files"].items()}
result["keys"] = {k: sorted(v) for k, v in loaded.items()}
result["arrays"] = {k: list(v.values())[0] for k, v in loaded.items()}
'''


def test_mean_binaryproto_to_nd_loads_in_mxnet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(1)
    mean = (rng.uniform(90, 130, (3, 6, 5)) + np.arange(3)[:, None, None] * 10).astype(np.float32)
    src = tmp_path / "mean.binaryproto"
    _binaryproto(src, mean)
    assert run(["mean", str(src), "-o", str(tmp_path / "bgr.nd")], capsys)[0] == 0
    assert run(["mean", str(src), "-o", str(tmp_path / "rgb.nd"), "--rgb"], capsys)[0] == 0
    got = run_mxnet(MEAN_CHECK, files={"bgr": tmp_path / "bgr.nd", "rgb": tmp_path / "rgb.nd"})
    assert got["keys"] == {"bgr": ["mean_image"], "rgb": ["mean_image"]}
    np.testing.assert_array_equal(got["arrays"]["bgr"], mean)
    np.testing.assert_array_equal(got["arrays"]["rgb"], mean[::-1])
    # back: .nd -> .npy and .nd -> .binaryproto
    assert run(["mean", str(tmp_path / "rgb.nd"), "-o", str(tmp_path / "back.npy"), "--rgb"], capsys)[0] == 0
    np.testing.assert_array_equal(np.load(tmp_path / "back.npy"), mean)
    assert run(["mean", str(tmp_path / "bgr.nd"), "-o", str(tmp_path / "back.binaryproto")], capsys)[0] == 0
    from nnbridge.caffe.formats.binaryproto import read_binaryproto

    np.testing.assert_array_equal(read_binaryproto(tmp_path / "back.binaryproto").reshape(mean.shape), mean)


# -- bad input ----------------------------------------------------------------------------------------
def _bad(case: str, models: dict[str, Path], folder: Path) -> tuple[list[str], list[str]]:
    """(convert arguments, words the one-line error must contain) of one kind of bad MXNet input."""
    prefix = str(models["shaped"])
    symbol, params = prefix + "-symbol.json", prefix + "-0000.params"
    if case == "malformed_json":
        text = Path(symbol).read_text()
        at = text.index('"op": "Activation",') + len('"op": "Activation"')  # drop the comma after it
        bad = folder / "bad-symbol.json"
        bad.write_text(text[:at] + text[at + 1:])
        line = text[:at].count("\n") + 2  # the error is where the next key starts
        return [str(bad), "--weights", params], ["bad-symbol.json", f"{line}:"]
    if case == "missing_params":
        return [symbol, "--weights", prefix + "-missing.params"], ["fc0_weight", "does not hold"]
    if case == "wrong_shapes":
        return [symbol, "--weights", prefix + "-wrong.params"], ["conv0_weight", "5"]
    if case == "unknown_ops":
        graph: dict[str, Any] = json.loads(Path(symbol).read_text())
        for node in graph["nodes"]:
            node["op"] = {"relu0": "FancyAct", "pool1": "WeirdPool"}.get(node["name"], node["op"])
        bad = folder / "odd-symbol.json"
        bad.write_text(json.dumps(graph))
        return [str(bad), "--weights", params], ["FancyAct", "WeirdPool", "relu0", "pool1"]
    assert case == "truncated_params"
    cut = folder / "cut-0000.params"
    data = Path(params).read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    return [symbol, "--weights", str(cut)], ["cut-0000.params"]


@pytest.mark.parametrize("case", ["malformed_json", "missing_params", "wrong_shapes", "unknown_ops",
                                  "truncated_params"])
@pytest.mark.parametrize("target", ["net.prototxt", "net.onnx"])
def test_bad_mxnet_input(case: str, target: str, mx_models: dict[str, Path], tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    source, words = _bad(case, mx_models, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    code, stdout, err = run(["convert", *source, "-o", str(out / target)], capsys)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("nnbridge: error: "), err + stdout
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert os.listdir(out) == []


def test_bad_caffe_to_mxnet_leaves_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    net = tmp_path / "odd.prototxt"
    net.write_text(POOL_NET.replace('type: "Softmax"', 'type: "NoSuchLayer"'))
    code, _, err = run(["convert", str(net), "--random-weights", "0", "-o", str(tmp_path / "o" / "m"),
                        "--to", "mxnet"], capsys)
    assert code == 1 and err.count("\n") == 1 and "NoSuchLayer" in err, err
    assert not (tmp_path / "o").exists()
