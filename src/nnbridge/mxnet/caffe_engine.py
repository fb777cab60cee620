"""``engine="caffe"``: a CaffeOp/CaffeLoss layer run by REAL Caffe (pycaffe) inside MXNet, as the old plugin did.

A ``mx.operator.CustomOp`` (op type ``nnbridge_caffe_layer``) owns a one-layer ``caffe.Net`` per input shapes
and phase (TRAIN when MXNet trains, TEST otherwise), built from the prototxt with ``force_backward``:

- shapes: Caffe's own ``SetUp`` infers the parameter blob and top shapes (checked against ``num_weight`` /
  ``num_out``); a loss's output is (1,);
- forward: inputs and parameter blobs are copied into the net, ``net.forward()``, tops copied out; a blob
  Caffe changes in forward (BatchNorm's moving averages in TRAIN) is written back to its MXNet argument, as
  the plugin's shared memory did;
- backward: the top diffs are the head gradients (a loss: ``grad_scale``, as the plugin set it), parameter
  diffs are zeroed (Caffe accumulates them), ``net.backward()``; bottom diffs and parameter diffs are the
  gradients (labels get zeros, as Caffe refuses to back-propagate to them).

pycaffe must be importable in the MXNet interpreter (see the README); it is imported on first use only. The
prototxt is data: no Python layer code is ever imported from it (``Python`` layers are refused).
"""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Any

import numpy as np
from google.protobuf import text_format

from nnbridge.caffe import single_layer
from nnbridge.caffe.formats.prototxt import format_prototxt
from nnbridge.errors import ConversionError, MissingExtraError

logger = logging.getLogger(__name__)
OP_TYPE = "nnbridge_caffe_layer"
_registered: list[bool] = []


def _caffe() -> Any:
    os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        import caffe
    except ImportError as exc:
        raise MissingExtraError('engine="caffe" needs pycaffe importable in the MXNet interpreter (install '
                                "the reference Caffe into it: PYTHON=... reference-caffe/install.sh)") from exc
    caffe.set_mode_cpu()
    return caffe


def argument_names(num_data: int, num_weight: int, loss: bool) -> list[str]:
    if loss:
        return ["data", "label"] + [f"data_{i}" for i in range(2, num_data)]
    return [f"data_{i}" for i in range(num_data)] + \
        [f"{i}_{'weight' if i == 0 else 'bias'}" for i in range(num_weight)]


class _Layer:
    """One pycaffe net per (input shapes, phase)."""

    def __init__(self, prototxt: str, num_data: int, num_out: int) -> None:
        self.layer = single_layer.parse_single_layer(prototxt)
        self.num_data, self.num_out = num_data, num_out
        self.nets: dict[tuple[Any, ...], Any] = {}

    def net(self, shapes: list[tuple[int, ...]], train: bool) -> Any:
        key = (tuple(shapes), train)
        if key not in self.nets:
            caffe = _caffe()
            bottoms = {f"data_{i}": shape for i, shape in enumerate(shapes)}
            tops = [f"top_{i}" for i in range(self.num_out)]
            spec = single_layer.one_layer_net(self.layer, bottoms, tops)
            with tempfile.TemporaryDirectory(prefix="nnbridge-caffe-op-") as tmp:
                path = os.path.join(tmp, "layer.prototxt")
                with open(path, "w") as handle:
                    handle.write(format_prototxt(spec))
                self.nets[key] = caffe.Net(path, caffe.TRAIN if train else caffe.TEST)
        return self.nets[key]

    @property
    def name(self) -> str:
        return str(self.layer.name or "layer")


