"""The hub: every framework converts into and out of an ``onnx_ir`` Model.

Standard ONNX ops are used wherever their semantics match exactly; behaviour ONNX lacks lives in the
custom domain :data:`CUSTOM_DOMAIN`, each op with a numpy reference implementation
(:mod:`nnbridge.hub.custom`) so that a hub model can always be executed and verified.
"""

from nnbridge.hub.builder import OPSET, GraphBuilder
from nnbridge.hub.custom import CUSTOM_DOMAIN, CUSTOM_DOMAIN_VERSION, CUSTOM_OPS, CustomOp, custom_op

__all__ = ["CUSTOM_DOMAIN", "CUSTOM_DOMAIN_VERSION", "CUSTOM_OPS", "OPSET", "CustomOp", "GraphBuilder", "custom_op"]
