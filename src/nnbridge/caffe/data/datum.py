"""Caffe ``Datum`` values: parse, decode to a (C, H, W) array, and build them (as convert_imageset does).

A raw Datum holds ``channels x height x width`` values in C, H, W order, either as uint8 bytes (``data``) or
as ``float_data``. An encoded Datum (``encoded: true``) holds a whole JPEG/PNG file; it is decoded like Caffe's
``DecodeDatumToCVMat`` (``io.cpp``): OpenCV ``imdecode``, in colour (BGR) with ``force_color``, gray with
``force_gray``, otherwise as stored (``IMREAD_UNCHANGED``, Caffe's ``DecodeDatumToCVMatNative``).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from google.protobuf import message as pb_message

from nnbridge.caffe.proto import caffe_pb2
from nnbridge.errors import FormatError, MissingExtraError

logger = logging.getLogger(__name__)


def cv2_module() -> Any:
    try:
        import cv2
    except ImportError:
        raise MissingExtraError("decoding and encoding images needs OpenCV; install it with: "
                                "pip install 'opencv-python-headless<5'") from None
    return cv2


def _where(key: bytes) -> str:
    return "key " + key.decode("utf-8", errors="backslashreplace")


def parse_datum(value: bytes, db: str, key: bytes) -> caffe_pb2.Datum:
    """The Datum stored under ``key`` of database ``db``; a FormatError naming both when it is not one."""
    datum = caffe_pb2.Datum()
    hint = "Caffe Data layers read databases of serialized Datum messages (built by convert_imageset or " \
           "nnbridge data make-lmdb)"
    try:
        datum.ParseFromString(value)
    except pb_message.DecodeError:
        raise FormatError(db, "the value is not a Caffe Datum (protobuf decoding failed)",
                          location=_where(key), hint=hint) from None
    if datum.encoded:
        if not datum.data:
            raise FormatError(db, "an encoded Datum without image bytes", location=_where(key), hint=hint)
        return datum
    size = datum.channels * datum.height * datum.width
    if min(datum.channels, datum.height, datum.width) <= 0 or size != (len(datum.data) or len(datum.float_data)):
        raise FormatError(db, f"the value is not a valid Caffe Datum: channels x height x width = "
                          f"{datum.channels}x{datum.height}x{datum.width} but it holds {len(datum.data)} bytes "
                          f"and {len(datum.float_data)} floats", location=_where(key), hint=hint)
    return datum


def decode_image(buffer: bytes, mode: str, where: str) -> np.ndarray:
    """An encoded image -> uint8 (C, H, W), BGR for colour. ``mode``: ``color``, ``gray`` or ``unchanged``."""
    cv2 = cv2_module()
    flag = {"color": cv2.IMREAD_COLOR, "gray": cv2.IMREAD_GRAYSCALE, "unchanged": cv2.IMREAD_UNCHANGED}[mode]
    image = cv2.imdecode(np.frombuffer(buffer, np.uint8), flag)
    if image is None:
        raise FormatError(where, "cannot decode the encoded image", hint="is it a JPEG/PNG OpenCV can read?")
    if image.dtype != np.uint8:
        raise FormatError(where, f"the image decodes to {image.dtype}, Caffe's transformer needs 8-bit images",
                          hint="store 8-bit images")
    return to_chw(image)


def to_chw(image: np.ndarray) -> np.ndarray:
    """OpenCV (H, W) or (H, W, C) -> a (C, H, W) view (no copy: the transformer copies once, cropped)."""
    return image[None] if image.ndim == 2 else image.transpose(2, 0, 1)


def datum_to_array(datum: caffe_pb2.Datum, *, force_color: bool = False, force_gray: bool = False,
                   where: str = "<datum>") -> np.ndarray:
    """(C, H, W) uint8 (raw bytes or decoded image) or float32 (``float_data``), as Caffe's transformer sees it."""
    if datum.encoded:
        mode = "color" if force_color else "gray" if force_gray else "unchanged"
        return decode_image(datum.data, mode, where)
    shape = (datum.channels, datum.height, datum.width)
    if datum.data:
        return np.frombuffer(datum.data, np.uint8).reshape(shape)
    return np.asarray(datum.float_data, np.float32).reshape(shape)


def read_image(path: str, *, color: bool = True, height: int = 0, width: int = 0) -> np.ndarray:
    """Caffe's ReadImageToCVMat: ``cv::imread`` in colour (BGR) or gray, resized (bilinear) when both sizes > 0."""
    cv2 = cv2_module()
    image = cv2.imread(path, cv2.IMREAD_COLOR if color else cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise FormatError(path, "could not load the image", hint="check the path and that it is an image file")
    if height > 0 and width > 0:
        image = cv2.resize(image, (width, height))
    return image


def make_datum(image: np.ndarray, label: int) -> caffe_pb2.Datum:
    """Caffe's CVMatToDatum: an OpenCV uint8 image (H, W[, C]) -> a raw Datum (C, H, W bytes)."""
    chw = to_chw(image)
    return caffe_pb2.Datum(channels=chw.shape[0], height=chw.shape[1], width=chw.shape[2],
                           data=chw.astype(np.uint8).tobytes(), label=label)


def make_encoded_datum(data: bytes, label: int) -> caffe_pb2.Datum:
    """An encoded Datum (what convert_imageset --encoded writes: only data, label and encoded)."""
    return caffe_pb2.Datum(data=data, label=label, encoded=True)
