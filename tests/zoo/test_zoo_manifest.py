"""The zoo manifest: parsing, path resolution, and one clear error naming the line and key."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from nnbridge.errors import FormatError, NNBridgeError
from nnbridge.zoo.manifest import load_manifest
from nnbridge.zoo.tasks import content_hash, fetch, run_model

GOOD = """
[[model]]
name = "tiny"
source = "package:nnbridge/examples/tiny_net.prototxt"
random_weights = 1
targets = ["onnx", "caffe"]
caffe_dialect = "opencv"
input_shapes = { data = [1, 3, 32, 32] }
task = "classification"
[model.preprocess]
channel_order = "RGB"
mean = [1, 2, 3]
[model.dataset]
images = "digits"
limit = 10

[[model]]
name = "local"
source = "nets/a.onnx"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "zoo.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_good_manifest(tmp_path: Path) -> None:
    manifest = load_manifest(write(tmp_path, GOOD))
    tiny, local = manifest.models
    assert Path(tiny.source).is_file() and tiny.source.endswith("examples/tiny_net.prototxt")
    assert tiny.targets == ("onnx", "caffe") and tiny.caffe_dialect == "opencv"
    assert tiny.input_shapes == {"data": [1, 3, 32, 32]} and tiny.random_weights == 1
    assert tiny.preprocess.channel_order == "RGB" and tiny.preprocess.mean == (1.0, 2.0, 3.0)
    assert tiny.dataset is not None and tiny.dataset.images == str(tmp_path / "digits") and tiny.dataset.limit == 10
    assert local.source == str(tmp_path / "nets" / "a.onnx") and local.targets == ("onnx",)
    assert (tiny.line, local.line) == (2, 17)


@pytest.mark.parametrize(("edit", "expected"), [
    (('targets = ["onnx", "caffe"]', 'targets = ["onnx", "tflite"]'), "line 6: model 'tiny', key 'targets'"),
    (('caffe_dialect = "opencv"', 'caffe_dialect = "x"'), "line 7: model 'tiny', key 'caffe_dialect'"),
    (('task = "classification"', 'tsk = "classification"'), "line 9: model 'tiny', key 'tsk': unknown key"),
    (('mean = [1, 2, 3]', 'mean = "blue"'), "line 12: model 'tiny', key 'mean'"),
    (('input_shapes = { data = [1, 3, 32, 32] }', 'input_shapes = { data = [1, -3] }'), "line 8"),
    (('name = "local"', 'name = "tiny"'), "line 18: model name 'tiny' appears twice"),
    (('source = "nets/a.onnx"', 'url = "http://x/a.onnx"'), "line 17: model 'local', key 'source'"),
    (('random_weights = 1', 'random_weights = "one"'), "line 5: model 'tiny', key 'random_weights'"),
])
def test_errors_name_line_and_key(tmp_path: Path, edit: tuple[str, str], expected: str) -> None:
    old, new = edit
    assert old in GOOD
    with pytest.raises(FormatError) as info:
        load_manifest(write(tmp_path, GOOD.replace(old, new, 1)))
    assert expected in str(info.value)
    assert str(info.value).startswith(str(tmp_path / "zoo.toml"))


def test_not_toml_and_empty(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="not valid TOML"):
        load_manifest(write(tmp_path, "[[model]\nname="))
    with pytest.raises(FormatError, match=r"no \[\[model\]\] tables"):
        load_manifest(write(tmp_path, "# nothing\n"))
    with pytest.raises(FormatError, match="no such manifest"):
        load_manifest(tmp_path / "absent.toml")


