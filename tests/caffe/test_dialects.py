"""Every layer type a Caffe dialect allows really loads and runs in that dialect's runtime.

For each type of ``bvlc`` and ``ssd``, a minimal net (declared inputs + that one layer, blobs with
realistic random values written by :func:`nnbridge.caffe.formats.net.save_caffe`) is loaded and run by
real Caffe (pycaffe, in a worker process: Caffe aborts on what it cannot load). For each type of
``opencv``, the same net is loaded by ``cv2.dnn.readNetFromCaffe`` and run forward; where pycaffe has the
layer too, every top OpenCV computes must equal pycaffe's (a layer OpenCV loads but computes differently,
e.g. ignoring a parameter, does not belong in the dialect either).

:data:`NOT_IN_OPENCV` lists the types OpenCV cannot run, checked to fail, so that the dialect can be
widened when OpenCV learns them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from nnbridge.caffe.dialects import DIALECTS, OPENCV_LACKS
from nnbridge.caffe.formats.net import save_caffe
from nnbridge.caffe.formats.prototxt import parse_prototxt
from nnbridge.caffe.weights import RandomWeights
from nnbridge.errors import NNBridgeError
from nnbridge.verify.compare import compare
from nnbridge.verify.worker import RunResult, available_runtimes, run_in_worker

Inputs = dict[str, np.ndarray]
DATA = (2, 4, 6, 6)


def _normal(*shape: int) -> Callable[[np.random.Generator], np.ndarray]:
    return lambda rng: rng.standard_normal(shape).astype(np.float32)


def _positive(*shape: int) -> Callable[[np.random.Generator], np.ndarray]:
    return lambda rng: rng.uniform(0.1, 3.0, shape).astype(np.float32)


def _indices(*shape: int, high: int) -> Callable[[np.random.Generator], np.ndarray]:
    return lambda rng: rng.integers(0, high, shape).astype(np.float32)


def _detections(rng: np.random.Generator) -> Inputs:
    """SSD head outputs for 8 priors and 3 classes: offsets, per-prior softmax scores, valid priors."""
    centres = rng.uniform(0.2, 0.8, (8, 2))
    sizes = rng.uniform(0.1, 0.3, (8, 2))
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1).reshape(-1)
    variances = np.tile([0.1, 0.1, 0.2, 0.2], 8)
    logits = rng.standard_normal((8, 3)) * 2
    scores = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return {"loc": rng.normal(0, 0.5, (1, 32)).astype(np.float32),
            "conf": scores.reshape(1, 24).astype(np.float32),
            "prior": np.stack([boxes, variances])[None].astype(np.float32)}


@dataclass(frozen=True)
class Spec:
    """One layer: its parameters (prototxt text), inputs, blobs (shape, kind) and number of tops."""

    params: str = ""
    inputs: dict[str, Callable[[np.random.Generator], np.ndarray]] = field(
        default_factory=lambda: {"data": _normal(*DATA)})
    blobs: tuple[tuple[tuple[int, ...], str], ...] = ()
    tops: int = 1
    feed: Callable[[np.random.Generator], Inputs] | None = None  # inputs that must be made together
    declared: bool = True  # inputs declared by ``input:`` and read by the layer (else: the layer's tops)
    after: str = ""  # more prototxt (a consumer, for a layer OpenCV folds into the net's inputs)


C = DATA[1]
SPECS: dict[str, Spec] = {
    "AbsVal": Spec(), "BNLL": Spec(), "Dropout": Spec(), "ELU": Spec("elu_param { alpha: 0.7 }"),
    "Exp": Spec(), "Log": Spec(inputs={"data": _positive(*DATA)}), "ReLU": Spec("relu_param { negative_slope: 0.1 }"),
    "ReLU6": Spec(), "Sigmoid": Spec(), "TanH": Spec(), "Swish": Spec(),
    "Clip": Spec("clip_param { min: -0.5 max: 0.8 }"),
    "Threshold": Spec("threshold_param { threshold: 0.2 }"),
    "Power": Spec("power_param { power: 2 scale: 0.5 shift: 1 }"),
    "BatchNorm": Spec("batch_norm_param { use_global_stats: true eps: 1e-5 }",
                      blobs=(((C,), "mean"), ((C,), "var"), ((1,), "scale_factor"))),
    "Scale": Spec("scale_param { axis: 1 bias_term: true }", blobs=(((C,), "gamma"), ((C,), "beta"))),
    "Bias": Spec("bias_param { axis: 1 num_axes: 1 }", blobs=(((C,), "bias"),)),
    "PReLU": Spec(blobs=(((C,), "slope"),)),
    "Convolution": Spec("convolution_param { num_output: 5 kernel_size: 3 pad: 1 stride: 1 }",
                        blobs=(((5, C, 3, 3), "weight"), ((5,), "bias"))),
    "Deconvolution": Spec("convolution_param { num_output: 5 kernel_size: 2 stride: 2 }",
                          blobs=(((C, 5, 2, 2), "weight"), ((5,), "bias"))),
    "InnerProduct": Spec("inner_product_param { num_output: 7 }",
                         blobs=(((7, C * 36), "weight"), ((7,), "bias"))),
    "Embed": Spec("embed_param { num_output: 6 input_dim: 10 }", inputs={"data": _indices(2, 5, high=10)},
                  blobs=(((10, 6), "weight"), ((6,), "bias"))),
    "Pooling": Spec("pooling_param { pool: MAX kernel_size: 3 stride: 2 }"),
    "LRN": Spec("lrn_param { local_size: 3 alpha: 0.001 beta: 0.75 }"),
    "MVN": Spec("mvn_param { normalize_variance: true }"),
    "Softmax": Spec("softmax_param { axis: 1 }"),
    "Concat": Spec("concat_param { axis: 1 }", inputs={"data": _normal(*DATA), "more": _normal(2, 3, 6, 6)}),
    "Eltwise": Spec("eltwise_param { operation: SUM coeff: 0.5 coeff: -2 }",
                    inputs={"data": _normal(*DATA), "more": _normal(*DATA)}),
    "Crop": Spec("crop_param { axis: 2 offset: 1 }", inputs={"data": _normal(*DATA), "more": _normal(2, 4, 4, 4)}),
    "Flatten": Spec("flatten_param { axis: 1 }"),
    "Reshape": Spec("reshape_param { shape { dim: 0 dim: -1 dim: 4 } }"),
    "Slice": Spec("slice_param { axis: 1 slice_point: 1 }", tops=2),
    "Split": Spec(tops=2),
    "Silence": Spec(tops=0),
    "Tile": Spec("tile_param { axis: 1 tiles: 2 }"),
    "Reduction": Spec("reduction_param { operation: SUM axis: 2 }"),
    "ArgMax": Spec("argmax_param { top_k: 1 axis: 1 }"),
    "Parameter": Spec("parameter_param { shape { dim: 2 dim: 3 } }", inputs={},
                      blobs=(((2, 3), "weight"),)),
    "Input": Spec("input_param { shape { dim: 2 dim: 4 dim: 6 dim: 6 } }", inputs={"out0": _normal(*DATA)},
                  declared=False, after='layer { name: "after" type: "AbsVal" bottom: "out0" top: "after" }'),
    "Permute": Spec("permute_param { order: 0 order: 2 order: 3 order: 1 }"),
    "Normalize": Spec("norm_param { across_spatial: false channel_shared: false }", blobs=(((C,), "gamma"),)),
    "PriorBox": Spec("prior_box_param { min_size: 10 max_size: 20 aspect_ratio: 2 flip: true clip: false "
                     "variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2 }",
                     inputs={"data": _normal(1, C, 3, 3), "image": _normal(1, 3, 30, 30)}),
    "DetectionOutput": Spec("detection_output_param { num_classes: 3 share_location: true background_label_id: 0 "
                            "nms_param { nms_threshold: 0.45 top_k: 8 } code_type: CENTER_SIZE keep_top_k: 5 "
                            "confidence_threshold: 0.05 }", inputs={}, feed=_detections),
    "Upsample": Spec("upsample_param { scale: 2 }"),
    "Interp": Spec("interp_param { height: 11 width: 11 }"),
    "ShuffleChannel": Spec("shuffle_channel_param { group: 2 }"),
}

#: Layer types nnbridge knows that OpenCV 4.x's Caffe importer cannot run (checked below).
NOT_IN_OPENCV = sorted(OPENCV_LACKS | {"Clip", "Upsample"})


def _interp_reference(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """Caffe Interp (DeepLab): bilinear, align corners: input coordinate = out * (in - 1) / (out - 1)."""
    def weights(n_in: int, n_out: int) -> np.ndarray:
        pos = np.arange(n_out) * ((n_in - 1) / (n_out - 1))
        lo = np.minimum(np.floor(pos).astype(int), n_in - 2)
        frac = pos - lo
        matrix = np.zeros((n_out, n_in))
        matrix[np.arange(n_out), lo] = 1 - frac
        matrix[np.arange(n_out), lo + 1] += frac
        return matrix

    wy, wx = weights(x.shape[2], height), weights(x.shape[3], width)
    return np.einsum("yh,nchw,xw->ncyx", wy, x.astype(np.float64), wx).astype(np.float32)


#: Layers pycaffe lacks: numpy references of their one output, from the inputs.
REFERENCES: dict[str, Callable[[Inputs], np.ndarray]] = {
    "Interp": lambda xs: _interp_reference(xs["data"], 11, 11),
    "ShuffleChannel": lambda xs: xs["data"].reshape(2, 2, C // 2, 6, 6).transpose(0, 2, 1, 3, 4).reshape(DATA),
}


def make_net(layer_type: str, folder: Path, seed: int = 0) -> tuple[Path, Path, Inputs]:
    """Write ``<type>.prototxt`` + ``.caffemodel`` for one layer; return their paths and the inputs."""
    spec = SPECS[layer_type]
    rng = np.random.default_rng(seed)
    inputs = spec.feed(rng) if spec.feed else {name: make(rng) for name, make in spec.inputs.items()}
    lines = [f'name: "{layer_type}"']
    declared = inputs if spec.declared else {}
    for name, array in declared.items():
        dims = " ".join(f"dim: {d}" for d in array.shape)
        lines.append(f'input: "{name}" input_shape {{ {dims} }}')
    bottoms = "".join(f' bottom: "{name}"' for name in declared)
    tops = "".join(f' top: "out{i}"' for i in range(spec.tops))
    lines.append(f'layer {{ name: "layer" type: "{layer_type}"{bottoms}{tops} {spec.params} }}')
    lines.append(spec.after)
    net = parse_prototxt("\n".join(lines))
    weights = RandomWeights(seed)
    blobs = {"layer": [weights.get("layer", i, shape, kind) for i, (shape, kind) in enumerate(spec.blobs)]}
    prototxt, caffemodel = folder / f"{layer_type}.prototxt", folder / f"{layer_type}.caffemodel"
    save_caffe(net, blobs if spec.blobs else {}, prototxt, caffemodel)
    return prototxt, caffemodel, inputs


def run_opencv(prototxt: Path, caffemodel: Path, inputs: Inputs) -> list[np.ndarray]:
    """Load with OpenCV's Caffe importer and run forward; the outputs of its unconnected layers."""
    cv2 = pytest.importorskip("cv2")
    net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    for name, array in inputs.items():
        net.setInput(array, name)
    return [np.asarray(a) for a in net.forward(net.getUnconnectedOutLayersNames())]


