"""Prototxt reading: syntax errors with file:line:col, binary input refused, phase filtering as real Caffe,
the three input declaration forms."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from nnbridge.caffe.formats.net import load_caffe
from nnbridge.caffe.formats.prototxt import format_prototxt, parse_prototxt, read_prototxt
from nnbridge.errors import FormatError


def _pycaffe():  # type: ignore[no-untyped-def]
    os.environ.setdefault("GLOG_minloglevel", "2")
    return pytest.importorskip("caffe", reason="real BVLC Caffe (pycaffe) is not installed")


def test_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.prototxt"
    path.write_text('name: "x"\nlayer {\n  name: "a"\n  type: "ReLU"\n  bottom: "data" top:: "a"\n}\n')
    with pytest.raises(FormatError) as info:
        read_prototxt(path)
    message = str(info.value)
    assert f"{path}:5:" in message
    assert info.value.location is not None and info.value.location.startswith("5:")


def test_unknown_field_names_its_place(tmp_path: Path) -> None:
    path = tmp_path / "unknown.prototxt"
    path.write_text('layer {\n  name: "a"\n  type: "ReLU"\n  relu_parm { negative_slope: 0.1 }\n}\n')
    with pytest.raises(FormatError, match=r"unknown\.prototxt:4:\d+: .*relu_parm"):
        read_prototxt(path)


def test_binary_file_given_as_prototxt(tmp_path: Path) -> None:
    path = tmp_path / "model.prototxt"
    path.write_bytes(b"\n\x05caffe\xa2\x06\x10\n\x04conv\x12\x0bConvolution\x00\x01")
    with pytest.raises(FormatError, match="binary caffemodel.*--weights"):
        read_prototxt(path)


def test_print_parse_round_trip(shared_models: Path) -> None:
    net = read_prototxt(shared_models / "caffe/prototxt/bvlc_googlenet.prototxt")
    assert parse_prototxt(format_prototxt(net)) == net


TRAIN_VAL = "caffe/prototxt/bvlc_reference_caffenet_train_val.prototxt"


def test_phase_filter_caffenet_train_val(shared_models: Path) -> None:
    test = load_caffe(shared_models / TRAIN_VAL)
    names = [layer.name for layer in test.net.layer]
    data = [layer for layer in test.net.layer if layer.type == "Data"]
    assert len(data) == 1 and data[0].include[0].phase == 1  # the TEST data layer
    assert data[0].data_param.batch_size == 50
    assert "accuracy" in names and names.count("data") == 1
    train = load_caffe(shared_models / TRAIN_VAL, phase="TRAIN")
    data = [layer for layer in train.net.layer if layer.type == "Data"]
    assert len(data) == 1 and data[0].data_param.batch_size == 256
    assert "accuracy" not in [layer.name for layer in train.net.layer]
    assert [layer.name for layer in train.net.layer if layer.name != "accuracy"] == \
        [name for name in names if name != "accuracy"]


RULES_NET = """
name: "rules"
layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 } } }
layer { name: "always" type: "ReLU" bottom: "data" top: "a0" }
layer { name: "train_only" type: "ReLU" bottom: "data" top: "a1" include { phase: TRAIN } }
layer { name: "test_only" type: "ReLU" bottom: "data" top: "a2" include { phase: TEST } }
layer { name: "not_test" type: "ReLU" bottom: "data" top: "a3" exclude { phase: TEST } }
layer { name: "level_ge2" type: "ReLU" bottom: "data" top: "a4" include { min_level: 2 } }
layer { name: "level_le1" type: "ReLU" bottom: "data" top: "a5" include { max_level: 1 } }
layer { name: "stage_ab" type: "ReLU" bottom: "data" top: "a6" include { stage: "a" stage: "b" } }
layer { name: "not_b" type: "ReLU" bottom: "data" top: "a7" include { not_stage: "b" } }
layer { name: "either" type: "ReLU" bottom: "data" top: "a8"
        include { stage: "a" phase: TRAIN } include { stage: "c" } }
