#!/usr/bin/env python3
"""Benchmark: a VGG-16-sized model Caffe -> MXNet and MXNet -> Caffe, against ``cp`` and MXNet's own loaders.

Writes ``vgg16.prototxt`` + a seeded-random ``vgg16.caffemodel`` (138,357,544 float32 parameters, 553,432,332
bytes; see ``_common.write_vgg16``) in a child process, so that this parent stays small (Linux counts a parent's
peak RSS in its children's ``ru_maxrss``), runs every command once untimed (inputs into the page cache, Python
bytecode into its cache: ``_common.child_env``), then times ``--repeat`` rounds, each running a conversion and
the ``cp`` of its input weights file one after the other (so both see the same load), each in a child process
whose CPU time and peak RSS come from ``os.wait4``, every output file deleted and ``sync`` run before each run:

1. ``cp vgg16.caffemodel`` and Caffe -> MXNet: ``vgg16.prototxt`` + ``vgg16.caffemodel`` -> ``vgg16-symbol.json``
   + ``vgg16-0000.params`` (``nnbridge convert ... --to mxnet`` when the CLI offers it, else ``load_caffe`` +
   ``import_layers`` + ``export_mxnet`` + ``save_mxnet``);
2. ``cp vgg16-0000.params`` and MXNet -> Caffe: those two files -> ``back.prototxt`` + ``back.caffemodel``
   (the CLI, else ``load_mxnet`` + ``import_mxnet`` + ``export_caffe`` + ``save_caffe``);
3. with an MXNet Python (env ``NNBRIDGE_MXNET_PYTHON``, else ``/work/venv-mx/bin/python``, else
   ``<repo>/.venv-mxnet/bin/python``): ``mx.nd.load(params)`` + ``mx.sym.load(json)``, and
   ``mx.nd.load(params)`` + ``mx.nd.save`` of the same arrays: MXNet's own loaders on the same files.

Each figure is the best of the runs: wall time and CPU time (user + system) of the whole process, and both
"after imports" (the conversion's own time as ``nnbridge convert`` reports it, and the CPU time after the
imports the CLI does before converting). On a quiet machine a conversion's wall time is its CPU time (one
thread, everything in the page cache); on a busy one CPU times are the steadier comparison.

Targets (issue 3): each conversion within 2x its ``cp`` time, peak RSS within 1.5x the input weights file's size.
Usage: python benchmarks/mxnet_convert.py [--workdir DIR] [--repeat N] [--keep] [--via auto|api|cli]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
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

logger = logging.getLogger("mxnet_convert")
HERE = Path(__file__).resolve().parent
INPUT_SHAPE = (1, 3, 224, 224)

MX_LOAD = """
import sys, time
import mxnet as mx
start, cpu = time.perf_counter(), time.process_time()
arrays = mx.nd.load(sys.argv[1])
symbol = mx.sym.load(sys.argv[2])
mx.nd.waitall()
print(f"{len(arrays)} arrays, {len(symbol.list_outputs())} outputs in {time.perf_counter() - start:.3f} s")
print(f"cpu after imports: {time.process_time() - cpu:.3f} s")
"""

MX_ROUNDTRIP = """
import sys, time
import mxnet as mx
start, cpu = time.perf_counter(), time.process_time()
arrays = mx.nd.load(sys.argv[1])
mx.nd.save(sys.argv[2], arrays)
print(f"{len(arrays)} arrays in {time.perf_counter() - start:.3f} s")
print(f"cpu after imports: {time.process_time() - cpu:.3f} s")
"""


# ------------------------------------------------------------------------------------------------ child side
def caffe_to_mxnet(prototxt: str, caffemodel: str, prefix: str) -> None:
    from nnbridge.caffe.formats.net import load_caffe
    from nnbridge.caffe.importer import import_layers
    from nnbridge.mxnet.exporter import export_mxnet, save_mxnet

    start, cpu = time.perf_counter(), time.process_time()
    net = load_caffe(prototxt, caffemodel)
    assert net.weights is not None
    model = import_layers(net.net.layer, net.inputs, net.weights, name=net.net.name, source=prototxt)
    save_mxnet(export_mxnet(model), prefix)
    print(f"converted in {time.perf_counter() - start:.3f} s\ncpu after imports: {time.process_time() - cpu:.3f} s")


def mxnet_to_caffe(symbol: str, params: str, prototxt: str) -> None:
    from nnbridge.caffe.exporter import export_caffe
    from nnbridge.caffe.formats.net import save_caffe
    from nnbridge.mxnet.formats.checkpoint import load_mxnet
    from nnbridge.mxnet.importer import import_mxnet

    start, cpu = time.perf_counter(), time.process_time()
    loaded = load_mxnet(symbol, params)
    model = import_mxnet(loaded.graph, loaded.params, {"data": INPUT_SHAPE}, source=symbol, name="vgg16")
    exported = export_caffe(model)
    save_caffe(exported.net, exported.blobs, prototxt, Path(prototxt).with_suffix(".caffemodel"))
    print(f"converted in {time.perf_counter() - start:.3f} s\ncpu after imports: {time.process_time() - cpu:.3f} s")


def child(argv: Sequence[str]) -> int:
    direction, *paths = argv
    if direction == "caffe-to-mxnet":
        caffe_to_mxnet(*paths)
    else:
        mxnet_to_caffe(*paths)
    return 0


# ----------------------------------------------------------------------------------------------- parent side
def mxnet_python() -> str | None:
    candidates = [os.environ.get("NNBRIDGE_MXNET_PYTHON"), "/work/venv-mx/bin/python",
                  str(HERE.parent / ".venv-mxnet" / "bin" / "python")]
    return next((c for c in candidates if c and Path(c).is_file()), None)


def cli_has_mxnet() -> bool:
    """True when ``nnbridge convert --help`` offers ``--to mxnet``."""
    proc = subprocess.run([sys.executable, "-m", "nnbridge.cli", "convert", "--help"], capture_output=True,
                          text=True, check=False)
    return proc.returncode == 0 and "mxnet" in proc.stdout


def run(workdir: Path, repeat: int, via: str) -> None:
    python = sys.executable
    start = time.perf_counter()
    write_vgg16_in_child(workdir)
    prototxt, caffemodel = workdir / "vgg16.prototxt", workdir / "vgg16.caffemodel"
    logger.info("wrote %s (%.0f MiB) in %.1f s", caffemodel, caffemodel.stat().st_size / 2**20,
                time.perf_counter() - start)
    env = child_env(workdir)
    use_cli = via == "cli" or (via == "auto" and cli_has_mxnet())
    prefix = workdir / "vgg16"
    symbol, params = workdir / "vgg16-symbol.json", workdir / "vgg16-0000.params"
    back = workdir / "back.prototxt"
    copy = workdir / "copy.bin"
    if use_cli:
        to_mx = cli_command("convert", str(prototxt), "--weights", str(caffemodel), "-o", str(prefix), "--to", "mxnet")
        to_caffe = cli_command("convert", str(symbol), "--weights", str(params), "-o", str(back),
                               "--input-shape", "data=" + ",".join(map(str, INPUT_SHAPE)))
    else:
        me = [python, str(Path(__file__).resolve()), "--child"]
        to_mx = [*me, "caffe-to-mxnet", str(prototxt), str(caffemodel), str(prefix)]
        to_caffe = [*me, "mxnet-to-caffe", str(symbol), str(params), str(back)]
    label = "nnbridge convert" if use_cli else "nnbridge API"
    cp_model, cp_params = ["cp", str(caffemodel), str(copy)], ["cp", str(params), str(copy)]

    warm_up([cp_model, to_mx, cp_params, to_caffe], env)
    caffe_mb = caffemodel.stat().st_size / 2**20
    base, forward = interleaved(repeat, [("cp vgg16.caffemodel", cp_model, [copy]),
                                         (f"{label}: Caffe -> MXNet", to_mx, [symbol, params])], env)
    steps = [Step("Caffe -> MXNet", base, [forward], caffe_mb)]
    params_mb = params.stat().st_size / 2**20
    outputs = [back, back.with_suffix(".caffemodel")]
    base, backward = interleaved(repeat, [("cp vgg16-0000.params", cp_params, [copy]),
                                          (f"{label}: MXNet -> Caffe", to_caffe, outputs)], env)
    steps.append(Step("MXNet -> Caffe", base, [backward], params_mb))

    mx = mxnet_python()
    if mx is None:
        logger.warning("no MXNet Python (set NNBRIDGE_MXNET_PYTHON): MXNet's own loaders not timed")
    else:
        resaved = workdir / "resaved.params"
        load = [mx, "-c", MX_LOAD, str(params), str(symbol)]
        roundtrip = [mx, "-c", MX_ROUNDTRIP, str(params), str(resaved)]
        warm_up([load], env)
        series = interleaved(repeat, [("cp vgg16-0000.params", cp_params, [copy]),
                                      ("mx.nd.load + mx.sym.load", load, []),
                                      ("mx.nd.load + mx.nd.save", roundtrip, [resaved])], env)
        steps.append(Step("MXNet's own loaders (reference)", series[0], series[1:], params_mb, checked=False))
    copy.unlink(missing_ok=True)
    report(steps, repeat, caffe_mb, params_mb)


def report(steps: list[Step], repeat: int, caffe_mb: float, params_mb: float) -> None:
    load = os.getloadavg()
    print(f"\nbest of {repeat} interleaved rounds, warm page cache, fresh output files, {os.cpu_count()} cores, "
          f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the end; "
          f"vgg16.caffemodel {caffe_mb:.0f} MiB, vgg16-0000.params {params_mb:.0f} MiB")
    print("\n".join(table_header()))
    for step in steps:
        print("\n".join(table_rows(step)))
    print("\ntargets:")
    for step in steps:
        if step.checked:
            print(f"- {targets(step)}")


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["--child"]:
        return child(args_list[1:])
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="where to write (default: a temporary directory)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command; the best is reported")
    parser.add_argument("--keep", action="store_true", help="keep the files")
    parser.add_argument("--via", choices=("auto", "api", "cli"), default="auto",
                        help="run conversions through the CLI (auto: when it offers --to mxnet) or the Python API")
    args = parser.parse_args(args_list)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="nnbridge-bench-mx-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        run(workdir, args.repeat, args.via)
        return 0
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