def _pycaffe_types() -> set[str]:
    if not available_runtimes()["pycaffe"]:
        return set()
    os.environ.setdefault("GLOG_minloglevel", "2")
    caffe = pytest.importorskip("caffe")
    return set(caffe.layer_type_list())


@pytest.fixture(scope="module")
def nets(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[Path, Path, Inputs]]:
    folder = tmp_path_factory.mktemp("dialects")
    made: dict[str, tuple[Path, Path, Inputs]] = {}

    def get(layer_type: str) -> tuple[Path, Path, Inputs]:
        if layer_type not in made:
            made[layer_type] = make_net(layer_type, folder)
        return made[layer_type]

    return get


@pytest.fixture(scope="module")
def pycaffe_runs(nets: Callable[[str], tuple[Path, Path, Inputs]]) -> Callable[[str], RunResult]:
    """Each layer's net run once by pycaffe (a worker process per net)."""
    if not available_runtimes()["pycaffe"]:
        pytest.skip("pycaffe is not importable")
    done: dict[str, RunResult] = {}

    def get(layer_type: str) -> RunResult:
        if layer_type not in done:
            prototxt, caffemodel, inputs = nets(layer_type)
            done[layer_type] = run_in_worker("pycaffe", [prototxt, caffemodel], inputs)
        return done[layer_type]

    return get


