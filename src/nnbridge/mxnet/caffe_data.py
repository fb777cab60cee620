"""``CaffeDataIter``: MXNet's old ``mx.io.CaffeDataIter`` without Caffe (an ``mx.io.DataIter`` over a Caffe data layer).

.. code-block:: python

    from nnbridge.mxnet import CaffeDataIter
    it = CaffeDataIter(prototxt='layer { type: "Data" top: "data" top: "label" data_param { source: "mnist_lmdb" '
                       'batch_size: 100 backend: LMDB } transform_param { scale: 0.00390625 } }', flat=True)

``prototxt``: a one-data-layer prototxt (text or file; see :class:`nnbridge.caffe.data.DataLayerReader`); the first
top is the data (``data_name``), the second the label (``label_name``), further tops are more data entries named
by their tops. ``flat=True`` reshapes the data to (N, C*H*W). ``num_examples=-1`` takes the size of the database.

Epochs and the last batch: an epoch holds ``num_examples`` samples of the layer's stream. ``last_batch_handle=
"pad"`` (default, MXNet's NDArrayIter default) yields ``ceil(num_examples / batch_size)`` batches; the last one is
completed by the samples that follow in Caffe's stream (it wraps round to the start of the database, as Caffe's
layer does), and ``batch.pad`` says how many of them are padding. ``"discard"`` drops an incomplete last batch.
``reset()`` rewinds the stream to the first sample: the first epoch's batches are exactly the first
``ceil(num_examples / batch_size)`` forward passes of the Caffe layer (TRAIN randomness from ``seed``; it cannot
equal Caffe's own RNG). ``prefetch=N`` (default 4, Caffe's ``data_param.prefetch``; 0: none) makes up to N batches ahead
(read, transformed and turned into ``mx.nd`` arrays) in one background thread, as Caffe's prefetching data layers
do; the order and the batches are the same either way.

mxnet is imported when the class is first used: ``nnbridge.mxnet`` itself imports without mxnet.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from nnbridge.caffe.data.reader import DataLayerReader, Prefetcher
from nnbridge.extras import require

__all__ = ["CaffeDataIter"]  # noqa: F822 (built on first use by __getattr__)


@functools.lru_cache(maxsize=1)
def _iterator_class() -> type:
    mx = require("mxnet", "nnbridge.mxnet.CaffeDataIter")

    class CaffeDataIter(mx.io.DataIter):  # type: ignore[misc,name-defined]
        __doc__ = __doc__

        def __init__(self, prototxt: str | os.PathLike[str], flat: bool = False, num_examples: int = -1,
                     data_name: str = "data", label_name: str = "softmax_label", *, phase: str = "TEST",
                     seed: int = 0, last_batch_handle: str = "pad",
                     memory_data: Mapping[str, np.ndarray] | None = None, dtype: str = "float32",
                     prefetch: int = 4):
            self.reader = DataLayerReader(prototxt, phase=phase, seed=seed, memory_data=memory_data)
            super().__init__(self.reader.batch_size)
            if last_batch_handle not in ("pad", "discard"):
                raise ValueError(f"last_batch_handle must be 'pad' or 'discard', not {last_batch_handle!r}")
            self.flat = flat
            self.last_batch_handle = last_batch_handle
            self.num_examples = len(self.reader) if num_examples < 0 else int(num_examples)
            self.dtype = dtype
            self.prefetch = int(prefetch)
            self._prefetcher: Prefetcher | None = None
            tops = self.reader.tops
            names = [data_name] + ([label_name] if len(tops) > 1 else []) + tops[2:]
            shapes = [self._shape(shape, top == 0) for top, shape in enumerate(self.reader.shapes)]
            descs = [mx.io.DataDesc(name, shape, dtype) for name, shape in zip(names, shapes, strict=True)]
            self._data_index = [0, *range(2, len(tops))]
            self._provide_data = [descs[i] for i in self._data_index]
            self._provide_label = descs[1:2]
            self.reset()

        def _shape(self, shape: tuple[int, ...], is_data: bool) -> tuple[int, ...]:
            if is_data and self.flat:
                return (shape[0], int(np.prod(shape[1:])))
            return tuple(shape)

        @property
        def provide_data(self) -> list[Any]:
            return self._provide_data

        @property
        def provide_label(self) -> list[Any]:
            return self._provide_label

        @property
        def batches_per_epoch(self) -> int:
            full, rest = divmod(self.num_examples, self.batch_size)
            return full + (1 if rest and self.last_batch_handle == "pad" else 0)

        def reset(self) -> None:
            if self._prefetcher is not None:
                self._prefetcher.close()  # before rewinding: the thread reads from the reader
                self._prefetcher = None
            self.reader.rewind()
            self._batch = 0
            if self.prefetch > 0:
                self._prefetcher = Prefetcher(self.reader, self.batches_per_epoch, self.prefetch, self._to_nd)

        def __del__(self) -> None:
            prefetcher = getattr(self, "_prefetcher", None)
            if prefetcher is not None:
                prefetcher.close()

        def _to_nd(self, arrays: list[np.ndarray]) -> list[Any]:
            if self.flat:
                arrays[0] = arrays[0].reshape(arrays[0].shape[0], -1)
            if np.dtype(self.dtype) == np.float32 and hasattr(mx.nd, "from_numpy"):
                # the batch's arrays are fresh and never written again: MXNet can own them (no copy, ~10x faster)
                return [mx.nd.from_numpy(np.ascontiguousarray(a), zero_copy=True) for a in arrays]
            return [mx.nd.array(a, dtype=self.dtype) for a in arrays]

        def next(self) -> Any:
            if self._batch >= self.batches_per_epoch:
                raise StopIteration
            as_nd = self._prefetcher.get() if self._prefetcher is not None else self._to_nd(self.reader.next_batch())
            self._batch += 1
            pad = max(0, self._batch * self.batch_size - self.num_examples)
            return mx.io.DataBatch(data=[as_nd[i] for i in self._data_index], label=as_nd[1:2], pad=pad,
                                   provide_data=self.provide_data, provide_label=self.provide_label)

    return CaffeDataIter


def __getattr__(name: str) -> Any:
    if name == "CaffeDataIter":
        return _iterator_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
