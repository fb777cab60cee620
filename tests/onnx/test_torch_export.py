"""PyTorch -> ONNX (both ``torch.onnx.export`` exporters) -> Caffe, checked in real runtimes.

The convertible models of the zoo (:mod:`torch_models`) are exported four ways (two more variants serve
single tests):

- ``torchscript``: the TorchScript exporter (``dynamo=False``), opset 17, constant folding on (the
  exporter itself folds BatchNorm into Conv and the shape arithmetic of ``view(x.size(0), -1)``);
- ``torchscript-dynamic``: the same with ``do_constant_folding=False`` and a dynamic batch axis: the file
  keeps ``BatchNormalization`` and the ``Shape -> Gather -> Unsqueeze -> Concat -> Reshape`` subgraphs,
  which nnbridge must fold once the batch is fixed (``input_shapes``);
- ``dynamo``: the torch.export-based exporter (``dynamo=True``; it picks opset 18 for some models and its
  own down-conversion may fail, so the loader must cope with 18);
- ``dynamo-dynamic``: ``dynamo=True, optimize=False`` with a dynamic batch dimension (``Shape``,
  ``Expand``, ``CastLike``, ``BatchNormalization`` left in the graph);
- ``dynamo-external``: the dynamo exporter's default layout, weights in ``<file>.onnx.data`` (the other
  dynamo variants embed them, ``external_data=False``); used by one test;
- ``torchscript-opset11``: opset 11 with a dynamic batch, the most common opset of ONNX files in the
  wild (the loader converts it to 17); used by one test.

The ONNX file is converted with ``nnbridge.convert`` and three runs are compared per output with
:func:`nnbridge.verify.compare.compare`: PyTorch (the reference), onnxruntime on the exported file, and
real Caffe (pycaffe in a worker process, or OpenCV's Caffe importer for the ``opencv`` dialect) on the
converted prototxt + caffemodel. Tolerance: max relative error ``max|a - b| / max|ref| <= 1e-4`` per
output (:data:`RTOL`), no absolute escape hatch beyond float32 noise on zero outputs (:data:`ATOL`).
Intermediate blobs shared by name between the ONNX file (run by nnbridge's onnxruntime runner, which
returns every value) and the Caffe net are compared as well, with the same tolerances; one test goes
through :func:`nnbridge.verify.api.verify`.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch)")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime runs the exported ONNX files")

import torch_models  # noqa: E402  (needs torch)

import nnbridge  # noqa: E402
from nnbridge.errors import ConversionError, UnsupportedOpsError  # noqa: E402
from nnbridge.verify.api import verify  # noqa: E402
from nnbridge.verify.compare import Comparison, compare  # noqa: E402
from nnbridge.verify.runtimes import onnxruntime_rt  # noqa: E402
from nnbridge.verify.worker import available_runtimes, run_in_worker  # noqa: E402

logger = logging.getLogger(__name__)

RTOL = 1e-4  # max |a - b| / max |ref| per output blob
ATOL = 1e-7  # only rescues all-zero outputs: float32 noise
OPSET = 17
INPUT = "data"


@dataclass(frozen=True)
class Exporter:
    dynamo: bool
    dynamic_batch: bool
    options: Mapping[str, Any]
    opset: int = OPSET


EXPORTERS: dict[str, Exporter] = {
    "torchscript": Exporter(False, False, {}),
    "torchscript-dynamic": Exporter(False, True, {"do_constant_folding": False}),
    "dynamo": Exporter(True, False, {"external_data": False}),
    "dynamo-dynamic": Exporter(True, True, {"optimize": False, "external_data": False}),
    # the dynamo exporter's default: weights in "<file>.onnx.data" beside the model
    "dynamo-external": Exporter(True, False, {}),
    # what most ONNX files in the wild are: opset 11 (Softmax then flattened from ``axis``)
    "torchscript-opset11": Exporter(False, True, {"do_constant_folding": False}, opset=11),
}


@dataclass
class Exported:
    """One exported model: the ONNX file, its input, PyTorch's outputs and the output names."""

    onnx_path: Path
    inputs: dict[str, np.ndarray]
    reference: dict[str, np.ndarray]
    outputs: list[str]


