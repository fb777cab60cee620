#!/usr/bin/env python3
"""Benchmark: convert a VGG-16-sized caffemodel to ONNX, against copying the same file with ``cp``.

Writes ``vgg16.prototxt`` and a seeded-random ``vgg16.caffemodel`` (138,357,544 float32 parameters,
about 553 MB; streamed layer by layer, each blob generated in place so at most one layer is in memory),
then times, in child processes whose peak RSS comes from ``os.wait4``'s rusage:

- ``cp vgg16.caffemodel copy.caffemodel`` (after one warm-up copy, so both runs read from the page cache)
- ``nnbridge convert vgg16.prototxt --weights vgg16.caffemodel -o vgg16.onnx``

Targets: conversion time within 2x the copy time, peak RSS within 1.5x the caffemodel's size.
Usage: python benchmarks/vgg16_convert.py [--workdir DIR] [--repeat N] [--keep]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# (name, out channels) per conv layer; ("pool", 0) marks a 2x2/2 max pooling
POOL = ("pool", 0)
VGG16: list[tuple[str, int]] = [
    ("conv1_1", 64), ("conv1_2", 64), POOL, ("conv2_1", 128), ("conv2_2", 128), POOL,
    ("conv3_1", 256), ("conv3_2", 256), ("conv3_3", 256), POOL,
    ("conv4_1", 512), ("conv4_2", 512), ("conv4_3", 512), POOL,
    ("conv5_1", 512), ("conv5_2", 512), ("conv5_3", 512), POOL,
]
FC = [("fc6", 4096), ("fc7", 4096), ("fc8", 1000)]


def vgg16_prototxt() -> tuple[str, dict[str, list[tuple[int, ...]]]]:
    """The deploy prototxt and the blob shapes per layer."""
    lines = ['name: "VGG_ILSVRC_16_layers"', 'input: "data"',
             "input_shape { dim: 1 dim: 3 dim: 224 dim: 224 }"]
    shapes: dict[str, list[tuple[int, ...]]] = {}
    bottom, channels, size, pools = "data", 3, 224, 0
    for name, out in VGG16:
        if (name, out) == POOL:
            pools += 1
            top = f"pool{pools}"
            lines.append(f'layer {{ name: "{top}" type: "Pooling" bottom: "{bottom}" top: "{top}" '
                         "pooling_param { pool: MAX kernel_size: 2 stride: 2 } }")
            bottom, size = top, size // 2
            continue
        lines.append(f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{name}" '
                     f"convolution_param {{ num_output: {out} pad: 1 kernel_size: 3 }} }}")
        lines.append(f'layer {{ name: "relu{name[4:]}" type: "ReLU" bottom: "{name}" top: "{name}" }}')
        shapes[name] = [(out, channels, 3, 3), (out,)]
        bottom, channels = name, out
    inputs = channels * size * size
    for i, (name, out) in enumerate(FC):
        lines.append(f'layer {{ name: "{name}" type: "InnerProduct" bottom: "{bottom}" top: "{name}" '
                     f"inner_product_param {{ num_output: {out} }} }}")
        if i < 2:
            lines.append(f'layer {{ name: "relu{name[2:]}" type: "ReLU" bottom: "{name}" top: "{name}" }}')
        shapes[name] = [(out, inputs), (out,)]
        bottom, inputs = name, out
    lines.append(f'layer {{ name: "prob" type: "Softmax" bottom: "{bottom}" top: "prob" }}')
    return "\n".join(lines) + "\n", shapes


class LazyBlobs(Mapping[str, list[np.ndarray]]):
    """Blobs generated when the writer asks for a layer (He-normal weights, small biases), then dropped."""

    def __init__(self, shapes: dict[str, list[tuple[int, ...]]], seed: int = 0) -> None:
        self.shapes = shapes
        self.seed = seed

    def __contains__(self, layer: object) -> bool:  # Mapping's default would generate the blobs
        return layer in self.shapes

    def __getitem__(self, layer: str) -> list[np.ndarray]:
        if layer not in self.shapes:
            raise KeyError(layer)
        rng = np.random.default_rng([self.seed, sorted(self.shapes).index(layer)])
        blobs = []
        for shape in self.shapes[layer]:
            array = rng.standard_normal(shape, dtype=np.float32)
            array *= np.float32(np.sqrt(2.0 / np.prod(shape[1:])) if len(shape) > 1 else 0.01)
            blobs.append(array)
        return blobs

    def __iter__(self) -> Iterator[str]:
        return iter(self.shapes)

    def __len__(self) -> int:
        return len(self.shapes)


def write_vgg16(workdir: Path) -> tuple[Path, Path, int]:
    from nnbridge.caffe.formats.caffemodel import write_caffemodel
    from nnbridge.caffe.formats.prototxt import parse_prototxt
    from nnbridge.caffe.formats.upgrade import upgrade_net

    text, shapes = vgg16_prototxt()
    prototxt, caffemodel = workdir / "vgg16.prototxt", workdir / "vgg16.caffemodel"
    prototxt.write_text(text)
    net = parse_prototxt(text, str(prototxt))
    upgrade_net(net, str(prototxt))
    write_caffemodel(caffemodel, net, LazyBlobs(shapes))
    params = sum(int(np.prod(s)) for blobs in shapes.values() for s in blobs)
    return prototxt, caffemodel, params


@dataclass
class Run:
    what: str
    seconds: float
    peak_rss_mb: float
    inner_seconds: float | None = None  # conversion time without interpreter start-up and imports


def timed(what: str, cmd: list[str]) -> Run:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=dict(os.environ, GLOG_minloglevel="2"), stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed with exit status {proc.returncode}: {' '.join(cmd)}")
    inner = re.search(r" in ([0-9.]+) s$", output.strip())  # `nnbridge convert` reports its own time
    return Run(what, seconds, usage.ru_maxrss / 1024, float(inner.group(1)) if inner else None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="where to write (default: a temporary directory)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command; the best is reported")
    parser.add_argument("--keep", action="store_true", help="keep the files")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="nnbridge-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        start = time.perf_counter()
        prototxt, caffemodel, params = write_vgg16(workdir)
        size_mb = caffemodel.stat().st_size / 2**20
        print(f"wrote {caffemodel}: {params:,} parameters, {size_mb:.0f} MiB "
              f"in {time.perf_counter() - start:.1f} s")
        copy, onnx_out = workdir / "copy.caffemodel", workdir / "vgg16.onnx"
        cp = [timed("cp", ["cp", str(caffemodel), str(copy)]) for _ in range(args.repeat)]
        convert = [timed("nnbridge convert", [sys.executable, "-m", "nnbridge.cli", "convert", str(prototxt),
                                              "--weights", str(caffemodel), "-o", str(onnx_out)])
                   for _ in range(args.repeat)]
        best_cp = min(cp, key=lambda r: r.seconds)
        best_cv = min(convert, key=lambda r: r.seconds)
        print(f"\nbest of {args.repeat}, warm page cache, {os.cpu_count()} cores; "
              f"output {onnx_out.stat().st_size / 2**20:.0f} MiB")
        print("| command | seconds | peak RSS (MiB) | time / cp | peak RSS / file size |")
        print("| --- | ---: | ---: | ---: | ---: |")
        rows = [(f"`{best_cp.what}`", best_cp.seconds, best_cp.peak_rss_mb),
                (f"`{best_cv.what}` (whole process)", best_cv.seconds, best_cv.peak_rss_mb)]
        if best_cv.inner_seconds is not None:
            rows.append(("conversion alone (after imports)", best_cv.inner_seconds, best_cv.peak_rss_mb))
        for label, seconds, rss in rows:
            print(f"| {label} | {seconds:.2f} | {rss:.0f} | {seconds / best_cp.seconds:.2f}x | {rss / size_mb:.2f}x |")
        ok_time = best_cv.seconds <= 2 * best_cp.seconds
        ok_rss = max(r.peak_rss_mb for r in convert) <= 1.5 * size_mb
        print(f"\ntargets: time <= 2x cp: {'met' if ok_time else 'MISSED'}; "
              f"peak RSS <= 1.5x file size: {'met' if ok_rss else 'MISSED'}")
        return 0
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
