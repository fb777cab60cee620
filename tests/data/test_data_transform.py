"""Batches of Caffe data layers (Data, ImageData, HDF5Data, MemoryData) read by nnbridge (DataLayerReader and the
PyTorch CaffeDataset) against real Caffe, and against an independent transcription of Caffe's transform
(caffe_data_ref). Data and ImageData run in the Caffe built with LMDB/LevelDB/OpenCV ($NNBRIDGE_CAFFE_DATA_PYTHON,
see real_caffe.py); HDF5Data and MemoryData in the reference pycaffe."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from caffe_data_ref import caffe_batches, caffe_transform, class_folder_files, make_class_folders, make_lmdb, max_rel
from real_caffe import against_caffe, caffe_forward

from nnbridge.caffe.data import DataLayerReader
from nnbridge.caffe.formats.binaryproto import write_binaryproto
from nnbridge.caffe.proto import caffe_pb2

lmdb = pytest.importorskip("lmdb", reason="Caffe LMDBs need the lmdb package (pip install 'nnbridge[data]')")

torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch)")
from nnbridge.torch import CaffeDataset  # noqa: E402


def _layer(db: Path, batch: int, transform: str, phase: str = "TEST", extra: str = "") -> str:
    return (f'layer {{ name: "d" type: "Data" top: "data" top: "label" include {{ phase: {phase} }} '
            f'data_param {{ source: "{db}" batch_size: {batch} backend: LMDB {extra} }} '
            f'transform_param {{ {transform} }} }}')


@pytest.fixture(scope="module")
def colour_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray], list[int]]:
    root = tmp_path_factory.mktemp("colour")
    images = make_class_folders(root / "images", classes=2, per_class=5, size=(20, 24))
    db = make_lmdb(images, root / "db")
    files = class_folder_files(images)
    return db, [cv2.imread(str(f)).transpose(2, 0, 1) for f, _ in files], [k for _, k in files]


def _check_batches(prototxt: str, reference: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """DataLayerReader batches (with wrap-around) and CaffeDataset samples vs the reference; worst rel error."""
    reader = DataLayerReader(prototxt)
    worst = 0.0
    for data, label in reference:
        ours = reader.next_batch()
        worst = max(worst, max_rel(ours[0], data))
        np.testing.assert_array_equal(ours[1], label)
    dataset = CaffeDataset(prototxt)
    for i, (sample, label) in enumerate(dataset):  # first pass only: indices 0..N-1
        batch, row = divmod(i, reference[0][0].shape[0])
        if batch < len(reference):
            worst = max(worst, max_rel(sample.numpy(), reference[batch][0][row]))
            assert float(label) == reference[batch][1][row]
    assert worst == 0.0, worst  # the same float32 operations in the same order: bit-exact
    return worst


@pytest.mark.parametrize("transform", ["mean_file", "mean_value", "plain"])
def test_test_phase_transform(colour_db: tuple[Path, list[np.ndarray], list[int]], tmp_path: Path,
                              transform: str) -> None:
    db, images, labels = colour_db
    rng = np.random.default_rng(1)
    mean = rng.uniform(0, 255, (3, 20, 24)).astype(np.float32)
    write_binaryproto(tmp_path / "mean.binaryproto", mean[None])
    text, kwargs = {
        "mean_file": (f'crop_size: 15 mean_file: "{tmp_path / "mean.binaryproto"}" scale: 0.017',
                      {"crop": 15, "mean": mean, "scale": 0.017}),
        "mean_value": ("crop_size: 16 mean_value: 104 mean_value: 117 mean_value: 123.5 scale: 0.00390625",
                       {"crop": 16, "mean_values": [104, 117, 123.5], "scale": 0.00390625}),
        "plain": ("scale: 0.5", {"scale": 0.5}),
    }[transform]
    samples = [caffe_transform(image, **kwargs) for image in images]  # type: ignore[arg-type]
    _check_batches(_layer(db, 4, text), caffe_batches(samples, labels, 4, 4))  # 16 samples of 10: wraps


def test_encoded_gray_force_color(tmp_path: Path) -> None:
    images = make_class_folders(tmp_path / "images", classes=1, per_class=2, size=(12, 12))
    db = make_lmdb(images, tmp_path / "db", "--encoded", "--gray")  # stored as 1-channel PNGs
    colour = [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f, _ in class_folder_files(images)]
    samples = [np.repeat(g[None], 3, axis=0).astype(np.float32) for g in colour]  # OpenCV: gray -> BGR copies
    _check_batches(_layer(db, 2, "force_color: true"), caffe_batches(samples, [0, 0], 2, 1))
    _check_batches(_layer(db, 2, ""), caffe_batches([g[None].astype(np.float32) for g in colour], [0, 0], 2, 1))


def test_encoded_force_gray_and_phase_rules(tmp_path: Path) -> None:
    images = make_class_folders(tmp_path / "images", classes=1, per_class=4, size=(18, 18))
    db = make_lmdb(images, tmp_path / "db", "--encoded")
    grays = [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)[None] for f, _ in class_folder_files(images)]
    samples = [caffe_transform(g, crop=9, mean_values=[100], scale=2.0) for g in grays]
    text = _layer(db, 3, "force_gray: true crop_size: 9 mean_value: 100 scale: 2")
    train = _layer(db, 5, "crop_size: 3", phase="TRAIN")
    _check_batches(train + "\n" + text, caffe_batches(samples, [0] * 4, 3, 3))


def test_float_data_datums(tmp_path: Path) -> None:
    from nnbridge.caffe.data import write_lmdb

    rng = np.random.default_rng(2)
    arrays = [rng.normal(size=(2, 5, 6)).astype(np.float32) for _ in range(3)]
    write_lmdb(tmp_path / "db", [(b"%03d" % i, caffe_pb2.Datum(channels=2, height=5, width=6, label=i,
                                  float_data=a.reshape(-1).tolist()).SerializeToString())
                                 for i, a in enumerate(arrays)])
    samples = [caffe_transform(a, crop=3, mean_values=[0.5, -0.25], scale=3.0) for a in arrays]
    _check_batches(_layer(tmp_path / "db", 2, "crop_size: 3 mean_value: 0.5 mean_value: -0.25 scale: 3"),
                   caffe_batches(samples, [0, 1, 2], 2, 3))


def test_train_phase_crop_and_mirror(colour_db: tuple[Path, list[np.ndarray], list[int]]) -> None:
    """Every TRAIN sample is one of Caffe's possible outputs (some crop offset, mirrored or not); seeded."""
    db, images, _ = colour_db
    text = _layer(db, 10, "crop_size: 17 mirror: true mean_value: 10 scale: 0.5", phase="TRAIN")
    reader = DataLayerReader(text, phase="TRAIN", seed=3)
    seen: set[tuple[int, int, bool]] = set()
    batches = [reader.next_batch()[0] for _ in range(3)]
    for batch in batches:
        for image, sample in zip(images, batch, strict=True):
            found = [(h, w, m) for h in range(4) for w in range(8) for m in (False, True)
                     if np.array_equal(caffe_transform(image, crop=17, h_off=h, w_off=w, mirror=m,
                                                       mean_values=[10], scale=0.5), sample)]
            assert len(found) == 1
            seen.add(found[0])
    assert len(seen) > 10 and {m for _, _, m in seen} == {False, True}
    again = DataLayerReader(text, phase="TRAIN", seed=3)
    np.testing.assert_array_equal(again.next_batch()[0], batches[0])
    assert not np.array_equal(DataLayerReader(text, phase="TRAIN", seed=4).next_batch()[0], batches[0])
    test_phase = DataLayerReader(text.replace("phase: TRAIN", "phase: TEST")).next_batch()[0]
    assert test_phase.shape == (10, 3, 17, 17)  # mirror stays random in TEST (as in Caffe), the crop is centred


