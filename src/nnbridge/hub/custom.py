"""Ops ONNX lacks, in one named custom domain, each with shape inference and a numpy reference.

A custom op is declared once::

    @custom_op("PriorBox", infer=priorbox_shapes, doc="SSD prior boxes ...")
    def priorbox(attrs, inputs):
        return [boxes]

``attrs`` is a plain dict (attribute name -> Python value); ``inputs`` are numpy arrays. ``infer`` gets
``attrs``, the input shapes and dtypes and returns ``[(shape, dtype), ...]`` for the outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnbridge.registry import Registry

CUSTOM_DOMAIN = "ai.nnbridge"
CUSTOM_DOMAIN_VERSION = 1

Shape = tuple[int, ...]
InferFn = Callable[[Mapping[str, Any], Sequence[Shape], Sequence[np.dtype]], list[tuple[Shape, np.dtype]]]
ReferenceFn = Callable[[Mapping[str, Any], Sequence[np.ndarray]], list[np.ndarray]]


@dataclass(frozen=True)
class CustomOp:
    op_type: str
    infer: InferFn
    reference: ReferenceFn
    doc: str


CUSTOM_OPS: Registry[Callable[..., Any]] = Registry("custom ops of domain " + CUSTOM_DOMAIN)
_DEFS: dict[str, CustomOp] = {}


def custom_op(op_type: str, *, infer: InferFn, doc: str) -> Callable[[ReferenceFn], ReferenceFn]:
    """Declare a custom op of :data:`CUSTOM_DOMAIN` with its reference implementation."""

    def decorator(func: ReferenceFn) -> ReferenceFn:
        CUSTOM_OPS.register(op_type, notes=doc)(func)
        _DEFS[op_type] = CustomOp(op_type, infer, func, doc)
        return func

    return decorator


def get_custom_op(op_type: str) -> CustomOp | None:
    _load_definitions()
    return _DEFS.get(op_type)


def _load_definitions() -> None:
    # The definitions live next to the framework that needs them; importing registers them.
    import nnbridge.hub.custom_ops  # noqa: F401
