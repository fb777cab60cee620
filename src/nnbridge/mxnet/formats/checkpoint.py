"""MXNet checkpoints (``prefix-symbol.json`` + ``prefix-EPOCH.params``) and ``.nd`` mean files.

- ``mx.model.save_checkpoint(prefix, epoch, sym, arg, aux)`` writes ``'%s-symbol.json' % prefix`` and
  ``'%s-%04d.params' % (prefix, epoch)`` whose names carry ``arg:``/``aux:`` prefixes; Gluon ``export`` writes the
  same pair. ``load_checkpoint`` strips the prefixes into ``arg_params``/``aux_params``.
- Gluon ``save_parameters`` files have bare names: :func:`split_params` then tells auxiliary states (the inputs an
  op mutates, e.g. BatchNorm's ``moving_mean``/``moving_var``) from arguments through the graph.
- Mean files: an NDArray file with one array. MXNet's caffe_converter (``convert_mean.py``) wrote
  ``{"mean_image": (C, H, W) float32}`` (channels swapped to RGB); ImageRecordIter's ``mean_img`` files use the key
  ``"mean_img"``. The reader takes the single array whatever its name.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from nnbridge.errors import FormatError
from nnbridge.fileio import AtomicGroup
from nnbridge.mxnet.formats.params import (
    ARG_PREFIX,
    AUX_PREFIX,
    NDArrayFile,
    join_prefixed,
    load_ndarrays,
    save_ndarrays,
)
from nnbridge.mxnet.formats.symbol import MUTATED_INPUTS, MxGraph, load_symbol, save_symbol

logger = logging.getLogger(__name__)


@dataclass
class MxNet:
    """A loaded MXNet model: graph plus parameters (prefixes stripped); ``file`` keeps the memory map alive."""

    graph: MxGraph
    arg_params: dict[str, np.ndarray] = field(default_factory=dict)
    aux_params: dict[str, np.ndarray] = field(default_factory=dict)
    symbol_path: str | None = None
    params_path: str | None = None
    file: NDArrayFile | None = field(default=None, repr=False)

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Arguments and auxiliary states in one dict (names are unique across both in MXNet graphs)."""
        return {**self.arg_params, **self.aux_params}


def checkpoint_paths(prefix: str | os.PathLike[str], epoch: int) -> tuple[str, str]:
    """``(prefix-symbol.json, prefix-EPOCH.params)`` exactly as MXNet names them (epoch zero-padded to 4 digits)."""
    prefix = os.fspath(prefix)
    return f"{prefix}-symbol.json", f"{prefix}-{int(epoch):04d}.params"


def aux_names(graph: MxGraph) -> set[str]:
    """Names of the variables the graph's ops mutate (auxiliary states)."""
    names = set()
    for node in graph.nodes:
        for position in MUTATED_INPUTS.get(node.op, ()):
            if position < len(node.inputs):
                source = graph.nodes[node.inputs[position][0]]
                if source.is_variable:
                    names.add(source.name)
    return names


def split_params(
    params: Mapping[str, np.ndarray], graph: MxGraph, path: str | None = None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Split a params dict into (arg, aux): by ``arg:``/``aux:`` prefix, bare names by the graph's aux states.

    Mixing prefixed and bare names is an error (no MXNet writer produces it).
    """
    prefixed = [name.startswith((ARG_PREFIX, AUX_PREFIX)) for name in params]
    if any(prefixed) and not all(prefixed):
        bare = [name for name, p in zip(params, prefixed, strict=True) if not p]
        raise FormatError(path, f"mixed prefixed and bare parameter names, e.g. {bare[:3]}",
                          hint="a file should come from save_checkpoint/export (arg:/aux:) or save_parameters (bare)")
    arg: dict[str, np.ndarray] = {}
    aux: dict[str, np.ndarray] = {}
    if all(prefixed):
        for name, value in params.items():
            (arg if name.startswith(ARG_PREFIX) else aux)[name[len(ARG_PREFIX):]] = value
        return arg, aux
    states = aux_names(graph)
    for name, value in params.items():
        (aux if name in states else arg)[name] = value
    return arg, aux


def load_mxnet(symbol: str | os.PathLike[str], params: str | os.PathLike[str] | None = None) -> MxNet:
    """A symbol JSON and (optionally) a params file of any naming (checkpoint, Gluon export or save_parameters)."""
    graph = load_symbol(symbol)
    model = MxNet(graph, symbol_path=os.fspath(symbol))
    if params is not None:
        file = load_ndarrays(params)
        model.arg_params, model.aux_params = split_params(file.as_dict(), graph, file.path)
        model.params_path, model.file = file.path, file
    return model


def load_checkpoint(prefix: str | os.PathLike[str], epoch: int) -> MxNet:
    """Read ``prefix-symbol.json`` and ``prefix-%04d.params`` like ``mx.model.load_checkpoint``."""
    symbol_path, params_path = checkpoint_paths(prefix, epoch)
    return load_mxnet(symbol_path, params_path)


def save_checkpoint(
    prefix: str | os.PathLike[str],
    epoch: int,
    graph: MxGraph,
    arg_params: Mapping[str, np.ndarray],
    aux_params: Mapping[str, np.ndarray],
) -> tuple[str, str]:
    """Write the checkpoint pair like ``mx.model.save_checkpoint``; both files appear together or not at all."""
    symbol_path, params_path = checkpoint_paths(prefix, epoch)
    clash = sorted(set(arg_params) & set(aux_params))
    if clash:
        raise FormatError(params_path, f"names both in arg_params and aux_params: {clash[:5]}")
    with AtomicGroup() as group:
        save_symbol(graph, group.path(symbol_path))
        save_ndarrays(group.path(params_path), join_prefixed(arg_params, aux_params))
    logger.info("wrote %s and %s", symbol_path, params_path)
    return symbol_path, params_path


def load_mean(path: str | os.PathLike[str]) -> np.ndarray:
    """The single array of a ``.nd`` mean file (any key: ``mean_image``, ``mean_img``, ...)."""
    file = load_ndarrays(path)
    if len(file.arrays) != 1:
        raise FormatError(file.path, f"a mean file holds one array, found {len(file.arrays)} ({file.names[:5]})")
    return file.arrays[0]


def save_mean(path: str | os.PathLike[str], mean: np.ndarray, name: str = "mean_image") -> None:
    """Write a ``.nd`` mean file ``{name: mean}`` (float32), as caffe_converter's ``convert_mean.py`` did."""
    save_ndarrays(path, {name: np.asarray(mean, dtype=np.float32)})
