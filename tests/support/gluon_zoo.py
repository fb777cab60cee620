"""MXNet-side snippets shared by the Gluon tests: build a GluonCV model with realistic random weights, export it and
return every internal output of the exported symbol (computed by real MXNet 1.9.1).

Weights (set explicitly through ``net.collect_params()`` after one deferred-shape forward pass): conv/dense weights
He-normal ``N(0, 2 / fan_in)``, biases ``N(0, 0.1)``, BatchNorm gamma ``U(0.5, 1.5)``, beta ``N(0, 0.1)``, running
mean ``N(0, 0.2)``, running var ``U(0.5, 1.5)``, anything else ``N(0, 0.1)``.
"""

from __future__ import annotations

BUILD = r'''
from gluoncv import model_zoo

def build_net(name, kwargs, shape, seed):
    net = model_zoo.get_model(name, pretrained=False, **kwargs)
    net.initialize()
    net(mx.nd.zeros(tuple(shape)))  # resolve deferred shapes
    rng = np.random.default_rng(seed)
    for pname, param in sorted(net.collect_params().items()):
        shp = param.shape
        if pname.endswith("running_var"):
            value = rng.uniform(0.5, 1.5, shp)
        elif pname.endswith("running_mean"):
            value = rng.normal(0.0, 0.2, shp)
        elif pname.endswith("gamma"):
            value = rng.uniform(0.5, 1.5, shp)
        elif pname.endswith("weight") and len(shp) >= 2:
            value = rng.normal(0.0, np.sqrt(2.0 / np.prod(shp[1:])), shp)
        else:  # biases, BN beta
            value = rng.normal(0.0, 0.1, shp)
        param.set_data(mx.nd.array(value.astype(np.float32)))
    net.hybridize()
    return net

def symbol_internals(prefix, data):
    """Every internal ``*_output`` of the exported symbol, keyed by hub name, plus the heads."""
    sym, arg_params, aux_params = mx.model.load_checkpoint(prefix, 0)
    internals = sym.get_internals()
    outs = [o for o in internals.list_outputs() if o.endswith("_output")]
    mod = mx.mod.Module(mx.sym.Group([internals[o] for o in outs]), data_names=["data"], label_names=None)
    os.environ["MXNET_SUBGRAPH_BACKEND"] = "NONE"  # oneDNN fusion cannot bind a group with fused intermediates
    mod.bind(data_shapes=[("data", data.shape)], for_training=False)
    os.environ.pop("MXNET_SUBGRAPH_BACKEND")
    mod.set_params(arg_params, aux_params, allow_missing=False, allow_extra=True)
    mod.forward(mx.io.DataBatch([mx.nd.array(data)]), is_train=False)
    values = {o[:-len("_output")]: v.asnumpy() for o, v in zip(outs, mod.get_outputs())}
    heads = [o[:-len("_output")] for o in sym.list_outputs()]
    return values, heads
'''

#: Build, run the live block, export to ``args["prefix"]``, return the symbol's internals and the block's outputs.
EXPORT = BUILD + r'''
data = arrays["data"]
net = build_net(args["model"], args["kwargs"], data.shape, args["seed"])
live = net(mx.nd.array(data))
net.export(args["prefix"], epoch=0)
values, heads = symbol_internals(args["prefix"], data)
result["internals"] = values
result["heads"] = heads
result["live"] = live
'''
