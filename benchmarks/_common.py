"""Shared pieces of the benchmarks: a seeded-random VGG-16 Caffe model, timed child processes.

- :func:`write_vgg16` writes ``vgg16.prototxt`` and ``vgg16.caffemodel`` (138,357,544 float32 parameters,
  553,432,332 bytes): He-normal weights ``N(0, 2 / fan_in)``, biases ``N(0, 0.01^2)``, each layer's blobs drawn
  from ``default_rng([seed, layer index])`` when the streaming writer asks for them, so at most one layer is
  in memory.
- :func:`timed` runs a command in a child process and returns its wall time, CPU time (user + system) and
  peak RSS (``ru_maxrss`` of ``os.wait4``). Linux counts in a child's ``ru_maxrss`` the peak RSS of the process
  it was forked from (the parent's address space, up to ``exec``), so the parent must stay small for the figure
  to be the child's own. A child that prints a line ending in ``... in X s`` also reports its own time
  (``Run.inner_seconds``), and one printing ``cpu after imports: X s`` its CPU time after imports
  (``nnbridge convert`` through :func:`cli_command` does both).
- :func:`interleaved` runs several commands round-robin (a conversion and its ``cp`` baseline see the same
  load) and keeps the best of each figure. On a busy machine wall times swing by 2-5x from run to run, CPU
  times much less: compare both. :func:`child_env` keeps Python's bytecode cache on for the children.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
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
    seconds: float  # wall time of the whole child process
    peak_rss_mb: float
    inner_seconds: float | None = None  # conversion time without interpreter start-up and imports
    cpu_seconds: float = 0.0  # user + system CPU time of the whole child (``wait4``)
    inner_cpu_seconds: float | None = None  # CPU time after imports, when the child reports it


@dataclass
class Series:
    """All runs of one command; each figure is the best (smallest) over the runs."""

    runs: list[Run]

    @property
    def what(self) -> str:
        return self.runs[0].what

    @property
    def seconds(self) -> float:
        return min(r.seconds for r in self.runs)

    @property
    def cpu_seconds(self) -> float:
        return min(r.cpu_seconds for r in self.runs)

    @property
    def inner_seconds(self) -> float | None:
        return min((r.inner_seconds for r in self.runs if r.inner_seconds is not None), default=None)

    @property
    def inner_cpu_seconds(self) -> float | None:
        return min((r.inner_cpu_seconds for r in self.runs if r.inner_cpu_seconds is not None), default=None)

    @property
    def peak_rss_mb(self) -> float:  # the worst run: the memory target must hold every time
        return max(r.peak_rss_mb for r in self.runs)


#: Runs ``nnbridge convert`` (``sys.argv[1:]``) as ``python -m nnbridge.cli`` does, after importing what the CLI
#: imports before converting, and reports the CPU time spent after those imports.
CLI_CHILD = """
import sys, time
import nnbridge.api, nnbridge.cli
start = time.process_time()
status = nnbridge.cli.main(sys.argv[1:])
print(f"cpu after imports: {time.process_time() - start:.3f} s")
sys.exit(status)
"""


def cli_command(*args: str) -> list[str]:
    """``nnbridge ARGS...`` in a child that also reports its CPU time after imports (see :data:`CLI_CHILD`)."""
    return [sys.executable, "-c", CLI_CHILD, *args]


def child_env(workdir: Path) -> dict[str, str]:
    """The environment of timed children: Caffe's logging off and Python bytecode cached.

    With ``PYTHONDONTWRITEBYTECODE`` set (as in some CI and sandbox shells) every child would compile
    nnbridge's ~60 modules from source, 0.05 s of the conversion's own time and more of the start-up, a cost
    no installed package has; the children write their bytecode to ``WORKDIR/pycache`` instead (the source
    tree is left alone). Run each command once untimed first (:func:`warm_up`).
    """
    env = dict(os.environ, GLOG_minloglevel="2")
    if env.pop("PYTHONDONTWRITEBYTECODE", None) or sys.flags.dont_write_bytecode:
        env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    return env


def warm_up(commands: Sequence[Sequence[str]], env: Mapping[str, str] | None = None) -> None:
    """Run each command once, untimed: inputs into the page cache, bytecode into its cache."""
    for cmd in commands:
        subprocess.run(list(cmd), env=None if env is None else dict(env), stdout=subprocess.DEVNULL, check=True)


def timed(what: str, cmd: list[str], env: Mapping[str, str] | None = None) -> Run:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=dict(env) if env is not None else dict(os.environ, GLOG_minloglevel="2"),
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed with exit status {proc.returncode}: {' '.join(cmd)}")
    # `nnbridge convert` reports its own time (on its last line, or before its notes)
    inner = ([None] + re.findall(r" in ([0-9.]+) s$", output.strip(), re.MULTILINE))[-1]
    inner_cpu = ([None] + re.findall(r"^cpu after imports: ([0-9.]+) s$", output.strip(), re.MULTILINE))[-1]
    return Run(what, seconds, usage.ru_maxrss / 1024, float(inner) if inner else None,
               usage.ru_utime + usage.ru_stime, float(inner_cpu) if inner_cpu else None)


def best_of(repeat: int, what: str, cmd: list[str], outputs: Sequence[Path],
            env: Mapping[str, str] | None = None) -> tuple[Run, list[Run]]:
    """The fastest of ``repeat`` runs (each after deleting ``outputs``) and all runs."""
    runs = []
    for _ in range(repeat):
        for path in outputs:
            path.unlink(missing_ok=True)
        os.sync()  # no write-back of an earlier run's dirty pages during this one
        runs.append(timed(what, cmd, env))
    return min(runs, key=lambda r: r.seconds), runs


def interleaved(repeat: int, commands: Sequence[tuple[str, list[str], Sequence[Path]]],
                env: Mapping[str, str] | None = None) -> list[Series]:
    """``repeat`` rounds, each running every ``(what, cmd, outputs)`` once (outputs deleted and ``sync`` first).

    Interleaving gives a conversion and the ``cp`` it is compared with the same share of a busy machine.
    """
    runs: list[list[Run]] = [[] for _ in commands]
    for _ in range(repeat):
        for series, (what, cmd, outputs) in zip(runs, commands, strict=True):
            for path in outputs:
                path.unlink(missing_ok=True)
            os.sync()  # no write-back of an earlier run's dirty pages during this one
            series.append(timed(what, cmd, env))
    return [Series(r) for r in runs]


@dataclass
class Step:
    """One table section: a ``cp`` baseline and the commands measured against it."""

    title: str
    base: Series  # cp of the input weights file
    commands: list[Series]
    size_mb: float  # input weights file
    checked: bool = True  # targets apply (conversions), not to reference rows


def table_header() -> list[str]:
    return ["| command | wall s | CPU s | peak RSS (MiB) | wall / cp | CPU / cp | peak RSS / input file size |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]


def table_rows(step: Step) -> list[str]:
    """Rows of ``step``: best wall and best CPU time of each command, and after imports when reported."""
    base = step.base

    def row(label: str, wall: float, cpu: float | None, rss: float) -> str:
        cpu_text = "" if cpu is None else f"{cpu:.2f}"
        ratio = "" if cpu is None else f"{cpu / base.cpu_seconds:.2f}x"
        return (f"| {label} | {wall:.2f} | {cpu_text} | {rss:.0f} | {wall / base.seconds:.2f}x | {ratio} | "
                f"{rss / step.size_mb:.2f}x |")

    lines = [f"| **{step.title}** | | | | | | |",
             row(f"`{base.what}`", base.seconds, base.cpu_seconds, base.peak_rss_mb)]
    for series in step.commands:
        lines.append(row(f"`{series.what}` (whole process)", series.seconds, series.cpu_seconds, series.peak_rss_mb))
        if series.inner_seconds is not None:
            lines.append(row("the same, after imports", series.inner_seconds, series.inner_cpu_seconds,
                             series.peak_rss_mb))
    return lines


def targets(step: Step, limit: float = 2.0, rss_limit: float = 1.5) -> str:
    """Issue 3's targets for the first command of ``step``: time within ``limit`` x cp, RSS within ``rss_limit``."""
    series, base = step.commands[0], step.base

    def verdict(value: float | None, ref: float) -> str:
        return "n/a" if value is None else "met" if value <= limit * ref else "MISSED"

    return (f"{step.title}: time <= {limit:g}x cp: wall {verdict(series.seconds, base.seconds)} / CPU "
            f"{verdict(series.cpu_seconds, base.cpu_seconds)} (whole process), wall "
            f"{verdict(series.inner_seconds, base.seconds)} / CPU {verdict(series.inner_cpu_seconds, base.cpu_seconds)}"
            f" (after imports); peak RSS <= {rss_limit:g}x file size: "
            f"{'met' if series.peak_rss_mb <= rss_limit * step.size_mb else 'MISSED'}")


def write_vgg16_in_child(workdir: Path) -> tuple[Path, Path]:
    """:func:`write_vgg16` in a child process, so that this parent stays small: Linux counts a parent's peak
    RSS in the ``ru_maxrss`` of the children it forks afterwards."""
    here = str(Path(__file__).resolve().parent)
    subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
                    "from _common import write_vgg16; write_vgg16(Path(sys.argv[2]))", here, str(workdir)],
                   check=True)
    return workdir / "vgg16.prototxt", workdir / "vgg16.caffemodel"
