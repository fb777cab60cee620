#!/usr/bin/env python3
"""Write the supported-ops table (generated from the registries) into docs/supported_ops.md and README.md.

Usage: python scripts/gen_ops_table.py [--check]
``--check`` writes nothing and exits 1 when either file differs from what the registries give.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nnbridge.opstable import ops_markdown, replace_section

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "supported_ops.md"
README = ROOT / "README.md"


def expected() -> dict[Path, str]:
    table = ops_markdown()
    doc = "# Supported layers and ops\n\n" + table
    readme = replace_section(README.read_text(encoding="utf-8"), table)
    return {DOC: doc, README: readme}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 on drift")
    args = parser.parse_args()
    stale = []
    for path, text in expected().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            path.write_text(text, encoding="utf-8")
    if args.check and stale:
        names = ", ".join(str(p.relative_to(ROOT)) for p in stale)
        print(f"supported-ops table out of date in {names}; run: python scripts/gen_ops_table.py", file=sys.stderr)
        return 1
    for path in stale:
        print(f"updated {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
