"""Caffe data sources given bad input: one clear error naming the file / key / layer and what to do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from caffe_data_ref import make_class_folders, make_lmdb

from nnbridge.caffe.data import DataLayerReader, write_lmdb
from nnbridge.caffe.formats.binaryproto import write_binaryproto
from nnbridge.caffe.proto import caffe_pb2
from nnbridge.cli import main as nnbridge_main
from nnbridge.errors import FormatError

lmdb = pytest.importorskip("lmdb", reason="Caffe LMDBs need the lmdb package (pip install 'nnbridge[data]')")


def _data(source: Path | str, transform: str = "", batch: int = 2, backend: str = "LMDB") -> str:
    return (f'layer {{ name: "d" type: "Data" top: "data" top: "label" data_param {{ source: "{source}" '
            f'batch_size: {batch} backend: {backend} }} transform_param {{ {transform} }} }}')


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bad")
    return make_lmdb(make_class_folders(root / "images", classes=1, per_class=3, size=(12, 10)), root / "db")


def test_missing_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(FormatError, match=r"nope_lmdb: the LMDB database does not exist .*make-lmdb"):
        DataLayerReader(_data(tmp_path / "nope_lmdb"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FormatError, match=r"empty: cannot open the LMDB database"):
        DataLayerReader(_data(tmp_path / "empty"))
    assert nnbridge_main(["data", "show", str(tmp_path / "nope_lmdb")]) == 1
    assert "nope_lmdb: the LMDB database does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(("value", "message"), [
    (b"\xff\xff\xff\xff", "not a Caffe Datum \\(protobuf decoding failed\\)"),
    (b"\x08\x03\x10\x02", "not a valid Caffe Datum: channels x height x width = 3x2x0"),
    (caffe_pb2.Datum(channels=1, height=2, width=2, data=b"abc").SerializeToString(),
     "not a valid Caffe Datum: .* holds 3 bytes"),
], ids=["garbage", "no-width", "short"])
def test_value_that_is_not_a_datum(tmp_path: Path, value: bytes, message: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    good = caffe_pb2.Datum(channels=1, height=2, width=2, data=b"abcd").SerializeToString()
    write_lmdb(tmp_path / "db", [(b"00000000_ok", good), (b"00000001_bad", value)])
    reader = DataLayerReader(_data(tmp_path / "db"))
    with pytest.raises(FormatError, match=rf"/db:key 00000001_bad: the value is {message}"):
        reader.next_batch()
    assert nnbridge_main(["data", "show", str(tmp_path / "db")]) == 1
    assert "00000001_bad" in capsys.readouterr().err


def test_mean_file_of_the_wrong_shape(db: Path, tmp_path: Path) -> None:
    write_binaryproto(tmp_path / "mean.binaryproto", np.zeros((1, 3, 10, 12), np.float32))  # H and W swapped
    with pytest.raises(FormatError, match=r"mean.binaryproto: the mean has shape \(3, 10, 12\) but the images are "
                                          r"\(3, 12, 10\) \(the mean file must have the size of the stored images"):
        DataLayerReader(_data(db, f'crop_size: 8 mean_file: "{tmp_path / "mean.binaryproto"}"'))
    with pytest.raises(FormatError, match=r"nothere.binaryproto"):
        DataLayerReader(_data(db, f'mean_file: "{tmp_path / "nothere.binaryproto"}"'))


@pytest.mark.parametrize(("text", "message"), [
    ('layer { name: "c" type: "Convolution" bottom: "x" top: "y" }', r"found c \(Convolution\)"),
    ("", "found no layer"),
    (_data("a") + _data("b"), r"found d \(Data\), d \(Data\)"),
    (_data("a") + 'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" }',
     r"found d \(Data\), ip \(InnerProduct\)"),
    ('layer { name: "d" type: "Data" top: "data" include { phase: TRAIN } }',
     "found no layer \\(its data layer is for phase TRAIN: pass phase=\"TRAIN\"\\)"),
], ids=["conv", "empty", "two-data", "data+ip", "train-only"])
def test_prototxt_that_is_not_one_data_layer(text: str, message: str) -> None:
    with pytest.raises(FormatError, match=rf"<prototxt>: expected exactly one data layer for phase TEST, {message}"):
        DataLayerReader(text)


def test_prototxt_errors(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match=r"no_such.prototxt: neither a prototxt file nor prototxt text"):
        DataLayerReader(str(tmp_path / "no_such.prototxt"))
    with pytest.raises(FormatError, match=r"<prototxt>:1:\d+: .*fix the prototxt syntax"):
        DataLayerReader('layer { name: "d" type: "Data" data_param { sauce: "x" } }')
    with pytest.raises(FormatError, match=r"layer 'd' has no batch_size"):
        DataLayerReader('layer { name: "d" type: "Data" top: "data" data_param { source: "x" } }'.replace(
            '"x"', f'"{tmp_path}"'))


def test_transform_errors(db: Path) -> None:
    with pytest.raises(FormatError, match="both force_color and force_gray"):
        DataLayerReader(_data(db, "force_color: true force_gray: true"))
    with pytest.raises(FormatError, match="both mean_file and mean_value"):
        DataLayerReader(_data(db, 'mean_file: "m" mean_value: 1'))
    with pytest.raises(FormatError, match=r"crop_size 13 is larger than the image \(12x10\)"):
        DataLayerReader(_data(db, "crop_size: 13"))
    with pytest.raises(FormatError, match="2 mean_value entries for 3-channel images"):
        DataLayerReader(_data(db, "mean_value: 1 mean_value: 2"))


def test_images_of_different_sizes(tmp_path: Path) -> None:
    datums = [caffe_pb2.Datum(channels=1, height=h, width=2, data=bytes(2 * h)).SerializeToString() for h in (2, 3)]
    write_lmdb(tmp_path / "db", [(b"a", datums[0]), (b"b", datums[1])])
    with pytest.raises(FormatError, match=r"sample 1 of top 'data' has shape \(1, 3, 2\), the first sample "
                                          r"\(1, 2, 2\) \(Caffe batches need equal shapes"):
        DataLayerReader(_data(tmp_path / "db")).next_batch()


def test_other_layer_errors(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="a MemoryData layer needs its arrays"):
        DataLayerReader('layer { name: "m" type: "MemoryData" top: "data" memory_data_param { batch_size: 1 '
                        'channels: 1 height: 2 width: 2 } }')
    (tmp_path / "list.txt").write_text("missing.png 0\n")
    with pytest.raises(FormatError, match=r"missing.png: could not load the image"):
        DataLayerReader(f'layer {{ name: "i" type: "ImageData" top: "data" top: "label" image_data_param {{ '
                        f'source: "{tmp_path / "list.txt"}" root_folder: "{tmp_path}/" batch_size: 1 }} }}')
    (tmp_path / "list.txt").write_text("a.png zero\n")
    with pytest.raises(FormatError, match=r"list.txt:1: expected 'path label'"):
        DataLayerReader(f'layer {{ name: "i" type: "ImageData" top: "data" image_data_param {{ '
                        f'source: "{tmp_path / "list.txt"}" batch_size: 1 }} }}')
    with pytest.raises(FormatError, match="nope: the LEVELDB database does not exist"):
        DataLayerReader(_data(tmp_path / "nope", backend="LEVELDB"))
