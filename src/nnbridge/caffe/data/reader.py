"""A Caffe data layer outside Caffe: parse a one-layer prototxt, then read batches as the layer's forward does.

``DataLayerReader(prototxt, phase="TEST", seed=0, memory_data=None)``

- ``prototxt``: the text of a NetParameter, or a path to a file holding it, with (after Caffe's phase rules,
  ``include { phase: TEST }``) exactly one layer of type ``Data`` (LMDB/LevelDB), ``ImageData``, ``HDF5Data`` or
  ``MemoryData``.
- ``tops``, ``batch_size``, ``shapes`` (per top, batch dimension included), ``len(reader)`` (samples in the source).
- ``next_batch()`` -> one float32 array per top; the stream wraps around the source as Caffe does (a batch may
  straddle the end and the start). ``rewind()`` starts the stream again from its first sample.

Randomness (TRAIN crops, mirror, shuffles) comes from ``numpy.random.default_rng(seed)``: reproducible, never
equal to Caffe's own RNG.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from nnbridge.caffe.data.sources import DataSource, HDF5DataSource, ImageDataSource, MemoryDataSource, Source
from nnbridge.caffe.data.transform import Transformer
from nnbridge.caffe.formats.net import filter_net, make_state
from nnbridge.caffe.formats.prototxt import parse_prototxt, read_prototxt
from nnbridge.caffe.formats.upgrade import upgrade_net
from nnbridge.caffe.proto import caffe_pb2
from nnbridge.errors import FormatError

logger = logging.getLogger(__name__)

DATA_LAYERS = ("Data", "ImageData", "HDF5Data", "MemoryData")
_PARAMS = {"Data": "data_param", "ImageData": "image_data_param", "HDF5Data": "hdf5_data_param",
           "MemoryData": "memory_data_param"}
_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")


def load_data_layer(prototxt: str | os.PathLike[str], phase: str = "TEST") -> tuple[caffe_pb2.LayerParameter, str]:
    """The one data layer of ``prototxt`` (text or a file path) for ``phase``, and a name for messages."""
    text = os.fspath(prototxt)
    looks_like_text = "{" in text or ":" in text or not text.strip()
    if not looks_like_text and os.path.isfile(text):
        net, where = read_prototxt(text), text
    elif not looks_like_text:
        raise FormatError(text, "neither a prototxt file nor prototxt text",
                          hint="pass the layer's text (layer { type: \"Data\" ... }) or the path of a .prototxt")
    else:
        net, where = parse_prototxt(text, "<prototxt>"), "<prototxt>"
    upgrade_net(net, where)
    kept = filter_net(net, make_state(net, phase), where).layer
    data = [layer for layer in kept if layer.type in DATA_LAYERS]
    if len(kept) != 1 or len(data) != 1:
        found = ", ".join(f"{layer.name or '?'} ({layer.type})" for layer in kept) or "no layer"
        hint = f"give one layer of type {'/'.join(DATA_LAYERS)} (phase rules pick one of several)"
        other = "TRAIN" if phase.upper() == "TEST" else "TEST"
        if not data and [layer for layer in filter_net(net, make_state(net, other), where).layer
                         if layer.type in DATA_LAYERS]:
            hint = f"its data layer is for phase {other}: pass phase=\"{other}\""
        raise FormatError(where, f"expected exactly one data layer for phase {phase}, found {found}", hint=hint)
    layer = caffe_pb2.LayerParameter()
    layer.CopyFrom(data[0])
    _upgrade_transform(layer)
    if not layer.top:
        raise FormatError(where, f"layer {layer.name!r} has no top", hint="add top: \"data\" (and top: \"label\")")
    return layer, where


def _upgrade_transform(layer: caffe_pb2.LayerParameter) -> None:
    """Caffe's deprecated data_param/image_data_param transform fields -> transform_param (as UpgradeNetAsNeeded)."""
    if layer.type not in ("Data", "ImageData"):
        return
    param = getattr(layer, _PARAMS[layer.type])
    for field in _TRANSFORM_FIELDS:
        if param.HasField(field):
            if layer.transform_param.HasField(field):
                raise FormatError(layer.name, f"{field} is set in both {_PARAMS[layer.type]} and transform_param",
                                  hint="keep the transform_param one")
            setattr(layer.transform_param, field, getattr(param, field))


