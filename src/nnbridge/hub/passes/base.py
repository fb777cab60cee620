"""Pass infrastructure: small in-place passes and a manager that runs them to a fixed point.

A pass is a class with a ``name`` and ``run(model) -> bool`` (True when it changed the model); its
docstring states the maths of the rewrite. :class:`PassManager` runs its passes in order, repeating the
whole sequence until a round changes nothing, and wraps any failure in a
:class:`~nnbridge.errors.ConversionError` that names the pass (like onnx-ir's ``PassManager``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import onnx_ir as ir

from nnbridge.errors import ConversionError, NNBridgeError

logger = logging.getLogger(__name__)


class Pass:
    """Base class: override :meth:`run`."""

    name: str = "pass"

    def run(self, model: ir.Model) -> bool:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<pass {self.name}>"


class NodePass(Pass):
    """A pass visiting every node of the main graph once per run; :meth:`visit` returns True when it
    rewrote the node (the node may then be gone)."""

    def run(self, model: ir.Model) -> bool:
        changed = False
        for node in list(model.graph):
            if node.graph is None:  # removed by an earlier rewrite of this run
                continue
            if self.visit(model.graph, node):
                changed = True
        return changed

    def visit(self, graph: ir.Graph, node: ir.Node) -> bool:
        raise NotImplementedError


@dataclass
class PassManager:
    """Run ``passes`` in order, repeatedly, until a whole round changes nothing."""

    passes: Sequence[Pass]
    max_rounds: int = 20
    fired: dict[str, int] = field(default_factory=dict)  # pass name -> rounds in which it changed the model

    def run(self, model: ir.Model) -> bool:
        any_change = False
        for round_ in range(self.max_rounds):
            changed = False
            for p in self.passes:
                try:
                    did = p.run(model)
                except NNBridgeError:
                    raise
                except Exception as exc:  # a bug in a pass: name it
                    raise ConversionError(f"pass {p.name!r} failed: {type(exc).__name__}: {exc}") from exc
                if did:
                    logger.debug("round %d: pass %s changed the model", round_, p.name)
                    self.fired[p.name] = self.fired.get(p.name, 0) + 1
                    changed = True
            any_change |= changed
            if not changed:
                return any_change
        raise ConversionError(f"passes {[p.name for p in self.passes]} did not settle after "
                              f"{self.max_rounds} rounds")
