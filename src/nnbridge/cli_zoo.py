"""``nnbridge zoo run MANIFEST -o REPORT_DIR``: convert, verify and evaluate every model of a manifest."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

logger = logging.getLogger(__name__)


def add_zoo_parser(sub: Any) -> None:
    """Register ``nnbridge zoo run`` on the top-level subparsers ``sub``."""
    zoo = sub.add_parser("zoo", help="model-zoo runs: convert, verify and evaluate the models of a TOML manifest")
    commands = zoo.add_subparsers(dest="zoo_command", required=True, metavar="ZOO_COMMAND")
    p = commands.add_parser("run", help="run a manifest; write report.json/.md/.html (resumable)")
    p.add_argument("manifest", metavar="MANIFEST.toml", help="the manifest ('example' for the bundled one)")
    p.add_argument("-o", "--output", required=True, metavar="REPORT_DIR", help="the report directory")
    p.add_argument("--workers", type=int, default=1, help="models run in parallel (default 1)")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local process pool (default) or Ray (RAY_ADDRESS, else a local Ray instance)")
    p.add_argument("--offline", action="store_true", help="never fetch a model's url (fail it if not cached)")
    p.add_argument("--retry-failed", action="store_true",
                   help="redo failed models even when unchanged (passed unchanged models are always reused)")
    p.set_defaults(func=cmd_zoo_run)


def cmd_zoo_run(args: argparse.Namespace) -> int:
    from nnbridge.zoo.executor import run_zoo
    from nnbridge.zoo.manifest import load_manifest

    path = args.manifest
    if path == "example":
        from importlib import resources

        path = str(resources.files("nnbridge.zoo").joinpath("examples/example.toml"))
    manifest = load_manifest(path)
    run = run_zoo(manifest, args.output, workers=args.workers, executor=args.executor, offline=args.offline,
                  retry_failed=args.retry_failed, stream=sys.stderr)
    print(run.summary())
    return 1 if run.failed else 0
