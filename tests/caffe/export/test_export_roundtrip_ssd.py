"""SSD layers round-tripped (Caffe -> hub -> Caffe, ``ssd`` dialect), against real Caffe and OpenCV.

- Normalize, PriorBox, DetectionOutput, Permute: the tables of tests/caffe/ops/test_ops_ssd.py through
  ``check_layer(..., roundtrip=True, dialect="ssd")`` (this pycaffe build has weiliu89's layers), and the
  exported net run by OpenCV's Caffe importer (``cv2.dnn.readNetFromCaffe``, fusion off) against OpenCV
  running the original with the same weights.
- Interp and ShuffleChannel (not in pycaffe): restored in the ``opencv`` dialect, checked in OpenCV only.
- MobileNet-SSD (../shared/models) with realistic random weights: the exported net, run in real Caffe and in
  OpenCV, against OpenCV running the original (``detection_out`` and the mbox blobs), and the same layer
  types in the same order. Its confidence threshold is lowered from 0.25 to 0.14 so that random weights give
  about 50 detections (fewer than ``keep_top_k``, all scores distinct). OpenCV pads ``detection_out`` with
  zero rows and lists the rows by decreasing score; Caffe lists them per class: compared in OpenCV's order.
"""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from support.layer_check import caffe_module, check_layer

cv2 = pytest.importorskip("cv2")


