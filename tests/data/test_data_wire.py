"""The raw-Datum fast path (nnbridge.caffe.data.wire / batch) against protobuf's own parse of the same bytes, and
batches read through it against the per-sample path (source.load), bit for bit. Real Caffe's batches of the same
kind of databases are checked in test_data_transform.py (test_data_layer_against_pycaffe)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nnbridge.caffe.data import DataLayerReader, write_lmdb
from nnbridge.caffe.data.wire import decode_rows, layout_of
from nnbridge.caffe.proto import caffe_pb2
from nnbridge.errors import FormatError

pytest.importorskip("lmdb", reason="Caffe LMDBs need the lmdb package (pip install 'nnbridge[data]')")

SHAPE = (2, 3, 4)


def _raw(label: int | None, seed: int = 0, shape: tuple[int, int, int] = SHAPE, **extra: object) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8).tobytes()
    datum = caffe_pb2.Datum(channels=shape[0], height=shape[1], width=shape[2], data=pixels, **extra)  # type: ignore
    if label is not None:
        datum.label = label
    return datum.SerializeToString()


def _field(number: int, payload: bytes | int) -> bytes:
    """One protobuf field by hand (varint or length-delimited), to build records in unusual field orders."""
    def varint(v: int) -> bytes:
        v &= (1 << 64) - 1
        out = bytearray()
        while True:
            out.append((v & 0x7F) | (0x80 if v > 0x7F else 0))
            v >>= 7
            if not v:
                return bytes(out)
    if isinstance(payload, bytes):
        return varint(number << 3 | 2) + varint(len(payload)) + payload
    return varint(number << 3) + varint(payload)


def _protobuf(value: bytes) -> tuple[np.ndarray, int] | None:
    """What protobuf makes of a record, when it is a valid raw uint8 Datum."""
    try:
        datum = caffe_pb2.Datum.FromString(value)
    except Exception:
        return None
    shape = (datum.channels, datum.height, datum.width)
    if datum.encoded or datum.float_data or min(shape) <= 0 or len(datum.data) != np.prod(shape):
        return None
    return np.frombuffer(datum.data, np.uint8).reshape(shape), int(datum.label)


@pytest.mark.parametrize("label", [0, 5, 127, 128, 300, 2**31 - 1, -1, -2**31, None])
def test_layout_of_raw_datums(label: int | None) -> None:
    for value in (_raw(label), _raw(label, encoded=False)):  # Caffe's CVMatToDatum writes encoded: false
        layout = layout_of(value)
        assert layout is not None and layout.shape == SHAPE
        pixels, labels, decoded = decode_rows([value], layout)
        expected = _protobuf(value)
        assert expected is not None and decoded.all()
        np.testing.assert_array_equal(pixels[0], expected[0])
        assert labels[0] == expected[1] == (label or 0)


def test_layout_refuses_other_records() -> None:
    pixels = bytes(range(24))
    unusual_order = _field(5, 7) + _field(4, pixels) + _field(3, 4) + _field(1, 2) + _field(2, 3)
    assert layout_of(unusual_order) is not None  # any order of the fields is fine
    refused = {
        "encoded": caffe_pb2.Datum(data=b"\xff\xd8", encoded=True).SerializeToString(),
        "float_data": caffe_pb2.Datum(channels=1, height=1, width=2, float_data=[1.0, 2.0]).SerializeToString(),
        "size mismatch": caffe_pb2.Datum(channels=2, height=3, width=4, data=b"x").SerializeToString(),
        "repeated field": _raw(3) + _field(5, 4),
        "unknown field": _raw(3) + _field(9, 1),
        "truncated": _raw(3)[:-3],
        "not a datum": b"\xff\xff\xff",
        "no data": caffe_pb2.Datum(channels=1, height=1, width=1, label=2).SerializeToString(),
    }
    for name, value in refused.items():
        assert layout_of(value) is None, name


def test_decode_rows_against_protobuf() -> None:
    template = _raw(5)
    layout = layout_of(template)
    assert layout is not None
    values = [_raw(k, seed=k) for k in range(10)]  # one-byte labels: the template's layout
    values += [_raw(200, seed=1), _raw(-3, seed=2), _raw(None, seed=3)]  # another label length: protobuf's job
    values += [_raw(4, seed=4, shape=(2, 4, 3)), _raw(4, seed=4, encoded=False)]  # other dims / bytes
    values += [_raw(1)[:-2] + _field(1, 2)]  # template length, but field 1 where the label was
    pixels, labels, decoded = decode_rows(values, layout)
    assert decoded.tolist() == [True] * 10 + [False] * 6
    for row, value in enumerate(values):
        if decoded[row]:
            expected = _protobuf(value)
            assert expected is not None
            np.testing.assert_array_equal(pixels[row], expected[0])
            assert labels[row] == expected[1]


def test_decode_rows_fuzz() -> None:
    """Random byte changes of a record: whatever the fast path accepts, protobuf parses to the same values."""
    rng = np.random.default_rng(11)
    template = _raw(300, shape=(1, 5, 5))
    layout = layout_of(template)
    assert layout is not None
    values = []
    for _ in range(3000):
        value = bytearray(template)
        for _ in range(int(rng.integers(1, 3))):
            value[int(rng.integers(len(value)))] = int(rng.integers(256))
        values.append(bytes(value))
    pixels, labels, decoded = decode_rows(values, layout)
    assert 0 < decoded.sum() < len(values)
    for row in np.flatnonzero(decoded):
        expected = _protobuf(values[row])
        assert expected is not None
        np.testing.assert_array_equal(pixels[row], expected[0])
        assert labels[row] == expected[1]


def _mixed_db(path: Path) -> Path:
    """Mostly raw records, some the fast path leaves to protobuf (label lengths, encoded: false, float_data)."""
    values = [_raw(k % 7, seed=k, shape=(3, 8, 9)) for k in range(23)]
    values[4] = _raw(1000, seed=4, shape=(3, 8, 9))
    values[9] = _raw(-2, seed=9, shape=(3, 8, 9), encoded=False)
    floats = np.random.default_rng(5).uniform(-9, 9, (3, 8, 9)).astype(np.float32)
    values[15] = caffe_pb2.Datum(channels=3, height=8, width=9, float_data=floats.ravel(), label=3).SerializeToString()
    write_lmdb(path, ((f"{k:04d}".encode(), v) for k, v in enumerate(values)))
    return path


@pytest.mark.parametrize("phase, transform", [
    ("TEST", "scale: 0.5 mean_value: 10 mean_value: 20 mean_value: 30"),
    ("TEST", "crop_size: 5"),
    ("TRAIN", "crop_size: 5 mirror: true mean_value: 100"),
    ("TEST", "mirror: true scale: 0.25"),
])
def test_batches_equal_the_sample_path(tmp_path: Path, phase: str, transform: str) -> None:
    db = _mixed_db(tmp_path / "db")
    text = (f'layer {{ name: "d" type: "Data" top: "data" top: "label" data_param {{ source: "{db}" batch_size: 10 '
            f'backend: LMDB }} transform_param {{ {transform} }} }}')
    reader = DataLayerReader(text, phase=phase, seed=3)
    batches = [reader.next_batch() for _ in range(5)]  # 50 samples of 23: wraps twice
    reference = DataLayerReader(text, phase=phase, seed=3)
    rng = np.random.default_rng(3)
    samples = [reference.source.load(index % 23, rng) for index in range(50)]
    data = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    np.testing.assert_array_equal(data, np.stack([s[0] for s in samples]))
    np.testing.assert_array_equal(labels, np.array([s[1] for s in samples]))
    assert labels[4] == 1000 and labels[9] == -2


def test_fast_path_shape_error(tmp_path: Path) -> None:
    values = [_raw(1, seed=k, shape=(1, 4, 4)) for k in range(3)] + [_raw(1, shape=(1, 5, 4))]
    write_lmdb(tmp_path / "db", ((f"{k}".encode(), v) for k, v in enumerate(values)))
    reader = DataLayerReader(f'layer {{ name: "d" type: "Data" top: "data" data_param {{ source: "{tmp_path / "db"}" '
                             'batch_size: 4 backend: LMDB } }')
    with pytest.raises(FormatError, match=r"sample 3 of top 'data' has shape \(1, 5, 4\)"):
        reader.next_batch()


def test_torch_getitems_equals_getitem(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch)")
    from nnbridge.torch import CaffeDataset

    db = _mixed_db(tmp_path / "db")
    text = (f'layer {{ name: "d" type: "Data" top: "data" top: "label" data_param {{ source: "{db}" batch_size: 10 '
            'backend: LMDB } transform_param { crop_size: 5 mirror: true scale: 0.5 } }')
    indices = [3, 4, 5, 9, 15, 22, 0]
    many = CaffeDataset(text, phase="TRAIN", seed=4).__getitems__(indices)
    single = CaffeDataset(text, phase="TRAIN", seed=4)
    for got, index in zip(many, indices, strict=True):
        expected = single[index]
        assert len(got) == len(expected) == 2
        for a, b in zip(got, expected, strict=True):
            assert a.dtype == b.dtype == torch.float32 and a.shape == b.shape
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    loader = torch.utils.data.DataLoader(CaffeDataset(text), batch_size=10)
    first = next(iter(loader))
    assert first[0].shape == (10, 3, 5, 5) and first[1].tolist() == [0, 1, 2, 3, 1000, 5, 6, 0, 1, -2]


def test_encoded_batches_equal_the_sample_path(tmp_path: Path) -> None:
    """Encoded images are decoded by a thread pool; the TRAIN draws stay in sample order."""
    pytest.importorskip("cv2", reason="encoded Datums need OpenCV")
    from caffe_data_ref import make_class_folders, make_lmdb

    images = make_class_folders(tmp_path / "images", classes=2, per_class=4, size=(20, 24), suffix=".jpg")
    db = make_lmdb(images, tmp_path / "db", "--encoded")
    text = (f'layer {{ name: "d" type: "Data" top: "data" top: "label" data_param {{ source: "{db}" batch_size: 5 '
            'backend: LMDB } transform_param { crop_size: 13 mirror: true mean_value: 104 mean_value: 117 '
            'mean_value: 123 } }')
    reader = DataLayerReader(text, phase="TRAIN", seed=8)
    data = np.concatenate([reader.next_batch()[0] for _ in range(4)])  # 20 samples of 8: wraps
    reference = DataLayerReader(text, phase="TRAIN", seed=8)
    rng = np.random.default_rng(8)
    np.testing.assert_array_equal(data, np.stack([reference.source.load(i % 8, rng)[0] for i in range(20)]))