class DataLayerReader:
    def __init__(self, prototxt: str | os.PathLike[str], phase: str = "TEST", seed: int = 0,
                 memory_data: Mapping[str, np.ndarray] | None = None):
        self.layer, self.where = load_data_layer(prototxt, phase)
        self.phase = int(caffe_pb2.Phase.Value(phase.upper()))
        self.seed = seed
        layer = self.layer
        transformer = Transformer(layer.transform_param, self.phase, where=f"{self.where}:{layer.name}")
        self.source: Source
        if layer.type == "Data":
            self.source = DataSource(layer, transformer)
        elif layer.type == "ImageData":
            self.source = ImageDataSource(layer, transformer)
        elif layer.type == "HDF5Data":
            if layer.HasField("transform_param"):
                logger.warning("%s: HDF5Data ignores transform_param (as in Caffe)", layer.name)
            self.source = HDF5DataSource(layer)
        else:
            self.source = MemoryDataSource(layer, transformer, memory_data)
        param = getattr(layer, _PARAMS[layer.type])
        self.batch_size = int(param.batch_size)
        if self.batch_size <= 0:
            raise FormatError(self.where, f"layer {layer.name!r} has no batch_size",
                              hint=f"set {_PARAMS[layer.type]} {{ batch_size: N }}")
        if len(self.source) == 0:
            raise FormatError(self.where, f"layer {layer.name!r}: the source holds no samples",
                              hint="check the database / list")
        if layer.type == "MemoryData" and len(self.source) % self.batch_size:
            raise FormatError(self.where, f"MemoryData: {len(self.source)} samples is not a multiple of batch_size "
                              f"{self.batch_size}", hint="Caffe's MemoryDataLayer::Reset requires it")
        self.tops = list(self.source.tops)
        first = self.source.load(0, np.random.default_rng(0))
        self.sample_shapes = [tuple(int(d) for d in a.shape) for a in first]
        self.shapes = [(self.batch_size, *shape) for shape in self.sample_shapes]
        self.rewind()

    def __len__(self) -> int:
        return len(self.source)

    def rewind(self) -> None:
        """Start the stream again at the first sample (the RNG restarts from the seed too)."""
        self.rng = np.random.default_rng(self.seed)
        self._stream = self._indices()

    def _indices(self) -> Iterator[int]:
        epoch = 0
        while True:
            yield from self.source.order(epoch, self.rng)
            epoch += 1

    def next_batch(self) -> list[np.ndarray]:
        """The next ``batch_size`` samples of the stream, one float32 array per top."""
        out = [np.empty(shape, np.float32) for shape in self.shapes]
        self.source.load_into(itertools.islice(self._stream, self.batch_size), self.rng, out, self.where)
        return out

    def close(self) -> None:
        self.source.close()


class Prefetcher:
    """Caffe's prefetch thread: ``batches`` batches of ``reader`` made ahead, at most ``depth`` waiting.

    One producer thread keeps the stream's order (and the seeded randomness) exactly as without it; ``convert``
    (if given) is applied to each batch in the thread too. An error in the thread is raised by :meth:`get`.
    :meth:`close` stops the thread (call it before rewinding the reader).
    """

    def __init__(self, reader: DataLayerReader, batches: int, depth: int,
                 convert: Callable[[list[np.ndarray]], Any] | None = None):
        import queue
        import threading

        self._queue: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue(depth)
        self._convert = convert
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(reader, batches), daemon=True,
                                        name="nnbridge-caffe-prefetch")
        self._thread.start()

    def _run(self, reader: DataLayerReader, batches: int) -> None:
        import queue

        for _ in range(batches):
            try:
                batch = reader.next_batch()
                item: tuple[Any, BaseException | None] = \
                    (self._convert(batch) if self._convert is not None else batch, None)
            except BaseException as exc:  # handed to the consumer
                item = (None, exc)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if self._stop.is_set() or item[1] is not None:
                return

    def get(self) -> Any:
        batch, error = self._queue.get()
        if error is not None:
            raise error
        assert batch is not None
        return batch

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
