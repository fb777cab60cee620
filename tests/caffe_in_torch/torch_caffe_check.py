"""CaffeLayer / CaffeLoss in PyTorch vs REAL Caffe (same process): forward, bottom and parameter diffs blob by
blob, and a float64 directional finite-difference check of the autograd gradients."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from support.caffe_grad import caffe_layer_grads
from support.layer_check import assert_same


def _directional(fn, tensors: list, grads: list, eps: float = 1e-6) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(analytic, central-difference) derivative of ``fn()`` along a random direction over ``tensors``."""
    import torch

    gen = torch.Generator().manual_seed(1)
    directions = [torch.randn(t.shape, generator=gen, dtype=torch.float64) for t in tensors]
    analytic = sum(float((g * d).sum()) for g, d in zip(grads, directions, strict=True))
    base = [t.detach().clone() for t in tensors]
    values = []
    with torch.no_grad():
        for sign in (1.0, -1.0):
            for t, b, d in zip(tensors, base, directions, strict=True):
                t.copy_(b + sign * eps * d)
            values.append(float(fn()))
        for t, b in zip(tensors, base, strict=True):
            t.copy_(b)
    return analytic, (values[0] - values[1]) / (2 * eps)


def check_torch_layer(text: str, bottoms: Mapping[str, np.ndarray], *, loss: bool = False, rtol: float = 1e-4,
                      atol: float = 1e-6, fd_rtol: float = 1e-6, fd_scale: float = 1.0) -> dict[str, float]:
    import torch

    from nnbridge.torch import CaffeLayer, CaffeLoss

    ref = caffe_layer_grads(text, bottoms)
    blobs = [ref[f"blob{i}"] for i in range(len([k for k in ref if k.startswith("blob") and "." not in k]))]
    module = (CaffeLoss(text) if loss else CaffeLayer(text, weights=blobs)).eval()  # Caffe TEST phase
    got: dict[str, np.ndarray] = {}
    for dtype in (torch.float32, torch.float64):
        module = module.to(dtype)
        xs = [torch.tensor(v, dtype=dtype, requires_grad=True) for v in bottoms.values()]
        params = list(getattr(module, "blobs", []))
        for p in params:
            p.grad = None
        top = module(*xs)
        diff = torch.tensor(ref["top.diff"], dtype=dtype)
        objective = top if loss else (top * diff).sum()
        objective.backward()
        if dtype == torch.float32:
            got["top"] = (top / module.loss_weight if loss else top).detach().numpy().reshape(ref["top"].shape)
            for name, x in zip(bottoms, xs, strict=True):
                got[f"{name}.diff"] = x.grad.numpy() if x.grad is not None else np.zeros(x.shape, np.float32)
            for i, p in enumerate(params):
                got[f"blob{i}.diff"] = p.grad.numpy() if p.grad is not None else np.zeros(p.shape, np.float32)
            continue
        varied = [x for name, x in zip(bottoms, xs, strict=True) if np.any(ref[f"{name}.diff"] != 0)]
        varied += [p for p in params if p.requires_grad]
        grads = [t.grad for t in varied]
        def objective_now(module=module, xs=xs, diff=diff):  # type: ignore[no-untyped-def]
            return module(*xs) if loss else (module(*xs) * diff).sum()

        with torch.no_grad():
            analytic, numeric = _directional(objective_now, varied, grads)
    compared = {k: v for k, v in ref.items() if k == "top" or (k.endswith(".diff") and k != "top.diff")}
    assert_same(compared, got, sorted(compared), rtol=rtol, atol=atol, what="real Caffe vs PyTorch")
    numeric *= fd_scale
    assert abs(analytic - numeric) <= fd_rtol * max(abs(numeric), 1e-3), (analytic, numeric)
    errors = {k: _rel(compared[k], got[k]) for k in compared}
    errors["finite-difference"] = abs(analytic - numeric) / max(abs(numeric), 1e-12)
    return errors


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    scale = float(np.max(np.abs(a))) if a.size else 0.0
    diff = float(np.max(np.abs(a.astype(np.float64) - b), initial=0.0))
    return diff / scale if scale else diff


