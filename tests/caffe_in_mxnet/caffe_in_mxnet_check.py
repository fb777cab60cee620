"""CaffeOp / CaffeLoss in MXNet vs REAL Caffe, forward and backward, plus a float64 finite-difference check.

``run_cases({id: Case(...)})`` then ``check_case(case, results[id])`` per test (one MXNet process for all cases):
1. real Caffe (pycaffe, this process): forward, top diff, backward (support.caffe_grad);
2. MXNet (its own environment, support.mxnet_env.run_mxnet): the same layer as ``CaffeOp``/``CaffeLoss`` with the
   same inputs, blobs and top diff: ``forward(is_train=True)``, ``backward``; every blob and diff compared by name
   with nnbridge.verify.compare;
3. in float64 (native engine): the directional derivative of ``sum(top * top_diff)`` along a random direction
   over every input Caffe back-propagates to, by central differences vs MXNet's gradients.
Returns the comparison rows (name, max rel error) for reporting.

Case options for the layers of support/caffe_layer_cases.py: ``tops`` (several tops, compared by name and
``{name}_output{i}`` naming), ``backward=False`` (Caffe has no backward: MXNet must give zeros), ``hub`` (fork
layer pycaffe lacks: forward vs nnbridge's hub model in onnxruntime, backward by finite differences only),
``caffe_diffs=False`` (pycaffe's backward broken: forward only, FD), ``fd_bottoms=False`` (Caffe's bottom diff
is not the exact gradient: FD over the blobs only), ``force_backward=False`` (Embed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from support.caffe_grad import caffe_layer_grads, hub_layer_forward, top_names
from support.layer_check import assert_same
from support.mxnet_env import run_mxnet

SCRIPT = r"""
from nnbridge.mxnet import CaffeOp, CaffeLoss


def build(spec):
    inputs = [mx.sym.Variable(n) for n in spec["bottoms"]]
    if spec["loss"]:
        more = {"data_%d" % i: s for i, s in enumerate(inputs) if i >= 2}
        return CaffeLoss(data=inputs[0], label=inputs[1], num_data=len(inputs), prototxt=spec["prototxt"],
                         name="L", engine=spec["engine"], **more)
    return CaffeOp(*inputs, num_data=len(inputs), num_weight=spec["num_weight"], prototxt=spec["prototxt"],
                   name="L", engine=spec["engine"], num_out=len(spec["tops"]))


def run(sym, spec, weights, dtype, feed):
    names = spec["bottoms"]
    ex = sym.simple_bind(mx.cpu(), grad_req="write", type_dict={n: dtype for n in sym.list_arguments()},
                         **{n: feed[n].shape for n in names})
    for n in names:
        ex.arg_dict[n][:] = feed[n]
    for i, n in enumerate(weights):
        ex.arg_dict[n][:] = feed["blob%d" % i]
    ex.forward(is_train=True)
    out = [o.asnumpy() for o in ex.outputs]
    if spec["loss"]:
        ex.backward()
    else:
        ex.backward([mx.nd.array(feed[t + ".diff"].reshape(o.shape), dtype=dtype) for t, o in zip(spec["tops"], out)])
    return out, {n: ex.grad_dict[n].asnumpy() for n in names + weights}, ex


def check(case, spec):
    feed = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith(case + "/")}
    names, out = spec["bottoms"], {}
    sym = build(spec)
    weights = sorted((n for n in sym.list_arguments() if n not in names), key=lambda n: int(n.split("_")[1]))
    tops, grads, _ = run(sym, spec, weights, "float32", feed)
    out.update(zip(spec["tops"], tops))
    out["output_names"] = sym.list_outputs()
    for n in names:
        out[n + ".diff"] = grads[n]
    for i, n in enumerate(weights):
        out["blob%d.diff" % i] = grads[n]
    out["weight_names"] = weights
    out["argument_order"] = [n for n in sym.list_arguments() if n not in names]
    if spec["engine"] != "native":
        return out
    feed = {k: v.astype(np.float64) for k, v in feed.items()}
    _, g64, ex = run(sym, spec, weights, "float64", feed)
    rng = np.random.RandomState(1)
    vary = [n for n in names if n in spec["vary"]] + [w for i, w in enumerate(weights) if "blob%d" % i in spec["vary"]]
    direction = {n: rng.standard_normal(ex.arg_dict[n].shape) for n in vary}
    analytic = sum(float((g64[n] * direction[n]).sum()) for n in vary)

    def f(sign):
        for n in vary:
            base = feed[n] if n in names else feed["blob%d" % weights.index(n)]
            ex.arg_dict[n][:] = base + sign * spec["eps"] * direction[n]
        ex.forward(is_train=True)
        if spec["loss"]:
            return float(ex.outputs[0].asnumpy().sum())
        return sum(float((o.asnumpy().ravel() * feed[t + ".diff"].ravel()).sum())
                   for o, t in zip(ex.outputs, spec["tops"]))

    out["fd"] = [analytic, (f(1) - f(-1)) / (2 * spec["eps"])]
    return out


