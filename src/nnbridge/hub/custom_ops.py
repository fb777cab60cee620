"""Imports every module that declares custom ops, so that the registry is complete."""

from nnbridge.hub.ops import ssd  # noqa: F401
from nnbridge.hub.ops import mxnet_ssd  # noqa: F401,E402
