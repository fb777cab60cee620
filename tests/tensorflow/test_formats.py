"""Every TensorFlow source format -> Caffe and MXNet, verified against TensorFlow running the original.

Sources (tests/tensorflow/tf_sources.py): a Sequential conv/bn/relu/pool/dense net and a functional net with two
inputs and two outputs, saved as SavedModel, .keras, .h5, frozen .pb and .tflite; a TF1 graph saved with a Saver
(checkpoint + .meta). Each is converted with :func:`nnbridge.convert` to Caffe (verified in real pycaffe) and to
MXNet (verified in real MXNet 1.9.1) and must match TensorFlow blob by blob (worst max rel err < 1e-4),
outputs by name, and intermediates (activations/pooling/concat by TensorFlow tensor name, NHWC -> NCHW) for every
source but TFLite.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

tf = pytest.importorskip("tensorflow")
pytest.importorskip("tf2onnx")

import tf_sources  # noqa: E402  (tests/tensorflow is on sys.path through pytest's rootdir insertion)

from nnbridge.api import convert  # noqa: E402
from nnbridge.verify.worker import available_runtimes  # noqa: E402
from support.mxnet_env import mxnet_python  # noqa: E402

FAST = {("keras", "caffe"), ("frozen", "mxnet")}


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tf_sources")
    seq, two = tf_sources.sequential(0), tf_sources.two_io(1)
    return {
        "keras": tf_sources.save_keras(seq, folder / "seq.keras"),
        "h5": tf_sources.save_keras(two, folder / "two.h5"),
        "savedmodel": tf_sources.save_savedmodel(two, folder / "two_saved"),
        "savedmodel_seq": tf_sources.save_savedmodel(seq, folder / "seq_saved"),
        "frozen": tf_sources.save_frozen(two, folder / "two.pb"),
        "tflite": tf_sources.save_tflite(seq, folder / "seq.tflite"),
        "checkpoint": tf_sources.save_tf1_checkpoint(folder / "ckpt" / "model"),
    }


def _convert(source: Path, tmp_path: Path, target: str) -> Any:
    if target == "caffe":
        if not available_runtimes()["pycaffe"]:
            pytest.skip("pycaffe is not importable")
        return convert(source, tmp_path / "out.prototxt", verify=True)
    return convert(source, tmp_path / "out" / "model", to="mxnet", verify=True,
                   runtimes=(f"mxnet={mxnet_python()}",))


def _check(result: Any, *, intermediates: bool) -> None:
    report = result.verification
    assert report.source_runtime == "tensorflow"
    assert report.passed, report.render()
    rows = report.comparison.rows
    worst = max(row.max_rel for row in rows)
    assert worst < 1e-4, report.render()
    compared = {row.name for row in rows}
    assert set(report.outputs) <= compared
    inner = compared - set(report.outputs) - {"img", "meta", "x"}
    assert bool(inner) == intermediates, report.render()


CASES = [(kind, target) for kind in ("keras", "h5", "savedmodel", "savedmodel_seq", "frozen", "checkpoint", "tflite")
         for target in ("caffe", "mxnet")]


@pytest.mark.parametrize(("kind", "target"), [
    pytest.param(k, t, marks=() if (k, t) in FAST else pytest.mark.slow, id=f"{k}-{t}") for k, t in CASES])
def test_tf_source_converts_and_verifies(sources: dict[str, Path], tmp_path: Path, kind: str, target: str) -> None:
    result = _convert(sources[kind], tmp_path, target)
    assert result.source_format == "tensorflow"
    _check(result, intermediates=kind != "tflite")


def test_two_inputs_two_outputs_keep_their_names(sources: dict[str, Path], tmp_path: Path) -> None:
    result = convert(sources["h5"], tmp_path / "two.onnx", verify=True)
    report = result.verification
    assert report.passed, report.render()
    assert sorted(report.outputs) == ["embed", "logits"]
    assert "img 1x3x32x32" in report.inputs and "meta 1x8" in report.inputs
    import onnx_ir as ir

    model = ir.load(str(tmp_path / "two.onnx"))
    assert [(v.name, list(v.shape)) for v in model.graph.inputs] == [("img", [1, 3, 32, 32]), ("meta", [1, 8])]
    assert model.metadata_props["nnbridge.input_layout.img"].startswith("NCHW")
    assert "nnbridge.input_layout.meta" not in model.metadata_props


#: output names of each source, in the order of the Keras model's outputs (logits, embed for the two-input net)
OUTPUT_NAMES = {"h5": ["logits", "embed"], "savedmodel": ["output_0", "output_1"], "frozen": ["Identity", "Identity_1"],
                "tflite": ["output_0"]}


@pytest.mark.parametrize("kind", ["h5", "savedmodel", "frozen", "tflite"])
def test_runtime_matches_the_live_keras_model(sources: dict[str, Path], kind: str) -> None:
    """The verification side itself: the TensorFlow worker (frozen graph / TFLite interpreter, NCHW in and out)
    gives what the live Keras model gives on the same (NHWC) input, so verify does not compare two copies of
    one mistake."""
    import numpy as np

    from nnbridge.verify.worker import run_in_worker

    rng = np.random.default_rng(3)
    img = rng.standard_normal((1, 3, 32, 32)).astype(np.float32)
    if kind == "tflite":
        feeds = {"img": img}
        live = [tf_sources.sequential(0)(img.transpose(0, 2, 3, 1), training=False)]
    else:
        meta = rng.standard_normal((1, 8)).astype(np.float32)
        feeds = {"img": img, "meta": meta}
        live = tf_sources.two_io(1)([img.transpose(0, 2, 3, 1), meta], training=False)
    got = run_in_worker("tensorflow", sources[kind], feeds, intermediates=False)
    assert sorted(got.outputs) == sorted(OUTPUT_NAMES[kind])
    for name, expected in zip(OUTPUT_NAMES[kind], live, strict=True):
        np.testing.assert_allclose(got[name], np.asarray(expected), rtol=1e-5, atol=1e-6, err_msg=f"{kind}: {name}")


def test_tf1_savedmodel_with_a_4d_output(tmp_path: Path) -> None:
    """A TF1 SavedModel (simple_save) whose output is an NHWC image: the converted Caffe net gives it NCHW
    (``nnbridge.output_layout.y``), and verify compares it with TensorFlow's transposed."""
    if not available_runtimes()["pycaffe"]:
        pytest.skip("pycaffe is not importable")
    src = tf_sources.save_tf1_savedmodel(tmp_path / "tf1_saved", seed=2)
    result = convert(src, tmp_path / "out.prototxt", verify=True)
    report = result.verification
    assert report.passed, report.render()
    row = next(r for r in report.comparison.rows if r.name == "y")
    assert row.shape_ref == (1, 4, 16, 16) and row.max_rel < 1e-4


