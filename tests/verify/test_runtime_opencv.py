"""The OpenCV runtime returns every blob it can, equal to real Caffe's (pycaffe).

Regressions: OpenCV 4.14 names Convolution layers after their top blob (so a layer looked up by its
prototxt name was "missing"), and a MAX Pooling layer gives two blobs (values, argmax mask) for its one
top (so it was skipped). Then a real mid-size net (SqueezeNet v1.1, random weights with realistic
statistics): every blob OpenCV returns must equal pycaffe's, and nearly all of pycaffe's blobs must come
back.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from nnbridge.caffe.formats.net import load_caffe, save_caffe
from nnbridge.caffe.formats.prototxt import parse_prototxt
from nnbridge.caffe.importer import import_layers
from nnbridge.caffe.weights import RandomWeights
from nnbridge.verify.compare import compare
from nnbridge.verify.runtimes.caffe_opencv import match_layers
from nnbridge.verify.worker import available_runtimes, run_in_worker

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "models"

CONV_POOL = """
name: "conv_pool"
input: "data"
input_shape { dim: 2 dim: 3 dim: 11 dim: 11 }
layer { name: "conv" type: "Convolution" bottom: "data" top: "features"
  convolution_param { num_output: 6 kernel_size: 3 pad: 1 } }
layer { name: "pool" type: "Pooling" bottom: "features" top: "pooled"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
"""


def _needs(*runtimes: str) -> None:
    for runtime in runtimes:
        if not available_runtimes()[runtime]:
            pytest.skip(f"{runtime} is not available")


def random_caffemodel(prototxt: Path, folder: Path, seed: int = 0,
                      input_shapes: dict[str, list[int]] | None = None) -> tuple[Path, Path]:
    """``prototxt`` rewritten as a deploy net into ``folder`` + a caffemodel of realistic random weights."""
    net = load_caffe(prototxt, input_shapes=input_shapes)
    weights = RandomWeights(seed)
    import_layers(list(net.net.layer), net.inputs, weights, source=str(prototxt))  # draws every blob
    out, caffemodel = folder / prototxt.name, folder / f"{prototxt.stem}.caffemodel"
    save_caffe(net, weights.served, out, caffemodel)
    return out, caffemodel


def test_match_layers_by_name_then_single_top() -> None:
    layers = list(parse_prototxt(CONV_POOL + """
layer { name: "relu" type: "ReLU" bottom: "pooled" top: "pooled" }
layer { name: "split" type: "Slice" bottom: "pooled" top: "a" top: "b" }
""").layer)
    opencv = {"features": "Convolution", "pool": "Pooling", "relu": "ReLU", "split": "Slice"}
    assert match_layers(layers, opencv) == {"conv": "features", "pool": "pool", "relu": "relu", "split": "split"}
    # a layer named like another layer's top: the OpenCV layer of the right type wins, each matched once
    assert match_layers(layers[:2], {"pool": "Pooling", "pooled": "Convolution", "features": "Convolution"}) == \
        {"conv": "features", "pool": "pool"}
    assert match_layers(layers, {"pool": "Pooling"}) == {"pool": "pool"}


def test_conv_and_max_pool_blobs_equal_pycaffe(tmp_path: Path) -> None:
    _needs("pycaffe", "opencv")
    source = tmp_path / "source" / "conv_pool.prototxt"
    source.parent.mkdir()
    source.write_text(CONV_POOL)
    prototxt, caffemodel = random_caffemodel(source, tmp_path)
    inputs = {"data": np.random.default_rng(1).standard_normal((2, 3, 11, 11)).astype(np.float32)}
    ref = run_in_worker("pycaffe", [prototxt, caffemodel], inputs)
    got = run_in_worker("opencv", [prototxt, caffemodel], inputs)
    assert list(got) == ["data", "features", "pooled"]
    assert got["pooled"].shape == (2, 6, 5, 5)
    result = compare(ref, got, outputs=["features", "pooled"], rtol=1e-5)
    assert result.passed, result.table()
    assert [row.name for row in result.rows] == ["data", "features", "pooled"]


@pytest.mark.parametrize("name", ["squeezenet_v1.1"])
def test_real_net_blobs_equal_pycaffe(name: str, tmp_path: Path) -> None:
    _needs("pycaffe", "opencv")
    source = SHARED / "caffe" / "prototxt" / f"{name}.prototxt"
    if not source.is_file():
        pytest.skip(f"{source} is not available (../shared/models)")
    os.environ.setdefault("GLOG_minloglevel", "2")
    shapes = {spec.name: [1, *spec.shape[1:]] for spec in load_caffe(source).inputs}
    prototxt, caffemodel = random_caffemodel(source, tmp_path, seed=7, input_shapes=shapes)
    rng = np.random.default_rng(2)
    inputs = {n: rng.standard_normal(s).astype(np.float32) for n, s in shapes.items()}
    ref = run_in_worker("pycaffe", [prototxt, caffemodel], inputs)
    got = run_in_worker("opencv", [prototxt, caffemodel], inputs)
    result = compare(ref, got, outputs=ref.outputs, rtol=1e-4)
    assert result.passed, result.table()
    returned = [blob for blob in ref if blob in got]
    assert len(returned) >= 0.9 * len(ref), f"OpenCV misses {sorted(set(ref) - set(got))}"
    assert len(result.rows) == len(returned)
