"""Run an MXNet checkpoint with real MXNet (1.9.1) and return every internal output, under hub names.

Loading is MXNet's own: ``mx.sym.load`` (which upgrades symbol files of every version) and ``mx.nd.load``.
Parameter names may carry the ``arg:``/``aux:`` prefixes of ``save_checkpoint``/Gluon ``export`` or be bare
(Gluon ``save_parameters``); bare names are split by ``sym.list_auxiliary_states()``.

Run: one executor bound (``grad_req="null"``, ``is_train=False``) on ``sym.get_internals()`` restricted to the
operator outputs (``*_output*``), with ``MXNET_SUBGRAPH_BACKEND=NONE``: MXNet 1.9.1's default oneDNN subgraph
backend fuses e.g. Convolution+BatchNorm+Activation and then refuses to bind a group that also outputs the
fused intermediates (``arg_names.size() == in_args_map.size()``). Without fusion every output of the one
grouped executor equals the output of an executor bound on that output alone (checked by the tests); should
binding the group still fail, each internal output gets its own executor. The model's own outputs come from a
second executor on the unmodified symbol with MXNet's default settings: exactly what a user of the checkpoint
gets.

Names: MXNet's ``conv0_output`` is the hub value ``conv0``; ``split0_output1`` is ``split0:1``
(:func:`hub_name`, the same mapping as :func:`nnbridge.mxnet.importer.hub_name`, repeated here so that
this module needs nothing but numpy and mxnet in the MXNet environment). Data inputs are returned under
their names; parameters are not returned.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

ARG_PREFIX, AUX_PREFIX = "arg:", "aux:"
_OUTPUT = re.compile(r"(.*)_output(\d*)")


def hub_name(mxnet_output: str) -> str:
    """``conv0_output`` -> ``conv0``, ``split0_output1`` -> ``split0:1``; other names are unchanged."""
    match = _OUTPUT.fullmatch(mxnet_output)
    if match is None:
        return mxnet_output
    return match.group(1) if match.group(2) == "" else f"{match.group(1)}:{match.group(2)}"


def _import_mxnet() -> Any:
    os.environ.setdefault("MXNET_SUBGRAPH_VERBOSE", "0")
    import mxnet as mx

    return mx


def load_params(mx: Any, sym: Any, path: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(arg_params, aux_params)`` as NDArrays from a params file of any naming."""
    if path is None:
        return {}, {}
    loaded = mx.nd.load(path)
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: holds an unnamed list of {len(loaded)} arrays, not named parameters")
    aux_states = set(sym.list_auxiliary_states())
    arg: dict[str, Any] = {}
    aux: dict[str, Any] = {}
    for name, value in loaded.items():
        if name.startswith(ARG_PREFIX):
            arg[name[len(ARG_PREFIX):]] = value
        elif name.startswith(AUX_PREFIX):
            aux[name[len(AUX_PREFIX):]] = value
        else:
            (aux if name in aux_states else arg)[name] = value
    return arg, aux


def _bind(mx: Any, sym: Any, values: Mapping[str, Any], where: str) -> Any:
    args = sym.list_arguments()
    missing = [n for n in args + sym.list_auxiliary_states() if n not in values]
    if missing:
        raise ValueError(f"{where}: no value for {missing[:8]} (not in the params file nor the inputs)")
    return sym.bind(mx.cpu(), args={n: values[n] for n in args},
                    aux_states={n: values[n] for n in sym.list_auxiliary_states()}, grad_req="null")


def _forward(exe: Any) -> list[np.ndarray]:
    return [np.array(o.asnumpy(), dtype=np.float32, copy=True) for o in exe.forward(is_train=False)]


def _label_values(mx: Any, sym: Any, values: dict[str, Any], where: str) -> None:
    """Zero labels for loss heads' label variables (``softmax_label``...), which inference does not read."""
    known = {n: tuple(v.shape) for n, v in values.items()}
    try:
        arg_shapes, _, _ = sym.infer_shape_partial(**known)
    except Exception as exc:  # MXNet reports shape errors as MXNetError
        raise ValueError(f"{where}: shapes do not fit: {exc}") from exc
    for name, shape in zip(sym.list_arguments(), arg_shapes, strict=True):
        if name not in values and name.endswith("label") and shape and all(d > 0 for d in shape):
            values[name] = mx.nd.zeros(shape)


def run_net(symbol: str, params: str | None, inputs: Mapping[str, np.ndarray], *,
            intermediates: bool = True) -> tuple[dict[str, np.ndarray], list[str]]:
    """(every internal output and the inputs, by hub name; the hub names of the model's outputs)."""
    mx = _import_mxnet()
    for path in (symbol, params):
        if path is not None and not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such file")
    sym = mx.sym.load(symbol)
    arg, aux = load_params(mx, sym, params)
    values: dict[str, Any] = {**arg, **aux}
    params_names = set(values)
    values.update({name: mx.nd.array(np.asarray(array, dtype=np.float32)) for name, array in inputs.items()})
    _label_values(mx, sym, values, symbol)
    head_names = sym.list_outputs()
    outputs = [hub_name(n) for n in head_names]
    heads = _forward(_bind(mx, sym, values, symbol))
    blobs = {name: np.asarray(inputs[name], dtype=np.float32) for name in inputs}
    if intermediates:
        blobs.update(_internals(mx, sym, values, symbol))
    blobs.update(zip(outputs, heads, strict=True))
    unused = sorted(params_names - set(sym.list_arguments()) - set(sym.list_auxiliary_states()))
    if unused:
        logger.info("%s: %d parameters the symbol does not use: %s", params, len(unused), unused[:5])
    return blobs, outputs


def _internals(mx: Any, sym: Any, values: Mapping[str, Any], where: str) -> dict[str, np.ndarray]:
    internals = sym.get_internals()
    names = internals.list_outputs()
    picked = [i for i, n in enumerate(names) if _OUTPUT.fullmatch(n)]
    group = mx.sym.Group([internals[i] for i in picked])
    before = os.environ.get("MXNET_SUBGRAPH_BACKEND")
    os.environ["MXNET_SUBGRAPH_BACKEND"] = "NONE"
    try:
        try:
            arrays = _forward(_bind(mx, group, values, where))
            return {hub_name(names[i]): a for i, a in zip(picked, arrays, strict=True)}
        except mx.base.MXNetError as exc:
            logger.info("%s: binding all internals at once failed (%s); one executor per output", where, exc)
        return {hub_name(names[i]): _forward(_bind(mx, internals[i], values, where))[0] for i in picked}
    finally:
        if before is None:
            os.environ.pop("MXNET_SUBGRAPH_BACKEND", None)
        else:
            os.environ["MXNET_SUBGRAPH_BACKEND"] = before
