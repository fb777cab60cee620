"""More Caffe layers for ``nnbridge.torch.CaffeLayer``, one module per family; importing the package registers
them in ``nnbridge.torch.layers.TORCH_LAYERS`` (``layers.py`` imports it at its end)."""

from nnbridge.torch.caffe_layers import elementwise, structure  # noqa: F401 - registrations
