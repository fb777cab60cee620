"""The built-in example: a tiny Caffe net converted Caffe -> ONNX -> Caffe, each step verified.

``tiny_net.prototxt`` (Input 1x3x32x32, Convolution, BatchNorm + Scale, ReLU, ceil-mode MAX pooling with
padding, a residual Eltwise SUM, grouped convolution, Concat, AVE pooling, InnerProduct, Softmax) gets
seeded random weights with realistic statistics (:class:`nnbridge.caffe.weights.RandomWeights`), is
written as a .prototxt/.caffemodel pair, converted to ONNX and back to Caffe, and both conversions are
run against the real runtimes (pycaffe, or OpenCV's Caffe importer without it; onnxruntime).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

EXAMPLE_NAME = "tiny_net"


def example_prototxt() -> str:
    """The text of the example net."""
    return resources.files(__name__).joinpath(f"{EXAMPLE_NAME}.prototxt").read_text(encoding="utf-8")


@dataclass
class ExampleResult:
    outdir: str
    files: list[str] = field(default_factory=list)
    reports: list[Any] = field(default_factory=list)  # verification reports of the two conversions

    @property
    def passed(self) -> bool:
        return all(bool(getattr(r, "passed", False)) for r in self.reports) and len(self.reports) == 2


def write_example_caffe(outdir: str | os.PathLike[str], seed: int = 0) -> tuple[Path, Path]:
    """Write ``tiny_net.prototxt`` and a seeded-random ``tiny_net.caffemodel`` into ``outdir``."""
    from nnbridge.caffe.formats.net import load_caffe, save_caffe
    from nnbridge.caffe.importer import import_layers
    from nnbridge.caffe.weights import RandomWeights
    from nnbridge.fileio import atomic_write

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    source = out / f"{EXAMPLE_NAME}.source.prototxt"
    with atomic_write(source, "w") as handle:
        handle.write(example_prototxt())
    net = load_caffe(source)
    weights = RandomWeights(seed)
    import_layers(net.net.layer, net.inputs, weights, name=EXAMPLE_NAME, source=str(source))  # draws every blob
    prototxt, caffemodel = out / f"{EXAMPLE_NAME}.prototxt", out / f"{EXAMPLE_NAME}.caffemodel"
    save_caffe(net, weights.served, prototxt, caffemodel)
    source.unlink()
    return prototxt, caffemodel


def run_example(outdir: str | os.PathLike[str] = "nnbridge-example", *,
                echo: Callable[[str], None] | None = print) -> ExampleResult:
    """Write the example, convert it Caffe -> ONNX -> Caffe, verify both steps and show the reports."""
    from nnbridge.api import convert

    say = echo or (lambda _text: None)
    out = Path(outdir)
    result = ExampleResult(str(out))
    prototxt, caffemodel = write_example_caffe(out)
    say(f"wrote {prototxt} and {caffemodel} (seeded random weights)")
    onnx_path = out / f"{EXAMPLE_NAME}.onnx"
    back = out / f"{EXAMPLE_NAME}_roundtrip.prototxt"
    steps = [
        ("Caffe -> ONNX", dict(source=prototxt, output=onnx_path, weights=caffemodel)),
        ("ONNX -> Caffe", dict(source=onnx_path, output=back)),
    ]
    for title, kwargs in steps:
        converted = convert(**kwargs, verify=True)  # type: ignore[arg-type]
        written = converted.output + (f" + {converted.output_weights}" if converted.output_weights else "")
        say(f"\n{title}: {converted.source} -> {written} ({converted.seconds:.2f} s)")
        report = converted.verification
        say(_report_text(report))
        result.reports.append(report)
        result.files.append(converted.output)
        if converted.output_weights:
            result.files.append(converted.output_weights)
    say(f"\nexample {'passed' if result.passed else 'FAILED'}: files in {out}")
    return result


def _report_text(report: Any) -> str:
    for method in ("render", "summary", "table"):
        func = getattr(report, method, None)
        if callable(func):
            return str(func())
    return str(report)
