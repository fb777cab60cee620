"""Caffe -> hub layer importers, one module per family.

Every module here is imported by :func:`nnbridge.caffe.importer._load_ops`; a new layer is one function
with ``@caffe_layer("Type")`` in the right family file, plus a row in the per-layer test table.
"""
