"""Caffe -> hub -> MXNet checks against REAL Caffe and REAL MXNet 1.9.1.

``check_caffe_to_mxnet(prototxt)``: runs the net in real Caffe (realistic random weights, or the given
caffemodel), imports it with nnbridge, exports it with :func:`nnbridge.mxnet.exporter.export_mxnet`,
saves ``prefix-symbol.json`` + ``prefix-0000.params`` and, in the MXNet environment:

1. ``mx.model.load_checkpoint`` + ``Module`` (``for_training=False``) on the symbol's internals: every
   ``{name}_output`` is compared with the Caffe blob ``name`` (all blobs both sides have); oneDNN's
   subgraph fusion is switched off for this one (it cannot bind a group that outputs fused intermediates);
2. the same checkpoint's own outputs through a strict ``Module`` (``set_params`` without missing/extra);
3. ``gluon.SymbolBlock.imports`` of the same files; its outputs compared with Caffe's outputs.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from support.layer_check import assert_same, run_real_caffe
from support.mxnet_env import mxnet_python, run_mxnet

SCRIPT = r'''
prefix, names = args["prefix"], args["inputs"]
shapes = [(n, arrays[n].shape) for n in names]
batch = mx.io.DataBatch([mx.nd.array(arrays[n]) for n in names])
sym, arg_params, aux_params = mx.model.load_checkpoint(prefix, 0)

internals = sym.get_internals()
outs = [o for o in internals.list_outputs() if o.endswith("_output")]
group = mx.sym.Group([internals[o] for o in outs])
mod = mx.mod.Module(group, data_names=names, label_names=None, context=mx.cpu())
# oneDNN graph fusion (conv+bn...) cannot bind a group that also outputs the fused intermediates
os.environ["MXNET_SUBGRAPH_BACKEND"] = "NONE"
mod.bind(data_shapes=shapes, for_training=False)
os.environ.pop("MXNET_SUBGRAPH_BACKEND")
mod.set_params(arg_params, aux_params, allow_missing=False, allow_extra=True)
mod.forward(batch, is_train=False)
result["internals"] = {o[:-len("_output")]: v.asnumpy() for o, v in zip(outs, mod.get_outputs())}

plain = mx.mod.Module(sym, data_names=names, label_names=None, context=mx.cpu())
plain.bind(data_shapes=shapes, for_training=False)
plain.set_params(arg_params, aux_params, allow_missing=False, allow_extra=False)
plain.forward(batch, is_train=False)
result["outputs"] = [o.asnumpy() for o in plain.get_outputs()]

if args["gluon"]:
    block = mx.gluon.SymbolBlock.imports(prefix + "-symbol.json", names, prefix + "-0000.params", ctx=mx.cpu())
    got = block(*[mx.nd.array(arrays[n]) for n in names])
    got = got if isinstance(got, (list, tuple)) else [got]
    result["gluon"] = [o.asnumpy() for o in got]
'''


def check_caffe_to_mxnet(prototxt: Path, *, caffemodel: Path | None = None, seed: int = 0, rtol: float = 1e-4,
                         atol: float = 1e-6, gluon: bool = True,
                         weights: Mapping[str, Sequence[np.ndarray]] | None = None,
                         inputs: Mapping[str, np.ndarray] | None = None) -> dict[str, object]:
    """Real Caffe vs the exported MXNet checkpoint in real MXNet (see the module docstring)."""
    from nnbridge.caffe.formats.net import load_caffe
    from nnbridge.caffe.importer import import_layers
    from nnbridge.caffe.weights import DictWeights
    from nnbridge.mxnet.exporter import export_mxnet, save_mxnet

    mxnet_python()
    ref = run_real_caffe(prototxt, caffemodel=caffemodel, weights=weights, inputs=inputs, seed=seed)
    shapes = {name: tuple(array.shape) for name, array in ref.inputs.items()}
    loaded = load_caffe(prototxt, caffemodel, input_shapes=shapes)
    source = loaded.weights if caffemodel is not None and loaded.weights is not None else DictWeights(ref.weights)
    model = import_layers(list(loaded.net.layer), loaded.inputs, source, source=str(prototxt))
    export = export_mxnet(model)
    heads = [str(v.name) for v in model.graph.outputs]
    with tempfile.TemporaryDirectory() as tmp:
        prefix = Path(tmp) / "net"
        save_mxnet(export, prefix)
        got = run_mxnet(SCRIPT, arrays=ref.inputs, prefix=str(prefix), inputs=list(ref.inputs), gluon=gluon)
    what = f"{prototxt.name}: real Caffe vs MXNet"
    internals = got["internals"]
    assert isinstance(internals, dict)
    assert_same(ref.blobs, internals, ref.outputs, rtol=rtol, atol=atol, what=f"{what} internals")
    runs = [("Module", got["outputs"])] + ([("SymbolBlock", got["gluon"])] if gluon else [])
    for label, outputs in runs:
        assert isinstance(outputs, list) and len(outputs) == len(heads), f"{what} {label}: {len(outputs)} outputs"
        assert_same(ref.blobs, dict(zip(heads, outputs, strict=True)), [h for h in heads if h in ref.blobs],
                    rtol=rtol, atol=atol, what=f"{what} {label}")
    return {"export": export, "internals": internals, "caffe": ref}


def check_caffe_text(text: str, **kwargs: object) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "net.prototxt"
        path.write_text(text)
        return check_caffe_to_mxnet(path, **kwargs)  # type: ignore[arg-type]
