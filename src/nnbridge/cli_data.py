"""``nnbridge data``: Caffe Datum databases (``make-lmdb`` like Caffe's convert_imageset, ``show``)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

logger = logging.getLogger(__name__)


def _size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected H,W (two positive integers), got {text!r}") from None
    if height <= 0 or width <= 0:
        raise argparse.ArgumentTypeError(f"expected H,W (two positive integers), got {text!r}")
    return height, width


def add_data_parser(sub: Any) -> None:
    """Register ``nnbridge data make-lmdb`` and ``nnbridge data show`` on the top-level subparsers ``sub``."""
    data = sub.add_parser("data", help="Caffe Datum databases: make-lmdb (like convert_imageset), show")
    commands = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")

    p = commands.add_parser("make-lmdb", help="write an LMDB of Caffe Datums from images (like convert_imageset)")
    p.add_argument("images", metavar="IMAGE_DIR_OR_LIST",
                   help="a folder of class sub-folders (sorted -> labels 0,1,..) or a list file of "
                   "'relative/path label' lines")
    p.add_argument("-o", "--output", required=True, help="the LMDB directory to create (must not exist)")
    p.add_argument("--root", help="folder the list file's paths are relative to (default: the list file's folder)")
    p.add_argument("--resize", type=_size, metavar="H,W", help="resize every image (bilinear, as Caffe)")
    p.add_argument("--shuffle", action="store_true", help="shuffle the images (seeded by --seed)")
    p.add_argument("--seed", type=int, default=0, help="seed of --shuffle (default 0)")
    p.add_argument("--encoded", action="store_true",
                   help="store the image files (JPEG/PNG) instead of raw pixels; re-encoded if --resize/--gray")
    p.add_argument("--gray", action="store_true", help="read the images as gray (one channel)")
    p.set_defaults(func=cmd_make_lmdb)

    p = commands.add_parser("show", help="count, shapes, label histogram of a Datum database; contact sheet")
    p.add_argument("database", metavar="LMDB")
    p.add_argument("-o", "--output", metavar="SHEET.png", help="write a contact sheet of the first samples")
    p.add_argument("--count", type=int, default=64, help="samples on the contact sheet (default 64)")
    p.add_argument("--backend", choices=("LMDB", "LEVELDB"), default="LMDB")
    p.set_defaults(func=cmd_show)


def cmd_make_lmdb(args: argparse.Namespace) -> int:
    from nnbridge.caffe.data.imageset import make_lmdb

    count = make_lmdb(args.images, args.output, resize=args.resize, shuffle=args.shuffle, encoded=args.encoded,
                      gray=args.gray, root=args.root, seed=args.seed)
    print(f"{args.images} -> {args.output}: {count} Datums{' (encoded)' if args.encoded else ''}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from nnbridge.caffe.data.imageset import summarise

    summary = summarise(args.database, backend=args.backend, sheet=args.output, sheet_count=args.count)
    print(summary.text())
    if args.output:
        print(f"  contact sheet: {args.output}")
    return 0
