"""Per-op hub -> MXNet exporters, one module per family (registered with ``@mxnet_exporter``)."""
