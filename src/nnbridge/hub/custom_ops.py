"""Imports every module that declares custom ops, so that the registry is complete."""

from nnbridge.hub.ops import mxnet_ssd, ssd  # noqa: F401
