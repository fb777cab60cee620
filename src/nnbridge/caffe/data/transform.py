"""Caffe's ``DataTransformer`` (data_transformer.cpp), in the same order of operations.

For one (C, H, W) image (uint8 or float):

1. crop: ``crop_size`` > 0 takes a ``crop_size`` square; offsets are random in TRAIN
   (``h_off = Rand(H - crop + 1)``, then ``w_off``), centred in TEST (``(H - crop) // 2``);
2. mirror: ``mirror: true`` flips the columns of a randomly chosen half of the images, in **both** phases
   (Caffe draws ``do_mirror = mirror && Rand(2)`` whatever the phase; only the crop is phase dependent);
3. mean: ``mean_file`` (a binaryproto of the full image size, cropped at the same offsets) or ``mean_value``
   (one value, or one per channel) is subtracted;
4. scale: the difference is multiplied by ``scale``.

Arithmetic is float32 as in Caffe: ``(float(pixel) - mean) * scale``. The random draws follow Caffe's order
(mirror first, then the crop offsets) but come from a seeded numpy generator: TRAIN batches are reproducible
for a seed, and cannot equal the batches of Caffe's own RNG.
"""

from __future__ import annotations

import logging

import numpy as np

from nnbridge.caffe.formats.binaryproto import read_binaryproto
from nnbridge.caffe.proto import caffe_pb2
from nnbridge.errors import FormatError

logger = logging.getLogger(__name__)

TRAIN, TEST = int(caffe_pb2.TRAIN), int(caffe_pb2.TEST)


