"""Where a Caffe data layer's samples come from: one class per layer type.

A source has ``tops`` (top blob names), ``len(source)`` samples, ``order(epoch, rng)`` (sample indices of one pass,
in the order the Caffe layer reads them) and ``load(index, rng)`` (one array per top, transformed as the layer
does). ``load_into(indices, rng, out, where)`` fills a whole batch (per sample by default; a ``Data`` source reads
the batch at once, see :mod:`nnbridge.caffe.data.batch`). :mod:`nnbridge.caffe.data.reader` batches them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from nnbridge.caffe.data.batch import checked_layout, fill_data_batch, shape_error
from nnbridge.caffe.data.datum import datum_to_array, parse_datum, read_image, to_chw
from nnbridge.caffe.data.db import DatumDB
from nnbridge.caffe.data.transform import Transformer
from nnbridge.caffe.data.wire import Layout
from nnbridge.caffe.proto import caffe_pb2
from nnbridge.errors import FormatError, MissingExtraError

logger = logging.getLogger(__name__)


class Source:
    tops: list[str]
    transformer: Transformer | None = None

    def __len__(self) -> int:
        raise NotImplementedError

    def order(self, epoch: int, rng: np.random.Generator) -> list[int]:
        """Sample indices of pass ``epoch`` (0, 1, ...), in the layer's reading order."""
        return list(range(len(self)))

    def load(self, index: int, rng: np.random.Generator | None) -> tuple[np.ndarray, ...]:
        raise NotImplementedError

    def load_into(self, indices: Iterable[int], rng: np.random.Generator | None, out: list[np.ndarray],
                  where: str) -> None:
        """``out[top][row]`` = ``load(indices[row], rng)[top]``, in row order; a sample of another shape than
        ``out``'s rows is a FormatError naming ``where``. ``indices`` may be a lazy iterator (drawing from
        ``rng`` between the samples' draws, as a shuffled stream does)."""
        for row, index in enumerate(indices):
            for top, array in enumerate(self.load(index, rng)):
                if array.shape != out[top].shape[1:]:
                    raise shape_error(where, self.tops[top], index, tuple(array.shape), tuple(out[top].shape[1:]))
                out[top][row] = array

    def close(self) -> None:
        """Release file handles (they are reopened on demand)."""


class DataSource(Source):
    """``Data``: Datum records of an LMDB/LevelDB database, in key order, wrapping around at the end."""

    def __init__(self, layer: caffe_pb2.LayerParameter, transformer: Transformer):
        param = layer.data_param
        self.db = DatumDB(param.source, caffe_pb2.DataParameter.DB.Name(param.backend))
        self.tops = list(layer.top)
        self.transformer = transformer
        self.force_encoded_color = bool(param.force_encoded_color)
        self._layout: Layout | None = None
        self._layout_known = False
        if param.rand_skip:
            logger.warning("%s: data_param.rand_skip is ignored (BVLC Caffe's DataLayer ignores it too)", layer.name)

    def __len__(self) -> int:
        return len(self.db)

    def layout(self, value: bytes) -> Layout | None:
        """The raw-Datum fast path's layout, taken once from the first record read."""
        if not self._layout_known:
            self._layout, self._layout_known = checked_layout(value, self), True
        return self._layout

    def load_into(self, indices: Iterable[int], rng: np.random.Generator | None, out: list[np.ndarray],
                  where: str) -> None:
        if len(out) > 2:
            super().load_into(indices, rng, out, where)
        else:  # the order of a Data layer draws nothing: the indices can be taken first
            fill_data_batch(self, list(indices), rng, out, where)

    def image(self, index: int) -> tuple[np.ndarray, int]:
        return self.image_of(*self.db.value(index))

    def image_of(self, key: bytes, value: bytes) -> tuple[np.ndarray, int]:
        datum = parse_datum(value, self.db.path, key)
        assert self.transformer is not None
        where = f"{self.db.path}:key {key.decode('utf-8', 'backslashreplace')}"
        if not datum.encoded and (self.transformer.force_color or self.transformer.force_gray):
            logger.warning("%s: force_color/force_gray only apply to encoded Datums (as in Caffe)", where)
        image = datum_to_array(datum, force_color=self.transformer.force_color or self.force_encoded_color,
                               force_gray=self.transformer.force_gray, where=where)
        return image, int(datum.label)

    def load(self, index: int, rng: np.random.Generator | None) -> tuple[np.ndarray, ...]:
        image, label = self.image(index)
        assert self.transformer is not None
        data = self.transformer(image, rng)
        return (data, np.float32(label).reshape(()))[:len(self.tops)]

    def close(self) -> None:
        self.db.close()


