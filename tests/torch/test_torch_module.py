"""A live ``torch.nn.Module`` -> Caffe and MXNet with :func:`nnbridge.torch.convert_module`, checked against PyTorch.

Each model of :data:`MODELS` gets seeded, realistic parameters (:func:`realistic_init`: He-normal conv/linear
weights, biases ~ N(0, 0.1), BatchNorm ``running_var``/``weight`` ~ U(0.5, 1.5), ``running_mean`` ~ N(0, 0.2),
``bias`` ~ N(0, 0.1)) and N(0, 1) inputs (batch 2, so that a flatten losing the batch axis is caught). It is
exported with BOTH exporters (``dynamo``, ``torchscript``) and converted to

- Caffe (bvlc dialect), run in REAL Caffe (pycaffe in a worker process), and
- MXNet, run in REAL MXNet 1.9.1 (its own interpreter: ``$NNBRIDGE_MXNET_PYTHON`` / ``.venv-mxnet``),

by ``convert_module(..., verify=True)``; every output must match PyTorch's: max |a - b| / max |ref| <= 1e-4
(:data:`RTOL`). The report is checked too: which runtime ran, that every output was compared.
Bilinear upsampling with ``align_corners=True`` is a known gap of the Caffe exporter (:data:`GAPS`): its
refusal is what is tested there.
"""

from __future__ import annotations

import logging
import math
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install 'nnbridge[torch]')")
pytest.importorskip("onnxscript", reason="the dynamo exporter and ONNX normalisation need onnxscript")

import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from nnbridge.errors import ConversionError, MissingExtraError, UnsupportedOpsError  # noqa: E402
from nnbridge.torch import convert_module, import_module  # noqa: E402
from nnbridge.verify.worker import available_runtimes  # noqa: E402
from support.mxnet_env import mxnet_python  # noqa: E402

logger = logging.getLogger(__name__)

RTOL = 1e-4  # per output: max |a - b| / max |ref|
ATOL = 1e-7  # only rescues all-zero outputs (float32 noise)
EXPORTERS = ("dynamo", "torchscript")


def conv_bn_relu(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: type = nn.ReLU) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout),
                         act())


class Plain(nn.Module):
    """conv/BN/ReLU, max and average pooling, ``torch.flatten`` + Linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                      nn.MaxPool2d(2), conv_bn_relu(16, 24), nn.AvgPool2d(2))
        self.fc = nn.Linear(24 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.features(x), 1))


class Mobile(nn.Module):
    """Strided conv + ReLU6, depthwise 3x3 + ReLU6, pointwise; ``view(n, -1)`` + Linear; two outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = conv_bn_relu(3, 16, stride=2, act=nn.ReLU6)
        self.dw = conv_bn_relu(16, 16, groups=16, act=nn.ReLU6)
        self.pw = conv_bn_relu(16, 32, k=1, act=nn.ReLU6)
        self.head = nn.Linear(32 * 2 * 2, 6)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.pw(self.dw(self.stem(x)))
        pooled = F.avg_pool2d(feat, 4)
        return self.head(pooled.view(pooled.size(0), -1)), feat


class Upsample(nn.Module):
    """``nn.Upsample(scale_factor=2)`` in ``nearest`` and in ``bilinear`` mode (PyTorch's default
    ``align_corners=False``) side by side between convolutions, plus a skip connection."""

    def __init__(self) -> None:
        super().__init__()
        self.down = conv_bn_relu(3, 8, stride=2)
        self.nearest = nn.Upsample(scale_factor=2, mode="nearest")
        self.bilinear = nn.Upsample(scale_factor=2, mode="bilinear")
        self.skip = nn.Conv2d(3, 16, 1)
        self.head = nn.Conv2d(16, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.down(x)
        return self.head(torch.cat([self.nearest(y), self.bilinear(y)], 1) + self.skip(x))


class AlignCorners(nn.Module):
    """``nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)`` between convolutions."""

    def __init__(self) -> None:
        super().__init__()
        self.down = conv_bn_relu(3, 8, stride=2)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.head = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.up(self.down(x)))


class SqueezeExcite(nn.Module):
    """SE block: AdaptiveAvgPool2d(1) -> Linear -> ReLU -> Linear -> Sigmoid, (N, C, 1, 1) broadcast multiply."""

    def __init__(self) -> None:
        super().__init__()
        self.body = conv_bn_relu(3, 32)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1, self.fc2 = nn.Linear(32, 8), nn.Linear(8, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(torch.flatten(self.pool(y), 1)))))
        return y * gate.view(gate.size(0), -1, 1, 1)