def export(name: str, exporter: str, folder: Path) -> Exported:
    """Build zoo model ``name``, run it in PyTorch and export it with ``exporter`` into ``folder``."""
    if EXPORTERS[exporter].dynamo:
        pytest.importorskip("onnxscript", reason="the dynamo exporter needs onnxscript")
    how = EXPORTERS[exporter]
    model, xs = torch_models.build(name)
    entry = torch_models.ZOO[name]
    inputs = [INPUT, *(n for n, _ in entry.more_inputs)]
    outputs = list(entry.outputs)
    with torch.no_grad():
        result = model(*xs)
    results = result if isinstance(result, tuple) else (result,)
    reference = {out: r.numpy().copy() for out, r in zip(outputs, results, strict=True)}
    path = folder / f"{name}-{exporter}.onnx"
    kwargs: dict[str, Any] = dict(how.options)
    if how.dynamo:
        kwargs["verbose"] = False
        if how.dynamic_batch:
            batch = torch.export.Dim("batch", min=1, max=64)
            kwargs["dynamic_shapes"] = tuple({0: batch} for _ in xs)
    elif how.dynamic_batch:
        kwargs["dynamic_axes"] = {n: {0: "batch"} for n in [*inputs, *outputs]}
    quiet = logging.getLogger("torch")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # torch.export logs every traced op at DEBUG
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # exporter deprecation chatter
            torch.onnx.export(model, tuple(xs), str(path), dynamo=how.dynamo, opset_version=how.opset,
                              input_names=inputs, output_names=outputs, **kwargs)
    finally:
        quiet.setLevel(level)
    return Exported(path, {n: x.numpy() for n, x in zip(inputs, xs, strict=True)}, reference, outputs)


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Exported]:
    """Export each (model, exporter) once per module."""
    folder = tmp_path_factory.mktemp("torch_export")
    cache: dict[tuple[str, str], Exported] = {}

    def get(name: str, exporter: str) -> Exported:
        if (name, exporter) not in cache:
            cache[name, exporter] = export(name, exporter, folder)
        return cache[name, exporter]

    return get


def _check(comparison: Comparison, what: str) -> None:
    assert comparison.rows, f"{what}: nothing compared"
    assert comparison.passed, f"{what}:\n{comparison.table()}"


def _onnxruntime(model: Exported) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(model.onnx_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, model.inputs), strict=True))


def _caffe_runtime(dialect: str) -> str:
    """pycaffe runs what BVLC Caffe understands; OpenCV's importer runs the ``opencv`` dialect."""
    runtime = "opencv" if dialect == "opencv" else "pycaffe"
    if not available_runtimes()[runtime]:
        pytest.skip(f"{runtime} is not available to run the converted Caffe net")
    return runtime


def convert_and_check(model: Exported, tmp_path: Path, dialect: str = "bvlc") -> None:
    """PyTorch vs onnxruntime vs Caffe, per output; then every blob shared by the ONNX file and Caffe."""
    runtime = _caffe_runtime(dialect)
    _check(compare(model.reference, _onnxruntime(model), outputs=model.outputs, rtol=RTOL, atol=ATOL),
           "PyTorch vs onnxruntime")
    prototxt = tmp_path / f"{model.onnx_path.stem}-{dialect}.prototxt"
    shapes = {name: list(array.shape) for name, array in model.inputs.items()}
    result = nnbridge.convert(model.onnx_path, prototxt, dialect=dialect, input_shapes=shapes)
    assert result.output_weights is not None and Path(result.output_weights).is_file()
    logger.info("%s: %s", prototxt.name, result.notes)
    caffe = run_in_worker(runtime, (prototxt, result.output_weights), model.inputs)
    # Caffe's outputs are the blobs no layer consumes; an output that also feeds a layer is just a blob
    assert set(caffe.outputs) <= set(model.outputs), f"extra Caffe outputs {caffe.outputs}"
    _check(compare(model.reference, caffe, outputs=model.outputs, rtol=RTOL, atol=ATOL),
           f"PyTorch vs Caffe ({caffe.runtime}, dialect {dialect})")
    # intermediates: hub value names are the ONNX names, and Caffe blob names are hub value names
    every_value = onnxruntime_rt.run(model.onnx_path, model.inputs)
    shared = compare(every_value, caffe, outputs=model.outputs, rtol=RTOL, atol=ATOL)
    _check(shared, "onnxruntime vs Caffe, outputs and shared intermediates")
    logger.info("%d blobs compared:\n%s", len(shared.rows), shared.table())


