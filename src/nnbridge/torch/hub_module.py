"""Hub -> PyTorch: a trainable ``nn.Module`` that interprets a hub (onnx_ir) graph with torch operators.

``load_caffe(prototxt, caffemodel=None, input_shapes=None)`` imports a whole Caffe net into the hub (the Caffe
importer, as ``nnbridge convert`` does; a weightless prototxt gets seeded realistic random weights) and wraps
it in a :class:`HubModule`. Every float initializer is an ``nn.Parameter`` (BatchNormalization's running
statistics are frozen: not trained, as in Caffe's TEST phase); names are the hub names (``conv1.weight`` ->
parameter ``conv1__weight``). ``forward(*inputs)`` returns the graph outputs (one tensor, or a tuple);
``forward_all`` returns every value by hub name (= Caffe blob names), which is what the tests compare.

Each op has one small function in ``TORCH_OPS`` (ONNX opset-17 semantics for what the Caffe importer emits);
all ops without one are listed together when the module is built.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx_ir as ir
import torch
from torch import nn

from nnbridge.errors import Unsupported, UnsupportedOpsError
from nnbridge.torch import hub_ops

TORCH_OPS = hub_ops.TORCH_OPS


def _key(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]", "_", name.replace(".", "__"))


class HubModule(nn.Module):
    """A hub model as a trainable PyTorch module (see the module docstring)."""

    def __init__(self, model: ir.Model) -> None:
        super().__init__()
        graph = model.graph
        missing = [Unsupported(n.op_type, n.name or n.op_type) for n in graph
                   if n.domain not in ("", "ai.onnx") or n.op_type not in TORCH_OPS]
        if missing:
            raise UnsupportedOpsError("hub -> PyTorch", missing, hint="see nnbridge.torch.hub_module.TORCH_OPS")
        self.model = model
        self.input_names = [str(v.name) for v in graph.inputs if v.const_value is None]
        self.output_names = [str(v.name) for v in graph.outputs]
        frozen = {str(v.name) for n in graph if n.op_type == "BatchNormalization"
                  for v in n.inputs[3:5] if v is not None}
        self.params = nn.ParameterDict()
        self._consts: dict[str, torch.Tensor] = {}
        self._param_of: dict[str, str] = {}
        for name, value in graph.initializers.items():
            array = np.asarray(value.const_value.numpy()) if value.const_value is not None else None
            if array is None:
                continue
            tensor = torch.from_numpy(np.array(array))
            if tensor.is_floating_point():
                key = _key(str(name))
                self.params[key] = nn.Parameter(tensor.float(), requires_grad=str(name) not in frozen)
                self._param_of[str(name)] = key
            else:
                self._consts[str(name)] = tensor

    def _value(self, env: Mapping[str, torch.Tensor], value: ir.Value | None) -> torch.Tensor | None:
        if value is None or not value.name:
            return None
        name = str(value.name)
        if name in env:
            return env[name]
        if name in self._param_of:
            return self.params[self._param_of[name]]
        if name in self._consts:
            return self._consts[name]
        raise KeyError(f"hub value {name!r} is not computed before it is read")

    def forward_all(self, *inputs: torch.Tensor, **named: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every hub value (inputs, intermediates, outputs) by name."""
        env: dict[str, torch.Tensor] = dict(zip(self.input_names, inputs, strict=False))
        env.update(named)
        absent = [n for n in self.input_names if n not in env]
        if absent:
            raise TypeError(f"HubModule: input(s) {absent} not given (inputs: {self.input_names})")
        for node in self.model.graph:
            args = [self._value(env, v) for v in node.inputs]
            outs = TORCH_OPS[node.op_type](node, args)
            for value, tensor in zip(node.outputs, outs, strict=True):
                env[str(value.name)] = tensor
        return env

    def forward(self, *inputs: torch.Tensor, **named: torch.Tensor) -> Any:
        env = self.forward_all(*inputs, **named)
        outs = tuple(env[n] for n in self.output_names)
        return outs[0] if len(outs) == 1 else outs

    def parameter(self, hub_name: str) -> nn.Parameter:
        """The parameter holding initializer ``hub_name`` (e.g. ``conv1.weight``)."""
        return self.params[self._param_of[hub_name]]


def load_caffe(prototxt: str | os.PathLike[str], caffemodel: str | os.PathLike[str] | None = None, *,
               input_shapes: Mapping[str, Sequence[int]] | None = None, phase: str = "TEST",
               random_seed: int = 0) -> HubModule:
    """A whole Caffe net as a trainable :class:`HubModule` (see the module docstring)."""
    from nnbridge.caffe.formats.net import load_caffe as load
    from nnbridge.caffe.importer import import_layers
    from nnbridge.caffe.weights import RandomWeights

    net = load(prototxt, caffemodel, phase=phase, input_shapes=input_shapes)
    weights = net.weights if net.weights is not None else RandomWeights(random_seed)
    model = import_layers(list(net.net.layer), net.inputs, weights, source=os.fspath(prototxt))
    return HubModule(model)
