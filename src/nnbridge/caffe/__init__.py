"""Caffe: formats (prototxt, caffemodel, binaryproto), importer (Caffe -> hub), exporter (hub -> Caffe)."""
