#!/usr/bin/env python3
"""Benchmark: convert a VGG-16-sized caffemodel to ONNX, against copying the same file with ``cp``.

Writes ``vgg16.prototxt`` and a seeded-random ``vgg16.caffemodel`` (138,357,544 float32 parameters,
about 553 MB; streamed layer by layer, each blob generated in place so at most one layer is in memory),
runs each command once untimed (the input in the page cache, Python bytecode in its cache), then times
``--repeat`` rounds of, one after the other (so both see the same load), in child processes whose CPU time
and peak RSS come from ``os.wait4``'s rusage (every run writes a fresh file, after ``sync``):

- ``cp vgg16.caffemodel copy.caffemodel``
- ``nnbridge convert vgg16.prototxt --weights vgg16.caffemodel -o vgg16.onnx``

Each figure is the best over the rounds (see ``benchmarks/mxnet_convert.py`` on wall and CPU times).
Targets: conversion time within 2x the copy time, peak RSS within 1.5x the caffemodel's size.
Usage: python benchmarks/vgg16_convert.py [--workdir DIR] [--repeat N] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    Step,
    child_env,
    cli_command,
    interleaved,
    table_header,
    table_rows,
    targets,
    warm_up,
    write_vgg16_in_child,
)


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
        prototxt, caffemodel = write_vgg16_in_child(workdir)
        size_mb = caffemodel.stat().st_size / 2**20
        print(f"wrote {caffemodel}: {size_mb:.0f} MiB in {time.perf_counter() - start:.1f} s")
        copy, onnx_out = workdir / "copy.caffemodel", workdir / "vgg16.onnx"
        env = child_env(workdir)
        cp = ["cp", str(caffemodel), str(copy)]
        convert = cli_command("convert", str(prototxt), "--weights", str(caffemodel), "-o", str(onnx_out))
        warm_up([cp, convert], env)
        base, converted = interleaved(args.repeat, [("cp", cp, [copy]), ("nnbridge convert", convert, [onnx_out])],
                                      env)
        step = Step("Caffe -> ONNX", base, [converted], size_mb)
        load = os.getloadavg()
        print(f"\nbest of {args.repeat} interleaved rounds, warm page cache, fresh output files, {os.cpu_count()} "
              f"cores, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the end; "
              f"output {onnx_out.stat().st_size / 2**20:.0f} MiB")
        print("\n".join([*table_header(), *table_rows(step)]))
        print(f"\ntargets: {targets(step)}")
        return 0
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
