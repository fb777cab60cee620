"""Run the ``nnbridge`` command line in-process: ``run(args, capsys) -> (exit status, stdout, stderr)``."""

from __future__ import annotations

import pytest

from nnbridge.cli import main


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``main(args)`` with argparse's ``SystemExit`` turned into the status, and the captured output."""
    try:
        code = main(args)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err
