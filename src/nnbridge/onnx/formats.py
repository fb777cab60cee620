"""ONNX files in and out of the hub.

:func:`load_onnx` reads a model (external data is memory-mapped by ``onnx_ir``), fixes input shapes,
and normalises it (:mod:`nnbridge.onnx.normalize`): functions inlined, constants folded, opset 17,
static shapes. :func:`save_onnx` writes a hub model with the streaming writer
(:mod:`nnbridge.onnx.writer`), atomically; beyond the 2 GiB protobuf limit it uses external data.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import onnx_ir as ir
from google.protobuf.message import DecodeError

from nnbridge.errors import FormatError
from nnbridge.onnx import normalize
from nnbridge.onnx.writer import save_model_streaming

logger = logging.getLogger(__name__)

InputShapes = Mapping[str, Sequence[int]]


def load_onnx(
    path: str | os.PathLike[str], *, optimize: bool = True, input_shapes: InputShapes | None = None
) -> ir.Model:
    """Load an ONNX file as a hub model (opset 17, static shapes where the inputs allow)."""
    source = os.fspath(path)
    if not Path(source).is_file():
        raise FormatError(source, "no such file")
    try:
        model = ir.load(source)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise FormatError(source, f"not a readable ONNX model ({exc})",
                          hint="is it a complete .onnx file? external data must sit beside it") from exc
    except OSError as exc:
        raise FormatError(source, f"cannot read the file or its external data: {exc}") from exc
    set_input_shapes(model, input_shapes or {}, source)
    if optimize:
        used = normalize.fold_constants(model)
        logger.info("%s: constants folded with %s", source, " + ".join(used))
    model = normalize.convert_opset(model)
    normalize.infer_shapes(model, strict=False)
    model.metadata_props.setdefault("nnbridge.source_format", "onnx")
    dynamic = [v.name for v in model.graph.inputs if v.shape is None or not all(isinstance(d, int) for d in v.shape)]
    if dynamic:
        logger.warning("%s: inputs %s have no static shape; give them with --input-shape NAME=D,D,...",
                       source, ", ".join(str(n) for n in dynamic))
    return model


def set_input_shapes(model: ir.Model, input_shapes: InputShapes, source: str | None = None) -> None:
    """Give graph inputs fixed shapes; an unknown name or a rank change is a FormatError."""
    inputs = {v.name: v for v in model.graph.inputs if v.name not in model.graph.initializers}
    unknown = sorted(set(input_shapes) - set(inputs))
    if unknown:
        raise FormatError(source, f"--input-shape names unknown inputs {', '.join(unknown)}",
                          hint=f"the model's inputs are {', '.join(str(n) for n in inputs) or 'none'}")
    for name, dims in input_shapes.items():
        value = inputs[name]
        if value.shape is not None and len(value.shape) != len(dims):
            raise FormatError(source, f"input {name!r} has rank {len(value.shape)}, --input-shape gives "
                              f"{len(dims)} dimensions", hint=f"its shape is {value.shape}")
        if value.shape is not None:
            for old, new in zip(value.shape, dims, strict=True):
                if isinstance(old, int) and old != new:
                    logger.warning("%s: input %s: dimension %s overridden by %s", source, name, old, new)
        value.shape = ir.Shape([int(d) for d in dims])


def save_onnx(model: ir.Model, path: str | os.PathLike[str], *, external_data: bool | None = None) -> None:
    """Write ``model`` to ``path`` atomically, streaming the weights (external data beyond 2 GiB)."""
    save_model_streaming(model, path, external_data=external_data)
