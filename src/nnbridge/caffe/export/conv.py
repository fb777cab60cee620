"""Conv -> Convolution, ConvTranspose -> Deconvolution (2-D), exact for any non-negative pads.

Per spatial axis: input ``H``, kernel ``k``, stride ``s``, dilation ``d``, ONNX pads ``(b, e)``,
``D(k) = d (k - 1) + 1``.

**Convolution.** Caffe: ``out = floor((H + 2p - D(k)) / s) + 1``, window ``o`` reads taps
``o s - p + j d`` (``j < k``), zeros outside ``[0, H)``. ONNX: ``Ho = floor((H + b + e - D(k)) / s) + 1``,
taps ``o s - b + j d``, zeros outside ``[0, H)`` (its windows never leave ``[-b, H + e)``).

- ``e <= b`` (symmetric, or TF 'VALID'-like): ``p = b`` gives ONNX's taps; Caffe's output is at least as
  large (its end padding ``b >= e``) and its first ``Ho`` windows are ONNX's.
- ``e > b`` (TF 'SAME' with an odd total, e.g. k3 s2 on even ``H`` gives ``(0, 1)``): with ``p = b``
  Caffe's output could be too small. Take ``m = ceil((e - b) / d)``, ``p = b + m d`` and a kernel widened
  by ``m`` leading zero taps (weights zero-padded at the front of that axis). Caffe's window ``o`` then
  reads taps ``o s - b - m d + j d``; the first ``m`` carry weight 0 and tap ``j >= m`` is ONNX's tap
  ``j - m``: the same products, summed with extra exact zeros ``0 * x``. Its output
  ``floor((H + 2b + m d - D(k)) / s) + 1 >= Ho`` because ``m d >= e - b``.

In both cases the windows ``o >= Ho`` that Caffe computes in addition are appended at the end of the axis;
``Slice(axis, slice_point=Ho)`` keeps the first ``Ho`` and one ``Silence`` layer swallows the rest (as
:mod:`nnbridge.hub.passes.pool` does for pooling). Grouped/depthwise weights ``(M, C/g, kh, kw)`` are
widened the same way. For k3 s2 on even ``H`` (MobileNetV2) ``m = 1`` gives exactly ``Ho`` outputs: no
Slice, one layer, 16/9 of the multiply-adds of that layer.

Alternative considered: materialise the asymmetric remainder with a depthwise ``Deconvolution`` (kernel
``t + r + 1``, a single 1 at tap ``t`` pads ``t`` before and ``r`` after; see
:mod:`nnbridge.hub.passes.pad`) and convolve with ``p = b``. That costs an extra layer and blob
(``C (H+1)(W+1)`` floats) but no extra multiply-adds in the convolution; for depthwise and stride-2
layers the widened kernel is cheaper and keeps the one-layer/one-blob correspondence, so it is used here;
the Deconvolution padder is used where no kernel can absorb the zeros (a zero ``Pad`` before MaxPool).

**Deconvolution.** Full transposed convolution ``F`` of length ``L = s (H - 1) + D(k)``; Caffe returns
``F[p : L - p]``; ONNX returns ``F[b : b + Ho]`` with ``Ho = L + output_padding - b - e``, where positions
``>= L`` hold only the bias. With ``p = min(b, e)`` Caffe's output contains ONNX's as the run
``[b - p, b - p + Ho)`` when ``b + Ho <= L - p``; Slice layers cut the rest (into Silence). Otherwise
(``output_padding > e - p``, e.g. PyTorch's ``ConvTranspose2d(3, stride=2, padding=1, output_padding=1)``)
the kernel gets ``m = ceil((b + Ho - L + p) / d)`` trailing zero taps: ``F`` then runs ``m d`` positions
longer, and those receive only exact zeros ``0 * x`` plus the bias, which is ONNX's value there.
``output_shape`` (or ``auto_pad`` SAME_*, output ``H s``) implies ``b + e = L + output_padding - Ho``,
split as the ONNX spec and onnxruntime do (SAME_UPPER: the odd one at the end; NOTSET/SAME_LOWER: at the
start); then the same construction.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from nnbridge.caffe.export.context import ExportContext, Layer, caffe_exporter


def _spatial(ctx: ExportContext, kernel: list[int]) -> tuple[list[int], list[int], list[int], list[int]]:
    """(strides, dilations, begin pads, end pads); auto_pad SAME_* resolved from the shapes (Conv only)."""
    n = len(kernel)
    if n != 2:
        raise ctx.fail(f"only 2-D kernels are exported, not {n}-D")
    strides = [int(s) for s in ctx.attr("strides", [1] * n)]
    dilations = [int(d) for d in ctx.attr("dilations", [1] * n)]
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER") and ctx.node.op_type == "Conv":
        begin, end = [], []
        for h, k, s, d in zip(ctx.shape(0)[2:], kernel, strides, dilations, strict=True):
            total = max((math.ceil(h / s) - 1) * s + d * (k - 1) + 1 - h, 0)
            small = total // 2
            begin.append(small if auto_pad == "SAME_UPPER" else total - small)
            end.append(total - begin[-1])
        return strides, dilations, begin, end
    if auto_pad not in ("NOTSET", "VALID"):
        raise ctx.fail(f"auto_pad={auto_pad} is not exported; give explicit pads")
    pads = [int(p) for p in ctx.attr("pads", [0] * 2 * n)] if auto_pad == "NOTSET" else [0] * 2 * n
    if min(pads) < 0:
        raise ctx.fail(f"negative pads {pads} (cropping) are not exported")
    return strides, dilations, pads[:n], pads[n:]


def _hw(prefix: str, values: list[int]) -> dict[str, int]:
    return {f"{prefix}_h": int(values[0]), f"{prefix}_w": int(values[1])}


def _conv_fields(num_output: int, kernel: list[int], strides: list[int], pads: list[int],
                 dilations: list[int], group: int, bias: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {"num_output": num_output, "bias_term": bias}
    fields.update(_hw("kernel", kernel))
    fields.update(_hw("stride", strides))
    fields.update(_hw("pad", pads))
    if any(d != 1 for d in dilations):
        if dilations[0] != dilations[1]:
            fields["dilation"] = [int(d) for d in dilations]
        else:
            fields["dilation"] = [int(dilations[0])]
    if group != 1:
        fields["group"] = group
    return fields


def _weight_and_bias(ctx: ExportContext) -> tuple[np.ndarray, np.ndarray | None]:
    """The constant weight (input 1) and optional constant bias (input 2) of a Conv/ConvTranspose."""
    weight = ctx.need_const(1, "the weight")
    bias = ctx.const(2) if ctx.input(2) is not None else None
    if ctx.input(2) is not None and bias is None:
        raise ctx.fail("the bias must be a constant")
    return weight, bias


def _crop(ctx: ExportContext, main: str, produced: list[int], keep: list[tuple[int, int]]) -> list[Layer]:
    """Slice layers keeping ``[start, start + length)`` of each spatial axis of blob ``main`` (Caffe size
    ``produced``) into ``ctx.y(0)``, and one Silence for the cut-off pieces. Empty when nothing is cut."""
    cuts = [(2 + i, start, length, size) for i, ((start, length), size) in enumerate(zip(keep, produced,
                                                                                        strict=True))
            if start > 0 or start + length < size]
    layers: list[Layer] = []
    leftovers: list[str] = []
    bottom = main
    for j, (axis, start, length, size) in enumerate(cuts):
        points = [p for p in (start, start + length) if 0 < p < size]
        top = ctx.y(0) if j == len(cuts) - 1 else ctx.tmp(f"crop{axis}")
        tops = ([ctx.tmp(f"head{axis}")] if start > 0 else []) + [top] + \
            ([ctx.tmp(f"tail{axis}")] if start + length < size else [])
        leftovers.extend(t for t in tops if t != top)
        layers.append(ctx.layer("Slice", [bottom], tops, "slice_param", {"axis": axis, "slice_point": points},
                                suffix=f"crop{axis}"))
        bottom = top
    if layers:
        layers.append(ctx.layer("Silence", leftovers, [], suffix="silence"))
    return layers


@caffe_exporter("Conv")
def conv(ctx: ExportContext) -> list[Layer]:
    weight, bias = _weight_and_bias(ctx)
    kernel = [int(k) for k in ctx.attr("kernel_shape", weight.shape[2:])]
    strides, dilations, begin, end = _spatial(ctx, kernel)
    shape, out = ctx.shape(0), ctx.out_shape(0)
    widen = [math.ceil((e - b) / d) if e > b else 0 for b, e, d in zip(begin, end, dilations, strict=True)]
    pads = [b + m * d for b, m, d in zip(begin, widen, dilations, strict=True)]
    wide = [k + m for k, m in zip(kernel, widen, strict=True)]
    caffe_out = [(h + 2 * p - (d * (k - 1) + 1)) // s + 1
                 for h, p, d, k, s in zip(shape[2:], pads, dilations, wide, strides, strict=True)]
    onnx_out = [int(o) for o in out[2:]]
    if any(c < o for c, o in zip(caffe_out, onnx_out, strict=True)) or min(onnx_out) < 1:
        raise ctx.fail(f"output {onnx_out} does not follow from pads {begin + end} (Caffe gives {caffe_out})")
    if any(widen):
        weight = np.pad(weight, ((0, 0), (0, 0), (widen[0], 0), (widen[1], 0)))
    group = int(ctx.attr("group", 1))
    fields = _conv_fields(int(weight.shape[0]), wide, strides, pads, dilations, group, bias is not None)
    blobs = [weight] + ([bias.reshape(-1)] if bias is not None else [])
    cut = caffe_out != onnx_out
    top = ctx.tmp("full") if cut else ctx.y(0)
    layers = [ctx.layer("Convolution", [ctx.x(0)], [top], "convolution_param", fields, blobs=blobs)]
    return layers + _crop(ctx, top, caffe_out, [(0, o) for o in onnx_out])


def _implied_transpose_pads(ctx: ExportContext, shape: tuple[int, ...], out: tuple[int, ...], kernel: list[int],
                            strides: list[int], dilations: list[int], extra: list[int]) -> tuple[list[int], list[int]]:
    """ConvTranspose pads implied by ``output_shape`` (or ``auto_pad`` SAME_*: output ``H s``), split as the
    ONNX spec and onnxruntime do: SAME_UPPER puts the odd one at the end, NOTSET/SAME_LOWER at the start."""
    begin, end = [], []
    for h, o, k, s, d, a in zip(shape[2:], out[2:], kernel, strides, dilations, extra, strict=True):
        total = s * (h - 1) + a + d * (k - 1) + 1 - int(o)
        if total < 0:
            raise ctx.fail(f"output_shape {list(out[2:])} is larger than the transposed convolution")
        b = total // 2 if ctx.attr("auto_pad", "NOTSET") == "SAME_UPPER" else total - total // 2
        begin.append(b)
        end.append(total - b)
    return begin, end


@caffe_exporter("ConvTranspose")
def conv_transpose(ctx: ExportContext) -> list[Layer]:
    weight, bias = _weight_and_bias(ctx)
    kernel = [int(k) for k in ctx.attr("kernel_shape", weight.shape[2:])]
    extra = [int(a) for a in ctx.attr("output_padding", [0, 0])]
    group = int(ctx.attr("group", 1))
    shape, out = ctx.shape(0), ctx.out_shape(0)
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    implied = ctx.attr("output_shape") is not None or auto_pad in ("SAME_UPPER", "SAME_LOWER")
    if implied and len(kernel) == 2:  # pads implied by the output shape
        strides = [int(s) for s in ctx.attr("strides", [1, 1])]
        dilations = [int(d) for d in ctx.attr("dilations", [1, 1])]
        begin, end = _implied_transpose_pads(ctx, shape, out, kernel, strides, dilations, extra)
    else:
        strides, dilations, begin, end = _spatial(ctx, kernel)
    pads = [min(b, e) for b, e in zip(begin, end, strict=True)]
    full = [s * (h - 1) + d * (k - 1) + 1
            for h, s, d, k in zip(shape[2:], strides, dilations, kernel, strict=True)]
    onnx_out = [n + a - b - e for n, a, b, e in zip(full, extra, begin, end, strict=True)]
    if onnx_out != [int(o) for o in out[2:]] or min(onnx_out) < 1:
        raise ctx.fail(f"output size {list(out[2:])} does not follow from pads {begin + end} and "
                       f"output_padding {extra} (expected {onnx_out})")
    # positions past the full transposed convolution (bias only): m trailing zero taps extend it
    widen = [max(math.ceil((b + o - (n - p)) / d), 0)
             for b, o, n, p, d in zip(begin, onnx_out, full, pads, dilations, strict=True)]
    if any(widen):
        weight = np.pad(weight, ((0, 0), (0, 0), (0, widen[0]), (0, widen[1])))
        kernel = [k + m for k, m in zip(kernel, widen, strict=True)]
        full = [n + m * d for n, m, d in zip(full, widen, dilations, strict=True)]
    caffe_out = [n - 2 * p for n, p in zip(full, pads, strict=True)]
    keep = [(b - p, o) for b, p, o in zip(begin, pads, onnx_out, strict=True)]
    fields = _conv_fields(int(weight.shape[1]) * group, kernel, strides, pads, dilations, group,
                          bias is not None)
    blobs = [weight] + ([np.asarray(bias).reshape(-1)] if bias is not None else [])
    cut = caffe_out != onnx_out
    top = ctx.tmp("full") if cut else ctx.y(0)
    layers = [ctx.layer("Deconvolution", [ctx.x(0)], [top], "convolution_param", fields, blobs=blobs)]
    return layers + _crop(ctx, top, caffe_out, keep)
