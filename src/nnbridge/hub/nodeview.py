"""Read access to one hub node, shared by the per-op exporters of every target framework."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx_ir as ir

from nnbridge.hub.passes.graph import attr, const_array, shape_of


@dataclass
class NodeView:
    """Attributes, constant inputs and static shapes of ``node``; ``fail`` builds the exporter's refusal."""

    node: ir.Node

    @property
    def name(self) -> str:
        return self.node.name or self.node.op_type

    def attr(self, name: str, default: Any = None) -> Any:
        return attr(self.node, name, default)

    def input(self, i: int) -> ir.Value | None:
        return self.node.inputs[i] if i < len(self.node.inputs) else None

    def const(self, i: int) -> np.ndarray | None:
        """Constant content of input ``i`` (None when absent or not constant)."""
        return const_array(self.input(i))

    def need_const(self, i: int, what: str) -> np.ndarray:
        value = self.const(i)
        if value is None:
            raise self.fail(f"{what} (input {i}) must be a constant")
        return value

    def shape(self, i: int = 0) -> tuple[int, ...]:
        value = self.input(i)
        shape = None if value is None else shape_of(value)
        if shape is None:
            raise self.fail(f"input {i} has no static shape")
        return shape

    def out_shape(self, i: int = 0) -> tuple[int, ...]:
        shape = shape_of(self.node.outputs[i])
        if shape is None:
            raise self.fail(f"output {i} has no static shape")
        return shape

    def fail(self, reason: str) -> Exception:
        raise NotImplementedError
