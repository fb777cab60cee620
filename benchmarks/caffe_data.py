#!/usr/bin/env python3
"""Benchmark: Caffe data layers outside Caffe, images per second, next to real Caffe's data layer on the same data.

Builds two LMDBs with ``nnbridge data make-lmdb`` in a work folder:

1. ``gray28``: N 28x28 gray images, raw Datums, ``scale: 0.00390625``, batch 100 (the MNIST setting);
2. ``jpeg256``: N 256x256 colour images as encoded JPEG Datums, ``crop_size: 227 mirror: true`` with ``mean_value``
   (the ImageNet setting, TRAIN phase: random crops and mirrors), batch 50.

and times, best of ``--repeat`` after one warm-up pass (the database in the page cache), each in a child process,
the time the CONSUMER spends getting its batches (the clock runs around a loop of ``batches`` such calls only):

- ``DataLayerReader``: ``reader.next_batch()``, no prefetching: all the reading, decoding and transforming is in
  the timed call (nnbridge's core, this Python);
- ``DataLayerReader + Prefetcher(4)``: ``prefetcher.get()``, a background thread making up to 4 batches ahead
  (started when the reader is built, like Caffe's); the timed call waits for the next batch;
- ``CaffeDataset + DataLoader(1 worker)``: ``next()`` of a PyTorch ``DataLoader`` (``batch_size`` the layer's,
  one worker process, ``prefetch_factor=4``, persistent); the worker reads whole batches (``__getitems__``) and
  hands them over in shared memory: a producer in another process, as Caffe's is in another thread;
- ``CaffeDataIter`` in MXNet's Python (env ``NNBRIDGE_MXNET_PYTHON``, else ``<repo>/.venv-mxnet/bin/python``):
  ``it.next()`` + ``wait_to_read()`` of the data, one epoch per pass (``reset()`` restarts the stream and its
  prefetch thread at the first call of each pass, inside the clock); its default prefetch thread (4 batches, also
  making the ``mx.nd`` arrays) is on;
- real Caffe: ``net.forward()`` of a net holding only the Data layer (in the Caffe built with LMDB/LevelDB/OpenCV,
  env ``NNBRIDGE_CAFFE_DATA_PYTHON``, else ``<repo>/.venv-caffe-data/bin/python`` when it exists, else pycaffe in
  this Python; ``bash .ci/caffe-data.sh`` builds it). Its DataLayer prefetches 4 batches in a C++ thread
  (BasePrefetchingDataLayer, ``data_param.prefetch``); ``forward()`` waits for one and copies it into the top blob.
  A pycaffe built without LMDB support reports ``Unknown database backend`` and is listed as unavailable.

The prefetching readers do the same work as the plain ones; the consumer's wait is what a training loop would
see. A producer THREAD in Python shares the GIL with the consumer: when the consumer does nothing else (as here)
its wait cannot be shorter than the producer's time per batch, plus the hand-over; a worker PROCESS can.
Usage: python benchmarks/caffe_data.py [--workdir DIR] [--count-gray N] [--count-jpeg N] [--repeat N]
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

logger = logging.getLogger("caffe_data")
ROOT = Path(__file__).resolve().parents[1]

TIMER = """
import sys, time, os
os.environ["GLOG_minloglevel"] = "2"
prototxt, phase, batches, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
{setup}
best = None
for run in range(repeat + 1):  # the first pass warms the page cache and is not counted
    start = time.perf_counter()
    for _ in range(batches):
        {step}
    elapsed = time.perf_counter() - start
    if run:
        best = elapsed if best is None else min(best, elapsed)