class ImageDataSource(Source):
    """``ImageData``: a list file of ``path label`` lines (the label after the last space), images read by OpenCV."""

    def __init__(self, layer: caffe_pb2.LayerParameter, transformer: Transformer):
        param = layer.image_data_param
        self.source = param.source
        try:
            with open(param.source, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise FormatError(param.source, f"cannot read the image list: {exc.strerror or exc}",
                              hint="image_data_param.source is a text file of 'path label' lines") from None
        self.lines: list[tuple[str, int]] = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            path, _, label = line.rstrip().rpartition(" ")
            try:
                self.lines.append((path, int(label)))
            except ValueError:
                raise FormatError(param.source, f"expected 'path label', got {line!r}", location=str(number),
                                  hint="one image per line, the integer label after the last space") from None
        if not self.lines:
            raise FormatError(param.source, "the image list is empty", hint="one 'path label' line per image")
        self.root = param.root_folder
        self.size = (int(param.new_height), int(param.new_width))
        self.color = bool(param.is_color)
        self.shuffle = bool(param.shuffle)
        self.rand_skip = int(param.rand_skip)
        self.tops = list(layer.top)
        self.transformer = transformer

    def __len__(self) -> int:
        return len(self.lines)

    def order(self, epoch: int, rng: np.random.Generator) -> list[int]:
        indices = list(range(len(self)))
        if self.shuffle:  # Caffe shuffles at set-up and again each time the list wraps around
            rng.shuffle(indices)
        if epoch == 0 and self.rand_skip:
            skip = int(rng.integers(self.rand_skip))
            indices = indices[skip:]
        return indices

    def image(self, index: int) -> tuple[np.ndarray, int]:
        path, label = self.lines[index]
        image = read_image(self.root + path, color=self.color, height=self.size[0], width=self.size[1])
        return to_chw(image), label

    def load(self, index: int, rng: np.random.Generator | None) -> tuple[np.ndarray, ...]:
        image, label = self.image(index)
        assert self.transformer is not None
        return (self.transformer(image, rng), np.float32(label).reshape(()))[:len(self.tops)]


class HDF5DataSource(Source):
    """``HDF5Data``: rows of the datasets named like the tops, in the .h5 files listed by ``source``; no transform.

    Values are read as float32 (Caffe's blobs). File names are taken from the current directory as Caffe does;
    a relative name that does not exist there is looked up beside the list file. ``shuffle`` shuffles the file
    order at each pass and the rows of each file when it is loaded (seeded numpy RNG, not Caffe's).
    """

    def __init__(self, layer: caffe_pb2.LayerParameter):
        param = layer.hdf5_data_param
        try:
            with open(param.source, encoding="utf-8") as handle:
                names = handle.read().split()
        except OSError as exc:
            raise FormatError(param.source, f"cannot read the HDF5 file list: {exc.strerror or exc}",
                              hint="hdf5_data_param.source is a text file naming one .h5 file per line") from None
        if not names:
            raise FormatError(param.source, "the HDF5 file list is empty", hint="name one .h5 file per line")
        self.tops = list(layer.top)
        self.shuffle = bool(param.shuffle)
        self.files: list[str] = []
        self.rows: list[int] = []
        self.sample_shapes: dict[str, tuple[int, ...]] = {}
        for name in names:
            path = name if os.path.exists(name) or os.path.isabs(name) else \
                os.path.join(os.path.dirname(param.source), name)
            self.files.append(path)
            self.rows.append(self._check(path))
        self.starts = np.concatenate([[0], np.cumsum(self.rows)]).astype(np.int64)
        self._cache: tuple[int, dict[str, np.ndarray]] | None = None

    def _check(self, path: str) -> int:
        try:
            handle = _h5py().File(path, "r")
        except OSError as exc:
            raise FormatError(path, f"cannot open the HDF5 file: {exc}", hint="check hdf5_data_param.source") from None
        with handle:
            counts = set()
            for top in self.tops:
                if top not in handle:
                    raise FormatError(path, f"no dataset {top!r} (one per top of the layer)",
                                      hint=f"the file holds {sorted(handle.keys())}")
                shape = tuple(handle[top].shape)
                if not 1 <= len(shape) <= 4:
                    raise FormatError(path, f"dataset {top!r} has {len(shape)} dimensions, Caffe reads 1 to 4")
                counts.add(shape[0])
                known = self.sample_shapes.setdefault(top, shape[1:])
                if known != shape[1:]:
                    raise FormatError(path, f"dataset {top!r} rows have shape {shape[1:]}, earlier files {known}")
            if len(counts) != 1:
                raise FormatError(path, f"the datasets have different row counts {sorted(counts)}",
                                  hint="every top's dataset needs the same first dimension")
            return counts.pop()

    def __len__(self) -> int:
        return int(self.starts[-1])

    def order(self, epoch: int, rng: np.random.Generator) -> list[int]:
        files = list(range(len(self.files)))
        if self.shuffle:
            rng.shuffle(files)
        indices: list[int] = []
        for file in files:
            rows = np.arange(self.rows[file])
            if self.shuffle:
                rng.shuffle(rows)
            indices.extend(int(self.starts[file] + row) for row in rows)
        return indices

    def load(self, index: int, rng: np.random.Generator | None) -> tuple[np.ndarray, ...]:
        file = int(np.searchsorted(self.starts, index, side="right") - 1)
        if self._cache is None or self._cache[0] != file:
            with _h5py().File(self.files[file], "r") as handle:  # Caffe loads one whole file at a time
                self._cache = (file, {top: np.asarray(handle[top], np.float32) for top in self.tops})
        row = index - int(self.starts[file])
        return tuple(self._cache[1][top][row] for top in self.tops)

    def close(self) -> None:
        self._cache = None


def _h5py() -> Any:
    try:
        import h5py
    except ImportError:
        raise MissingExtraError("HDF5Data needs the Python package 'h5py'; install it with: pip install h5py"
                                ) from None
    return h5py


class MemoryDataSource(Source):
    """``MemoryData``: arrays given from Python (N, C, H, W) and labels (N,), as pycaffe's ``set_input_arrays``.

    float arrays are used as they are (Caffe's ``MemoryDataLayer::Reset`` applies no transform); uint8 arrays go
    through transform_param (what ``AddMatVector`` does).
    """

    def __init__(self, layer: caffe_pb2.LayerParameter, transformer: Transformer,
                 arrays: Mapping[str, np.ndarray] | None):
        param = layer.memory_data_param
        where = f"layer {layer.name!r}"
        if not arrays:
            raise FormatError(where, "a MemoryData layer needs its arrays",
                              hint="pass memory_data={'data': array (N,C,H,W), 'label': array (N,)}")
        self.tops = list(layer.top)
        missing = [top for top in self.tops if top not in arrays]
        if missing:
            raise FormatError(where, f"no array given for top(s) {missing}", hint=f"given: {sorted(arrays)}")
        self.arrays = {top: np.asarray(arrays[top]) for top in self.tops}
        data = self.arrays[self.tops[0]]
        expected = (int(param.channels), int(param.height), int(param.width))
        if data.ndim != 4 or tuple(data.shape[1:]) != expected:
            raise FormatError(where, f"data of shape {data.shape}, the layer declares (N, {expected})",
                              hint="match memory_data_param channels/height/width")
        if any(len(a) != len(data) for a in self.arrays.values()):
            raise FormatError(where, "the arrays have different lengths")
        if len(self.tops) > 1 and self.arrays[self.tops[1]].ndim == 1:  # Caffe's label blob is (N, 1, 1, 1)
            self.arrays[self.tops[1]] = self.arrays[self.tops[1]].reshape(-1, 1, 1, 1)
        self.transform = data.dtype == np.uint8
        self.transformer = transformer if self.transform else None
        if not self.transform:
            self.arrays[self.tops[0]] = data.astype(np.float32, copy=False)

    def __len__(self) -> int:
        return len(self.arrays[self.tops[0]])

    def load(self, index: int, rng: np.random.Generator | None) -> tuple[np.ndarray, ...]:
        out = [np.asarray(self.arrays[top][index], np.float32) for top in self.tops]
        if self.transformer is not None:
            out[0] = self.transformer(self.arrays[self.tops[0]][index], rng)
        return tuple(out)
