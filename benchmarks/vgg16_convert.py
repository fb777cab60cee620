#!/usr/bin/env python3
"""Benchmark: convert a VGG-16-sized caffemodel to ONNX, against copying the same file with ``cp``.

Writes ``vgg16.prototxt`` and a seeded-random ``vgg16.caffemodel`` (138,357,544 float32 parameters,
about 553 MB; streamed layer by layer, each blob generated in place so at most one layer is in memory),
then times, in child processes whose peak RSS comes from ``os.wait4``'s rusage:

- ``cp vgg16.caffemodel copy.caffemodel`` (after one warm-up copy, so both runs read from the page cache;
  every run writes a fresh file, after ``sync``)
- ``nnbridge convert vgg16.prototxt --weights vgg16.caffemodel -o vgg16.onnx``

Targets: conversion time within 2x the copy time, peak RSS within 1.5x the caffemodel's size.
Usage: python benchmarks/vgg16_convert.py [--workdir DIR] [--repeat N] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import best_of, write_vgg16_in_child


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
        subprocess.run(["cp", str(caffemodel), str(copy)], check=True)  # warm-up: the input in the page cache
        best_cp, cp = best_of(args.repeat, "cp", ["cp", str(caffemodel), str(copy)], [copy])
        best_cv, convert = best_of(args.repeat, "nnbridge convert",
                                   [sys.executable, "-m", "nnbridge.cli", "convert", str(prototxt),
                                    "--weights", str(caffemodel), "-o", str(onnx_out)], [onnx_out])
        print(f"\nbest of {args.repeat}, warm page cache, fresh output files, {os.cpu_count()} cores; "
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
