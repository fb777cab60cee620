"""Test helpers for tests/data: generated images, and an independent reference of Caffe's data transform.

``caffe_transform`` is a literal transcription of the index arithmetic of ``DataTransformer::Transform(const Datum&,
Dtype*)`` (BVLC data_transformer.cpp): one loop per channel, row and column, ``top_index``/``data_index`` computed
as there. It shares no code with nnbridge's vectorised transformer.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from nnbridge.cli import main as nnbridge_main


def make_class_folders(root: Path, *, classes: int = 2, per_class: int = 5, size: tuple[int, int] = (40, 48),
                       suffix: str = ".png", seed: int = 0) -> Path:
    """``root/c<k>/<i><suffix>``: smooth-ish random BGR images (JPEG-friendly), distinct per file."""
    rng = np.random.default_rng(seed)
    for k in range(classes):
        (root / f"c{k}").mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            small = rng.integers(0, 256, (size[0] // 4 + 1, size[1] // 4 + 1, 3), dtype=np.uint8)
            image = cv2.resize(small, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
            image[rng.integers(size[0]), :, :] = rng.integers(256)
            assert cv2.imwrite(str(root / f"c{k}" / f"{i}{suffix}"), image)
    return root


def make_lmdb(source: Path, output: Path, *options: str) -> Path:
    assert nnbridge_main(["data", "make-lmdb", str(source), "-o", str(output), *options]) == 0
    return output


def class_folder_files(root: Path) -> list[tuple[Path, int]]:
    """The (file, label) order make-lmdb uses for a class-folder tree: sorted classes, sorted files."""
    classes = sorted(p for p in root.iterdir() if p.is_dir())
    return [(f, k) for k, c in enumerate(classes) for f in sorted(c.iterdir())]


def caffe_transform(image: np.ndarray, *, crop: int = 0, h_off: int | None = None, w_off: int | None = None,
                    mirror: bool = False, mean: np.ndarray | None = None, mean_values: list[float] | None = None,
                    scale: float = 1.0) -> np.ndarray:
    """One (C, H, W) image through Caffe's transform (offsets default to the TEST-phase centre crop)."""
    datum_channels, datum_height, datum_width = image.shape
    flat = image.reshape(-1)
    mean_flat = None if mean is None else np.asarray(mean, np.float32).reshape(-1)
    values = [np.float32(v) for v in (mean_values or [])]
    if len(values) == 1:
        values = values * datum_channels
    height, width = datum_height, datum_width
    if crop:
        height = width = crop
        h_off = (datum_height - crop) // 2 if h_off is None else h_off
        w_off = (datum_width - crop) // 2 if w_off is None else w_off
    else:
        h_off = w_off = 0
    out = np.zeros(datum_channels * height * width, np.float32)
    f_scale = np.float32(scale)
    for c in range(datum_channels):
        for h in range(height):
            for w in range(width):
                data_index = (c * datum_height + h_off + h) * datum_width + w_off + w
                top_index = (c * height + h) * width + ((width - 1 - w) if mirror else w)
                element = np.float32(flat[data_index])
                if mean_flat is not None:
                    out[top_index] = (element - mean_flat[data_index]) * f_scale
                elif values:
                    out[top_index] = (element - values[c]) * f_scale
                else:
                    out[top_index] = element * f_scale
    return out.reshape(datum_channels, height, width)


def caffe_batches(samples: list[np.ndarray], labels: list[int], batch_size: int, count: int
                  ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` batches read sequentially with wrap-around, as Caffe's Data layer forward does."""
    out = []
    position = 0
    for _ in range(count):
        index = [(position + i) % len(samples) for i in range(batch_size)]
        position += batch_size
        out.append((np.stack([samples[i] for i in index]), np.asarray([labels[i] for i in index], np.float32)))
    return out


def max_rel(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a.astype(np.float64) - b)) / max(float(np.max(np.abs(b))), 1e-12))