print(f"RESULT {{best:.6f}}")
"""

RUNNERS = {
    "nnbridge DataLayerReader": ("from nnbridge.caffe.data import DataLayerReader\n"
                                 "reader = DataLayerReader(prototxt, phase=phase)", "reader.next_batch()"),
    "nnbridge DataLayerReader + Prefetcher(4)": (
        "from nnbridge.caffe.data import DataLayerReader\nfrom nnbridge.caffe.data.reader import Prefetcher\n"
        "reader = DataLayerReader(prototxt, phase=phase)\n"
        "prefetcher = Prefetcher(reader, batches * (repeat + 1), 4)", "prefetcher.get()"),
    "nnbridge CaffeDataset + DataLoader(1 worker)": (
        "import torch\nfrom nnbridge.torch import CaffeDataset\ntorch.set_num_threads(1)\n"
        "dataset = CaffeDataset(prototxt, phase=phase)\n"
        "loader = torch.utils.data.DataLoader(dataset, batch_size=dataset.batch_size, num_workers=1, "
        "prefetch_factor=4, persistent_workers=True)\n"
        "def forever():\n    while True:\n        yield from loader\nstream = forever()", "next(stream)"),
    "nnbridge CaffeDataIter (MXNet)": ("import mxnet as mx\nfrom nnbridge.mxnet import CaffeDataIter\n"
                                       "it = CaffeDataIter(prototxt=prototxt, phase=phase)\n"
                                       "def step():\n"
                                       "    try:\n        batch = it.next()\n"
                                       "    except StopIteration:\n        it.reset()\n        batch = it.next()\n"
                                       "    batch.data[0].wait_to_read()", "step()"),
    "real Caffe Data layer": ("import caffe\nopen('net.prototxt', 'w').write(open(prototxt).read())\n"
                              "net = caffe.Net('net.prototxt', caffe.TRAIN if phase == 'TRAIN' else "
                              "caffe.TEST)", "net.forward()"),
}


def make_images(folder: Path, count: int, size: int, gray: bool, suffix: str) -> Path:
    import cv2

    rng = np.random.default_rng(0)
    for k in range(10):
        (folder / f"c{k}").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        small = rng.integers(0, 256, (size // 8, size // 8) if gray else (size // 8, size // 8, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"c{i % 10}" / f"{i:06d}{suffix}"), cv2.resize(small, (size, size)))
    return folder


def caffe_data_python() -> str:
    """The interpreter of the Caffe built with LMDB: $NNBRIDGE_CAFFE_DATA_PYTHON, .venv-caffe-data, or this one."""
    local = ROOT / ".venv-caffe-data" / "bin" / "python"
    return os.environ.get("NNBRIDGE_CAFFE_DATA_PYTHON") or (str(local) if local.is_file() else sys.executable)


def run(python: str, runner: str, prototxt: Path, phase: str, batches: int, repeat: int, cwd: Path) -> str | float:
    setup, step = RUNNERS[runner]
    code = TIMER.format(setup=setup, step=step)
    env = dict(os.environ, GLOG_minloglevel="2", OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([python, "-c", code, str(prototxt), phase, str(batches), str(repeat)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=1800)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return float(line.split()[1])
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    known = [line for line in lines if "Unknown database backend" in line or "Error" in line]
    return "unavailable: " + ((known or lines or ["no output"])[-1]).strip()[-140:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", help="folder for the images and LMDBs (default: a temporary one)")
    parser.add_argument("--count-gray", type=int, default=5000)
    parser.add_argument("--count-jpeg", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from nnbridge.caffe.data.imageset import make_lmdb

    mx_python = os.environ.get("NNBRIDGE_MXNET_PYTHON") or str(ROOT / ".venv-mxnet" / "bin" / "python")
    caffe_python = caffe_data_python()
    logger.info("real Caffe: %s", caffe_python)
    with tempfile.TemporaryDirectory(prefix="nnbridge-data-bench-") as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        cases = [("gray28", args.count_gray, 28, True, ".png", [], "TEST", 100, "scale: 0.00390625"),
                 ("jpeg256", args.count_jpeg, 256, False, ".jpg", ["encoded"], "TRAIN", 50,
                  "crop_size: 227 mirror: true mean_value: 104 mean_value: 117 mean_value: 123")]
        rows = []
        for name, count, size, gray, suffix, flags, phase, batch, transform in cases:
            db = work / f"{name}_lmdb"
            if not db.exists():
                logger.info("building %s (%d images)...", db, count)
                images = make_images(work / f"{name}_images", count, size, gray, suffix)
                make_lmdb(images, db, gray=gray, encoded="encoded" in flags)
            prototxt = work / f"{name}.prototxt"
            prototxt.write_text(textwrap.dedent(f"""\
                layer {{ name: "data" type: "Data" top: "data" top: "label"
                  data_param {{ source: "{db}" batch_size: {batch} backend: LMDB }}
                  transform_param {{ {transform} }} }}
                """))
            batches = count // batch
            for runner in RUNNERS:
                python = mx_python if "MXNet" in runner else caffe_python if "Caffe Data" in runner else sys.executable
                seconds = run(python, runner, prototxt, phase, batches, args.repeat, work)
                figure = seconds if isinstance(seconds, str) else f"{batches * batch / seconds:,.0f} images/s"
                rows.append((name, runner, figure))
                logger.info("%-8s %-42s %s", name, runner, figure)
    print("\n| data | reader | throughput |\n| --- | --- | --- |")
    for row in rows:
        print(f"| {row[0]} | {row[1]} | {row[2]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
