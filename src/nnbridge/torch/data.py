"""``CaffeDataset``: a Caffe data layer (``Data`` LMDB/LevelDB, ``ImageData``, ``HDF5Data``, ``MemoryData``) as a
``torch.utils.data.Dataset``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from nnbridge.caffe.data.reader import DataLayerReader

__all__ = ["CaffeDataset"]


class CaffeDataset(Dataset):  # type: ignore[type-arg]
    """Sample ``i`` of a Caffe data layer: a tuple of float32 tensors, one per top (data (C, H, W), label ()).

    ``prototxt``: a one-data-layer prototxt, text or file (phase rules applied for ``phase``). Samples are
    transformed exactly as Caffe's ``DataTransformer`` does (crop, mirror, mean, scale). Labels are float32 like
    Caffe's label blob: use ``label.long()`` for ``CrossEntropyLoss``.

    Order and shuffling: Caffe reads its source sequentially (``Data``) or shuffles it itself (``ImageData``/
    ``HDF5Data`` with ``shuffle: true``); here sample ``i`` is the ``i``-th record of the source (key order of the
    database, line order of the list) and the order is the ``DataLoader``'s: ``shuffle=True`` there shuffles
    per epoch, which Caffe's ``Data`` layer would not do, and the layer's own ``shuffle`` option is not used.
    ``DataLoader(ds, batch_size=B)`` without shuffling gives Caffe's batches (a smaller last batch where Caffe
    would wrap round). ``batch_size`` is the layer's (``dataset.batch_size``) for convenience.

    Workers: each ``DataLoader`` worker opens its own LMDB/LevelDB handle. TRAIN randomness (random crop, mirror)
    comes from a numpy generator seeded with ``seed`` in the main process and with the worker's seed
    (``torch.utils.data.get_worker_info().seed``) in a worker: reproducible under ``torch.manual_seed``, never
    equal to Caffe's own RNG.
    """

    def __init__(self, prototxt: str | os.PathLike[str], phase: str = "TEST", seed: int = 0,
                 memory_data: Mapping[str, np.ndarray] | None = None):
        reader = DataLayerReader(prototxt, phase=phase, seed=seed, memory_data=memory_data)
        self.source = reader.source
        self.tops = reader.tops
        self.batch_size = reader.batch_size
        self.sample_shapes = reader.sample_shapes
        self.where = reader.where
        self.seed = seed
        self._rng: np.random.Generator | None = None
        self._rng_owner: tuple[int, int] | None = None
        reader.close()

    def __len__(self) -> int:
        return len(self.source)

    def _generator(self) -> np.random.Generator:
        info = get_worker_info()
        owner = (os.getpid(), info.id if info is not None else -1)
        if self._rng is None or self._rng_owner != owner:
            self._rng = np.random.default_rng(info.seed if info is not None else self.seed)
            self._rng_owner = owner
        return self._rng

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} of a {len(self)}-sample Caffe data source")
        sample = self.source.load(int(index), self._generator())
        return tuple(torch.from_numpy(np.array(a, np.float32, copy=True)) for a in sample)

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, ...]]:
        """Several samples at once (what ``DataLoader`` asks for): the values, and the random draws in index order,
        of ``[self[i] for i in indices]``; a ``Data`` layer reads them in one transaction, raw Datums decoded
        together. Samples of unequal shapes (which ``default_collate`` could not stack) are a FormatError."""
        if len(indices) <= 1:
            return [self[index] for index in indices]
        for index in indices:
            if not 0 <= index < len(self):
                raise IndexError(f"sample {index} of a {len(self)}-sample Caffe data source")
        out = [np.empty((len(indices), *shape), np.float32) for shape in self.sample_shapes]
        self.source.load_into([int(index) for index in indices], self._generator(), out, self.where)
        return list(zip(*(torch.from_numpy(array).unbind(0) for array in out), strict=True))

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["_rng"] = None
        state["_rng_owner"] = None
        return state
