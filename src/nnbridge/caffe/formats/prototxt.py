"""Caffe's text format (``.prototxt``): NetParameter in protobuf text syntax, read and written.

Parsing uses ``google.protobuf.text_format`` with our own schema (``nnbridge.caffe.proto.caffe.proto``),
so unknown fields and syntax errors are reported as ``file:line:col: message`` (protobuf's ParseError
carries 1-based line and column). Nothing here upgrades or filters; see :mod:`.upgrade` and :mod:`.net`.

A binary file passed as a prototxt (a NUL byte or invalid UTF-8 in the first 64 KiB) is refused with a
hint, since it is almost always a caffemodel given in the wrong place.
"""

from __future__ import annotations

import os
import re

from google.protobuf import message as pb_message
from google.protobuf import text_format

from nnbridge.caffe.proto import caffe_pb2
from nnbridge.errors import FormatError
from nnbridge.fileio import atomic_write

_LOCATION = re.compile(r"^(\d+):(\d+)\s*:\s*")


def _looks_binary(head: bytes) -> bool:
    if b"\0" in head:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < len(head) - 4  # a multi-byte character cut at the end of the sample is fine
    return False


def parse_prototxt(text: str | bytes, path: str | None = None) -> caffe_pb2.NetParameter:
    """Parse NetParameter text; errors are FormatError(path, message, location="line:col")."""
    if isinstance(text, bytes):
        if _looks_binary(text[:65536]):
            raise FormatError(path, "this looks like a binary caffemodel, not a prototxt",
                              hint="pass it as --weights (the caffemodel argument) and give the .prototxt "
                                   "as the network")
        text = text.decode("utf-8", errors="replace")
    net = caffe_pb2.NetParameter()
    try:
        text_format.Parse(text, net)
    except text_format.ParseError as exc:
        line, column = exc.GetLine(), exc.GetColumn()
        message = _LOCATION.sub("", str(exc))
        location = f"{line}:{column}" if line is not None else None
        raise FormatError(path, message, location=location,
                          hint="fix the prototxt syntax (field names follow caffe.proto)") from None
    except pb_message.DecodeError as exc:  # pragma: no cover - text_format raises ParseError
        raise FormatError(path, str(exc)) from None
    return net


def read_prototxt(path: str | os.PathLike[str]) -> caffe_pb2.NetParameter:
    """Read and parse a prototxt file (no upgrade, no phase filtering)."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise FormatError(name, f"cannot read the prototxt: {exc.strerror or exc}") from None
    return parse_prototxt(data, name)


def format_prototxt(net: caffe_pb2.NetParameter) -> str:
    """Text form of a NetParameter, in the layout Caffe's own tools print."""
    return str(text_format.MessageToString(net))


def write_prototxt(path: str | os.PathLike[str], net: caffe_pb2.NetParameter) -> None:
    """Write ``net`` as text, atomically."""
    with atomic_write(path, "w") as handle:
        handle.write(format_prototxt(net))
