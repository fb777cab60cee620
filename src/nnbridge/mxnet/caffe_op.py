"""``CaffeOp``: one Caffe layer inside an MXNet symbol, as MXNet's old Caffe plugin offered, without Caffe.

``CaffeOp(data_0=..., num_data=1, num_out=1, num_weight=0, prototxt="layer{...}", name=...)`` returns an MXNet
symbol. By default the layer is TRANSLATED into native MXNet operators (trainable: gradients are MXNet's
own); ``engine="caffe"`` runs it in real pycaffe through a custom operator instead
(:mod:`nnbridge.mxnet.caffe_engine`), for layers nnbridge cannot translate.

Why the symbol is built here and not through the hub: MXNet composes symbols before any shape is known,
while the hub importer needs static input shapes and bakes weights in as constants. A translation keeps
every Caffe blob a trainable MXNet argument in Caffe's layout and lets MXNet infer the shapes.

Arguments are named as the plugin named them: ``{name}_data_{i}`` for inputs given as None, and the
parameter blobs ``{name}_0_weight``, ``{name}_1_bias``, ``{name}_2_bias``... (blob 0 is ``weight``, every
later blob ``bias``, exactly the plugin's ``ListArguments``), so ``mx.init`` treats blob 0 as a weight.
Layouts are Caffe's: InnerProduct (num_output, K) (= FullyConnected), Convolution (O, I/group, kh, kw), BatchNorm
(mean*s, var*s, s with s of shape (1,)), Scale (gamma (C,), beta (C,)).

Translations (exact; anything else is refused with the reason), one module per family in
:mod:`nnbridge.mxnet.caffe_op_layers`:

- ``core``: InnerProduct (any axis >= 1, ``transpose``) -> FullyConnected on the leading axes merged, then
  ``reshape_like``; Convolution -> Convolution.
- Pooling MAX/AVE with Caffe's CEIL rounding: ``pooling_convention="full"``, then the window Caffe drops
  when it would start inside the bottom/right padding is sliced off (``slice_like`` against a reference of
  ``ceil((H + pad) / stride)`` rows). AVE is a ``sum`` pooling divided by Caffe's divisor (the window clipped
  to ``[-pad, H + pad)``), computed by sum-pooling a ones map padded with ones; MXNet's ``avg`` is not used
  because its oneDNN kernel divides padded windows differently.
- BatchNorm: Caffe's global-statistics formula ``(x - m/s) / sqrt(v/s + eps)`` (TEST phase; ``use_global_stats:
  false`` is refused: batch statistics and Caffe's in-place moving averages have no native equivalent here).
  The blobs get no gradient (Caffe gives them none).
- Scale (one bottom, any axis >= 0 / num_axes), ReLU (negative_slope), TanH, Sigmoid, AbsVal, Dropout, Softmax (any
  axis), Flatten, Concat, Eltwise (SUM with coefficients, PROD, MAX).
- ``activations``: PReLU, ELU, BNLL, Power, Exp, Log, Threshold (no gradient), Clip, ReLU6, Swish, Bias (one
  bottom, any axis >= 0 / num_axes).
- ``shape``: Split and Slice (``num_out`` tops named ``{name}_output{i}`` as the plugin's), Reshape, Permute,
  Tile, Crop.
- ``vision``: Deconvolution (groups), LRN (ACROSS_CHANNELS, WITHIN_CHANNEL), ShuffleChannel, Axpy, Embed (the
  indices must be valid integers: MXNet's Embedding clips out-of-range ones where Caffe aborts), Interp (explicit
  height/width, crop by pad_beg/pad_end <= 0).
- ``norm``: MVN, Normalize (SSD), Reduction, ArgMax (no gradient), Upsample (nearest).

Not translated (``engine="caffe"`` runs them, where pycaffe has them): Scale/Bias with two bottoms (a symbol is
built before the bottoms' ranks are known), Interp with zoom/shrink factors or a second bottom, Silence (no top),
and the parameter forms each translator refuses.

Per-channel blobs of Scale/BatchNorm are tied to the input's channel count through an ``elemwise_add``
with zeros of shape (C,), so MXNet infers their shapes as the plugin did (``0 + g`` is exactly ``g``).
"""

from __future__ import annotations

import logging
from typing import Any

from nnbridge.caffe import single_layer
from nnbridge.errors import ConversionError
from nnbridge.mxnet.caffe_op_layers import BOTTOMS, CAFFE_OP_LAYERS, EXTRA_BLOBS, MULTI_TOP, OpContext

__all__ = ["CAFFE_OP_LAYERS", "CaffeOp", "OpContext"]

logger = logging.getLogger(__name__)


def mxnet_module() -> Any:
    from nnbridge.extras import require

    return require("mxnet", "nnbridge.mxnet.CaffeOp")