CONVERTIBLE = ["plain", "mobilenet", "inception", "se", "decoder", "mlp", "two_inputs"]


@pytest.mark.caffe
@pytest.mark.parametrize("exporter", [e for e in EXPORTERS if e not in ("dynamo-external", "torchscript-opset11")])
@pytest.mark.parametrize("name", CONVERTIBLE)
def test_torch_model_converts_exactly(name: str, exporter: str, exports: Callable[[str, str], Exported],
                                      tmp_path: Path) -> None:
    convert_and_check(exports(name, exporter), tmp_path)


@pytest.mark.caffe
def test_external_data_file(exports: Callable[[str, str], Exported], tmp_path: Path) -> None:
    """The dynamo exporter's default output (weights in a .onnx.data file beside the model), and verify()."""
    model = exports("se", "dynamo-external")
    assert model.onnx_path.with_name(model.onnx_path.name + ".data").is_file()
    prototxt = tmp_path / "se.prototxt"
    shapes = {name: list(array.shape) for name, array in model.inputs.items()}
    result = nnbridge.convert(model.onnx_path, prototxt, input_shapes=shapes)
    report = verify(model.onnx_path, prototxt, converted_weights=result.output_weights, inputs=model.inputs,
                    input_shapes=shapes, rtol=RTOL, atol=ATOL, runtimes=(None, _caffe_runtime("bvlc")))
    _check(report.comparison, "verify(): onnxruntime vs Caffe")
    convert_and_check(model, tmp_path)


OTHER_DIALECTS = [
    ("mobilenet", "torchscript", "ssd"), ("mobilenet", "dynamo", "ssd"),  # ReLU6: exact ReLU/Eltwise rewrite
    ("mobilenet", "torchscript", "opencv"), ("mobilenet", "dynamo", "opencv"),  # ReLU6 layer
    ("decoder", "dynamo", "ssd"), ("decoder", "dynamo", "opencv"),  # nearest x2: an exact Deconvolution in both
    ("inception", "dynamo", "opencv"),
    ("mobilenet_v3", "torchscript", "opencv"), ("resnet_stem", "dynamo", "opencv"),  # Power/ReLU/Eltwise; Slice
    ("cbam", "dynamo", "opencv"),  # Tile, Slice + Eltwise channel pools
]


@pytest.mark.caffe
@pytest.mark.parametrize(("name", "exporter", "dialect"), OTHER_DIALECTS)
def test_other_dialects(name: str, exporter: str, dialect: str, exports: Callable[[str, str], Exported],
                        tmp_path: Path) -> None:
    """The ssd dialect runs in pycaffe; the opencv dialect in OpenCV's Caffe importer."""
    convert_and_check(exports(name, exporter), tmp_path, dialect)


@pytest.mark.caffe
@pytest.mark.parametrize("dialect", ["bvlc", "ssd", "opencv"])
def test_general_clip_and_maxpool_output(dialect: str, exports: Callable[[str, str], Exported],
                                         tmp_path: Path) -> None:
    """torch.clamp(-1, 1): a Clip layer where the target runs it, else the exact ReLU/Eltwise rewrite."""
    convert_and_check(exports("clamp", "dynamo"), tmp_path, dialect)


@pytest.mark.caffe
@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_mobilenet_v3_hard_activations(exporter: str, exports: Callable[[str, str], Exported],
                                       tmp_path: Path) -> None:
    """HardSwish / HardSigmoid: Power + ReLU/Eltwise (+ Eltwise PROD with x for HardSwish)."""
    convert_and_check(exports("mobilenet_v3", exporter), tmp_path)


@pytest.mark.caffe
@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_resnet_stem_floor_mode_maxpool(exporter: str, exports: Callable[[str, str], Exported],
                                        tmp_path: Path) -> None:
    """Floor-mode MaxPool2d(3, 2, 1): Caffe's (ceil) Pooling, then Slice off the extra row and column."""
    convert_and_check(exports("resnet_stem", exporter), tmp_path)