for case, spec in args["cases"].items():
    try:
        result[case] = check(case, spec)
    except Exception as exc:  # reported per case by the test
        result[case] = {"error": "%s: %s" % (type(exc).__name__, exc)}
"""


@dataclass
class Case:
    layer_text: str
    bottoms: dict[str, np.ndarray]
    num_weight: int = 0
    loss: bool = False
    engine: str = "native"
    rtol: float = 1e-4
    atol: float = 1e-6
    fd_rtol: float = 1e-6
    fd_scale: float = 1.0  # gradient / derivative of the output: a loss's grad_scale (loss_weight)
    frozen_blobs: bool = False  # Caffe gives the blobs no gradient (BatchNorm): not varied in the FD check
    tops: int = 1  # several tops (Slice/Split): top0 .. top{n-1}, CaffeOp(num_out=n)
    backward: bool = True  # False: Caffe refuses the backward (Threshold, ArgMax); MXNet must give zeros
    hub: bool = False  # a fork layer pycaffe lacks: forward vs nnbridge's hub model in onnxruntime, backward by FD
    force_backward: bool = True  # False: Caffe decides which bottoms get a diff (Embed's indices: none)
    fd_bottoms: bool = True  # False: the FD check varies only the blobs (Caffe's bottom diff is not the gradient)
    caffe_diffs: bool = True  # False: pycaffe's backward of this fork layer is broken (Upsample): forward only, FD
    reference: dict[str, np.ndarray] = field(default_factory=dict)


def run_cases(cases: Mapping[str, Case]) -> dict[str, Any]:
    """Real Caffe for every case (here), then every case in ONE MXNet process; returns MXNet's results."""
    arrays: dict[str, np.ndarray] = {}
    specs: dict[str, Any] = {}
    for key, case in cases.items():
        if case.hub:
            ref = hub_layer_forward(case.layer_text, case.bottoms, tops=case.tops)
        else:
            ref = caffe_layer_grads(case.layer_text, case.bottoms, tops=case.tops, backward=case.backward,
                                    force_backward=case.force_backward)
        names = top_names(case.tops)
        if case.loss:
            ref["top"] = ref["top"].reshape(1)
        feed = {**{k: v for k, v in ref.items() if k.startswith("blob") and not k.endswith(".diff")},
                **case.bottoms, **{f"{t}.diff": ref[f"{t}.diff"] for t in names}}
        arrays.update({f"{key}/{k}": v for k, v in feed.items()})
        if not case.caffe_diffs:
            ref = {k: v for k, v in ref.items() if not k.endswith(".diff") or k[:-5] in top_names(case.tops)}
        case.reference = ref
        vary = [n for n in case.bottoms if case.fd_bottoms and (case.hub or not case.caffe_diffs
                                                                 or np.any(ref[f"{n}.diff"] != 0))]
        if not case.frozen_blobs:
            vary += [k for k in ref if k.startswith("blob") and not k.endswith(".diff")]
        specs[key] = {"bottoms": list(case.bottoms), "loss": case.loss, "prototxt": case.layer_text,
                      "num_weight": case.num_weight, "engine": case.engine, "vary": vary, "eps": 1e-6,
                      "tops": names}
    return run_mxnet(SCRIPT, arrays, timeout=600, cases=specs)


def check_case(case: Case, got: Mapping[str, Any]) -> dict[str, float]:
    """Compare one case (real Caffe vs MXNet, and the finite differences); returns per-blob max rel errors."""
    assert "error" not in got, got.get("error")
    ref = case.reference
    names = top_names(case.tops)
    compared = {k: v for k, v in ref.items() if k in names or (k.endswith(".diff") and k[:-5] not in names)}
    if case.tops > 1:  # the plugin's output names
        assert got["output_names"] == [f"L_output{i}" for i in range(case.tops)], got["output_names"]
    assert len(got["weight_names"]) == case.num_weight, got["weight_names"]
    if not case.loss:  # the plugin's names and order: {name}_0_weight, {name}_1_bias, {name}_2_bias...
        assert got["argument_order"] == [f"L_{i}_{'weight' if i == 0 else 'bias'}" for i in range(case.num_weight)]
    got = {k: (np.reshape(v, ()) if k in compared and compared[k].ndim == 0 and np.size(v) == 1 else v)
           for k, v in got.items()}  # Caffe's scalar blobs (PReLU channel_shared) are (1,) in MXNet
    assert_same(compared, got, sorted(compared), rtol=case.rtol, atol=case.atol,
                what=f"real Caffe vs MXNet ({case.engine})")
    errors = {k: _rel(compared[k], got[k]) for k in compared}
    if case.engine == "native":
        analytic, numeric = got["fd"]
        numeric *= case.fd_scale
        assert abs(analytic - numeric) <= case.fd_rtol * max(abs(numeric), 1e-3), (analytic, numeric)
        errors["finite-difference"] = abs(analytic - numeric) / max(abs(numeric), 1e-12)
    return errors


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    scale = float(np.max(np.abs(a))) if a.size else 0.0
    return float(np.max(np.abs(a.astype(np.float64) - b))) / scale if scale else float(np.max(np.abs(b), initial=0))
