"""MXNet file formats without MXNet: symbol JSON (every version), NDArray files (.params/.nd), checkpoints."""

from nnbridge.mxnet.formats.checkpoint import (
    MxNet,
    checkpoint_paths,
    load_checkpoint,
    load_mean,
    load_mxnet,
    save_checkpoint,
    save_mean,
    split_params,
)
from nnbridge.mxnet.formats.params import (
    NDArrayFile,
    join_prefixed,
    load_ndarrays,
    read_params,
    save_ndarrays,
    split_prefixed,
)
from nnbridge.mxnet.formats.symbol import (
    MxGraph,
    MxNode,
    load_symbol,
    parse_bool,
    parse_float,
    parse_int,
    parse_symbol_json,
    parse_tuple,
    save_symbol,
    symbol_to_json,
)

__all__ = [
    "MxGraph",
    "MxNet",
    "MxNode",
    "NDArrayFile",
    "checkpoint_paths",
    "join_prefixed",
    "load_checkpoint",
    "load_mean",
    "load_mxnet",
    "load_ndarrays",
    "load_symbol",
    "parse_bool",
    "parse_float",
    "parse_int",
    "parse_symbol_json",
    "parse_tuple",
    "read_params",
    "save_checkpoint",
    "save_mean",
    "save_ndarrays",
    "save_symbol",
    "split_params",
    "split_prefixed",
    "symbol_to_json",
]