class Transformer:
    """``transformer(image, rng)`` -> float32 (C, H', W'); ``transformer.shape((C, H, W))`` -> (C, H', W')."""

    def __init__(self, param: caffe_pb2.TransformationParameter, phase: int, *, where: str = "<layer>"):
        self.where = where
        self.phase = phase
        self.scale = np.float32(param.scale)
        self.mirror = bool(param.mirror)
        if param.crop_h or param.crop_w:
            raise FormatError(where, "transform_param crop_h/crop_w are not BVLC Caffe fields",
                              hint="use crop_size (a square crop)")
        self.crop = int(param.crop_size)
        self.force_color = bool(param.force_color)
        self.force_gray = bool(param.force_gray)
        if self.force_color and self.force_gray:
            raise FormatError(where, "transform_param sets both force_color and force_gray",
                              hint="Caffe refuses this combination; keep one")
        self.mean_file: str | None = param.mean_file if param.HasField("mean_file") else None
        self.mean_values = np.asarray(param.mean_value, np.float32)
        if self.mean_file is not None and self.mean_values.size:
            raise FormatError(where, "transform_param sets both mean_file and mean_value",
                              hint="Caffe accepts only one of them")
        self.mean: np.ndarray | None = None
        if self.mean_file is not None:
            mean = read_binaryproto(self.mean_file)
            if mean.ndim == 4 and mean.shape[0] == 1:
                mean = mean[0]
            if mean.ndim != 3:
                raise FormatError(self.mean_file, f"the mean has shape {mean.shape}, expected (1, C, H, W)",
                                  hint="a mean file is one image-sized BlobProto (compute_image_mean)")
            self.mean = np.ascontiguousarray(mean, np.float32)
        for name in ("resize_param", "noise_param", "emit_constraint", "distort_param", "expand_param"):
            if param.HasField(name):
                raise FormatError(where, f"transform_param.{name} is an SSD-fork augmentation nnbridge does not "
                                  "implement", hint="remove it, or preprocess the images beforehand")

    @property
    def needs_rng(self) -> bool:
        """Caffe's InitRand condition."""
        return self.mirror or (self.phase == TRAIN and self.crop > 0)

    def shape(self, shape: tuple[int, ...]) -> tuple[int, int, int]:
        """Output shape for an image of ``shape`` (C, H, W); checks the crop and the mean against it."""
        channels, height, width = (int(d) for d in shape)
        if self.crop and (self.crop > height or self.crop > width):
            raise FormatError(self.where, f"crop_size {self.crop} is larger than the image ({height}x{width})",
                              hint="lower crop_size or resize the images")
        if self.mean is not None and self.mean.shape != (channels, height, width):
            raise FormatError(self.mean_file or self.where,
                              f"the mean has shape {self.mean.shape} but the images are {(channels, height, width)}",
                              hint="the mean file must have the size of the stored images (before the crop); "
                                   "recompute it with compute_image_mean, or use mean_value")
        if self.mean_values.size not in (0, 1, channels):
            raise FormatError(self.where, f"{self.mean_values.size} mean_value entries for {channels}-channel images",
                              hint="give one mean_value, or one per channel")
        if self.crop:
            return channels, self.crop, self.crop
        return channels, height, width

    @property
    def deterministic(self) -> bool:
        """No random draw: every image of a batch gets the same window (what :meth:`batch` needs)."""
        return not self.mirror and not (self.phase == TRAIN and self.crop > 0)

    def batch(self, images: np.ndarray, out: np.ndarray) -> None:
        """``out[i] = self(images[i])`` for a (N, C, H, W) batch at once; only when :attr:`deterministic`.

        The same float32 operations in the same order as :meth:`__call__`, so the values are bit-identical.
        """
        assert self.deterministic
        channels, height, width = self.shape(images.shape[1:])
        h_off = (images.shape[2] - height) // 2
        w_off = (images.shape[3] - width) // 2
        window = np.s_[:, h_off:h_off + height, w_off:w_off + width]
        out[...] = images[:, :, h_off:h_off + height, w_off:w_off + width]
        if self.mean is not None:
            out -= self.mean[window]
        elif self.mean_values.size:
            out -= np.broadcast_to(self.mean_values, (channels,)).reshape(channels, 1, 1)
        if self.scale != 1:
            out *= self.scale

    def __call__(self, image: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        return self.apply(image, self.draw(image.shape, rng))

    def draw(self, shape: tuple[int, ...], rng: np.random.Generator | None) -> tuple[slice, slice]:
        """The window (rows, columns) of an image of ``shape``: the random draws of one image, in Caffe's order
        (mirror, then the crop offsets). Split from :meth:`apply` so that images can be drawn for in order and
        transformed in parallel."""
        _, height, width = (int(d) for d in shape)
        self.shape(shape)
        do_mirror = False
        if self.mirror:
            do_mirror = bool(_rng(rng).integers(2))
        h_off = w_off = 0
        out_h, out_w = height, width
        if self.crop:
            out_h = out_w = self.crop
            if self.phase == TRAIN:
                generator = _rng(rng)
                h_off = int(generator.integers(height - self.crop + 1))
                w_off = int(generator.integers(width - self.crop + 1))
            else:
                h_off = (height - self.crop) // 2
                w_off = (width - self.crop) // 2
        # mirroring reorders columns only: flip the window of the image (and of the mean) before the arithmetic
        columns = slice(w_off + out_w - 1, w_off - 1 if w_off else None, -1) if do_mirror \
            else slice(w_off, w_off + out_w)
        return slice(h_off, h_off + out_h), columns

    def apply(self, image: np.ndarray, window: tuple[slice, slice], out: np.ndarray | None = None) -> np.ndarray:
        """The transformed image for a window of :meth:`draw` (into ``out`` when given)."""
        channels = image.shape[0]
        rows, columns = window
        if out is None:
            out = image[:, rows, columns].astype(np.float32, order="C")
        else:
            out[...] = image[:, rows, columns]
        if self.mean is not None:
            out -= self.mean[:, rows, columns]
        elif self.mean_values.size:
            out -= np.broadcast_to(self.mean_values, (channels,)).reshape(channels, 1, 1)
        if self.scale != 1:
            out *= self.scale
        return out


def _rng(rng: np.random.Generator | None) -> np.random.Generator:
    if rng is None:
        raise ValueError("a random transform (TRAIN crop or mirror) needs a numpy Generator")
    return rng