def test_content_hash_changes_with_bytes_and_options(tmp_path: Path) -> None:
    (tmp_path / "nets").mkdir()
    model = tmp_path / "nets" / "a.onnx"
    model.write_bytes(b"one")
    text = GOOD.split("[[model]]")[2]
    first = content_hash(load_manifest(write(tmp_path, "[[model]]" + text)).models[0])
    assert first == content_hash(load_manifest(write(tmp_path, "[[model]]" + text)).models[0])
    model.write_bytes(b"two")
    second = content_hash(load_manifest(write(tmp_path, "[[model]]" + text)).models[0])
    third = content_hash(load_manifest(write(tmp_path, "[[model]]" + text + 'targets = ["caffe"]\n')).models[0])
    assert len({first, second, third}) == 3


def test_url_offline_and_checksum(tmp_path: Path) -> None:
    data = b"model bytes"
    digest = hashlib.sha256(data).hexdigest()
    text = (f'[[model]]\nname = "net"\nsource = "net.onnx"\nurl = "file://{tmp_path}/src/net.onnx"\n'
            f'sha256 = "{digest}"\n')
    spec = load_manifest(write(tmp_path, text)).models[0]
    with pytest.raises(NNBridgeError, match="--offline forbids fetching"):
        fetch(spec, tmp_path / "report", offline=True)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "net.onnx").write_bytes(data)
    fetched = fetch(spec, tmp_path / "report", offline=False)
    assert Path(fetched).read_bytes() == data
    assert fetch(spec, tmp_path / "report", offline=True) == fetched  # cached and checked: no network needed
    (tmp_path / "src" / "net.onnx").write_bytes(b"tampered")
    with pytest.raises(NNBridgeError, match="has sha256"):
        fetch(spec, tmp_path / "report2", offline=False)  # not cached there: downloads


def test_missing_source_fails_or_skips(tmp_path: Path) -> None:
    text = '[[model]]\nname = "gone"\nsource = "gone.onnx"\n'
    result = run_model(load_manifest(write(tmp_path, text)).models[0], str(tmp_path / "r"))
    assert result["status"] == "failed" and "gone.onnx: no such model file" in result["reason"]
    result = run_model(load_manifest(write(tmp_path, text + "optional = true\n")).models[0], str(tmp_path / "r"))
    assert result["status"] == "skipped"


def test_bundled_example_manifest() -> None:
    from importlib import resources

    path = resources.files("nnbridge.zoo").joinpath("examples/example.toml")
    manifest = load_manifest(str(path))
    names = [m.name for m in manifest.models]
    assert names[:4] == ["tiny_net", "tiny_net_onnx", "tiny_net_mxnet", "digits_cnn_keras"]
    for model in manifest.models:
        if not model.optional:  # shipped with nnbridge: runs offline on a fresh machine
            present = Path(model.source).is_file()
            assert present, model.source
    assert {m.name for m in manifest.models if m.optional} == {"mtcnn_pnet", "mtcnn_rnet", "mtcnn_onet",
                                                                "mobilenetv2_keras", "mobilenet0.25_gluoncv"}
    built = {m.name: (m.source, m.build) for m in manifest.models if m.build}
    assert built == {"mobilenetv2_keras": ("keras.applications:MobileNetV2",
                                           {"input_shape": [96, 96, 3], "alpha": 0.35, "classes": 10}),
                     "mobilenet0.25_gluoncv": ("gluoncv:mobilenet0.25", {"input_shape": [1, 3, 64, 64],
                                                                         "classes": 10})}


def test_cli_reports_a_bad_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from support.cli import run as run_cli

    path = write(tmp_path, GOOD.replace('task = "classification"', 'task = "segmentation"'))
    code, out, err = run_cli(["zoo", "run", str(path), "-o", str(tmp_path / "r")], capsys)
    assert code == 1 and out == ""
    assert f"nnbridge: error: {path}:line 9: model 'tiny', key 'task': 'segmentation'" in err
    assert not (tmp_path / "r").exists()
    good = write(tmp_path, GOOD)
    code, _, err = run_cli(["zoo", "run", str(good), "-o", str(tmp_path / "r"), "--workers", "0"], capsys)
    assert code == 1 and "--workers 0: give at least 1" in err and not (tmp_path / "r").exists()
