"""Gluon -> Caffe in one call, for a live ``mxnet.gluon.HybridBlock`` (needs MXNet; imported lazily).

``convert_model(net, input_shape=(1, 3, 224, 224), softmax=False, to_bgr=True, merge_bn=True, dialect="bvlc")``

1. ``net.hybridize()``, one forward pass on zeros of ``input_shape`` (builds the cached graph), then
   ``net.export(tmp_prefix)``: ``tmp_prefix-symbol.json`` + ``tmp_prefix-0000.params``, input variable ``data``;
2. those files are read with nnbridge's own readers (:func:`nnbridge.mxnet.formats.checkpoint.load_mxnet`) and
   imported with :func:`nnbridge.mxnet.importer.import_mxnet` (``{"data": input_shape}``);
3. opt-in rewrites of :mod:`nnbridge.hub.passes.fold_batchnorm`: ``merge_bn`` folds each BatchNorm that follows a
   convolution into it, with that BatchNorm's own ``eps`` (float64 maths, one rounding to float32: equal to the
   unfolded net up to float32 rounding); ``to_bgr`` reverses the input-channel axis of the convolutions reading
   the input (exact: Caffe fed BGR computes what MXNet computes on RGB); ``softmax`` appends ``Softmax(axis=1)``
   as output ``prob``;
4. :func:`nnbridge.caffe.exporter.export_caffe` in ``dialect`` (ReLU6 and everything else exported exactly, or
   refused).

Returns ``(text_net, binary_weights)`` in the spirit of GluonConverter's ``convert_model``:

- ``text_net``: the deploy ``NetParameter`` (no blobs); ``format_prototxt(text_net)`` / ``str(text_net)`` is the
  prototxt text;
- ``binary_weights``: :class:`CaffeWeights`, the pair (net, ``{layer name: [blobs]}``) — the arrays are not
  copied into protobuf messages (a VGG would double its memory); :meth:`CaffeWeights.to_proto` builds the
  GluonConverter-style ``NetParameter`` with blobs when wanted.

``save_model(text_net, binary_weights, prefix)`` writes ``prefix.prototxt`` and ``prefix.caffemodel`` together
(both appear or neither does); ``binary_weights`` may also be a ``NetParameter`` with blobs.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx_ir as ir

from nnbridge.errors import ConversionError

logger = logging.getLogger(__name__)


@dataclass
class CaffeWeights:
    """The binary half of a conversion: the deploy net and each layer's parameter blobs (float32, Caffe order)."""

    net: Any  # nnbridge.caffe.proto.caffe_pb2.NetParameter
    blobs: dict[str, list[np.ndarray]]
    notes: list[str] = field(default_factory=list)

    def to_proto(self) -> Any:
        """A ``NetParameter`` whose layers carry their blobs (what a ``.caffemodel`` holds)."""
        from nnbridge.caffe.proto import caffe_pb2

        out = caffe_pb2.NetParameter()
        out.CopyFrom(self.net)
        for layer in out.layer:
            for array in self.blobs.get(layer.name, []):
                blob = layer.blobs.add()
                blob.shape.dim.extend(int(d) for d in array.shape)
                blob.data.extend(np.asarray(array, np.float32).reshape(-1).tolist())
        return out


def _export_block(net: Any, input_shape: Sequence[int], prefix: Path) -> None:
    """Hybridize, run once and ``export`` a HybridBlock (lazily imports mxnet)."""
    from nnbridge.extras import require

    mx = require("mxnet", "converting live Gluon blocks")
    if not isinstance(net, mx.gluon.HybridBlock):
        raise ConversionError(f"convert_model needs a mxnet.gluon.HybridBlock, got {type(net).__name__} "
                              "(a plain Block has no symbolic graph to export)")
    net.hybridize()
    net(mx.nd.zeros(tuple(int(d) for d in input_shape)))
    net.export(str(prefix), epoch=0)


def convert_hub(model: ir.Model, *, softmax: bool = False, to_bgr: bool = True, merge_bn: bool = True,
                dialect: str = "bvlc") -> tuple[Any, CaffeWeights]:
    """Steps 3-4 of :func:`convert_model` on an imported hub model (changed in place)."""
    from nnbridge.caffe.exporter import export_caffe
    from nnbridge.hub.passes import PassManager
    from nnbridge.hub.passes.fold_batchnorm import AppendSoftmax, FoldBatchNorm, ReverseInputChannels

    if merge_bn:
        PassManager([FoldBatchNorm()]).run(model)
    if to_bgr:
        ReverseInputChannels().run(model)
    if softmax:
        AppendSoftmax().run(model)
    exported = export_caffe(model, dialect=dialect)
    for note in exported.notes:
        logger.info("%s", note)
    return exported.net, CaffeWeights(exported.net, exported.blobs, list(exported.notes))


def convert_model(net: Any, input_shape: Sequence[int] = (1, 3, 224, 224), softmax: bool = False,
                  to_bgr: bool = True, merge_bn: bool = True, dialect: str = "bvlc") -> tuple[Any, CaffeWeights]:
    """Convert a live Gluon ``HybridBlock`` to Caffe (see the module docstring)."""
    from nnbridge.mxnet.formats.checkpoint import load_mxnet
    from nnbridge.mxnet.importer import import_mxnet

    with tempfile.TemporaryDirectory(prefix="nnbridge-gluon-") as tmp:
        prefix = Path(tmp) / "net"
        _export_block(net, input_shape, prefix)
        symbol, params = f"{prefix}-symbol.json", f"{prefix}-0000.params"
        loaded = load_mxnet(symbol, params)
        arrays = {k: np.array(v) for k, v in loaded.params.items()}  # copies: the files go away with tmp
        model = import_mxnet(loaded.graph, arrays, {"data": tuple(int(d) for d in input_shape)},
                             source=f"gluon:{type(net).__name__}", name=type(net).__name__)
        del loaded
    return convert_hub(model, softmax=softmax, to_bgr=to_bgr, merge_bn=merge_bn, dialect=dialect)


def save_model(text_net: Any, binary_weights: CaffeWeights | Any, prefix: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``prefix.prototxt`` and ``prefix.caffemodel`` atomically; returns both paths."""
    from nnbridge.caffe.formats.net import save_caffe

    prefix = os.fspath(prefix)
    prototxt, caffemodel = Path(prefix + ".prototxt"), Path(prefix + ".caffemodel")
    if isinstance(binary_weights, CaffeWeights):
        blobs = binary_weights.blobs
    else:  # a NetParameter with blobs (GluonConverter style)
        blobs = {layer.name: [np.asarray(b.data, np.float32).reshape(tuple(b.shape.dim)) for b in layer.blobs]
                 for layer in binary_weights.layer if len(layer.blobs)}
    save_caffe(text_net, blobs, prototxt, caffemodel)
    logger.info("wrote %s and %s", prototxt, caffemodel)
    return prototxt, caffemodel


__all__ = ["CaffeWeights", "convert_hub", "convert_model", "save_model"]
