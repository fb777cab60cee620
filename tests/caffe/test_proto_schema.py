"""Tests of nnbridge's Caffe schema (``nnbridge/caffe/proto/caffe.proto``) and its generated module.

References, not our own code: protoc (the committed ``caffe_pb2.py`` must be what protoc makes of
``caffe.proto``), pycaffe's ``caffe.proto.caffe_pb2`` (every message/field/enum it defines must exist
here with the same number, type, label and default, except the documented conflicts below), real
prototxt/caffemodel files parsed by both schemas (identical wire bytes), and every protobuf runtime
in nnbridge's declared range ``protobuf>=3.20.3,<8`` loading the generated module.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, text_format

from nnbridge.caffe.proto import caffe_pb2

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PROTO = SRC / "nnbridge/caffe/proto/caffe.proto"
PB2 = SRC / "nnbridge/caffe/proto/caffe_pb2.py"
SHARED_CAFFE = ROOT.parent / "shared" / "models" / "caffe"

# Where pycaffe's schema (a fork build: "brocolli") and ours knowingly disagree, with the reason.
# Anything not listed here must match exactly.
KNOWN_CONFLICTS = {
    "SolverParameter.eval_type": "SSD's 41 is BVLC master's layer_wise_reduce; kept by name only",
    "SolverParameter.ap_version": "SSD's 42 is BVLC master's weights; kept by name only",
    "TransformationParameter.old_resize_param": "field 8 keeps SSD's name resize_param",
    "ConvolutionParameter.stride_h": "BVLC declares no default (fork build says 1)",
    "ConvolutionParameter.stride_w": "BVLC declares no default (fork build says 1)",
    "DetectionOutputParameter.save_file": "SSD puts save_file at 12",
    "DetectionOutputParameter.thresholds": "fork's 12 is SSD's save_file; kept by name only",
    "PoolingParameter.ceil_mode": "BVLC master's 13 is round_mode; ceil_mode kept by name only",
    "PriorBoxParameter.clip": "SSD's default is false (OpenCV/fork copies say true)",
}


def _pycaffe_pb2() -> ModuleType:
    os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        from caffe.proto import caffe_pb2 as theirs
    except Exception as exc:  # pycaffe absent or broken: nothing to compare against
        pytest.skip(f"pycaffe not importable: {exc}")
    return theirs


def _field_key(field: Any) -> tuple[Any, ...]:
    """Everything about a field that the binary and text formats depend on."""
    default = None if field.is_repeated else field.default_value
    if isinstance(default, float):
        default = struct.unpack("<f", struct.pack("<f", default))[0] if field.type == 2 else default
    kind = field.message_type or field.enum_type
    return (field.number, field.type, field.is_repeated, field.is_required,
            field.has_default_value, default, kind.name if kind else None)


def _schema_differences(theirs: Any, ours: Any, path: str = "") -> list[str]:
    """Differences of ``ours`` from ``theirs`` (message descriptors), recursively."""
    problems: list[str] = []
    for enum in theirs.enum_types:
        mine = ours.enum_types_by_name.get(enum.name)
        if mine is None:
            problems.append(f"missing enum {path}{enum.name}")
            continue
        for value in enum.values:
            other = mine.values_by_name.get(value.name)
            if other is None or other.number != value.number:
                problems.append(f"enum value {path}{enum.name}.{value.name}")
    for nested in theirs.nested_types:
        mine = ours.nested_types_by_name.get(nested.name)
        if mine is None:
            problems.append(f"missing message {path}{nested.name}")
        else:
            problems += _schema_differences(nested, mine, f"{path}{nested.name}.")
    for field in theirs.fields:
        name = f"{path}{field.name}"
        if name in KNOWN_CONFLICTS:
            continue
        mine = ours.fields_by_name.get(field.name)
        if mine is None:
            problems.append(f"missing field {name} = {field.number}")
        elif _field_key(mine) != _field_key(field):
            problems.append(f"field {name}: ours {_field_key(mine)} vs pycaffe {_field_key(field)}")
    return problems


def test_descriptor_name_and_package() -> None:
    assert caffe_pb2.DESCRIPTOR.name == "nnbridge/caffe/proto/caffe.proto"
    assert caffe_pb2.DESCRIPTOR.package == "nnbridge.caffe"
    assert descriptor_pb2.FileDescriptorProto.FromString(caffe_pb2.DESCRIPTOR.serialized_pb).syntax in ("", "proto2")


def _normalise(messages: Any) -> None:
    """Undo what protoc's Python generator does to descriptors: no json_name, float defaults
    rewritten in shortest-round-trip float32 form ("0.999" -> "0.999000013")."""
    for message in messages:
        for field in message.field:
            field.ClearField("json_name")
            if field.type == field.TYPE_FLOAT and field.HasField("default_value"):
                value = struct.unpack("<f", struct.pack("<f", float(field.default_value)))[0]
                field.default_value = repr(value)
        _normalise(message.nested_type)


def test_committed_module_matches_proto(tmp_path: Path) -> None:
    """caffe_pb2.py embeds exactly the descriptor protoc builds from caffe.proto."""
    protoc = shutil.which("protoc") or "/usr/bin/protoc"
    if not Path(protoc).exists() and shutil.which(protoc) is None:
        pytest.skip("protoc not installed")
    out = tmp_path / "caffe.pb"
    subprocess.run([protoc, f"-I{SRC}", f"--descriptor_set_out={out}", str(PROTO)], check=True)
    built = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    embedded = descriptor_pb2.FileDescriptorProto.FromString(caffe_pb2.DESCRIPTOR.serialized_pb)
    _normalise(built.message_type)
    _normalise(embedded.message_type)
    assert embedded == built, "caffe_pb2.py is stale: run scripts/gen_caffe_proto.py"


@pytest.mark.parametrize("first", ["ours", "pycaffe"])
def test_coexists_with_pycaffe(first: str) -> None:
    """Both schemas load into one process (one default descriptor pool), in either order."""
    _pycaffe_pb2()
    imports = ["from nnbridge.caffe.proto import caffe_pb2 as ours", "from caffe.proto import caffe_pb2 as theirs"]
    if first == "pycaffe":
        imports.reverse()
    code = "\n".join([*imports, "assert ours.NetParameter.DESCRIPTOR.full_name == 'nnbridge.caffe.NetParameter'",
                      "assert theirs.NetParameter.DESCRIPTOR.full_name == 'caffe.NetParameter'"])
    env = {**os.environ, "GLOG_minloglevel": "2"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]


def test_every_pycaffe_definition_exists_here() -> None:
    theirs = _pycaffe_pb2().DESCRIPTOR
    ours = caffe_pb2.DESCRIPTOR
    problems: list[str] = []
    for name, enum in theirs.enum_types_by_name.items():
        mine = ours.enum_types_by_name.get(name)
        if mine is None or {v.name: v.number for v in mine.values} != {v.name: v.number for v in enum.values}:
            problems.append(f"top-level enum {name}")
    for name, message in theirs.message_types_by_name.items():
        mine = ours.message_types_by_name.get(name)
        if mine is None:
            problems.append(f"missing message {name}")
        else:
            problems += _schema_differences(message, mine, f"{name}.")
    assert not problems, "\n".join(problems)


# BVLC master fields that a fork build of pycaffe may lack: (message, field) -> (number, default).
BVLC_MASTER_FIELDS = {
    ("LayerParameter", "swish_param"): (147, None),
    ("LayerParameter", "clip_param"): (148, None),
    ("SwishParameter", "beta"): (1, 1.0),
    ("ClipParameter", "min"): (1, None),
    ("ClipParameter", "max"): (2, None),
    ("PoolingParameter", "round_mode"): (13, 0),
    ("SolverParameter", "layer_wise_reduce"): (41, True),
    ("SolverParameter", "weights"): (42, None),
    ("InfogainLossParameter", "axis"): (2, 1),
}


def test_bvlc_master_fields() -> None:
    for (message, field), (number, default) in BVLC_MASTER_FIELDS.items():
        descriptor = caffe_pb2.DESCRIPTOR.message_types_by_name[message].fields_by_name[field]
        assert descriptor.number == number, (message, field)
        if default is not None:
            assert descriptor.default_value == default, (message, field)
    assert caffe_pb2.PoolingParameter.FLOOR == 1 and caffe_pb2.PoolingParameter.CEIL == 0


SSD_TEXT = """
name: "ssd_head"
layer { name: "perm" type: "Permute" bottom: "loc" top: "perm" permute_param { order: 0 order: 2 order: 3 order: 1 } }
layer { name: "norm" type: "Normalize" bottom: "conv4_3" top: "norm"
  norm_param { across_spatial: false channel_shared: false eps: 1e-10 scale_filler { type: "constant" value: 20 } } }