def test_every_allowed_type_has_a_spec() -> None:
    missing = {name: sorted(d.layers - set(SPECS)) for name, d in DIALECTS.items()}
    assert not any(missing.values()), missing


@pytest.mark.caffe
@pytest.mark.parametrize(("dialect", "layer_type"),
                         [(d, t) for d in ("bvlc", "ssd") for t in sorted(DIALECTS[d].layers)])
def test_pycaffe_runs_every_layer_of(dialect: str, layer_type: str,
                                     pycaffe_runs: Callable[[str], RunResult]) -> None:
    assert layer_type in _pycaffe_types(), f"this pycaffe has no {layer_type} layer"
    result = pycaffe_runs(layer_type)
    tops = [f"out{i}" for i in range(SPECS[layer_type].tops)]
    assert all(top in result and np.isfinite(result[top]).all() for top in tops), sorted(result)


@pytest.mark.parametrize("layer_type", sorted(DIALECTS["opencv"].layers))
def test_opencv_runs_every_layer_of_opencv_dialect(layer_type: str, nets: Callable[[str], tuple[Path, Path, Inputs]],
                                                   request: pytest.FixtureRequest) -> None:
    prototxt, caffemodel, inputs = nets(layer_type)
    outputs = run_opencv(prototxt, caffemodel, inputs)
    assert outputs and all(np.isfinite(o).all() for o in outputs)
    if layer_type in ("DetectionOutput", "Silence", "Input"):
        return  # DetectionOutput: OpenCV orders detections its own way; Silence, Input: nothing to compare
    if layer_type in REFERENCES:
        expected = REFERENCES[layer_type](inputs)
        np.testing.assert_allclose(outputs[0], expected, rtol=0, atol=1e-5 * np.abs(expected).max())
        return
    if layer_type not in _pycaffe_types():
        pytest.fail(f"{layer_type}: no reference to compare OpenCV's output with")
    ref = request.getfixturevalue("pycaffe_runs")(layer_type)
    got = run_in_worker("opencv", [prototxt, caffemodel], inputs)
    tops = [f"out{i}" for i in range(SPECS[layer_type].tops)]
    assert set(tops) <= set(got), f"OpenCV runtime returned {sorted(got)}"
    result = compare(ref, got, outputs=tops, rtol=1e-5, atol=1e-6)
    assert result.passed, result.table()


