"""Deterministic inputs for verification, and a sentence saying exactly what they were.

Default: every input, in model order, gets ``numpy.random.default_rng(seed).standard_normal(shape)``
as float32 (one generator for all inputs, drawn in order).

Image (``image=`` path): for the first 4-D input ``N x C x H x W`` with C in {1, 3}, the image is read
with OpenCV (8-bit, BGR), converted to the network's channel order (or to grey for C = 1), resized to
``W x H`` (bilinear, ``cv2.INTER_LINEAR``), then, as in Caffe's ``caffe.io.Transformer``::

    x = pixel / 255 * raw_scale          (raw_scale = 255 keeps pixel values 0..255)
    x = x - mean                          (per-channel values, or a C x h x w mean image: centre crop
                                           to H x W when larger, bilinear resize otherwise)
    x = x * scale

laid out CHW and repeated N times. Other inputs still get seeded N(0, 1) values.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from nnbridge.errors import NNBridgeError
from nnbridge.extras import require

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes a network input (see the module docstring for the exact order)."""

    channel_order: str = "BGR"  # what the network expects: "BGR" (Caffe's habit) or "RGB"
    mean: tuple[float, ...] | None = None  # per channel, in the network's channel order
    mean_file: str | None = None  # .npy or .binaryproto, C x h x w, in the network's channel order
    raw_scale: float = 255.0
    scale: float = 1.0

    def describe(self) -> str:
        parts = [f"channel order {self.channel_order}", f"pixel range 0..{self.raw_scale:g}"]
        if self.mean_file:
            parts.append(f"minus mean image {os.path.basename(self.mean_file)}")
        elif self.mean:
            parts.append("minus mean (" + ", ".join(f"{m:g}" for m in self.mean) + ")")
        if self.scale != 1.0:
            parts.append(f"times {self.scale:g}")
        return ", ".join(parts)


@dataclass
class InputSet:
    arrays: dict[str, np.ndarray]
    description: str


def make_inputs(specs: Sequence[tuple[str, Sequence[int]]], *, seed: int = 0, image: str | None = None,
                preprocess: Preprocess | None = None) -> InputSet:
    """Inputs for ``specs`` (``[(name, shape), ...]``), seeded random or from an image."""
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    described: list[str] = []
    image_input = _image_input(specs) if image else None
    if image and image_input is None:
        raise NNBridgeError(f"--image {image}: the model has no N x C x H x W input with 1 or 3 channels "
                            f"(inputs: {', '.join(f'{n} {_shape(s)}' for n, s in specs)})")
    for name, shape in specs:
        if name == image_input and image is not None:
            prep = preprocess or Preprocess()
            arrays[name] = load_image(image, tuple(shape), prep)
            described.append(f"{name} {_shape(shape)}: image {os.path.basename(image)} resized to "
                             f"{shape[3]}x{shape[2]} (bilinear), {prep.describe()}")
        else:
            arrays[name] = rng.standard_normal(tuple(shape)).astype(np.float32)
            described.append(f"{name} {_shape(shape)}: N(0,1) float32, seed {seed}")
    return InputSet(arrays, "; ".join(described))


def given_inputs(arrays: Mapping[str, np.ndarray] | str, specs: Sequence[tuple[str, Sequence[int]]]) -> InputSet:
    """Inputs the user gave (a mapping or an .npz file), checked against the model's inputs."""
    source = "given arrays"
    if isinstance(arrays, (str, os.PathLike)):
        source = os.path.basename(os.fspath(arrays))
        with np.load(arrays, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    names = [name for name, _ in specs]
    missing = [n for n in names if n not in arrays]
    unknown = [n for n in arrays if n not in names]
    if missing or unknown:
        raise NNBridgeError(f"{source}: the model's inputs are {names}; missing {missing}, unknown {unknown}")
    result = {name: np.asarray(arrays[name], dtype=np.float32) for name in names}
    shown = ", ".join(f"{n} {_shape(a.shape)}" for n, a in result.items())
    return InputSet(result, f"{source}: {shown}")


def load_image(path: str, shape: tuple[int, ...], prep: Preprocess) -> np.ndarray:
    cv2 = require("cv2", "reading images for verification")
    n, c, h, w = shape
    if not os.path.isfile(path):
        raise NNBridgeError(f"{path}: no such image file")
    pixels = cv2.imread(path, cv2.IMREAD_COLOR)
    if pixels is None:
        raise NNBridgeError(f"{path}: OpenCV cannot read this image")
    if c == 1:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY)[:, :, None]
    elif prep.channel_order.upper() == "RGB":
        pixels = pixels[:, :, ::-1]
    elif prep.channel_order.upper() != "BGR":
        raise NNBridgeError(f"channel order {prep.channel_order!r}: use BGR or RGB")
    resized = cv2.resize(np.ascontiguousarray(pixels), (w, h), interpolation=cv2.INTER_LINEAR)
    x = resized.reshape(h, w, c).astype(np.float32).transpose(2, 0, 1) / np.float32(255) * np.float32(prep.raw_scale)
    x = x - _mean(prep, c, h, w)
    x = x * np.float32(prep.scale)
    return np.ascontiguousarray(np.broadcast_to(x[None], (n, c, h, w)), dtype=np.float32)


def _mean(prep: Preprocess, c: int, h: int, w: int) -> np.ndarray:
    if prep.mean_file:
        if prep.mean_file.endswith(".npy"):
            mean = np.load(prep.mean_file).astype(np.float32)
        else:
            from nnbridge.caffe.formats.binaryproto import read_binaryproto

            mean = read_binaryproto(prep.mean_file).astype(np.float32)
        mean = mean.reshape(mean.shape[-3:]) if mean.ndim >= 3 else mean
        if mean.ndim != 3 or mean.shape[0] != c:
            raise NNBridgeError(f"{prep.mean_file}: mean of shape {mean.shape} does not fit {c} channels")
        mh, mw = mean.shape[1:]
        if mh >= h and mw >= w:
            top, left = (mh - h) // 2, (mw - w) // 2
            return mean[:, top:top + h, left:left + w]
        cv2 = require("cv2", "resizing a mean image")
        return np.stack([cv2.resize(plane, (w, h), interpolation=cv2.INTER_LINEAR) for plane in mean])
    if prep.mean:
        if len(prep.mean) not in (1, c):
            raise NNBridgeError(f"mean {prep.mean}: give 1 or {c} values")
        return np.asarray(prep.mean, dtype=np.float32).reshape(-1, 1, 1)
    return np.zeros((1, 1, 1), np.float32)


def _image_input(specs: Sequence[tuple[str, Sequence[int]]]) -> str | None:
    for name, shape in specs:
        if len(shape) == 4 and shape[1] in (1, 3):
            return name
    return None


def _shape(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape)