def test_import_function_matches_tensorflow(tmp_path: Path) -> None:
    """:func:`nnbridge.tensorflow.import_function`: a ``tf.function`` with captured variables, NHWC input, list
    output -> hub (``output_0``, NCHW input) -> onnxruntime, against TensorFlow on the same numbers."""
    import numpy as np

    from nnbridge.onnx.formats import save_onnx
    from nnbridge.tensorflow import import_function
    from nnbridge.verify.compare import compare
    from nnbridge.verify.worker import run_in_worker

    rng = np.random.default_rng(4)
    kernel = tf.Variable((rng.standard_normal((3, 3, 3, 6)) * np.sqrt(2 / 27)).astype(np.float32))
    dense = tf.Variable((rng.standard_normal((6, 3)) * np.sqrt(2 / 6)).astype(np.float32))

    def forward(x: Any) -> list[Any]:
        h = tf.nn.relu(tf.nn.conv2d(x, kernel, 2, "SAME"))
        return [tf.matmul(tf.reduce_max(h, axis=[1, 2]), dense)]

    hub = import_function(forward, [tf.TensorSpec([1, 20, 20, 3], tf.float32, name="x")], name="fn")
    assert [(v.name, list(v.shape)) for v in hub.graph.inputs] == [("x", [1, 3, 20, 20])]
    save_onnx(hub, tmp_path / "fn.onnx")
    x = rng.standard_normal((1, 3, 20, 20)).astype(np.float32)
    got = run_in_worker("onnxruntime", tmp_path / "fn.onnx", {"x": x}, intermediates=False)
    ref = {"output_0": forward(tf.constant(x.transpose(0, 2, 3, 1)))[0].numpy()}
    result = compare(ref, dict(got), outputs=["output_0"])
    assert result.passed, result.table()