@pytest.mark.caffe
@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_spatial_attention_broadcasts(exporter: str, exports: Callable[[str, str], Exported],
                                      tmp_path: Path) -> None:
    """CBAM: channel mean/max (Slice + Eltwise), (N, 1, H, W) attention map times features (Tile +
    Eltwise PROD), channel attention (N, C, 1, 1) (Flatten + two-bottom Scale)."""
    convert_and_check(exports("cbam", exporter), tmp_path)


@pytest.mark.caffe
@pytest.mark.parametrize("name", ["plain", "mobilenet", "decoder"])
def test_opset11_exports(name: str, exports: Callable[[str, str], Exported], tmp_path: Path) -> None:
    convert_and_check(exports(name, "torchscript-opset11"), tmp_path)


@pytest.mark.caffe
def test_opset11_softmax_over_channels(exports: Callable[[str, str], Exported], tmp_path: Path) -> None:
    """opset < 13 writes softmax(dim=1) as Transpose -> Softmax(axis=-1) -> Transpose: folded back."""
    convert_and_check(exports("inception", "torchscript-opset11"), tmp_path)


def test_dynamic_input_without_shape_names_the_fix(exports: Callable[[str, str], Exported],
                                                   tmp_path: Path) -> None:
    """A dynamic batch and no input_shapes: one error naming the input and how to fix its shape."""
    model = exports("plain", "torchscript-dynamic")
    with pytest.raises(ConversionError) as info:
        nnbridge.convert(model.onnx_path, tmp_path / "net.prototxt")
    message = str(info.value)
    assert INPUT in message and ("input-shape" in message or "input_shapes" in message), message
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_unsupported_ops_listed_in_one_error(exporter: str, exports: Callable[[str, str], Exported],
                                             tmp_path: Path) -> None:
    """torch.atan and torch.cumsum: one error naming both, no file written."""
    model = exports("unsupported", exporter)
    out = tmp_path / "out" / "net.prototxt"
    out.parent.mkdir()
    with pytest.raises(UnsupportedOpsError) as info:
        nnbridge.convert(model.onnx_path, out)
    ops = {item.op.split(":")[-1] for item in info.value.items}
    assert "CumSum" in ops, info.value.items
    assert "Atan" in ops, info.value.items
    assert "CumSum" in str(info.value) and len(info.value.items) >= 2
    assert list(out.parent.iterdir()) == [], "a failed conversion left files behind"


@pytest.mark.caffe
def test_cli_converts_dynamic_batch_export(exports: Callable[[str, str], Exported], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """``nnbridge convert model.onnx -o net.prototxt --caffe-dialect ssd --input-shape ... --verify``."""
    from nnbridge.cli import main

    model = exports("mobilenet", "torchscript-dynamic")
    prototxt = tmp_path / "mobilenet.prototxt"
    dims = ",".join(str(d) for d in model.inputs[INPUT].shape)
    status = main(["convert", str(model.onnx_path), "-o", str(prototxt), "--caffe-dialect", "ssd",
                   "--input-shape", f"{INPUT}={dims}", "--verify"])
    assert status == 0, capsys.readouterr().err
    caffe = run_in_worker(_caffe_runtime("ssd"), (prototxt, prototxt.with_suffix(".caffemodel")), model.inputs)
    _check(compare(model.reference, caffe, outputs=model.outputs, rtol=RTOL, atol=ATOL), "PyTorch vs Caffe")


def test_cli_reports_all_unsupported_ops(exports: Callable[[str, str], Exported], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from nnbridge.cli import main

    model = exports("unsupported", "torchscript")
    status = main(["convert", str(model.onnx_path), "-o", str(tmp_path / "net.prototxt")])
    err = capsys.readouterr().err.strip()
    errors = [line for line in err.splitlines() if line.startswith("nnbridge: error:")]
    assert status == 1
    assert len(errors) == 1 and "CumSum" in errors[0] and "2 unsupported" in errors[0], err
    assert not list(tmp_path.iterdir())
