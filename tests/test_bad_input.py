"""Bad input through the CLI: one clear line naming the file, the layer and what to do; exit status 1; and no
output file (nor a temporary one) left behind."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from nnbridge.caffe.formats.net import load_caffe, save_caffe
from nnbridge.caffe.importer import import_layers
from nnbridge.caffe.weights import RandomWeights
from nnbridge.cli import main

NET = """name: "bad"
input: "data"
input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "fc" type: "InnerProduct" bottom: "conv1" top: "fc" inner_product_param { num_output: 5 } }
"""


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    _, err = capsys.readouterr()
    return code, err


def assert_clean_failure(code: int, err: str, out_dir: Path, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert code == 1, err
    assert len(lines) == 1 and lines[0].startswith("nnbridge: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert not list(out_dir.iterdir()), f"left behind: {list(out_dir.iterdir())}"


@pytest.fixture
def model(tmp_path: Path) -> tuple[Path, Path]:
    """A small net with seeded random weights, written with nnbridge's writer."""
    prototxt = tmp_path / "net.prototxt"
    prototxt.write_text(NET)
    loaded = load_caffe(prototxt)
    weights = RandomWeights(3)
    import_layers(list(loaded.net.layer), loaded.inputs, weights, source=str(prototxt))
    caffemodel = tmp_path / "net.caffemodel"
    save_caffe(loaded.net, weights.served, tmp_path / "copy.prototxt", caffemodel)
    return prototxt, caffemodel


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    path = tmp_path / "out"
    path.mkdir()
    return path


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.97])
def test_truncated_caffemodel(model: tuple[Path, Path], out_dir: Path, capsys: pytest.CaptureFixture[str],
                              cut: float) -> None:
    prototxt, caffemodel = model
    data = caffemodel.read_bytes()
    caffemodel.write_bytes(data[: int(len(data) * cut)])
    code, err = run(["convert", str(prototxt), "--weights", str(caffemodel), "-o", str(out_dir / "m.onnx")], capsys)
    assert_clean_failure(code, err, out_dir, "net.caffemodel")


def test_corrupted_caffemodel(model: tuple[Path, Path], out_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prototxt, caffemodel = model
    data = bytearray(caffemodel.read_bytes())
    data[0:16] = b"\xff" * 16
    caffemodel.write_bytes(bytes(data))
    code, err = run(["convert", str(prototxt), "--weights", str(caffemodel), "-o", str(out_dir / "m.onnx")], capsys)
    assert_clean_failure(code, err, out_dir, "net.caffemodel")


def test_blob_shape_contradicts_prototxt(model: tuple[Path, Path], out_dir: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    prototxt, caffemodel = model
    prototxt.write_text(NET.replace("num_output: 4", "num_output: 6"))
    code, err = run(["convert", str(prototxt), "--weights", str(caffemodel), "-o", str(out_dir / "m.onnx")], capsys)
    assert_clean_failure(code, err, out_dir, "net.caffemodel", "conv1", "(6, 3, 3, 3)", "(4, 3, 3, 3)")


def test_prototxt_syntax_error_has_line_and_column(tmp_path: Path, out_dir: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.prototxt"
    bad.write_text(NET.replace('top: "fc" inner', 'top: "fc" inner_product_param { num_output: } inner'))
    code, err = run(["convert", str(bad), "--random-weights", "0", "-o", str(out_dir / "m.onnx")], capsys)
    assert_clean_failure(code, err, out_dir, "bad.prototxt:7:")


def test_missing_bottom(tmp_path: Path, out_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.prototxt"
    bad.write_text(NET.replace('bottom: "conv1" top: "fc"', 'bottom: "conv2" top: "fc"'))
    code, err = run(["convert", str(bad), "--random-weights", "0", "-o", str(out_dir / "m.onnx")], capsys)
    assert_clean_failure(code, err, out_dir, "bad.prototxt", "'fc'", "'conv2'")


def test_cycle_is_a_read_before_write(tmp_path: Path, out_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Caffe nets are ordered lists: a cycle shows up as a layer reading a blob that only a later layer writes."""
    bad = tmp_path / "cycle.prototxt"
    bad.write_text(NET.replace('bottom: "data" top: "conv1"', 'bottom: "fc" top: "conv1"'))
    code, err = run(["convert", str(bad), "--random-weights", "0", "-o", str(out_dir / "m.onnx")], capsys)
    assert_clean_failure(code, err, out_dir, "cycle.prototxt", "'conv1'", "'fc'", "only the later layer 'fc' writes")


def test_python_layer_is_never_imported(tmp_path: Path, out_dir: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    trap = tmp_path / "evil_layer_module.py"
    trap.write_text("raise SystemExit('the model file made nnbridge import its Python layer')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    net = tmp_path / "py.prototxt"
    net.write_text(NET + 'layer { name: "custom" type: "Python" bottom: "fc" top: "out"\n'
                         '  python_param { module: "evil_layer_module" layer: "EvilLayer" } }\n')
    code, err = run(["convert", str(net), "--random-weights", "0", "-o", str(out_dir / "m.onnx")], capsys)
    assert_clean_failure(code, err, out_dir, "py.prototxt", "Python x1 (custom)",
                         "evil_layer_module.EvilLayer", "never imported")
    assert "evil_layer_module" not in sys.modules


def test_absurd_dimensions(tmp_path: Path, out_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "huge.prototxt"
    bad.write_text(NET.replace("dim: 8 dim: 8", "dim: 300000 dim: 300000"))
    code, err = run(["convert", str(bad), "--random-weights", "0", "-o", str(out_dir / "m.onnx")], capsys)
    assert_clean_failure(code, err, out_dir, "huge.prototxt", "impossible shape")
    bad.write_text(NET.replace("dim: 8 dim: 8", "dim: -8 dim: 8"))
    code, err = run(["convert", str(bad), "--random-weights", "0", "-o", str(out_dir / "m.onnx")], capsys)
    assert_clean_failure(code, err, out_dir, "huge.prototxt", "impossible shape")


def test_unknown_layers_all_listed_with_counts(tmp_path: Path, out_dir: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    net = tmp_path / "odd.prototxt"
    net.write_text(NET + 'layer { name: "a" type: "Zap" bottom: "fc" top: "a" }\n'
                         'layer { name: "b" type: "Zap" bottom: "a" top: "b" }\n'
                         'layer { name: "c" type: "Zop" bottom: "b" top: "c" }\n')
    code, err = run(["convert", str(net), "--random-weights", "0", "-o", str(out_dir / "m.onnx")], capsys)
    assert_clean_failure(code, err, out_dir, "odd.prototxt", "3 unsupported", "Zap x2 (a, b)", "Zop x1 (c)")


def test_corrupt_onnx(tmp_path: Path, out_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(np.random.default_rng(0).bytes(300))
    code, err = run(["convert", str(bad), "-o", str(out_dir / "m.prototxt")], capsys)
    assert_clean_failure(code, err, out_dir, "bad.onnx")


def test_shape_mismatch_in_layer(tmp_path: Path, out_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Eltwise of blobs with different shapes: the layer is named, nothing is written."""
    bad = tmp_path / "mismatch.prototxt"
    bad.write_text(NET + 'layer { name: "sum" type: "Eltwise" bottom: "fc" bottom: "conv1" top: "sum" }\n')
    code, err = run(["convert", str(bad), "--random-weights", "0", "-o", str(out_dir / "m.onnx")], capsys)
    assert_clean_failure(code, err, out_dir, "mismatch.prototxt", "'sum'")
