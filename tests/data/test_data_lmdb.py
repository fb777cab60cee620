"""``nnbridge data make-lmdb`` / ``show``: databases read back with real Caffe's own Datum schema (pycaffe's
caffe_pb2; datum_to_array's layout) and compared pixel by pixel with OpenCV's reading of the image files."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from caffe_data_ref import class_folder_files, make_class_folders, make_lmdb

from nnbridge.caffe.data import DataLayerReader
from nnbridge.cli import main as nnbridge_main

lmdb = pytest.importorskip("lmdb", reason="Caffe LMDBs need the lmdb package (pip install 'nnbridge[data]')")


def _caffe_datums(db: Path) -> list[tuple[bytes, object]]:
    """(key, Datum) pairs parsed with real Caffe's schema when pycaffe is installed, else nnbridge's."""
    try:
        os.environ.setdefault("GLOG_minloglevel", "2")
        from caffe.proto import caffe_pb2
    except ImportError:
        from nnbridge.caffe.proto import caffe_pb2
    env = lmdb.open(str(db), readonly=True, lock=False)
    with env.begin() as txn:
        pairs = [(bytes(k), caffe_pb2.Datum.FromString(v)) for k, v in txn.cursor()]
    env.close()
    return pairs


def _datum_pixels(datum: object) -> np.ndarray:
    """pycaffe's caffe.io.datum_to_array (which calls np.fromstring, gone in numpy 2): bytes as (C, H, W)."""
    d = datum
    return np.frombuffer(d.data, np.uint8).reshape(d.channels, d.height, d.width)  # type: ignore[attr-defined]


def _reader(db: Path, batch: int, extra: str = "") -> DataLayerReader:
    return DataLayerReader(f'layer {{ name: "d" type: "Data" top: "data" top: "label" data_param {{ source: "{db}" '
                           f'batch_size: {batch} backend: LMDB }} {extra} }}')


@pytest.mark.parametrize("gray", [False, True], ids=["colour", "gray"])
def test_raw_lmdb_holds_the_pixels(tmp_path: Path, gray: bool) -> None:
    images = make_class_folders(tmp_path / "images", classes=3, per_class=3)
    db = make_lmdb(images, tmp_path / "db", *(["--gray"] if gray else []))
    files = class_folder_files(images)
    pairs = _caffe_datums(db)
    assert [k for k, _ in pairs] == [f"{i:08d}_{f.parent.name}/{f.name}".encode() for i, (f, _) in enumerate(files)]
    reader = _reader(db, len(files))
    data, label = reader.next_batch()
    for i, ((file, k), (_, datum)) in enumerate(zip(files, pairs, strict=True)):
        expected = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
        expected = expected[None] if gray else expected.transpose(2, 0, 1)
        assert datum.label == k and not datum.encoded  # type: ignore[attr-defined]
        np.testing.assert_array_equal(_datum_pixels(datum), expected)
        np.testing.assert_array_equal(data[i], expected.astype(np.float32))
        assert label[i] == k


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_encoded_lmdb_holds_the_files(tmp_path: Path, suffix: str) -> None:
    images = make_class_folders(tmp_path / "images", suffix=suffix)
    db = make_lmdb(images, tmp_path / "db", "--encoded")
    files = class_folder_files(images)
    pairs = _caffe_datums(db)
    reader = _reader(db, len(files))
    data, _ = reader.next_batch()
    for i, ((file, _), (_, datum)) in enumerate(zip(files, pairs, strict=True)):
        assert datum.encoded and datum.data == file.read_bytes()  # type: ignore[attr-defined]
        # PNG: the original pixels; JPEG: what OpenCV's decoder (Caffe's imdecode) gives for the file
        np.testing.assert_array_equal(data[i], cv2.imread(str(file), cv2.IMREAD_UNCHANGED).transpose(2, 0, 1))


def test_encoded_gray_resized(tmp_path: Path) -> None:
    images = make_class_folders(tmp_path / "images", classes=1, per_class=3)
    db = make_lmdb(images, tmp_path / "db", "--encoded", "--gray", "--resize", "24,20")
    data, _ = _reader(db, 3).next_batch()
    assert data.shape == (3, 1, 24, 20)
    for i, (file, _) in enumerate(class_folder_files(images)):
        expected = cv2.resize(cv2.imread(str(file), cv2.IMREAD_GRAYSCALE), (20, 24))
        np.testing.assert_array_equal(data[i, 0], expected)  # PNG re-encoding is lossless