@dataclass(frozen=True)
class Case:
    factory: Callable[[], nn.Module]
    shape: tuple[int, ...]
    outputs: tuple[str, ...] = ("output",)


MODELS: dict[str, Case] = {
    "plain": Case(Plain, (2, 3, 16, 16)),
    "mobile": Case(Mobile, (2, 3, 16, 16), ("logits", "feat")),
    "upsample": Case(Upsample, (2, 3, 12, 12)),
    "align_corners": Case(AlignCorners, (2, 3, 12, 12)),
    "se": Case(SqueezeExcite, (2, 3, 12, 12)),
}

#: (model, target) -> what the exporter refuses today: the conversion must be one UnsupportedOpsError matching
#: this pattern, leaving no file behind (a refusal, never an approximation). Once the exporter learns the op,
#: the test fails ("DID NOT RAISE"): remove the entry, and the model is then checked like the others.
GAPS: dict[tuple[str, str], str] = {
    ("align_corners", "caffe"): r"Resize x1 \(.*\): linear resize with coordinate_transformation_mode "
                                r"'align_corners' is not exported",
}


def realistic_init(module: nn.Module, seed: int = 0) -> None:
    """He-normal conv/linear weights, small biases, realistic BatchNorm statistics (module docstring)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * math.sqrt(2.0 / fan_in))
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                assert m.running_var is not None and m.running_mean is not None
                m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.2)
                m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.1)


def build(name: str, seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    case = MODELS[name]
    torch.manual_seed(seed)
    module = case.factory()
    realistic_init(module, seed)
    module.eval()
    return module, torch.randn(case.shape, generator=torch.Generator().manual_seed(seed + 1))


def runtime_for(target: str) -> str:
    """The runtime spec of the target: pycaffe (never the OpenCV stand-in) or MXNet's interpreter."""
    if target == "mxnet":
        return f"mxnet={mxnet_python()}"
    if not available_runtimes()["pycaffe"]:
        pytest.skip("pycaffe is not available to run the converted Caffe net")
    return "pycaffe"


def check_conversion(name: str, exporter: str, target: str, tmp_path: Path) -> None:
    module, x = build(name)
    runtime = runtime_for(target)
    output = tmp_path / (f"{name}.prototxt" if target == "caffe" else f"{name}-mx")
    result = convert_module(module, x, output, to=target, exporter=exporter, verify=True,
                            output_names=MODELS[name].outputs, rtol=RTOL, atol=ATOL, runtimes=(runtime,))
    report = result.verification
    logger.info("%s/%s -> %s:\n%s", name, exporter, target, report.render())
    assert report.converted_runtime == runtime.split("=")[0]
    assert [row.name for row in report.comparison.rows] == list(MODELS[name].outputs)
    assert report.passed, report.render()
    assert all(row.max_rel <= RTOL or row.max_abs <= ATOL for row in report.comparison.rows)
    assert Path(result.output).is_file() and result.output_weights and Path(result.output_weights).is_file()
    assert module.training is False


CASES = [pytest.param(name, exporter, target, id=f"{name}-{exporter}-{target}",
                      marks=[pytest.mark.caffe] if target == "caffe" else [])
         for target in ("caffe", "mxnet") for name in MODELS for exporter in EXPORTERS]


@pytest.mark.parametrize(("name", "exporter", "target"), CASES)
def test_module_converts_exactly(name: str, exporter: str, target: str, tmp_path: Path) -> None:
    gap = GAPS.get((name, target))
    if gap is None:
        check_conversion(name, exporter, target, tmp_path)
        return
    module, x = build(name)
    with pytest.raises(UnsupportedOpsError, match=gap) as info:
        convert_module(module, x, tmp_path / f"{name}.prototxt", to=target, exporter=exporter)
    logger.info("%s/%s -> %s refused: %s", name, exporter, target, info.value)
    assert not list(tmp_path.iterdir())


def test_verification_catches_a_difference(tmp_path: Path) -> None:
    """The comparison can fail: PyTorch's reference nudged by 1e-3 of its range no longer passes."""
    from nnbridge.torch import importer

    module, x = build("plain")
    model, traced = importer._import(module, x, "torchscript", None, None)
    from nnbridge.api import save_model

    weights, _ = save_model(model, tmp_path / "plain.onnx")
    exact = importer.verify_outputs(traced, str(tmp_path / "plain.onnx"), weights, "onnx", rtol=RTOL, atol=ATOL)
    assert exact.passed, exact.render()
    out = traced.outputs["output"]
    nudged = replace(traced, outputs={"output": out + np.float32(1e-3) * np.abs(out).max()})
    report = importer.verify_outputs(nudged, str(tmp_path / "plain.onnx"), weights, "onnx", rtol=RTOL, atol=ATOL)
    assert not report.passed and report.comparison.failures[0].name == "output"