def _register(mx: Any) -> None:
    if _registered:
        return

    class CaffeLayerOp(mx.operator.CustomOp):  # type: ignore[misc,name-defined]
        def __init__(self, prop: Any, shapes: list[tuple[int, ...]]) -> None:
            super().__init__()
            self.prop, self.shapes = prop, shapes
            self.last: Any = None

        def forward(self, is_train: bool, req: Any, in_data: Any, out_data: Any, aux: Any) -> None:
            p = self.prop
            net = p.caffe.net(self.shapes[:p.num_data], bool(is_train))
            for i in range(p.num_data):
                net.blobs[f"data_{i}"].data[...] = in_data[i].asnumpy()
            params = net.params.get(p.caffe.name, [])
            for j, blob in enumerate(params):
                blob.data[...] = in_data[p.num_data + j].asnumpy()
            before = [blob.data.copy() for blob in params]
            net.forward()
            for j, blob in enumerate(params):  # Caffe updated a blob in place (BatchNorm's TRAIN-phase averages):
                if not np.array_equal(before[j], blob.data):  # so does MXNet's argument, as with the plugin
                    in_data[p.num_data + j][:] = blob.data
            for i in range(len(out_data)):
                top = net.blobs[f"top_{i}"].data
                self.assign(out_data[i], req[i], mx.nd.array(top.reshape(out_data[i].shape)))
            self.last = net

        def backward(self, req: Any, out_grad: Any, in_data: Any, out_data: Any, in_grad: Any, aux: Any) -> None:
            p, net = self.prop, self.last
            for i in range(p.num_out):
                top = net.blobs[f"top_{i}"]
                top.diff[...] = p.grad_scale if p.loss else out_grad[i].asnumpy().reshape(top.diff.shape)
            params = net.params.get(p.caffe.name, [])
            for blob in params:
                blob.diff[...] = 0
            for i in range(p.num_data):
                net.blobs[f"data_{i}"].diff[...] = 0
            net.backward()
            for i in range(p.num_data):
                self.assign(in_grad[i], req[i], mx.nd.array(net.blobs[f"data_{i}"].diff))
            for j, blob in enumerate(params):
                self.assign(in_grad[p.num_data + j], req[p.num_data + j], mx.nd.array(blob.diff))

    @mx.operator.register(OP_TYPE)
    class CaffeLayerProp(mx.operator.CustomOpProp):  # type: ignore[misc,name-defined]
        def __init__(self, prototxt: str, num_data: str, num_weight: str, num_out: str, loss: str,
                     grad_scale: str) -> None:
            self.loss = loss == "True"
            super().__init__(need_top_grad=not self.loss)
            self.num_data, self.num_weight, self.num_out = int(num_data), int(num_weight), int(num_out)
            self.grad_scale = float(grad_scale)
            self.caffe = _Layer(prototxt, self.num_data, self.num_out)

        def list_arguments(self) -> list[str]:
            return argument_names(self.num_data, self.num_weight, self.loss)

        def list_outputs(self) -> list[str]:
            return ["output"] if self.num_out == 1 else [f"output{i}" for i in range(self.num_out)]

        def infer_shape(self, in_shape: Any) -> Any:
            shapes = [tuple(int(d) for d in s) for s in in_shape[:self.num_data]]
            net = self.caffe.net(shapes, False)
            params = [tuple(b.data.shape) for b in net.params.get(self.caffe.name, [])]
            if len(params) != self.num_weight:
                raise ConversionError(f"CaffeOp ({self.caffe.layer.type}): num_weight={self.num_weight}, but "
                                      f"Caffe gives this layer {len(params)} parameter blob(s)")
            tops = [(1,) if self.loss else tuple(net.blobs[f"top_{i}"].data.shape) for i in range(self.num_out)]
            return shapes + params, tops, []

        def create_operator(self, ctx: Any, in_shapes: Any, in_dtypes: Any) -> Any:
            return CaffeLayerOp(self, [tuple(int(d) for d in s) for s in in_shapes])

    _registered.append(True)


def caffe_custom_op(mx: Any, layer: Any, name: str, bottoms: list[Any], weights: list[Any], num_out: int, *,
                    loss: bool, grad_scale: float = 1.0) -> Any:
    """The layer as an ``mx.sym.Custom`` running pycaffe (see the module docstring)."""
    if str(layer.type) == "Python":
        raise ConversionError(f"CaffeOp {name!r}: Python layers are never run (their code is not imported)")
    _register(mx)
    clean = type(layer)()
    clean.CopyFrom(layer)
    for field in ("bottom", "top"):
        clean.ClearField(field)
    text = "layer {" + text_format.MessageToString(clean, as_one_line=True) + "}"
    return mx.sym.Custom(*bottoms, *weights, op_type=OP_TYPE, name=name, prototxt=text, num_data=len(bottoms),
                         num_weight=len(weights), num_out=num_out, loss=loss, grad_scale=grad_scale)
