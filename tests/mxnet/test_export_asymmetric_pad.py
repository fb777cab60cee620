"""The TensorFlow-style padding / Flatten models of ``support.asym_cases`` exported to MXNet and run in REAL
MXNet 1.9.1 against onnxruntime, every blob both sides have compared by name (MXNet ``{name}_output`` =
hub value ``name``). The Flatten / UpSampling2D / Transpose-pair models first go through
:func:`nnbridge.hub.passes.nhwc.nchw_cleanup` (what the TensorFlow importer runs): the symbol must have no
transpose/tile/reshape left.

All models run in ONE MXNet process (module fixture) to keep the test quick.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import onnx_ir as ir
import pytest

from nnbridge.hub.passes.nhwc import nchw_cleanup
from nnbridge.mxnet.exporter import export_mxnet, save_mxnet
from nnbridge.verify.compare import compare
from support.asym_cases import CASES, CONV_CASES, FLATTEN_CASES, NHWC_CASES, input_of
from support.layer_check import run_hub
from support.mxnet_env import mxnet_python, run_mxnet

SCRIPT = r'''
result["runs"] = {}
os.environ["MXNET_SUBGRAPH_BACKEND"] = "NONE"  # bind a group that outputs every intermediate
for case in args["cases"]:
    prefix = os.path.join(args["root"], case)
    sym, arg_params, aux_params = mx.model.load_checkpoint(prefix, 0)
    internals = sym.get_internals()
    outs = [o for o in internals.list_outputs() if o.endswith("_output")]
    mod = mx.mod.Module(mx.sym.Group([internals[o] for o in outs]), data_names=["x"], label_names=None,
                        context=mx.cpu())
    mod.bind(data_shapes=[("x", arrays[case].shape)], for_training=False)
    mod.set_params(arg_params, aux_params, allow_missing=False, allow_extra=True)
    mod.forward(mx.io.DataBatch([mx.nd.array(arrays[case])]), is_train=False)
    blobs = {o[:-len("_output")]: v.asnumpy() for o, v in zip(outs, mod.get_outputs())}
    ops = [n["op"] for n in json.loads(sym.tojson())["nodes"]]
    result["runs"][case] = {"blobs": blobs, "ops": ops}
'''


@pytest.fixture(scope="module")
def mxnet_runs() -> dict[str, Any]:
    mxnet_python()
    references: dict[str, dict[str, Any]] = {}
    feeds = {}
    with tempfile.TemporaryDirectory() as tmp:
        for case, build in CASES.items():
            proto = build()
            feeds[case] = input_of(proto)["x"]
            references[case] = run_hub(ir.serde.deserialize_model(proto), {"x": feeds[case]})
            model = ir.serde.deserialize_model(proto)
            if case in NHWC_CASES:
                manager = nchw_cleanup()
                manager.run(model)
                assert manager.fired, case
            save_mxnet(export_mxnet(model), Path(tmp) / case)
        got = run_mxnet(SCRIPT, arrays=feeds, root=tmp, cases=list(CASES))
    return {"references": references, "runs": got["runs"]}


@pytest.mark.parametrize("case", list(CASES))
def test_case_in_real_mxnet(case: str, mxnet_runs: dict[str, Any]) -> None:
    reference = mxnet_runs["references"][case]
    run = mxnet_runs["runs"][case]
    result = compare(reference, run["blobs"], outputs=["y"], rtol=1e-5, atol=1e-6)
    assert result.passed, f"{case}: onnxruntime vs real MXNet\n{result.table()}"
    compared = {row.name for row in result.rows if row.max_abs is not None}
    assert "y" in compared
    if case in CONV_CASES:
        assert "c" in compared
    if case in NHWC_CASES:
        assert not {"transpose", "tile", "Reshape", "expand_dims"} & set(run["ops"]), run["ops"]
    if case in FLATTEN_CASES:
        assert {"c", "y"} <= compared and not {"t", "f"} & set(run["blobs"])
