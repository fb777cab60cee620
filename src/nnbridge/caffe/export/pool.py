"""Pooling: global pools here; MaxPool/AveragePool are lowered by
:class:`nnbridge.hub.passes.pool.PoolToCaffe` when exact, so reaching these exporters means a refusal
whose reason :func:`~nnbridge.hub.passes.pool.plan_pool` states.

GlobalAveragePool / GlobalMaxPool = Caffe ``Pooling(global_pooling=true)``: kernel = the whole plane,
AVE divides by ``H*W``.
"""

from __future__ import annotations

from nnbridge.caffe.export.context import ExportContext, Layer, caffe_exporter
from nnbridge.hub.passes.graph import shape_of
from nnbridge.hub.passes.pool import plan_pool, pool_fields, pool_source


@caffe_exporter("GlobalAveragePool", "GlobalMaxPool")
def global_pool(ctx: ExportContext) -> list[Layer]:
    if len(ctx.shape(0)) != 4:
        raise ctx.fail("only 4-D inputs are exported")
    method = "MAX" if ctx.node.op_type == "GlobalMaxPool" else "AVE"
    return [ctx.layer("Pooling", [ctx.x(0)], [ctx.y(0)], "pooling_param",
                      {"pool": method, "global_pooling": True})]


@caffe_exporter("MaxPool", "AveragePool")
def pool(ctx: ExportContext) -> list[Layer]:
    x, _, pre_pad = pool_source(ctx.node)
    in_shape = shape_of(x)
    if in_shape is None:
        raise ctx.fail("input has no static shape")
    plan = plan_pool(ctx.node, in_shape, ctx.out_shape(0), pre_pad)
    if isinstance(plan, str):
        raise ctx.fail(plan)
    if plan.factor is not None or plan.cut:  # the pass handles these; keep the exporter honest anyway
        raise ctx.fail("divisor correction or floor-mode slicing needed; run the pool-to-caffe pass")
    return [ctx.layer("Pooling", [ctx.x(0)], [ctx.y(0)], "pooling_param", pool_fields(plan))]
