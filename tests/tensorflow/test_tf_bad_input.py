"""Bad TensorFlow input through the CLI: one clear line naming the file, exit status 1, nothing written.

SavedModel without any signature, signatures but no ``serving_default`` and none chosen, dynamic shapes without
``--input-shape`` (the message gives the flag to add; adding it works), TensorFlow ops tf2onnx cannot convert
(all listed at once, with counts and node names), corrupt ``.h5``/``.keras``/``.pb``/``.tflite`` files, a Keras
Lambda layer without ``--allow-lambda`` (and with it: converted and verified), TensorFlow not installed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

tf = pytest.importorskip("tensorflow")
pytest.importorskip("tf2onnx")
keras = pytest.importorskip("keras")

from support.cli import run  # noqa: E402


def assert_error(args: list[str], capsys: pytest.CaptureFixture[str], folder: Path, *needles: str) -> str:
    """Exit 1, exactly one stderr line ``nnbridge: error: ...`` containing ``needles``, no file in ``folder``."""
    before = sorted(folder.rglob("*"))
    code, out, err = run(args, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1, err + out
    assert len(lines) == 1 and lines[0].startswith("nnbridge: error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert sorted(folder.rglob("*")) == before
    return lines[0]


class _Unsupported(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([1, 4, 4], tf.float32, name="x")])
    def __call__(self, x: Any) -> dict[str, Any]:
        a = tf.linalg.inv(x + tf.eye(4))
        b = tf.math.lgamma(x * x + 1.0)
        c = tf.math.bessel_i0e(x)
        d = tf.math.lgamma(x * x + 2.0)
        return {"y": a + b + c + d}


class _TwoSignatures(tf.Module):
    def __init__(self) -> None:
        self.w = tf.Variable(tf.ones([4]))

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def double(self, x: Any) -> dict[str, Any]:
        return {"y": x * self.w * 2.0}

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def triple(self, x: Any) -> dict[str, Any]:
        return {"y": x * self.w * 3.0}


def test_savedmodel_without_serving_signature(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    module = tf.Module()
    module.w = tf.Variable(1.0)
    tf.saved_model.save(module, str(tmp_path / "nosig"), signatures={})
    out = tmp_path / "out"
    out.mkdir()
    assert_error(["convert", str(tmp_path / "nosig"), "-o", str(out / "m.prototxt")], capsys, out,
                 str(tmp_path / "nosig"), "no serving signature", "model.export")


def test_savedmodel_with_several_signatures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    module = _TwoSignatures()
    path = tmp_path / "two_sigs"
    tf.saved_model.save(module, str(path), signatures={"double": module.double, "triple": module.triple})
    out = tmp_path / "out"
    out.mkdir()
    assert_error(["convert", str(path), "-o", str(out / "m.onnx")], capsys, out,
                 str(path), "no 'serving_default' signature", "['double', 'triple']", "--signature NAME")
    code, text, err = run(["convert", str(path), "-o", str(out / "m.onnx"), "--signature", "triple", "--verify"],
                          capsys)
    assert code == 0, err
    assert "PASS" in text and "signature 'triple'" in text, text


def test_dynamic_shapes_need_input_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inp = keras.Input((None, None, 3), name="image")  # named: Keras numbers unnamed inputs per process
    keras.Model(inp, keras.layers.Conv2D(4, 3, activation="relu")(inp)).save(tmp_path / "dyn.keras")
    out = tmp_path / "out"
    out.mkdir()
    src = str(tmp_path / "dyn.keras")
    assert_error(["convert", src, "-o", str(out / "m.onnx")], capsys, out,
                 src, "dynamic dimensions (?, ?, ?, 3)", "--input-shape image=1,224,224,3")
    code, text, err = run(["convert", src, "-o", str(out / "m.onnx"), "--input-shape", "image=1,20,24,3",
                           "--verify"], capsys)
    assert code == 0, err
    assert "image 1x3x20x24" in text and "PASS" in text, text


def test_unsupported_ops_are_listed_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    module = _Unsupported()
    path = tmp_path / "unsupported"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.__call__})
    out = tmp_path / "out"
    out.mkdir()
    line = assert_error(["convert", str(path), "-o", str(out / "m.prototxt")], capsys, out,
                        str(path), "4 unsupported", "BesselI0e x1", "Lgamma x2", "MatrixInverse x1")
    assert "/MatrixInverse" in line and "/Lgamma" in line  # node names


@pytest.mark.parametrize("suffix", [".h5", ".keras", ".pb", ".tflite"])
def test_corrupt_files(tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str) -> None:
    inp = keras.Input((8,), name="v")
    model = keras.Model(inp, keras.layers.Dense(3)(inp))
    good = tmp_path / f"good{suffix}"
    if suffix in (".h5", ".keras"):
        model.save(good)
    elif suffix == ".tflite":
        good.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    else:
        from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

        fn = tf.function(lambda v: model(v), input_signature=[tf.TensorSpec([1, 8], tf.float32, name="v")])
        good.write_bytes(convert_variables_to_constants_v2(fn.get_concrete_function()).graph.as_graph_def()
                         .SerializeToString())
    data = good.read_bytes()
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    out.mkdir()
    assert_error(["convert", str(bad), "-o", str(out / "m.onnx")], capsys, out, str(bad))


def test_lambda_layer_needs_opt_in(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inp = keras.Input((8,), name="v")
    x = keras.layers.Dense(6, name="fc")(inp)
    model = keras.Model(inp, keras.layers.Lambda(lambda t: t * 2.0 + 1.0, name="affine")(x))
    out = tmp_path / "out"
    out.mkdir()
    for suffix in (".keras", ".h5"):
        src = tmp_path / f"lam{suffix}"
        model.save(src)
        assert_error(["convert", str(src), "-o", str(out / "m.onnx")], capsys, out,
                     str(src), "Lambda layers ['affine']", "--allow-lambda")
    code, text, err = run(["convert", str(tmp_path / "lam.keras"), "-o", str(out / "m.onnx"), "--allow-lambda",
                           "--verify"], capsys)
    assert code == 0, err
    assert "PASS" in text, text


def test_missing_tensorflow_names_the_extra(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "m.keras"
    src.write_bytes(b"not read")
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    monkeypatch.setitem(sys.modules, "keras", None)
    out = tmp_path / "out"
    out.mkdir()
    assert_error(["convert", str(src), "-o", str(out / "m.onnx")], capsys, out, "pip install 'nnbridge[tensorflow]'")
