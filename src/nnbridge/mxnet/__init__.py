"""MXNet: formats (symbol JSON, NDArray .params/.nd files, checkpoints), importer, exporter; no mxnet needed."""
