"""Runtimes that execute a model and return ``{blob/value name: array}`` for outputs and intermediates.

- :mod:`.caffe_pycaffe`: real BVLC Caffe;
- :mod:`.caffe_opencv`: OpenCV's DNN Caffe importer (when pycaffe is not available);
- :mod:`.onnxruntime_rt`: onnxruntime, with custom-domain nodes run by their numpy references.
- :mod:`.mxnet_rt`: MXNet 1.9.1, usually in another interpreter (``NNBRIDGE_MXNET_PYTHON``).

They are meant to run in worker processes (:mod:`nnbridge.verify.worker`, :mod:`.process`).
"""