layer { name: "pb" type: "PriorBox" bottom: "norm" bottom: "data" top: "pb"
  prior_box_param { min_size: 30 max_size: 60 aspect_ratio: 2 flip: true clip: false
    variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2 step: 8 offset: 0.5 } }
layer { name: "det" type: "DetectionOutput" bottom: "loc" bottom: "conf" bottom: "pb" top: "det"
  include { phase: TEST }
  detection_output_param { num_classes: 21 share_location: true background_label_id: 0
    nms_param { nms_threshold: 0.45 top_k: 400 } code_type: CENTER_SIZE keep_top_k: 200
    confidence_threshold: 0.01 save_output_param { label_map_file: "labelmap.prototxt" } } }
layer { name: "up" type: "Upsample" bottom: "a" top: "b" upsample_param { scale: 2 } }
layer { name: "ip" type: "Interp" bottom: "a" top: "c" interp_param { zoom_factor: 2 pad_beg: 0 } }
layer { name: "sh" type: "ShuffleChannel" bottom: "a" top: "d" shuffle_channel_param { group: 3 } }
layer { name: "pool" type: "Pooling" bottom: "a" top: "e"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 ceil_mode: false round_mode: FLOOR } }
"""


def test_ssd_and_fork_text_parses() -> None:
    net = text_format.Parse(SSD_TEXT, caffe_pb2.NetParameter())
    layers = {layer.name: layer for layer in net.layer}
    assert list(layers["perm"].permute_param.order) == [0, 2, 3, 1]
    assert layers["norm"].norm_param.scale_filler.value == 20 and not layers["norm"].norm_param.across_spatial
    prior = layers["pb"].prior_box_param
    assert list(prior.min_size) == [30] and list(prior.max_size) == [60] and prior.step == 8
    assert list(prior.variance) == pytest.approx([0.1, 0.1, 0.2, 0.2])
    det = layers["det"].detection_output_param
    assert det.code_type == caffe_pb2.PriorBoxParameter.CENTER_SIZE and det.keep_top_k == 200
    assert det.nms_param.nms_threshold == pytest.approx(0.45) and det.nms_param.top_k == 400
    assert layers["up"].upsample_param.scale == 2 and layers["sh"].shuffle_channel_param.group == 3
    assert layers["ip"].interp_param.zoom_factor == 2
    assert layers["pool"].pooling_param.round_mode == caffe_pb2.PoolingParameter.FLOOR
    assert layers["pool"].pooling_param.HasField("ceil_mode") and not layers["pool"].pooling_param.ceil_mode
    again = caffe_pb2.NetParameter.FromString(net.SerializeToString())
    assert again == net


def test_ssd_wire_numbers() -> None:
    """prior_box_param etc. are written under SSD's field numbers (203, 204, 202, 206)."""
    layer = caffe_pb2.LayerParameter()
    layer.prior_box_param.min_size.append(1.0)
    assert layer.SerializeToString()[:2] == bytes([(203 << 3 | 2) & 0x7F | 0x80, (203 << 3 | 2) >> 7])
    for field, number in [("permute_param", 202), ("detection_output_param", 204), ("norm_param", 206)]:
        assert caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name[field].number == number