def check_torch_case(case, rtol: float = 1e-4, atol: float = 1e-6, fd_rtol: float = 1e-6) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """One support.caffe_layer_cases.LayerCase in CaffeLayer: several tops, no Caffe backward, hub reference for
    fork layers, finite differences (see that module for the options)."""
    import torch

    from nnbridge.torch import CaffeLayer
    from support.caffe_grad import hub_layer_forward, top_names

    names = top_names(case.tops)
    if case.hub:
        ref = hub_layer_forward(case.layer_text, case.bottoms, tops=case.tops)
    else:
        ref = caffe_layer_grads(case.layer_text, case.bottoms, tops=case.tops, backward=case.backward,
                                force_backward=case.force_backward)
    if not case.caffe_diffs:
        ref = {k: v for k, v in ref.items() if not k.endswith(".diff") or k[:-5] in names}
    blobs = [ref[f"blob{i}"] for i in range(case.num_weight)]
    module = CaffeLayer(case.layer_text, weights=blobs, num_out=case.tops).eval()
    got: dict[str, np.ndarray] = {}
    for dtype in (torch.float32, torch.float64):
        module = module.to(dtype)
        xs = [torch.tensor(v, dtype=dtype, requires_grad=True) for v in case.bottoms.values()]
        params = list(module.blobs)
        diffs = [torch.tensor(ref[f"{t}.diff"], dtype=dtype) for t in names]

        def objective(module=module, xs=xs, diffs=diffs):  # type: ignore[no-untyped-def]
            tops = module(*xs)
            tops = tops if isinstance(tops, tuple) else (tops,)
            return sum((t * d).sum() for t, d in zip(tops, diffs, strict=True))

        tops = module(*xs)
        tops = tops if isinstance(tops, tuple) else (tops,)
        total = sum((t * d).sum() for t, d in zip(tops, diffs, strict=True))
        if total.requires_grad:
            total.backward()
        if dtype == torch.float32:
            got.update({t: v.detach().numpy() for t, v in zip(names, tops, strict=True)})
            for name, x in zip(case.bottoms, xs, strict=True):
                got[f"{name}.diff"] = x.grad.numpy() if x.grad is not None else np.zeros(x.shape, np.float32)
            for i, p in enumerate(params):
                got[f"blob{i}.diff"] = p.grad.numpy() if p.grad is not None else np.zeros(p.shape, np.float32)
            for p in params:
                p.grad = None
            continue
        varied = [x for name, x in zip(case.bottoms, xs, strict=True) if case.fd_bottoms and (
            case.hub or not case.caffe_diffs or np.any(ref[f"{name}.diff"] != 0))]
        varied += [p for p in params if p.requires_grad]
        grads = [t.grad if t.grad is not None else torch.zeros_like(t) for t in varied]
        with torch.no_grad():
            analytic, numeric = _directional(objective, varied, grads)
    compared = {k: v for k, v in ref.items() if k in names or (k.endswith(".diff") and k[:-5] not in names)}
    got = {k: (v.reshape(()) if k in compared and compared[k].ndim == 0 and v.size == 1 else v)
           for k, v in got.items()}  # Caffe's 0-D blobs given as (1,) arrays (pycaffe's blob.data)
    assert_same(compared, got, sorted(compared), rtol=rtol, atol=atol, what="real Caffe vs PyTorch")
    assert abs(analytic - numeric) <= fd_rtol * max(abs(numeric), 1e-3), (analytic, numeric)
    errors = {k: _rel(compared[k], got[k]) for k in compared}
    errors["finite-difference"] = abs(analytic - numeric) / max(abs(numeric), 1e-12)
    return errors