def _image_data_case(tmp_path: Path, color: bool) -> tuple[str, list[tuple[np.ndarray, np.ndarray]], list[float]]:
    """An ImageData layer on generated JPEGs (list file, root_folder, resize, is_color) and Caffe's batches."""
    images = make_class_folders(tmp_path / "images", classes=2, per_class=3, size=(30, 26), suffix=".jpg")
    files = class_folder_files(images)
    (tmp_path / "list.txt").write_text("".join(f"{f.parent.name}/{f.name} {k + 3}\n" for f, k in files))
    flag = cv2.IMREAD_COLOR if color else cv2.IMREAD_GRAYSCALE
    loaded = [cv2.resize(cv2.imread(str(f), flag), (20, 22)) for f, _ in files]
    samples = [caffe_transform(i.transpose(2, 0, 1) if color else i[None], crop=18, mean_values=[60], scale=0.25)
               for i in loaded]
    text = (f'layer {{ name: "img" type: "ImageData" top: "data" top: "label" image_data_param {{ source: '
            f'"{tmp_path / "list.txt"}" root_folder: "{images}/" batch_size: 4 new_height: 22 new_width: 20 '
            f'is_color: {str(color).lower()} }} transform_param {{ crop_size: 18 mean_value: 60 scale: 0.25 }} }}')
    labels = [k + 3.0 for _, k in files]
    return text, caffe_batches(samples, [k + 3 for _, k in files], 4, 3), labels


