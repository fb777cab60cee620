"""Weight sources for the Caffe importer (the ``WeightSource`` protocol of :mod:`nnbridge.caffe.importer`).

- :class:`CaffemodelWeights`: blobs of a read caffemodel. Shape check as Caffe's ``Blob::ShapeEquals``
  plus the contract of docs/ARCHITECTURE.md: a blob written with ``shape`` must match exactly; a blob
  written with legacy ``num/channels/height/width`` is accepted when the element counts are equal (this
  includes every case Caffe accepts, where the wanted shape left-padded with 1s to 4-D equals the legacy
  dims, e.g. an InnerProduct weight ``(1, 1, M, N)`` read as ``(M, N)``) and reshaped (a view).
- :class:`DictWeights`: ``{layer: [arrays]}`` already in memory (exact shapes).
- :class:`RandomWeights`: realistic random blobs, deterministic per ``(seed, layer, index)``
  whatever the call order; every blob made is recorded in ``served`` (ready for ``save_caffe``).

Random statistics by ``kind``: ``weight`` He-normal ``N(0, 2 / fan_in)`` with
``fan_in = prod(shape[1:])`` (``prod(shape)`` for 1-D), ``bias`` N(0, 0.1), ``mean`` N(0, 0.2),
``var`` U(0.5, 1.5), ``scale_factor`` 1.0, ``gamma`` U(0.5, 1.5), ``beta`` N(0, 0.1),
``slope`` U(0.1, 0.4), anything else N(0, 0.5) (standard deviations).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence

import numpy as np

from nnbridge.caffe.formats.caffemodel import CaffemodelFile
from nnbridge.errors import FormatError


def _shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(int(d)) for d in shape) + ")"


class CaffemodelWeights:
    """Blobs of a caffemodel, checked against the shapes the importer expects."""

    def __init__(self, file: CaffemodelFile):
        self.file = file
        self.path = file.path

    def count(self, layer: str) -> int | None:
        return len(self.file.blobs.get(layer, ()))

    def get(self, layer: str, index: int, shape: tuple[int, ...], kind: str) -> np.ndarray:
        arrays = self.file.blobs.get(layer)
        if arrays is None:
            raise FormatError(self.path, f"layer {layer!r} has no blobs in the caffemodel (needs its {kind})",
                              hint="the caffemodel does not belong to this prototxt, or the layer was renamed")
        if index >= len(arrays):
            raise FormatError(self.path, f"layer {layer!r} has {len(arrays)} blobs in the caffemodel, "
                              f"blob {index} ({kind}) is missing",
                              hint="check bias_term and the layer's parameters against the caffemodel")
        array = arrays[index]
        wanted = tuple(int(d) for d in shape)
        if array.shape == wanted:
            return array
        legacy = self.file.legacy.get(layer, [False] * len(arrays))[index]
        if legacy and array.size == math.prod(wanted):
            return array.reshape(wanted)
        raise FormatError(self.path, f"layer {layer!r} blob {index} ({kind}): the prototxt needs shape "
                          f"{_shape(wanted)} but the caffemodel has {_shape(array.shape)}",
                          hint="the caffemodel does not match the prototxt (num_output, kernel or input size)")


class DictWeights:
    """Blobs from a ``{layer: [arrays]}`` mapping (shapes must match exactly)."""

    def __init__(self, blobs: Mapping[str, Sequence[np.ndarray]], source: str | None = None):
        self.blobs = {name: list(arrays) for name, arrays in blobs.items()}
        self.source = source

    def count(self, layer: str) -> int | None:
        return len(self.blobs.get(layer, ()))

    def get(self, layer: str, index: int, shape: tuple[int, ...], kind: str) -> np.ndarray:
        arrays = self.blobs.get(layer, [])
        if index >= len(arrays):
            raise FormatError(self.source, f"layer {layer!r} has no blob {index} ({kind})",
                              hint="give every parameter blob of the layer")
        array = np.asarray(arrays[index], dtype=np.float32)
        wanted = tuple(int(d) for d in shape)
        if array.shape != wanted:
            raise FormatError(self.source, f"layer {layer!r} blob {index} ({kind}): expected shape "
                              f"{_shape(wanted)}, found {_shape(array.shape)}")
        return array


def stable_seed(seed: int, layer: str, index: int) -> list[int]:
    """Entropy for numpy's SeedSequence from the seed, a SHA-256 of the layer name and the index."""
    digest = hashlib.sha256(layer.encode("utf-8")).digest()
    return [seed & 0xFFFFFFFF, int.from_bytes(digest[:8], "little"), index]


def random_blob(rng: np.random.Generator, shape: tuple[int, ...], kind: str) -> np.ndarray:
    """One random blob with realistic statistics for its kind (see the module docstring)."""
    if kind == "weight":
        fan_in = math.prod(shape[1:]) if len(shape) >= 2 else math.prod(shape)
        values = rng.normal(0.0, math.sqrt(2.0 / max(fan_in, 1)), shape)
    elif kind in ("bias", "beta"):
        values = rng.normal(0.0, 0.1, shape)
    elif kind == "mean":
        values = rng.normal(0.0, 0.2, shape)
    elif kind in ("var", "gamma"):
        values = rng.uniform(0.5, 1.5, shape)
    elif kind == "scale_factor":
        values = np.ones(shape)
    elif kind == "slope":
        values = rng.uniform(0.1, 0.4, shape)
    else:
        values = rng.normal(0.0, 0.5, shape)
    return np.asarray(values, dtype=np.float32)


class RandomWeights:
    """Random blobs with realistic statistics; ``served`` records them by layer in index order."""

    def __init__(self, seed: int = 0):
        self.seed = int(seed)
        self.served: dict[str, list[np.ndarray]] = {}
        self._made: dict[tuple[str, int], np.ndarray] = {}

    def count(self, layer: str) -> int | None:
        return None

    def get(self, layer: str, index: int, shape: tuple[int, ...], kind: str) -> np.ndarray:
        wanted = tuple(int(d) for d in shape)
        key = (layer, index)
        made = self._made.get(key)
        if made is not None and made.shape == wanted:
            return made
        rng = np.random.default_rng(stable_seed(self.seed, layer, index))
        array = random_blob(rng, wanted, kind)
        self._made[key] = array
        served = self.served.setdefault(layer, [])
        while len(served) <= index:
            served.append(np.zeros(0, np.float32))  # placeholder until that blob is asked for
        served[index] = array
        return array
