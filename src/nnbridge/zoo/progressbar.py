"""Progress of a zoo run on stderr, without dependencies.

On a terminal: one bar line redrawn in place (models done / total, the latest step of a running model, the
elapsed time), with a permanent line per finished model above it. Otherwise (CI logs, pipes): plain lines,
one per step and one per finished model, nothing redrawn.

Steps are the records of the ``nnbridge.zoo.progress`` logger ("NAME -> TARGET: converting and verifying",
"NAME: onnx batch 2/5", ...). Local worker processes send them to the parent through a queue
(:func:`forward_to`, :func:`listen`), so that only the parent writes to the terminal.
"""

from __future__ import annotations

import logging
import logging.handlers
import shutil
import sys
import threading
import time
from typing import Any, TextIO

PROGRESS_LOGGER = "nnbridge.zoo.progress"
WIDTH = 24  # characters of the bar itself


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class Progress:
    """Models done / total, the current step and the elapsed time (see the module docstring)."""

    def __init__(self, total: int, stream: TextIO | None = None, tty: bool | None = None):
        self.total = total
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(tty if tty is not None else getattr(self.stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        self.current = ""
        self._drawn = False
        self._lock = threading.Lock()

    def render(self) -> str:
        """The bar line: ``[#####.......] 3/7 models  NAME -> onnx: verifying  00:12``."""
        filled = WIDTH * self.done // max(self.total, 1)
        bar = f"[{'#' * filled}{'.' * (WIDTH - filled)}] {self.done}/{self.total} models"
        tail = f"  {_clock(time.perf_counter() - self.start)}"
        room = shutil.get_terminal_size((100, 20)).columns - len(bar) - len(tail) - 3
        step = self.current if len(self.current) <= room else self.current[: max(room - 3, 0)] + "..."
        return f"{bar}  {step}{tail}" if room > 3 else bar + tail

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed stream must not fail the run
            pass

    def _redraw(self) -> None:
        self._write("\r\x1b[K" + self.render())
        self._drawn = True

    def step(self, text: str) -> None:
        """A running model's latest step."""
        with self._lock:
            self.current = text
            if self.tty:
                self._redraw()
            else:
                self._write(f"  {text}\n")

    def line(self, text: str) -> None:
        """A permanent line (above the bar on a terminal)."""
        with self._lock:
            if self.tty:
                self._write("\r\x1b[K" + text + "\n")
                self._redraw()
            else:
                self._write(text + "\n")

    def model_done(self, text: str) -> None:
        with self._lock:
            self.done += 1
        self.line(text)

    def close(self) -> None:
        with self._lock:
            if self.tty and self._drawn:
                self._write("\r\x1b[K" + self.render() + "\n")
                self._drawn = False


class StepHandler(logging.Handler):
    """Feeds ``nnbridge.zoo.progress`` records to a :class:`Progress`."""

    def __init__(self, progress: Progress):
        super().__init__(logging.INFO)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.progress.step(record.getMessage())
        except Exception:  # noqa: BLE001 - logging must never break the run
            self.handleError(record)


def forward_to(queue: Any) -> None:
    """Worker process initializer: send progress steps to the parent's queue instead of stderr."""
    progress = logging.getLogger(PROGRESS_LOGGER)
    progress.addHandler(logging.handlers.QueueHandler(queue))
    progress.setLevel(logging.INFO)
    progress.propagate = True  # still reaches the model's log file through the root logger


def forwarding() -> bool:
    """True in a worker whose progress steps go to the parent (then it writes none itself)."""
    return any(isinstance(h, logging.handlers.QueueHandler) for h in logging.getLogger(PROGRESS_LOGGER).handlers)


def listen(queue: Any, progress: Progress) -> logging.handlers.QueueListener:
    """Parent side: a started listener drawing the workers' steps; ``stop()`` it when the pool is done."""
    listener = logging.handlers.QueueListener(queue, StepHandler(progress))
    listener.start()
    return listener
