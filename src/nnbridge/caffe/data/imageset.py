"""Build and summarise Datum LMDBs (``nnbridge data make-lmdb`` / ``nnbridge data show``).

:func:`make_lmdb` follows Caffe's ``convert_imageset``: input is a list file of ``relative/path label`` lines
(paths relative to ``root``, default the list file's folder) or a folder of class sub-folders (sorted names ->
labels 0, 1, ...; images sorted within). Keys are ``"%08d_" + path`` in list order (after ``shuffle``). Raw
Datums hold the BGR (or gray) pixels in C, H, W order; ``encoded`` Datums hold the image file's own bytes when
neither ``resize`` nor ``gray`` changes the image, else the changed image re-encoded in the file's format.
"""

from __future__ import annotations

import logging
import os
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nnbridge.caffe.data.datum import (
    cv2_module,
    datum_to_array,
    make_datum,
    make_encoded_datum,
    parse_datum,
    read_image,
)
from nnbridge.caffe.data.db import DatumDB, write_lmdb
from nnbridge.errors import FormatError
from nnbridge.fileio import atomic_write

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


def list_images(source: str | os.PathLike[str], root: str | None = None) -> tuple[Path, list[tuple[str, int]]]:
    """(root folder, [(relative path, label)]) from a list file or a folder of class sub-folders."""
    path = Path(source)
    if path.is_dir():
        classes = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not classes:
            raise FormatError(str(path), "no class sub-folders", hint="give a folder of one sub-folder per class, "
                              "or a list file of 'relative/path label' lines")
        items = [(f"{name}/{image.name}", label) for label, name in enumerate(classes)
                 for image in sorted((path / name).iterdir()) if image.suffix.lower() in IMAGE_SUFFIXES]
        return path, items
    if not path.is_file():
        raise FormatError(str(path), "no such image folder or list file",
                          hint="give a folder of class sub-folders or a list file of 'relative/path label' lines")
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        name, _, label = line.rstrip().rpartition(" ")
        try:
            items.append((name, int(label)))
        except ValueError:
            raise FormatError(str(path), f"expected 'relative/path label', got {line!r}", location=str(number),
                              hint="the integer label after the last space") from None
    return (Path(root) if root else path.parent), items


def _datums(root: Path, items: list[tuple[str, int]], resize: tuple[int, int] | None, gray: bool,
            encoded: bool) -> Iterator[tuple[bytes, bytes]]:
    cv2 = cv2_module()
    height, width = resize or (0, 0)
    for line_id, (name, label) in enumerate(items):
        file = str(root / name)
        if encoded and not resize and not gray:
            try:
                data = Path(file).read_bytes()
            except OSError as exc:
                raise FormatError(file, f"cannot read the image: {exc.strerror or exc}") from None
            datum = make_encoded_datum(data, label)
        else:
            image = read_image(file, color=not gray, height=height, width=width)
            if encoded:
                suffix = Path(name).suffix.lower() or ".png"
                ok, buffer = cv2.imencode(suffix, image)
                if not ok:
                    raise FormatError(file, f"OpenCV cannot encode {suffix} images", hint="use .png or .jpg")
                datum = make_encoded_datum(buffer.tobytes(), label)
            else:
                datum = make_datum(image, label)
        yield f"{line_id:08d}_{name}".encode(), datum.SerializeToString()


def make_lmdb(source: str | os.PathLike[str], output: str | os.PathLike[str], *, resize: tuple[int, int] | None = None,
              shuffle: bool = False, encoded: bool = False, gray: bool = False, root: str | None = None,
              seed: int = 0) -> int:
    """convert_imageset: write an LMDB of Datums from a list file or a class-folder tree; returns the count."""
    base, items = list_images(source, root)
    if not items:
        raise FormatError(os.fspath(source), "no images found", hint=f"image suffixes: {', '.join(IMAGE_SUFFIXES)}")
    if shuffle:
        random.Random(seed).shuffle(items)
    return write_lmdb(output, _datums(base, items, resize, gray, encoded))


@dataclass
class DatabaseSummary:
    path: str
    count: int
    shapes: Counter[tuple[int, ...]] = field(default_factory=Counter)
    labels: Counter[int] = field(default_factory=Counter)
    encoded: int = 0

    def text(self) -> str:
        shapes = ", ".join(f"{'x'.join(map(str, s))} ({n})" for s, n in self.shapes.most_common())
        labels = " ".join(f"{k}:{v}" for k, v in sorted(self.labels.items()))
        return (f"{self.path}: {self.count} Datums ({self.encoded} encoded)\n"
                f"  shapes (C x H x W): {shapes}\n  labels: {labels}")


def summarise(path: str | os.PathLike[str], *, backend: str = "LMDB", sheet: str | None = None,
              sheet_count: int = 64) -> DatabaseSummary:
    """Count, shapes and label histogram of a Datum database; optionally a PNG contact sheet of the first samples."""
    db = DatumDB(path, backend)
    summary = DatabaseSummary(db.path, len(db))
    tiles: list[np.ndarray] = []
    for index in range(len(db)):
        key, value = db.value(index)
        datum = parse_datum(value, db.path, key)
        summary.labels[int(datum.label)] += 1
        summary.encoded += bool(datum.encoded)
        image = datum_to_array(datum, where=f"{db.path}:{key!r}")
        summary.shapes[tuple(image.shape)] += 1
        if index < sheet_count:
            tiles.append(image)
    db.close()
    if sheet:
        write_sheet(sheet, tiles)
    return summary


def write_sheet(path: str, images: list[np.ndarray]) -> None:
    """A grid of (C, H, W) images (gray or BGR; floats min-max scaled) as one PNG, written atomically."""
    cv2 = cv2_module()
    if not images:
        raise FormatError(path, "no images to show")
    size = max(max(i.shape[1], i.shape[2]) for i in images)
    columns = int(np.ceil(np.sqrt(len(images))))
    rows = int(np.ceil(len(images) / columns))
    sheet = np.full((rows * (size + 2), columns * (size + 2), 3), 255, np.uint8)
    for n, image in enumerate(images):
        tile = image.astype(np.float32)
        if image.dtype != np.uint8:
            low, high = float(tile.min()), float(tile.max())
            tile = (tile - low) * (255.0 / (high - low or 1.0))
        tile = np.clip(tile, 0, 255).astype(np.uint8).transpose(1, 2, 0)
        tile = np.repeat(tile, 3, axis=2) if tile.shape[2] == 1 else tile[:, :, :3]
        top, left = (n // columns) * (size + 2) + 1, (n % columns) * (size + 2) + 1
        sheet[top:top + tile.shape[0], left:left + tile.shape[1]] = tile
    ok, buffer = cv2.imencode(".png", sheet)
    if not ok:  # pragma: no cover
        raise FormatError(path, "OpenCV could not encode the contact sheet")
    with atomic_write(path) as handle:
        handle.write(buffer.tobytes())