def _ssd_tables() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "ops" / "test_ops_ssd.py"
    spec = importlib.util.spec_from_file_location("_roundtrip_test_ops_ssd", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SSD = _ssd_tables()


def _export(prototxt: Path, weights: Mapping[str, list[np.ndarray]] | None, out: Path,
            dialect: str = "ssd") -> tuple[list[str], list[str]]:
    """Import (random weights unless given), export in ``dialect``, save to ``out``.{prototxt,caffemodel};
    write the original with the same weights to ``orig``.*; return (original types, exported types)."""
    from nnbridge.caffe.exporter import export_caffe
    from nnbridge.caffe.formats.net import load_caffe, save_caffe
    from nnbridge.caffe.importer import import_layers
    from nnbridge.caffe.weights import DictWeights, RandomWeights

    net = load_caffe(prototxt)
    source = DictWeights(weights) if weights is not None else RandomWeights(0)
    model = import_layers(list(net.net.layer), net.inputs, source, source=str(prototxt))
    export = export_caffe(model, dialect=dialect)
    served = weights if weights is not None else source.served  # type: ignore[union-attr]
    save_caffe(net, served, out / "orig.prototxt", out / "orig.caffemodel")
    save_caffe(export.net, export.blobs, out / "rt.prototxt", out / "rt.caffemodel")
    return [layer.type for layer in net.net.layer], [layer.type for layer in export.net.layer]


def _opencv(stem: Path, feeds: Mapping[str, np.ndarray], blobs: list[str]) -> dict[str, np.ndarray]:
    net = cv2.dnn.readNetFromCaffe(str(stem.with_suffix(".prototxt")), str(stem.with_suffix(".caffemodel")))
    net.enableFusion(False)
    for name, value in feeds.items():
        net.setInput(value, name)
    return {name: np.asarray(out) for name, out in zip(blobs, net.forward(blobs), strict=True)}


def _close(got: np.ndarray, ref: np.ndarray, what: str, rtol: float = 1e-5) -> None:
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != {ref.shape}"
    err = float(np.max(np.abs(got.astype(np.float64) - ref))) / max(float(np.max(np.abs(ref))), 1e-30)
    assert err <= rtol, f"{what}: max rel err {err:.3g}"


def _opencv_roundtrip(prototxt: str, feeds: dict[str, np.ndarray], layer: str,
                      weights: dict[str, list[np.ndarray]] | None = None, dialect: str = "ssd") -> None:
    """OpenCV on the exported net vs OpenCV on the original (same weights), and the same layer types."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        (out / "in.prototxt").write_text(prototxt)
        original, exported = _export(out / "in.prototxt", weights, out, dialect)
        assert exported == original
        ref = _opencv(out / "orig", feeds, [layer])[layer]
        got = _opencv(out / "rt", feeds, [layer])[layer]
    _close(got, ref, layer)


# -- single layers in real Caffe ----------------------------------------------------------------------
@pytest.mark.parametrize("case", sorted(SSD.NORMALIZE))
def test_normalize_roundtrip(case: str) -> None:
    body = f'layer {{ name: "l" type: "Normalize" bottom: "data" top: "out" norm_param {{ {SSD.NORMALIZE[case]} }} }}'
    check_layer(SSD.net(body, data=(2, 8, 5, 6)), roundtrip=True, dialect="ssd")


@pytest.mark.parametrize("case", sorted(SSD.PRIORBOX))
def test_priorbox_roundtrip(case: str) -> None:
    check_layer(SSD._priorbox_net(case), roundtrip=True, dialect="ssd")


@pytest.mark.parametrize("case", sorted(SSD.DETECTION))
def test_detection_output_roundtrip(case: str) -> None:
    prototxt, feeds = SSD._detection_net(case)
    check_layer(prototxt, inputs=feeds, roundtrip=True, dialect="ssd")


def test_permute_roundtrip() -> None:
    body = ('layer { name: "l" type: "Permute" bottom: "data" top: "out" '
            'permute_param { order: 0 order: 2 order: 3 order: 1 } }')
    check_layer(SSD.net(body, data=(2, 6, 4, 5)), roundtrip=True, dialect="ssd")


# -- single layers in OpenCV ---------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["max_ar2_flip_clip", "two_ratios_noflip_noclip", "mobilenet_ssd_like"])
def test_priorbox_opencv_roundtrip(case: str) -> None:
    params, feature, image = SSD.PRIORBOX[case]
    rng = np.random.default_rng(3)
    feeds = {"data": rng.standard_normal((1, 4, *feature)).astype(np.float32),
             "image": rng.standard_normal((1, 3, *image)).astype(np.float32)}
    _opencv_roundtrip(SSD._priorbox_net(case), feeds, "l")


@pytest.mark.parametrize(("across", "shared"), [(True, True), (False, False), (False, True)])
def test_normalize_opencv_roundtrip(across: bool, shared: bool) -> None:
    rng = np.random.default_rng(5)
    gamma = rng.uniform(0.5, 1.5, 1 if shared else 6).astype(np.float32)
    params = f"across_spatial: {str(across).lower()} channel_shared: {str(shared).lower()}"
    prototxt = SSD.net(f'layer {{ name: "l" type: "Normalize" bottom: "data" top: "out" norm_param {{ {params} }} }}',
                       data=(2, 6, 4, 5))
    feeds = {"data": rng.standard_normal((2, 6, 4, 5)).astype(np.float32)}
    # OpenCV cannot read the 0-D blob Caffe keeps for a shared scale: the opencv dialect writes it as (1,)
    _opencv_roundtrip(prototxt, feeds, "l", {"l": [gamma]}, dialect="opencv")


@pytest.mark.parametrize("case", ["center_size_keep_top_k", "corner", "no_share_location"])
def test_detection_output_opencv_roundtrip(case: str) -> None:
    prototxt, feeds = SSD._detection_net(case)
    _opencv_roundtrip(prototxt, feeds, "det")


# -- MobileNet-SSD -------------------------------------------------------------------------------------
SSD_BLOBS = ["detection_out", "mbox_loc", "mbox_conf_flatten", "mbox_priorbox"]


def test_mobilenet_ssd_roundtrip(shared_models: Path, tmp_path: Path) -> None:
    caffe_module()
    text = (shared_models / "caffe" / "prototxt" / "mobilenet_ssd_voc.prototxt").read_text()
    assert "confidence_threshold: 0.25" in text
    (tmp_path / "in.prototxt").write_text(text.replace("confidence_threshold: 0.25", "confidence_threshold: 0.14"))
    original, exported = _export(tmp_path / "in.prototxt", None, tmp_path)
    assert exported == original
    feeds = {"data": np.random.default_rng(0).uniform(-1.0, 1.0, (1, 3, 300, 300)).astype(np.float32)}
    ref = _opencv(tmp_path / "orig", feeds, SSD_BLOBS)
    rows = ref["detection_out"].reshape(-1, 7)
    rows = rows[rows[:, 2] > 0]  # OpenCV pads its output to keep_top_k rows with zeros; Caffe does not
    assert 10 <= len(rows) < 100 and len(np.unique(rows[:, 2])) == len(rows), "detections must be many and tie-free"
    from nnbridge.verify.worker import run_in_worker

    in_caffe = run_in_worker("pycaffe", (tmp_path / "rt.prototxt", tmp_path / "rt.caffemodel"), feeds)
    in_opencv = _opencv(tmp_path / "rt", feeds, SSD_BLOBS)
    for blob in SSD_BLOBS:
        _close(in_opencv[blob], ref[blob], f"OpenCV round trip {blob}")
        got, want = in_caffe[blob], ref[blob]
        if blob == "detection_out":  # OpenCV lists the rows by decreasing score, Caffe per class
            got = got.reshape(-1, 7)
            got, want = got[np.argsort(-got[:, 2], kind="stable")], rows
        _close(got, want, f"Caffe round trip {blob}", rtol=1e-4)


# -- fork layers pycaffe lacks, restored in the opencv dialect ---------------------------------------------
@pytest.mark.parametrize(("layer_type", "params", "shape"), [
    ("Interp", "interp_param { zoom_factor: 2 }", (2, 3, 5, 6)),
    ("Interp", "interp_param { height: 11 width: 4 }", (2, 3, 5, 6)),
    ("ShuffleChannel", "shuffle_channel_param { group: 2 }", (2, 6, 3, 4)),
])
def test_opencv_fork_layer_roundtrip(layer_type: str, params: str, shape: tuple[int, ...]) -> None:
    prototxt = SSD.net(f'layer {{ name: "l" type: "{layer_type}" bottom: "data" top: "out" {params} }}', data=shape)
    feeds = {"data": np.random.default_rng(7).standard_normal(shape).astype(np.float32)}
    _opencv_roundtrip(prototxt, feeds, "l", dialect="opencv")