@pytest.mark.parametrize("color", [True, False], ids=["colour", "gray"])
def test_image_data_layer(tmp_path: Path, color: bool) -> None:
    text, reference, labels = _image_data_case(tmp_path, color)
    _check_batches(text, reference)
    shuffled = DataLayerReader(text.replace("batch_size: 4", "batch_size: 6 shuffle: true"), seed=5)
    epochs = [shuffled.next_batch()[1] for _ in range(2)]
    for epoch in epochs:  # each pass is a permutation of the list
        assert sorted(epoch.tolist()) == sorted(labels)
    assert epochs[0].tolist() != labels or epochs[1].tolist() != labels


@pytest.mark.caffe
@pytest.mark.parametrize("color", [True, False], ids=["colour", "gray"])
def test_image_data_against_pycaffe(tmp_path: Path, color: bool) -> None:
    text, _, _ = _image_data_case(tmp_path, color)  # 6 images, batch 4: the third forward wraps round the list
    assert against_caffe(text, tmp_path, 3, "Unknown layer type: ImageData",
                          "the reference pycaffe is built without OpenCV (no ImageData layer)") == 0.0


DATA_CASES = {  # make-lmdb options, image suffix, transform_param (MEAN: a mean.binaryproto of the images' shape)
    "raw-mean_file": ((), ".png", "crop_size: 15 mean_file: MEAN scale: 0.017"),
    "raw-mean_value": ((), ".png", "crop_size: 16 mean_value: 104 mean_value: 117 mean_value: 123.5 scale: 0.0039"),
    "raw-gray": (("--gray",), ".png", "crop_size: 11 mean_file: MEAN scale: 0.5"),
    "jpeg": (("--encoded",), ".jpg", "crop_size: 15 mean_value: 104 mean_value: 117 mean_value: 123"),
    "jpeg-force_gray": (("--encoded",), ".jpg", "force_gray: true crop_size: 9 mean_value: 100 scale: 2"),
    "png": (("--encoded",), ".png", "mean_file: MEAN"),
    "png-gray-force_color": (("--encoded", "--gray"), ".png", "force_color: true scale: 0.25"),
}


@pytest.mark.caffe
@pytest.mark.parametrize("case", list(DATA_CASES))
def test_data_layer_against_pycaffe(tmp_path: Path, case: str) -> None:
    options, suffix, transform = DATA_CASES[case]
    images = make_class_folders(tmp_path / "images", classes=2, per_class=5, size=(20, 24), suffix=suffix)
    db = make_lmdb(images, tmp_path / "db", *options)
    channels = 1 if "--gray" in options else 3
    mean = np.random.default_rng(6).uniform(0, 255, (1, channels, 20, 24)).astype(np.float32)
    write_binaryproto(tmp_path / "mean.binaryproto", mean)
    text = _layer(db, 4, transform.replace("MEAN", f'"{tmp_path / "mean.binaryproto"}"'))
    worst = against_caffe(text, tmp_path, 3, "Unknown database backend",  # 12 of 10 images: wraps
                           "the reference pycaffe is built without LMDB/LevelDB (db.cpp: Unknown database backend)")
    # the same float32 operations in the same order: exact. JPEG too: Caffe's OpenCV (Debian 4.6, libjpeg62-turbo)
    # and opencv-python decode these files to the same pixels (were that to change, the decoders differ, not nnbridge)
    assert worst == 0.0, worst


