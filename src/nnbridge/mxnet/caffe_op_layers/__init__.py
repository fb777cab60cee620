"""Native translations of Caffe layers for ``nnbridge.mxnet.CaffeOp``, one module per family; importing the
package registers them all in ``CAFFE_OP_LAYERS``."""

from nnbridge.mxnet.caffe_op_layers import activations, core, norm, shape, vision  # noqa: F401 - registrations
from nnbridge.mxnet.caffe_op_layers.base import (
    BOTTOMS,
    CAFFE_OP_LAYERS,
    EXTRA_BLOBS,
    MULTI_TOP,
    OpContext,
    arity,
    translator,
)

__all__ = ["BOTTOMS", "CAFFE_OP_LAYERS", "EXTRA_BLOBS", "MULTI_TOP", "OpContext", "arity", "translator"]