def test_not_a_module(tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="not a torch.nn.Module"):
        convert_module(lambda t: t, torch.zeros(1), tmp_path / "f.onnx")


def test_conversion_is_deterministic(tmp_path: Path) -> None:
    """The same module converted twice gives the same files, byte for byte."""
    module, x = build("se")
    files = []
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        result = convert_module(module, x, tmp_path / run / "se.prototxt", exporter="dynamo")
        files.append([Path(result.output).read_bytes(), Path(str(result.output_weights)).read_bytes()])
    assert files[0] == files[1]


def test_import_module_hub_model() -> None:
    module, x = build("mobile")
    model = import_module(module, x, exporter="dynamo", input_names=["image"], output_names=["logits", "feat"])
    assert [v.name for v in model.graph.inputs] == ["image"]
    assert [v.name for v in model.graph.outputs] == ["logits", "feat"]
    assert model.opset_imports[""] == 17
    assert list(model.graph.inputs[0].shape) == [2, 3, 16, 16]
    assert model.metadata_props["nnbridge.torch.exporter"] == "dynamo"
    default = import_module(module, x, exporter="torchscript")  # forward's parameter name, output0/output1
    assert [v.name for v in default.graph.inputs] == ["x"]
    assert [v.name for v in default.graph.outputs] == ["output0", "output1"]


def test_training_mode_is_converted_in_eval_mode_and_restored(tmp_path: Path) -> None:
    module, x = build("plain")
    module.train()
    frozen = module.features[1]  # a BatchNorm the user froze: its own mode must survive too
    frozen.eval()
    with pytest.warns(UserWarning, match="training mode"):
        result = convert_module(module, x, tmp_path / "plain.onnx", exporter="torchscript", verify=True,
                                rtol=RTOL, atol=ATOL)
    assert all(m.training is (m is not frozen) for m in module.modules())
    assert result.verification.passed, result.verification.render()
    module.eval()
    with torch.no_grad():
        expected = module(x).numpy()
    assert np.abs(result.verification.comparison.rows[0].max_abs) <= RTOL * np.abs(expected).max()


class DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if y.sum() > 0:  # a Python branch on a tensor value
            return y * 2
        return y - 1


def test_data_dependent_control_flow_is_refused(tmp_path: Path) -> None:
    module, x = DataDependent().eval(), torch.randn(1, 3, 8, 8)
    with pytest.raises(ConversionError, match=r"DataDependent .*dynamo exporter cannot export it: .*data-dependent"):
        convert_module(module, x, tmp_path / "dd.prototxt", exporter="dynamo")
    with pytest.raises(ConversionError, match=r"DataDependent .*torchscript tracer .*Python boolean"):
        convert_module(module, x, tmp_path / "dd.prototxt", exporter="torchscript")
    assert not list(tmp_path.iterdir())


def test_wrong_example_inputs(tmp_path: Path) -> None:
    module, _ = build("plain")
    with pytest.raises(ConversionError, match=r"Plain .*forward fails on the example input\(s\) \(2, 3, 20, 20\) "
                                              r"float32: RuntimeError"):
        convert_module(module, torch.randn(2, 3, 20, 20), tmp_path / "p.prototxt")
    with pytest.raises(ConversionError, match="example_inputs must be a tensor"):
        convert_module(module, np.zeros((2, 3, 16, 16), np.float32), tmp_path / "p.prototxt")
    with pytest.raises(ConversionError, match="2 output names"):
        import_module(module, torch.randn(2, 3, 16, 16), output_names=["a", "b"])
    with pytest.raises(ConversionError, match="unknown exporter"):
        import_module(module, torch.randn(2, 3, 16, 16), exporter="onnx")
    assert not list(tmp_path.iterdir())


def test_package_import_is_lazy() -> None:
    code = "import sys, nnbridge.torch; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_torch_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import nnbridge.torch

    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    with pytest.raises(MissingExtraError, match=r"nnbridge\[torch\]"):
        nnbridge.torch.convert_module  # noqa: B018