def test_list_file_and_shared_images(tmp_path: Path, shared_models: Path) -> None:
    folder = shared_models / "images"
    names = sorted(p.name for p in folder.glob("*.jpg"))[:4]
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"{name} {i % 2}\n" for i, name in enumerate(names)))
    db = make_lmdb(listing, tmp_path / "db", "--root", str(folder) + "/", "--resize", "48,64", "--shuffle")
    pairs = _caffe_datums(db)
    assert sorted(k.decode()[9:] for k, _ in pairs) == names and len(pairs) == len(names)
    for key, datum in pairs:
        name = key.decode()[9:]
        expected = cv2.resize(cv2.imread(str(folder / name)), (64, 48)).transpose(2, 0, 1)
        np.testing.assert_array_equal(_datum_pixels(datum), expected)
        assert datum.label == names.index(name) % 2  # type: ignore[attr-defined]


def test_show_summarises_and_draws(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = make_class_folders(tmp_path / "images", classes=2, per_class=3)
    db = make_lmdb(images, tmp_path / "db", "--encoded")
    capsys.readouterr()
    assert nnbridge_main(["data", "show", str(db), "-o", str(tmp_path / "sheet.png"), "--count", "4"]) == 0
    out = capsys.readouterr().out
    assert "6 Datums (6 encoded)" in out and "3x40x48 (6)" in out and "labels: 0:3 1:3" in out
    sheet = cv2.imread(str(tmp_path / "sheet.png"))
    assert sheet is not None and sheet.shape == (2 * 50, 2 * 50, 3)
    np.testing.assert_array_equal(sheet[1:41, 1:49], cv2.imread(str(class_folder_files(images)[0][0])))


def test_make_lmdb_is_atomic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = make_class_folders(tmp_path / "images", classes=1, per_class=3)
    (images / "c0" / "2.png").write_bytes(b"not an image")
    assert nnbridge_main(["data", "make-lmdb", str(images), "-o", str(tmp_path / "db")]) == 1
    assert "could not load the image" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]  # no database, no partial directory
    make_lmdb(images / "c0" / "..", tmp_path / "ok", "--encoded")  # bytes only: the bad file is not decoded
    assert nnbridge_main(["data", "make-lmdb", str(images), "-o", str(tmp_path / "ok")]) == 1
    assert "already exists" in capsys.readouterr().err


def test_leveldb_backend(tmp_path: Path) -> None:
    plyvel = pytest.importorskip("plyvel", reason="LevelDB databases need plyvel")
    from nnbridge.caffe.proto import caffe_pb2

    db = plyvel.DB(str(tmp_path / "ldb"), create_if_missing=True)
    arrays = [np.full((1, 2, 3), i, np.uint8) for i in (7, 3, 5)]
    for i, array in zip((2, 0, 1), arrays, strict=True):  # stored out of order: read back in key order
        db.put(b"%08d" % i, caffe_pb2.Datum(channels=1, height=2, width=3, data=array.tobytes(), label=i)
               .SerializeToString())
    db.close()
    reader = DataLayerReader(f'layer {{ name: "d" type: "Data" top: "data" top: "label" data_param {{ source: '
                             f'"{tmp_path / "ldb"}" batch_size: 3 backend: LEVELDB }} }}')
    data, label = reader.next_batch()
    assert label.tolist() == [0, 1, 2] and data[:, 0, 0, 0].tolist() == [3, 5, 7]


@pytest.mark.caffe
def test_leveldb_against_pycaffe(tmp_path: Path) -> None:
    """A LevelDB of raw Datums (written with plyvel) read by real Caffe's Data layer (backend: LEVELDB) and nnbridge."""
    plyvel = pytest.importorskip("plyvel", reason="LevelDB databases need plyvel")
    from real_caffe import against_caffe

    from nnbridge.caffe.data import DatumDB

    images = make_class_folders(tmp_path / "images", classes=2, per_class=3, size=(14, 16))
    assert nnbridge_main(["data", "make-lmdb", str(images), "-o", str(tmp_path / "lmdb")]) == 0
    source = DatumDB(tmp_path / "lmdb")
    db = plyvel.DB(str(tmp_path / "ldb"), create_if_missing=True)
    for i in range(len(source)):
        db.put(*source.value(i))
    db.close()
    source.close()
    text = (f'layer {{ name: "d" type: "Data" top: "data" top: "label" data_param {{ source: "{tmp_path / "ldb"}" '
            f'batch_size: 4 backend: LEVELDB }} transform_param {{ crop_size: 12 mean_value: 90 scale: 0.125 }} }}')
    assert against_caffe(text, tmp_path, 3, "Unknown database backend",  # 12 of 6 images: wraps twice
                         "the reference pycaffe is built without LevelDB (db.cpp: Unknown database backend)") == 0.0
