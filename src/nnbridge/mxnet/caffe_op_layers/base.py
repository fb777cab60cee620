"""What every native ``CaffeOp`` translator shares: :class:`OpContext`, the ``CAFFE_OP_LAYERS`` registry and the
bottom/top counts each layer type accepts (checked by ``nnbridge.mxnet.caffe_op.check_counts``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nnbridge.errors import ConversionError
from nnbridge.registry import Registry

#: bottoms a layer type takes: (minimum, maximum or None = any); types not listed take exactly one
BOTTOMS: dict[str, tuple[int, int | None]] = {}
#: parameter blobs of the types nnbridge.caffe.single_layer.blob_count does not know
EXTRA_BLOBS: dict[str, Callable[[Any], int]] = {
    "Bias": lambda layer: 1, "Embed": lambda layer: 2 if layer.embed_param.bias_term else 1}
#: layer types with several tops (num_out >= 1 chosen by the caller); the others have exactly one
MULTI_TOP: set[str] = set()


@dataclass
class OpContext:
    """One CaffeOp being translated: the parsed layer, its MXNet inputs and parameter variables."""

    mx: Any  # the mxnet module
    layer: Any  # caffe_pb2.LayerParameter
    name: str
    data: list[Any]
    weights: list[Any]
    num_out: int

    def fail(self, message: str, hint: str | None = None) -> ConversionError:
        text = f"CaffeOp {self.name!r} ({self.layer.type}): {message}"
        return ConversionError(text + (f" ({hint})" if hint else ""))

    def per_channel(self, blob: Any, x: Any, *, scalar: bool = False) -> Any:
        """``blob`` with MXNet's shape inference tied to x's channel count, or to (1,) (value unchanged)."""
        sym = self.mx.sym
        first = sym.slice_axis(x, axis=0, begin=0, end=1)
        ref = sym.sum(first) if scalar else sym.sum(first, axis=1, exclude=True)
        return sym.elemwise_add(blob, sym.BlockGrad(sym.zeros_like(ref)))

    def spread(self, vector: Any, view: Any) -> Any:
        """A (C,) vector broadcast to ``view``'s (N, C, R) shape (elementwise ops after it see a known shape,
        which ``reshape_like`` needs: its shape inference fails hard on unknown shapes)."""
        return self.mx.sym.broadcast_like(self.mx.sym.reshape(vector, shape=(1, -1, 1)), view)

    def axes_view(self, x: Any, axis: int, num_axes: int) -> tuple[Any, Any]:
        """x viewed as (O, d_axis .. d_(axis+num_axes-1), R) (num_axes -1: every axis from ``axis`` on, R = 1), and a
        symbol of shape x.shape[axis : axis + num_axes] (for tying a blob's shape; its value is unused)."""
        sym = self.mx.sym
        view = sym.expand_dims(x, axis=0)  # (1, d0, ...): the leading axes merged into one even for axis 0
        for _ in range(axis):
            view = sym.reshape(view, shape=(-3, -2))
        if num_axes == -1:
            view = sym.expand_dims(view, axis=-1)
        else:
            view = sym.reshape(view, shape=(*[0] * (num_axes + 1), -1))
        return view, sym.sum(view, axis=(0, -1))

    def axes_blob(self, blob: Any, x: Any, axis: int, num_axes: int) -> tuple[Any, Any]:
        """(view of x, ``blob`` tied to x.shape[axis : axis + num_axes] and shaped to broadcast against it)."""
        sym = self.mx.sym
        view, ref = self.axes_view(x, axis, num_axes)
        tied = sym.elemwise_add(blob, sym.BlockGrad(sym.zeros_like(ref)))
        return view, sym.expand_dims(sym.expand_dims(tied, axis=0), axis=-1)

    def channel_view(self, x: Any) -> Any:
        """x as (N, C, rest) so that (1, C, 1) blobs broadcast for any rank."""
        return self.mx.sym.reshape(x, shape=(0, 0, -1))


Translator = Callable[[OpContext], list[Any]]
CAFFE_OP_LAYERS: Registry[Translator] = Registry("Caffe layer -> native MXNet (CaffeOp)")


def translator(*types: str, notes: str = "") -> Callable[[Translator], Translator]:
    return CAFFE_OP_LAYERS.register(*types, notes=notes)



def arity(*types: str, bottoms: tuple[int, int | None] = (1, 1), multi_top: bool = False) -> None:
    """Declare how many bottoms (and whether several tops) ``types`` take."""
    for kind in types:
        BOTTOMS[kind] = bottoms
        if multi_top:
            MULTI_TOP.add(kind)