@pytest.mark.caffe
def test_hdf5_data_against_pycaffe(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py", reason="HDF5Data needs h5py")
    pytest.importorskip("caffe", reason="real BVLC Caffe (pycaffe) is not installed")
    rng = np.random.default_rng(7)
    for name, rows in (("a.h5", 5), ("b.h5", 3)):
        with h5py.File(tmp_path / name, "w") as handle:
            handle["data"] = rng.normal(size=(rows, 2, 3, 4)).astype(np.float32)
            handle["label"] = rng.integers(0, 9, (rows,)).astype(np.float64)
    (tmp_path / "files.txt").write_text(f"{tmp_path / 'a.h5'}\n{tmp_path / 'b.h5'}\n")
    text = (f'layer {{ name: "h" type: "HDF5Data" top: "data" top: "label" '
            f'hdf5_data_param {{ source: "{tmp_path / "files.txt"}" batch_size: 3 }} }}')
    (tmp_path / "net.prototxt").write_text(text)
    blobs, error = caffe_forward(sys.executable, tmp_path / "net.prototxt", 5)  # 15 rows of 8: wraps round
    assert not error, error
    reader = DataLayerReader(text)
    for forward in blobs:
        data, label = reader.next_batch()
        np.testing.assert_array_equal(data, forward["data"])
        np.testing.assert_array_equal(label, forward["label"])
    assert len(CaffeDataset(text)) == 8
    shuffled = DataLayerReader(text.replace("batch_size: 3", "batch_size: 8 shuffle: true"), seed=1)
    rows = [shuffled.next_batch()[0] for _ in range(2)]  # each pass: every row once, files and rows shuffled
    every = np.concatenate([np.stack([b["data"] for b in blobs]).reshape(-1, 2, 3, 4)[:8]])
    for batch in rows:
        assert sorted(map(bytes, batch)) == sorted(map(bytes, every))


@pytest.mark.caffe
def test_memory_data_against_pycaffe(tmp_path: Path) -> None:
    caffe = pytest.importorskip("caffe", reason="real BVLC Caffe (pycaffe) is not installed")
    rng = np.random.default_rng(8)
    data = rng.normal(size=(6, 3, 4, 5)).astype(np.float32)
    labels = np.arange(6, dtype=np.float32)
    text = ('layer { name: "m" type: "MemoryData" top: "data" top: "label" memory_data_param { batch_size: 2 '
            'channels: 3 height: 4 width: 5 } }')
    (tmp_path / "net.prototxt").write_text(text)
    net = caffe.Net(str(tmp_path / "net.prototxt"), caffe.TEST)
    net.set_input_arrays(data, labels)
    reader = DataLayerReader(text, memory_data={"data": data, "label": labels})
    for _ in range(4):
        net.forward()
        ours = reader.next_batch()
        np.testing.assert_array_equal(ours[0], net.blobs["data"].data)
        np.testing.assert_array_equal(ours[1], net.blobs["label"].data)


def test_dataloader_workers(colour_db: tuple[Path, list[np.ndarray], list[int]]) -> None:
    db, images, labels = colour_db
    dataset = CaffeDataset(_layer(db, 4, "scale: 0.5"))
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=2)
    got = torch.cat([batch[0] for batch in loader]).numpy()
    np.testing.assert_array_equal(got, np.stack(images).astype(np.float32) * np.float32(0.5))
    assert torch.cat([batch[1] for batch in loader]).tolist() == labels