layer { name: "excl_a" type: "ReLU" bottom: "data" top: "a9" exclude { stage: "a" } exclude { min_level: 3 } }
"""

STATES = [("TEST", 0, []), ("TRAIN", 0, []), ("TEST", 2, ["a"]), ("TRAIN", 1, ["a", "b"]),
          ("TEST", 3, ["c"]), ("TRAIN", 5, ["b", "c"])]


@pytest.mark.parametrize(("phase", "level", "stages"), STATES)
def test_phase_level_stage_rules_match_real_caffe(tmp_path: Path, phase: str, level: int,
                                                  stages: list[str]) -> None:
    caffe = _pycaffe()
    path = tmp_path / "rules.prototxt"
    path.write_text(RULES_NET)
    ours = load_caffe(path, phase=phase, level=level, stages=stages)
    real = caffe.Net(str(path), getattr(caffe, phase), level=level, stages=stages)
    real_names = [name for name, layer in zip(real._layer_names, real.layers, strict=True)
                  if layer.type not in ("Input", "Split")]  # Caffe inserts Split layers for shared blobs
    assert [layer.name for layer in ours.net.layer] == real_names


@pytest.mark.parametrize("declaration", [
    'input: "data"\ninput_dim: 2\ninput_dim: 3\ninput_dim: 8\ninput_dim: 9\n'
    'input: "aux"\ninput_dim: 2\ninput_dim: 4\ninput_dim: 1\ninput_dim: 1\n',
    'input: "data"\ninput_shape { dim: 2 dim: 3 dim: 8 dim: 9 }\n'
    'input: "aux"\ninput_shape { dim: 2 dim: 4 dim: 1 dim: 1 }\n',
    'layer { name: "in" type: "Input" top: "data" top: "aux"\n'
    '  input_param { shape { dim: 2 dim: 3 dim: 8 dim: 9 } shape { dim: 2 dim: 4 dim: 1 dim: 1 } } }\n',
], ids=["input_dim", "input_shape", "Input_layer"])
def test_input_declarations(tmp_path: Path, declaration: str) -> None:
    path = tmp_path / "inputs.prototxt"
    path.write_text(declaration + 'layer { name: "relu" type: "ReLU" bottom: "data" top: "out" }\n')
    net = load_caffe(path)
    assert [(spec.name, spec.shape) for spec in net.inputs] == [("data", (2, 3, 8, 9)), ("aux", (2, 4, 1, 1))]
    assert [layer.type for layer in net.net.layer] == ["ReLU"]
    assert not net.net.input and not net.net.input_dim and not net.net.input_shape
    caffe = _pycaffe()
    real = caffe.Net(str(path), caffe.TEST)
    assert {name: tuple(real.blobs[name].data.shape) for name in ("data", "aux")} == \
        {spec.name: spec.shape for spec in net.inputs}


def test_input_shape_override_and_absurd_shapes(tmp_path: Path) -> None:
    path = tmp_path / "inputs.prototxt"
    path.write_text('input: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 8\ninput_dim: 8\n'
                    'layer { name: "relu" type: "ReLU" bottom: "data" top: "out" }\n')
    assert load_caffe(path, input_shapes={"data": (4, 3, 16, 16)}).inputs[0].shape == (4, 3, 16, 16)
    with pytest.raises(FormatError, match="impossible shape"):
        load_caffe(path, input_shapes={"data": (1, -3, 16, 16)})
    with pytest.raises(FormatError, match="impossible shape"):
        load_caffe(path, input_shapes={"data": (1024, 1024, 1024, 4)})
    with pytest.raises(FormatError, match="unknown inputs: nope"):
        load_caffe(path, input_shapes={"nope": (1, 3)})
    path.write_text('input: "data"\ninput_dim: 1\ninput_dim: 3\n'
                    'layer { name: "relu" type: "ReLU" bottom: "data" top: "out" }\n')
    with pytest.raises(FormatError, match="four numbers"):
        load_caffe(path)


def test_single_shape_shared_by_all_tops(tmp_path: Path) -> None:
    path = tmp_path / "shared.prototxt"
    path.write_text('layer { name: "in" type: "Input" top: "a" top: "b" input_param { shape { dim: 1 dim: 5 } } }\n')
    assert [spec.shape for spec in load_caffe(path).inputs] == [(1, 5), (1, 5)]
    assert np.prod(load_caffe(path).inputs[0].shape) == 5
