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

Translations (exact; anything else is refused with the reason):

- InnerProduct (axis 1, not transposed) -> FullyConnected(flatten=True); Convolution -> Convolution.
- Pooling MAX/AVE with Caffe's CEIL rounding: ``pooling_convention="full"``, then the window Caffe drops
  when it would start inside the bottom/right padding is sliced off (``slice_like`` against a reference of
  ``ceil((H + pad) / stride)`` rows). AVE is a ``sum`` pooling divided by Caffe's divisor (the window clipped
  to ``[-pad, H + pad)``), computed by sum-pooling a ones map padded with ones; MXNet's ``avg`` is not used
  because its oneDNN kernel divides padded windows differently.
- BatchNorm: Caffe's global-statistics formula ``(x - m/s) / sqrt(v/s + eps)`` (TEST phase; ``use_global_stats:
  false`` is refused: batch statistics and Caffe's in-place moving averages have no native equivalent here).
  The blobs get no gradient (Caffe gives them none).
- Scale (axis 1, one axis, one bottom), ReLU (negative_slope), TanH, Sigmoid, AbsVal, Dropout, Softmax,
  Flatten, Concat, Eltwise (SUM with coefficients, PROD, MAX).

Per-channel blobs of Scale/BatchNorm are tied to the input's channel count through an ``elemwise_add``
with zeros of shape (C,), so MXNet infers their shapes as the plugin did (``0 + g`` is exactly ``g``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nnbridge.caffe import single_layer
from nnbridge.caffe.proto import caffe_pb2
from nnbridge.errors import ConversionError
from nnbridge.registry import Registry

logger = logging.getLogger(__name__)


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

    def channel_view(self, x: Any) -> Any:
        """x as (N, C, rest) so that (1, C, 1) blobs broadcast for any rank."""
        return self.mx.sym.reshape(x, shape=(0, 0, -1))


Translator = Callable[[OpContext], list[Any]]
CAFFE_OP_LAYERS: Registry[Translator] = Registry("Caffe layer -> native MXNet (CaffeOp)")


def translator(*types: str, notes: str = "") -> Callable[[Translator], Translator]:
    return CAFFE_OP_LAYERS.register(*types, notes=notes)


@translator("InnerProduct")
def _inner_product(ctx: OpContext) -> list[Any]:
    p = ctx.layer.inner_product_param
    if p.axis != 1 or p.transpose:
        raise ctx.fail("only axis: 1 without transpose is translated", hint='use engine="caffe"')
    bias = ctx.weights[1] if p.bias_term else None
    return [ctx.mx.sym.FullyConnected(ctx.data[0], weight=ctx.weights[0], bias=bias, num_hidden=p.num_output,
                                      no_bias=not p.bias_term, flatten=True, name=ctx.name)]


@translator("Convolution")
def _convolution(ctx: OpContext) -> list[Any]:
    p = ctx.layer.convolution_param
    g = single_layer.conv_geometry(ctx.layer)
    if p.axis != 1:
        raise ctx.fail("only axis: 1 is translated", hint='use engine="caffe"')
    bias = ctx.weights[1] if p.bias_term else None
    return [ctx.mx.sym.Convolution(ctx.data[0], weight=ctx.weights[0], bias=bias, num_filter=p.num_output,
                                   kernel=g.kernel, stride=g.stride, pad=g.pad, dilate=g.dilation,
                                   num_group=p.group, no_bias=not p.bias_term, name=ctx.name)]


def _caffe_clip(ctx: OpContext, pooled: Any, x: Any, g: single_layer.Geometry) -> Any:
    """Drop the last window on axes where Caffe would (it starts at or beyond H: inside the end padding)."""
    sym = ctx.mx.sym
    axes = [i for i in range(2) if g.pad[i] > 0 and g.pad[i] >= g.kernel[i] - g.stride[i]]
    if not axes:
        return pooled  # there ceil((H + p) / s) >= MXNet's ceil((H + 2p - k) / s) + 1: nothing to drop
    widths = (0, 0, 0, 0, 0, g.pad[0], 0, g.pad[1])
    padded = sym.Pad(sym.BlockGrad(x), mode="constant", pad_width=widths, constant_value=0.0)
    ref = sym.Pooling(padded, kernel=(1, 1), stride=g.stride, pool_type="max", pooling_convention="valid")
    return sym.slice_like(pooled, ref, axes=tuple(2 + i for i in axes))


@translator("Pooling")
def _pooling(ctx: OpContext) -> list[Any]:
    sym, p, x = ctx.mx.sym, ctx.layer.pooling_param, ctx.data[0]
    kinds = {caffe_pb2.PoolingParameter.MAX: "max", caffe_pb2.PoolingParameter.AVE: "avg"}
    if p.pool not in kinds:
        raise ctx.fail("STOCHASTIC pooling is random; it has no exact translation", hint='use engine="caffe"')
    method = kinds[p.pool]
    if p.global_pooling:
        if method == "max":
            return [sym.Pooling(x, global_pool=True, kernel=(1, 1), pool_type="max", name=ctx.name)]
        return [sym.mean(x, axis=(2, 3), keepdims=True, name=ctx.name)]
    g = single_layer.pool_geometry(ctx.layer)
    ceil = single_layer.pool_ceil(ctx.layer)
    conv = "full" if ceil else "valid"
    common = {"kernel": g.kernel, "stride": g.stride, "pooling_convention": conv}
    if method == "max":
        pooled = sym.Pooling(x, pad=g.pad, pool_type="max", **common)
    else:
        total = sym.Pooling(x, pad=g.pad, pool_type="sum", **common)
        widths = (0, 0, 0, 0, g.pad[0], g.pad[0], g.pad[1], g.pad[1])
        ones = sym.Pad(sym.ones_like(sym.BlockGrad(x)), mode="constant", pad_width=widths, constant_value=1.0)
        divisor = sym.BlockGrad(sym.Pooling(ones, pad=(0, 0), pool_type="sum", **common))
        pooled = total / divisor
    if ceil:
        pooled = _caffe_clip(ctx, pooled, x, g)
    return [sym.identity(pooled, name=ctx.name)]


@translator("ReLU")
def _relu(ctx: OpContext) -> list[Any]:
    slope = float(ctx.layer.relu_param.negative_slope)
    if slope == 0.0:
        return [ctx.mx.sym.Activation(ctx.data[0], act_type="relu", name=ctx.name)]
    # Caffe's own formula; MXNet's LeakyReLU loses precision in float64 (its slope is a float32 parameter)
    x = ctx.data[0]
    return [ctx.mx.sym.identity(ctx.mx.sym.relu(x) + slope * ctx.mx.sym.minimum(x, 0.0), name=ctx.name)]


@translator("TanH", "Sigmoid")
def _activation(ctx: OpContext) -> list[Any]:
    act = {"TanH": "tanh", "Sigmoid": "sigmoid"}[str(ctx.layer.type)]
    return [ctx.mx.sym.Activation(ctx.data[0], act_type=act, name=ctx.name)]


@translator("AbsVal")
def _absval(ctx: OpContext) -> list[Any]:
    return [ctx.mx.sym.abs(ctx.data[0], name=ctx.name)]


@translator("Dropout")
def _dropout(ctx: OpContext) -> list[Any]:
    # Caffe scales kept units by 1/(1-p) at training time and is the identity at test time, like MXNet.
    return [ctx.mx.sym.Dropout(ctx.data[0], p=float(ctx.layer.dropout_param.dropout_ratio), name=ctx.name)]


@translator("Softmax")
def _softmax(ctx: OpContext) -> list[Any]:
    return [ctx.mx.sym.softmax(ctx.data[0], axis=int(ctx.layer.softmax_param.axis), name=ctx.name)]


@translator("Flatten")
def _flatten(ctx: OpContext) -> list[Any]:
    p = ctx.layer.flatten_param
    if p.axis != 1 or p.end_axis != -1:
        raise ctx.fail("only axis: 1, end_axis: -1 is translated", hint='use engine="caffe"')
    return [ctx.mx.sym.flatten(ctx.data[0], name=ctx.name)]


@translator("Concat")
def _concat(ctx: OpContext) -> list[Any]:
    p = ctx.layer.concat_param
    axis = int(p.concat_dim) if p.HasField("concat_dim") else int(p.axis)
    return [ctx.mx.sym.concat(*ctx.data, dim=axis, name=ctx.name)]


@translator("Eltwise")
def _eltwise(ctx: OpContext) -> list[Any]:
    sym, p = ctx.mx.sym, ctx.layer.eltwise_param
    op = caffe_pb2.EltwiseParameter.EltwiseOp.Name(p.operation)
    if len(p.coeff) and (op != "SUM" or len(p.coeff) != len(ctx.data)):
        raise ctx.fail("coeff is only allowed for SUM, one per bottom")
    out = ctx.data[0] * float(p.coeff[0]) if len(p.coeff) else ctx.data[0]
    for i, x in enumerate(ctx.data[1:], start=1):
        if op == "SUM":
            out = out + (x * float(p.coeff[i]) if len(p.coeff) else x)
        elif op == "PROD":
            out = out * x
        else:
            out = sym.maximum(out, x)
    return [sym.identity(out, name=ctx.name)]


@translator("BatchNorm")
def _batch_norm(ctx: OpContext) -> list[Any]:
    sym, p, x = ctx.mx.sym, ctx.layer.batch_norm_param, ctx.data[0]
    if p.HasField("use_global_stats") and not p.use_global_stats:
        raise ctx.fail("use_global_stats: false (batch statistics with Caffe's in-place moving averages) "
                       "has no exact native translation", hint='use engine="caffe", or mx.sym.BatchNorm')
    if not p.HasField("use_global_stats"):
        logger.warning("CaffeOp %r: BatchNorm without use_global_stats uses its stored statistics (Caffe's TEST "
                       "phase) also when MXNet trains; Caffe's TRAIN phase would use batch statistics "
                       '(engine="caffe" runs that)', ctx.name)
    var = ctx.per_channel(sym.BlockGrad(ctx.weights[1]), x)
    # tied to var's shape so that MXNet lists the arguments in blob order (0, 1, 2) as the plugin did
    mean = sym.elemwise_add(sym.BlockGrad(ctx.weights[0]), sym.BlockGrad(sym.zeros_like(var)))
    factor = ctx.per_channel(sym.BlockGrad(ctx.weights[2]), x, scalar=True)
    inverse = sym.where(factor == 0, sym.zeros_like(factor), 1.0 / factor)
    std = sym.sqrt(sym.broadcast_mul(var, inverse) + float(p.eps))
    view = ctx.channel_view(x)
    centred = sym.elemwise_sub(view, ctx.spread(sym.broadcast_mul(mean, inverse), view))
    return [sym.reshape_like(sym.elemwise_div(centred, ctx.spread(std, view)), x, name=ctx.name)]


@translator("Scale")
def _scale(ctx: OpContext) -> list[Any]:
    sym, p, x = ctx.mx.sym, ctx.layer.scale_param, ctx.data[0]
    if len(ctx.data) != 1 or p.axis != 1 or p.num_axes != 1:
        raise ctx.fail("only one bottom with axis: 1, num_axes: 1 is translated", hint='use engine="caffe"')
    view = ctx.channel_view(x)
    out = sym.elemwise_mul(view, ctx.spread(ctx.per_channel(ctx.weights[0], x), view))
    if p.bias_term:
        out = sym.elemwise_add(out, ctx.spread(ctx.per_channel(ctx.weights[1], x), view))
    return [sym.reshape_like(out, x, name=ctx.name)]


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
    if blobs is not None and blobs != num_weight:
        raise ctx.fail(f"num_weight={num_weight}, but this layer has {blobs} parameter blob(s)",
                       hint=f"pass num_weight={blobs}")
    multi = kind in ("Concat", "Eltwise")
    if (len(ctx.data) < 2) if multi else (len(ctx.data) != 1):
        want = "at least 2" if multi else "1"
        raise ctx.fail(f"num_data={len(ctx.data)}, but this layer takes {want} bottom(s)",
                       hint=f"pass num_data={2 if multi else 1} and data_0{', data_1' if multi else ''}")
    if ctx.num_out != 1:
        raise ctx.fail(f"num_out={ctx.num_out}, but this layer has 1 top", hint="pass num_out=1")
