"""A whole batch of a ``Data`` layer at once: one database transaction, raw Datums decoded together
(:mod:`~nnbridge.caffe.data.wire`), the transform applied to the batch when it draws nothing random, and encoded
images decoded by a thread pool (OpenCV's ``imdecode`` releases the GIL).

The values are those of the per-sample path, bit for bit, and the random draws (TRAIN crop, mirror) are made in
the same order, sample after sample.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from nnbridge.caffe.data.wire import Layout, decode_rows, layout_of
from nnbridge.errors import FormatError

if TYPE_CHECKING:
    from nnbridge.caffe.data.sources import DataSource

logger = logging.getLogger(__name__)

_POOL: tuple[int, concurrent.futures.ThreadPoolExecutor] | None = None


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    """One decoding pool per process (a forked child makes its own: threads do not survive fork)."""
    global _POOL
    if _POOL is None or _POOL[0] != os.getpid():
        workers = max(1, min(4, os.cpu_count() or 1))
        _POOL = (os.getpid(), concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="nnbridge-decode"))
    return _POOL[1]


def shape_error(where: str, top: str, index: int, shape: tuple[int, ...], expected: tuple[int, ...]) -> FormatError:
    return FormatError(where, f"sample {index} of top {top!r} has shape {shape}, the first sample {expected}",
                       hint="Caffe batches need equal shapes: resize the images or set crop_size")


def fill_data_batch(source: DataSource, indices: list[int], rng: np.random.Generator | None,
                    out: list[np.ndarray], where: str) -> None:
    """``out[top][row]`` = sample ``indices[row]`` of ``source``, as ``source.load`` would give it."""
    transformer = source.transformer
    assert transformer is not None
    pairs = source.db.values(indices)
    layout = source.layout(pairs[0][1])
    count = len(indices)
    if layout is not None:
        pixels, labels, decoded = decode_rows([value for _, value in pairs], layout)
    else:
        pixels, labels, decoded = np.zeros((count, 0, 0, 0), np.uint8), np.zeros(count, np.int32), np.zeros(count, bool)
    rest: list[int] = np.flatnonzero(~decoded).tolist()
    images: dict[int, tuple[np.ndarray, int]] = {}
    if rest:
        work: Callable[[int], tuple[np.ndarray, int]] = lambda row: source.image_of(*pairs[row])  # noqa: E731
        results = _pool().map(work, rest) if len(rest) > 1 else map(work, rest)
        images = dict(zip(rest, results, strict=True))  # errors come in row order, as without the pool
    data = out[0]
    expected = tuple(data.shape[1:])
    fast = transformer.deterministic and decoded.any()
    if fast:
        assert layout is not None
        shape = transformer.shape(layout.shape)
        if shape != expected:
            raise shape_error(where, source.tops[0], indices[int(np.argmax(decoded))], shape, expected)
        if decoded.all():
            transformer.batch(pixels, data)
        else:
            part = np.empty((int(decoded.sum()), *expected), np.float32)
            transformer.batch(pixels[decoded], part)
            data[decoded] = part
    rows = rest if fast else list(range(count))
    windows = []
    for row in rows:  # the random draws in sample order, in this thread
        image = pixels[row] if decoded[row] else images[row][0]
        shape = transformer.shape(image.shape)
        if shape != expected:
            raise shape_error(where, source.tops[0], indices[row], shape, expected)
        windows.append((row, image, transformer.draw(image.shape, rng)))

    def transform(item: tuple[int, np.ndarray, tuple[slice, slice]]) -> None:
        transformer.apply(item[1], item[2], data[item[0]])

    if len(windows) > 1 and rest:  # images that were decoded one by one: transform them in parallel too
        list(_pool().map(transform, windows))
    else:
        for item in windows:
            transform(item)
    if len(out) > 1:
        label = labels.astype(np.float32)
        for row in rest:
            label[row] = np.float32(images[row][1])
        out[1][...] = label.reshape(out[1].shape)


def checked_layout(value: bytes, source: DataSource) -> Layout | None:
    """The fast-path layout from a first record (None: read every record through protobuf)."""
    layout = layout_of(value)
    transformer = source.transformer
    if layout is not None and transformer is not None and (transformer.force_color or transformer.force_gray):
        logger.warning("%s: force_color/force_gray only apply to encoded Datums (as in Caffe)", source.db.path)
    logger.debug("%s: raw Datum fast path %s", source.db.path, "on" if layout is not None else "off")
    return layout
