"""The supported-ops table in docs/ and the README must match the registries (regenerate on drift).

The check runs in a fresh interpreter: tests in this process may register test-only ops.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ops_table_is_current() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_ops_table.py"), "--check"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_table_lists_every_registry() -> None:
    from nnbridge.opstable import collect, ops_markdown

    tables = collect()
    text = ops_markdown()
    assert tables.caffe_import, "no Caffe importers registered"
    for key, _ in tables.caffe_import + tables.caffe_export + tables.custom + tables.caffe_training:
        assert f"`{key}`" in text
