"""Per-op hub -> Caffe exporters, one module per family, registered with ``@caffe_exporter``."""