def _shared_files(pattern: str) -> list[Path]:
    if not SHARED_CAFFE.is_dir():
        pytest.skip(f"real models not available: {SHARED_CAFFE} does not exist")
    return sorted(SHARED_CAFFE.glob(pattern))


def test_real_prototxts_parse_like_pycaffe() -> None:
    """Real prototxts parse here and in pycaffe to the same wire bytes."""
    theirs = _pycaffe_pb2()
    files = _shared_files("*/*.prototxt")
    assert files
    for path in files:
        text = path.read_text()
        ours = text_format.Parse(text, caffe_pb2.NetParameter())
        ref = text_format.Parse(text, theirs.NetParameter())
        assert ours.SerializeToString(deterministic=True) == ref.SerializeToString(deterministic=True), path.name


def test_real_caffemodels_parse_like_pycaffe() -> None:
    """Binary caffemodels (MTCNN, V1 `layers`) parse here and in pycaffe to equal messages."""
    theirs = _pycaffe_pb2()
    files = _shared_files("mtcnn/*.caffemodel")
    assert files
    for path in files:
        data = path.read_bytes()
        ours = caffe_pb2.NetParameter.FromString(data)
        ref = theirs.NetParameter.FromString(data)
        wire = ours.SerializeToString(deterministic=True)
        assert wire == ref.SerializeToString(deterministic=True), path.name
        # Fields neither schema knows (det1 carries an unknown float in a softmax_param) are kept
        # as unknowns by both; what each schema *understands* must also agree.
        ours.DiscardUnknownFields()
        ref.DiscardUnknownFields()
        assert ours.SerializeToString(deterministic=True) == ref.SerializeToString(deterministic=True)
        assert len(ours.layer) + len(ours.layers) > 0


