"""Caffe data sources outside Caffe: Datum databases (LMDB/LevelDB), Caffe's data layers and its transformer.

- :mod:`~nnbridge.caffe.data.db`: :class:`DatumDB` (read), :func:`write_lmdb` (atomic write);
- :mod:`~nnbridge.caffe.data.datum`: Datum parsing/decoding (OpenCV, as Caffe's ``io.cpp``) and building;
- :mod:`~nnbridge.caffe.data.transform`: Caffe's ``DataTransformer`` (crop, mirror, mean, scale);
- :mod:`~nnbridge.caffe.data.sources`: ``Data``, ``ImageData``, ``HDF5Data``, ``MemoryData``;
- :mod:`~nnbridge.caffe.data.reader`: :class:`DataLayerReader`, batches as the layer's forward produces them,
  and :class:`~nnbridge.caffe.data.reader.Prefetcher` (Caffe's prefetch thread);
- :mod:`~nnbridge.caffe.data.batch` / :mod:`~nnbridge.caffe.data.wire`: a ``Data`` layer's batch at once (raw
  Datums decoded together from their wire format, encoded images by a thread pool), bit-identical;
- :mod:`~nnbridge.caffe.data.imageset`: ``nnbridge data make-lmdb`` / ``show`` (convert_imageset-like).

Front ends: ``nnbridge.mxnet.CaffeDataIter`` and ``nnbridge.torch.CaffeDataset``.
"""

from nnbridge.caffe.data.db import DatumDB, write_lmdb
from nnbridge.caffe.data.reader import DATA_LAYERS, DataLayerReader, load_data_layer
from nnbridge.caffe.data.transform import Transformer

__all__ = ["DATA_LAYERS", "DataLayerReader", "DatumDB", "Transformer", "load_data_layer", "write_lmdb"]
