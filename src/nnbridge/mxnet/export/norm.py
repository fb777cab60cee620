"""BatchNormalization -> BatchNorm; LRN -> LRN.

BatchNorm (MXNet 1.x ``batch_norm.cc``), inference with ``use_global_stats=True`` and
``fix_gamma=False``: ``y = gamma (x - moving_mean) / sqrt(moving_var + eps) + beta`` over ``axis=1``,
exactly ONNX ``BatchNormalization`` (scale, B, mean, var, epsilon). ``eps`` is used as given: the CPU and
oneDNN kernels do not clamp it (only cuDNN requires ``eps >= CUDNN_BN_MIN_EPSILON = 1e-5``; MXNet 1.9.1
then falls back to its own kernel), checked against real MXNet with ``eps = 1e-10`` in the tests.
``moving_mean`` / ``moving_var`` are auxiliary states (``aux:`` params); ``fix_gamma=False`` is
written explicitly because MXNet's default ``True`` would replace gamma by 1.

LRN (``lrn-inl.h``): ``y = x (knorm + alpha/nsize * sum_{|c' - c| <= nsize/2} x_{c'}^2)^(-beta)`` across
channels; ONNX LRN with odd ``size`` is the same formula (``bias`` = ``knorm``).
"""

from __future__ import annotations

from nnbridge.mxnet.export.context import ExportContext, mxnet_exporter


@mxnet_exporter("BatchNormalization")
def batch_norm(ctx: ExportContext) -> None:
    if int(ctx.attr("training_mode", 0)):
        raise ctx.fail("training_mode=1 (batch statistics) is not exported")
    if len(ctx.shape(0)) < 2:
        raise ctx.fail("input has no channel axis")
    arrays = [ctx.need_const(i, what) for i, what in
              ((1, "scale"), (2, "B"), (3, "the running mean"), (4, "the running variance"))]
    gamma, beta, mean, var = (a.reshape(-1) for a in arrays)
    inputs = [ctx.x(0), ctx.param("gamma", gamma), ctx.param("beta", beta),
              ctx.param("moving_mean", mean, aux=True), ctx.param("moving_var", var, aux=True)]
    ctx.emit("BatchNorm", inputs, {"eps": float(ctx.attr("epsilon", 1e-5)), "momentum": 0.9,
                                   "fix_gamma": False, "use_global_stats": True})


@mxnet_exporter("LRN")
def lrn(ctx: ExportContext) -> None:
    size = int(ctx.attr("size"))
    if size % 2 == 0:
        raise ctx.fail(f"even size {size}: ONNX centres the window differently from MXNet")
    ctx.emit("LRN", [ctx.x(0)], {"alpha": float(ctx.attr("alpha", 1e-4)), "beta": float(ctx.attr("beta", 0.75)),
                                 "knorm": float(ctx.attr("bias", 1.0)), "nsize": size})