# ---------------------------------------------------------------------------
# The generated module under every protobuf runtime nnbridge declares (>=3.20.3,<8).
# ---------------------------------------------------------------------------

PROTOBUF_VERSIONS = ["3.20.3", "4.25.*", "5.29.*", "6.*", "installed"]
PROTOBUF_CACHE = Path.home() / ".cache" / "nnbridge-test-protobuf"

# Runs in a fresh interpreter: loads caffe_pb2.py by path (not through the nnbridge package, whose
# other modules need newer libraries), parses a prototxt, round-trips it and a packed float blob.
PROBE = textwrap.dedent(
    """
    import importlib.util, json, sys
    from google.protobuf import __version__ as version, text_format
    spec = importlib.util.spec_from_file_location("nnbridge.caffe.proto.caffe_pb2", sys.argv[1])
    pb2 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pb2)
    net = text_format.Parse(sys.argv[2], pb2.NetParameter())
    again = pb2.NetParameter.FromString(net.SerializeToString())
    blob = pb2.BlobProto(data=[0.5, -1.25, 3.0e-8, 65504.0])
    blob.shape.dim.extend([2, 2])
    wire = blob.SerializeToString()
    back = pb2.BlobProto.FromString(wire)
    print(json.dumps({"version": version, "same": again == net, "layers": len(again.layer),
                      "pool": again.layer[-1].pooling_param.round_mode,
                      "data": list(back.data), "wire": wire.hex()}))
    """
)


def _protobuf_target(spec: str) -> Path:
    """A ``pip install --target`` directory holding protobuf ``spec``, cached across runs."""
    target = PROTOBUF_CACHE / re.sub(r"[^0-9A-Za-z.]+", "x", spec)
    if (target / "google" / "protobuf").is_dir():
        return target
    staging = Path(f"{target}.tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
           "--target", str(staging), f"protobuf=={spec}"]
    try:
        run = subprocess.run(pip, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.skip(f"pip could not install protobuf=={spec} in time")
    if run.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        pytest.skip(f"pip could not install protobuf=={spec}: {run.stderr.strip()[-300:]}")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        staging.rename(target)
    except OSError:  # another run installed it meanwhile
        shutil.rmtree(staging, ignore_errors=True)
    return target


@pytest.mark.parametrize("spec", PROTOBUF_VERSIONS)
def test_generated_module_loads_under_protobuf(spec: str, tmp_path: Path) -> None:
    text = SSD_TEXT
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    if spec == "installed":
        command = [sys.executable, "-c", PROBE, str(PB2), text]
    else:
        target = _protobuf_target(spec)
        # -S: no site-packages at all, so only the target's protobuf is importable.
        code = f"import sys; sys.path.insert(0, {str(target)!r})\n{PROBE}"
        command = [sys.executable, "-S", "-c", code, str(PB2), text]
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    wanted = spec.rstrip("*").rstrip(".")
    if spec != "installed":
        assert result["version"].startswith(wanted), result["version"]
    assert result["same"] and result["layers"] == 8 and result["pool"] == 1
    assert result["data"] == [0.5, -1.25, struct.unpack("<f", struct.pack("<f", 3.0e-8))[0], 65504.0]
    # Packed: data is field 5, wire type 2 (tag 0x2a), length 16, then four little-endian floats.
    packed = bytes([0x2A, 16]) + struct.pack("<4f", 0.5, -1.25, 3.0e-8, 65504.0)
    assert packed.hex() in result["wire"]