def auto_name(mx: Any, name: str | None, hint: str) -> str:
    """``name``, or MXNet's own automatic name (``caffeop0``...) as the plugin's symbols got."""
    if name:
        return name
    manager = getattr(mx.name.NameManager, "current", None)
    return str(manager.get(None, hint)) if manager is not None else hint


def gather_inputs(mx: Any, name: str, count: int, inputs: dict[str, Any], positional: tuple[Any, ...],
                  prefix: str = "data_") -> list[Any]:
    """Inputs ``data_0 .. data_{count-1}`` (positional first); a missing one becomes ``{name}_data_i``."""
    given = list(positional)
    out = []
    for i in range(count):
        sym = given[i] if i < len(given) else inputs.pop(f"{prefix}{i}", None)
        out.append(sym if sym is not None else mx.sym.Variable(f"{name}_{prefix}{i}"))
    return out


def weight_names(name: str, count: int) -> list[str]:
    """The plugin's argument names: ``{name}_0_weight``, then ``{name}_{i}_bias``."""
    return [f"{name}_{i}_{'weight' if i == 0 else 'bias'}" for i in range(count)]


def CaffeOp(*data: Any, num_data: int = 1, num_out: int = 1, num_weight: int = 0, prototxt: str = "layer{}",
            name: str | None = None, engine: str = "native", **inputs: Any) -> Any:  # noqa: N802 - MXNet's name
    """One Caffe layer as an MXNet symbol (see the module docstring). ``data_0=...`` etc. name the inputs;
    parameter symbols may be given as ``**{"0_weight": w}``; otherwise they are new variables."""
    mx = mxnet_module()
    layer = single_layer.parse_single_layer(prototxt, what=f"CaffeOp {name or ''} prototxt".replace("  ", " "))
    name = auto_name(mx, name, "caffeop")
    bottoms = gather_inputs(mx, name, num_data, inputs, data)
    roles = {f"{i}_{'weight' if i == 0 else 'bias'}": i for i in range(num_weight)}
    given_weights = {roles[k]: inputs.pop(k) for k in list(inputs) if k in roles}
    if inputs:
        raise ConversionError(f"CaffeOp {name!r}: unknown argument(s) {sorted(inputs)} (inputs are data_0.."
                              f"data_{num_data - 1}, parameters 0_weight, 1_bias...)")
    weights = [given_weights.get(i, mx.sym.Variable(n)) for i, n in enumerate(weight_names(name, num_weight))]
    if engine == "caffe":
        from nnbridge.mxnet.caffe_engine import caffe_custom_op

        return caffe_custom_op(mx, layer, name, bottoms, weights, num_out, loss=False)
    if engine != "native":
        raise ConversionError(f"CaffeOp {name!r}: engine must be 'native' or 'caffe', not {engine!r}")
    ctx = OpContext(mx, layer, name, bottoms, weights, num_out)
    check_counts(ctx, num_weight)
    outputs = CAFFE_OP_LAYERS.get(str(layer.type))(ctx)  # type: ignore[misc]
    return outputs[0] if len(outputs) == 1 else mx.sym.Group(outputs)


def check_counts(ctx: OpContext, num_weight: int) -> None:
    """The layer type is translated, and num_data/num_weight/num_out fit it; else one clear error."""
    kind = str(ctx.layer.type)
    if kind not in CAFFE_OP_LAYERS:
        raise ctx.fail("no native translation for this layer type",
                       hint='run it in real Caffe with engine="caffe"; translated: '
                            + ", ".join(CAFFE_OP_LAYERS.keys()))
    blobs = single_layer.blob_count(ctx.layer)
    if blobs is None and kind in EXTRA_BLOBS:
        blobs = EXTRA_BLOBS[kind](ctx.layer)
    if blobs is not None and blobs != num_weight:
        raise ctx.fail(f"num_weight={num_weight}, but this layer has {blobs} parameter blob(s)",
                       hint=f"pass num_weight={blobs}")
    low, high = BOTTOMS.get(kind, (1, 1))
    if len(ctx.data) < low or (high is not None and len(ctx.data) > high):
        want = f"{low}" if low == high else (f"at least {low}" if high is None else f"{low} to {high}")
        names = ", ".join(f"data_{i}" for i in range(low))
        raise ctx.fail(f"num_data={len(ctx.data)}, but this layer takes {want} bottom(s)",
                       hint=f"pass num_data={low} and {names}")
    if kind in MULTI_TOP:
        if ctx.num_out < 1:
            raise ctx.fail(f"num_out={ctx.num_out}; this layer needs at least 1 top", hint="pass num_out>=1")
    elif ctx.num_out != 1:
        raise ctx.fail(f"num_out={ctx.num_out}, but this layer has 1 top", hint="pass num_out=1")
