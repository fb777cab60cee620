"""keras.applications -> Caffe (real BVLC Caffe) and -> MXNet (real MXNet 1.9.1), compared with TensorFlow.

Each application is built with ``weights=None`` at the smallest input it accepts (batch 1, ``classes=10``,
``classifier_activation=None``: the logits are compared, which is stricter than softmax probabilities; VGG16
without its 4096-wide dense top, global average pooled, to keep the file's run time down), given realistic
random parameters (:func:`support.keras_check.realistic_weights`), run by TensorFlow on a seeded N(0, 1) input
(NHWC; raw pixels in [0, 255) for EfficientNetB0, whose Rescaling and Normalization layers are part of the
model: the converted nets keep them, and their export notes say so) and converted with
:func:`nnbridge.tensorflow.import_keras`. The Caffe nets run in one pycaffe process and the MXNet checkpoints in
one process of the MXNet environment; every output must match TensorFlow's with relative error <= 1e-4
(max |a - b| / max |a|), and every blob real Caffe and real MXNet both compute (same hub value names) must
match between the two.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from support.keras_check import TARGETS, CaseResult, KerasCase, run_cases, worst_table

logger = logging.getLogger(__name__)

#: application -> input side (the smallest the architecture accepts; InceptionV3 75, Xception 71)
APPS = {
    "MobileNet": 32, "MobileNetV2": 32, "ResNet50": 32, "VGG16": 32, "InceptionV3": 75, "DenseNet121": 32,
    "EfficientNetB0": 32, "Xception": 71,
}
#: applications with their preprocessing inside (Rescaling + Normalization) take raw pixels
PIXELS = {"EfficientNetB0": (0.0, 255.0)}
SLOW = {"ResNet50", "InceptionV3", "DenseNet121", "Xception", "VGG16"}
_TABLE: dict[str, dict[str, float | str]] = {}


def _builder(name: str, side: int) -> Any:
    def build() -> Any:
        import keras

        if name == "VGG16":  # its two 4096-wide dense layers (19M weights) cost tf2onnx ~30 s: features only
            return keras.applications.VGG16(weights=None, input_shape=(side, side, 3), include_top=False,
                                            pooling="avg")
        return getattr(keras.applications, name)(weights=None, input_shape=(side, side, 3), classes=10,
                                                 classifier_activation=None)
    return build


def _params() -> list[Any]:
    return [pytest.param(n, marks=[pytest.mark.slow] if n in SLOW else [], id=n) for n in APPS]


@pytest.fixture(scope="module")
def converted(request: pytest.FixtureRequest) -> dict[str, CaseResult]:
    """Only the applications whose tests were selected are built and converted."""
    wanted = []
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if item.module is request.module and callspec is not None and "app" in callspec.params:
            wanted.append(callspec.params["app"])
    cases = [KerasCase(n, _builder(n, APPS[n]), seed=i, input_range=PIXELS.get(n))
             for i, n in enumerate(APPS) if n in set(wanted)]
    return run_cases(cases)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("app", _params())
def test_app_matches_tensorflow(converted: dict[str, CaseResult], app: str, target: str) -> None:
    result = converted[app]
    try:
        worst = result.check(target)
    except BaseException:
        _TABLE.setdefault(app, {})[target] = "FAIL"
        raise
    _TABLE.setdefault(app, {})[target] = worst
    logger.info("%s -> %s: worst output rel err %.2e; notes %s", app, target, worst, result.notes.get(target))
    assert worst <= 1e-4


@pytest.mark.parametrize("app", _params())
def test_app_caffe_and_mxnet_blobs_agree(converted: dict[str, CaseResult], app: str) -> None:
    count, worst = converted[app].cross_check()
    if app in PIXELS:
        for target in TARGETS:
            assert any("preprocessing is inside the net" in n for n in converted[app].notes[target])
    _TABLE.setdefault(app, {})["caffe~mxnet blobs"] = f"{count} blobs, {worst:.1e}"
    assert count > 10, f"{app}: only {count} blobs shared by the Caffe and MXNet runs"


@pytest.mark.parametrize(("app", "fused"), [("EfficientNetB0", "Swish"), ("MobileNetV2", "Clip")])
def test_app_uses_bvlc_master_layers(converted: dict[str, CaseResult], app: str, fused: str) -> None:
    """Dialect bvlc-master has Swish and Clip: x * sigmoid(x) and ReLU6 become one layer each (structure only:
    the pycaffe here has neither layer; bvlc's exact rewrites of both are what ran in real Caffe above)."""
    from nnbridge.caffe.exporter import export_caffe

    if app not in converted:
        pytest.skip(f"{app} not selected")
    converted[app].require("caffe")
    master = [layer.type for layer in export_caffe(converted[app].hub, dialect="bvlc-master").layers]
    bvlc = [layer.type for layer in export_caffe(converted[app].hub, dialect="bvlc").layers]
    assert master.count(fused) >= 10 and fused not in bvlc, (master.count(fused), bvlc.count(fused))
    assert len(master) < len(bvlc)


def test_report_table() -> None:
    """Logs the model x target table of worst relative errors (run last in this file)."""
    logger.info("keras.applications, worst per-output relative error vs TensorFlow:\n%s", worst_table(_TABLE))
