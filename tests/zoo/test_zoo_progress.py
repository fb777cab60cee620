"""The dependency-free progress display: a bar redrawn in place on a terminal, plain lines otherwise."""

from __future__ import annotations

import io
import logging
import multiprocessing
import os
import shutil

import pytest

from nnbridge.zoo.progressbar import Progress, forward_to, listen


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_gets_one_bar_redrawn_in_place() -> None:
    out = _Terminal()
    bar = Progress(4, out)
    assert bar.tty
    bar.step("tiny -> onnx: converting and verifying")
    bar.model_done("[1/4] tiny: passed (1.0 s)")
    bar.step("digits: onnx evaluation batch 2/3")
    bar.close()
    text = out.getvalue()
    frames = text.split("\r\x1b[K")
    assert "[" + "." * 24 + "] 0/4 models  tiny -> onnx: converting and verifying  00:00" in frames[1]
    assert "[1/4] tiny: passed (1.0 s)\n" in text  # permanent line, then the bar again
    assert "[" + "#" * 6 + "." * 18 + "] 1/4 models  digits: onnx evaluation batch 2/3" in frames[-2]
    assert text.endswith("models  digits: onnx evaluation batch 2/3  00:00\n")
    assert text.count("\n") == 2  # the finished model and the final bar; steps never add lines


def test_pipe_gets_plain_lines() -> None:
    out = io.StringIO()
    bar = Progress(2, out)
    assert not bar.tty
    bar.step("tiny -> onnx: converting and verifying")
    bar.model_done("[1/2] tiny: passed (1.0 s)")
    bar.close()
    assert out.getvalue() == "  tiny -> onnx: converting and verifying\n[1/2] tiny: passed (1.0 s)\n"


def test_long_steps_are_cut_to_the_terminal_width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "get_terminal_size", lambda fallback=(0, 0): os.terminal_size((60, 20)))
    out = _Terminal()
    Progress(3, out).step("x" * 200)
    assert max(len(frame) for frame in out.getvalue().split("\r\x1b[K")) <= 60
    assert "..." in out.getvalue()


def _worker(queue: object) -> None:
    forward_to(queue)
    logging.getLogger("nnbridge.zoo.progress").info("%s -> %s: converting and verifying", "m", "onnx")


def test_worker_steps_reach_the_parent() -> None:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    out = io.StringIO()
    listener = listen(queue, Progress(1, out))
    try:
        process = context.Process(target=_worker, args=(queue,))
        process.start()
        process.join(60)
        assert process.exitcode == 0
    finally:
        listener.stop()
    assert out.getvalue() == "  m -> onnx: converting and verifying\n"