@pytest.mark.parametrize("layer_type", NOT_IN_OPENCV)
def test_opencv_cannot_run(layer_type: str, nets: Callable[[str], tuple[Path, Path, Inputs]]) -> None:
    """If this starts failing, OpenCV learnt the layer: consider adding it to the ``opencv`` dialect."""
    cv2 = pytest.importorskip("cv2")
    assert not DIALECTS["opencv"].allows(layer_type)
    prototxt, caffemodel, inputs = nets(layer_type)
    with pytest.raises((cv2.error, NNBridgeError)):
        run_opencv(prototxt, caffemodel, inputs)


def test_opencv_swish_ignores_beta(tmp_path: Path) -> None:
    """Why Swish is not in the ``opencv`` dialect: OpenCV computes x * sigmoid(x) whatever ``beta`` is."""
    pytest.importorskip("cv2")
    prototxt, caffemodel = tmp_path / "swish.prototxt", tmp_path / "swish.caffemodel"
    net = parse_prototxt('input: "data" input_shape { dim: 2 dim: 4 dim: 6 dim: 6 }\n'
                         'layer { name: "layer" type: "Swish" bottom: "data" top: "out0" swish_param { beta: 2 } }')
    save_caffe(net, {}, prototxt, caffemodel)
    x = np.random.default_rng(0).standard_normal(DATA).astype(np.float32)
    (y,) = run_opencv(prototxt, caffemodel, {"data": x})
    np.testing.assert_allclose(y, x / (1 + np.exp(-x)), atol=1e-6)
    assert not np.allclose(y, x / (1 + np.exp(-2 * x)), atol=1e-3)
