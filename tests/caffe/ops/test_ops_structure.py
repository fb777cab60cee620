"""Structural layer importers (eltwise, shape, reduce, resize) against REAL Caffe and, for fork layers that
pycaffe does not have, against OpenCV's Caffe importer.

Every row of the tables is a small net run in pycaffe on seeded N(0, 1) inputs and compared blob by blob with
the hub model run by onnxruntime (tests/support/layer_check.py).
"""

from __future__ import annotations

import os

import pytest

from support.layer_check import check_layer

os.environ.setdefault("GLOG_minloglevel", "2")

SHAPE = (2, 6, 4, 5)


def _dims(shape: tuple[int, ...]) -> str:
    return " ".join(f"dim: {d}" for d in shape)


def net(body: str, *shapes: tuple[int, ...]) -> str:
    """A net with inputs ``data``, ``data1``, ... of the given shapes (default one input of SHAPE)."""
    text = 'name: "t"\n'
    for i, shape in enumerate(shapes or (SHAPE,)):
        text += f'input: "data{i or ""}"\ninput_shape {{ {_dims(shape)} }}\n'
    return text + body


def layer(layer_type: str, params: str = "", *, bottoms: tuple[str, ...] = ("data",),
          tops: tuple[str, ...] = ("out",), name: str = "l") -> str:
    b = " ".join(f'bottom: "{x}"' for x in bottoms)
    t = " ".join(f'top: "{x}"' for x in tops)
    return f'layer {{ name: "{name}" type: "{layer_type}" {b} {t} {params} }}\n'


# -- Eltwise -----------------------------------------------------------------------------------------
ELTWISE = {
    "prod2": ("PROD", "", 2),
    "prod3": ("PROD", "", 3),
    "sum2": ("SUM", "", 2),
    "sum3": ("SUM", "", 3),
    "sum_sub": ("SUM", "coeff: 1 coeff: -1", 2),
    "sum_neg_first": ("SUM", "coeff: -1 coeff: 1", 2),
    "sum_coeffs3": ("SUM", "coeff: 0.5 coeff: -1 coeff: 2", 3),
    "sum_odd_coeffs3": ("SUM", "coeff: -2.5 coeff: 0.3 coeff: 1", 3),
    "max2": ("MAX", "", 2),
    "max3": ("MAX", "", 3),
}


@pytest.mark.parametrize("case", sorted(ELTWISE))
def test_eltwise(case: str) -> None:
    op, coeffs, count = ELTWISE[case]
    bottoms = tuple(f"data{i or ''}" for i in range(count))
    body = layer("Eltwise", f"eltwise_param {{ operation: {op} {coeffs} }}", bottoms=bottoms)
    check_layer(net(body, *([SHAPE] * count)))


# -- Concat / Slice / Split ----------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1])
def test_concat(axis: int) -> None:
    other = list(SHAPE)
    other[axis] += 2
    check_layer(net(layer("Concat", f"concat_param {{ axis: {axis} }}", bottoms=("data", "data1")),
                    SHAPE, tuple(other)))


def test_concat_legacy_concat_dim() -> None:
    check_layer(net(layer("Concat", "concat_param { concat_dim: 2 }", bottoms=("data", "data1")),
                    SHAPE, (2, 6, 3, 5)))


SLICES = {
    "points_axis1": ("axis: 1 slice_point: 1 slice_point: 4", 3),
    "points_axis2": ("axis: 2 slice_point: 3", 2),
    "equal_axis1": ("axis: 1", 3),
    "equal_axis2": ("axis: 2", 2),
    "legacy_slice_dim": ("slice_dim: 3 slice_point: 2", 2),
    "negative_axis": ("axis: -1 slice_point: 1 slice_point: 2", 3),
}


@pytest.mark.parametrize("case", sorted(SLICES))
def test_slice(case: str) -> None:
    params, tops = SLICES[case]
    names = tuple(f"s{i}" for i in range(tops))
    check_layer(net(layer("Slice", f"slice_param {{ {params} }}", tops=names)))


def test_split_and_silence() -> None:
    body = (layer("Split", tops=("a", "b", "c"), name="split")
            + layer("Eltwise", "eltwise_param { operation: SUM }", bottoms=("a", "b"), name="sum")
            + layer("Silence", bottoms=("c",), tops=(), name="silence"))
    check_layer(net(body))


# -- Flatten / Reshape -----------------------------------------------------------------------------------
FLATTEN = {
    "default": "",
    "axis2": "axis: 2",
    "axis1_end2": "axis: 1 end_axis: 2",
    "axis0_end1": "axis: 0 end_axis: 1",
    "negative": "axis: -3 end_axis: -2",
    "single_axis": "axis: 3 end_axis: 3",
}


@pytest.mark.parametrize("case", sorted(FLATTEN))
def test_flatten(case: str) -> None:
    check_layer(net(layer("Flatten", f"flatten_param {{ {FLATTEN[case]} }}")))


RESHAPE = {
    "copy_and_infer": "shape { dim: 0 dim: -1 }",
    "copy_two_infer": "shape { dim: 0 dim: 0 dim: -1 }",
    "infer_first": "shape { dim: -1 dim: 10 }",
    "full": "shape { dim: 4 dim: 3 dim: 20 }",
    "axis1_num_axes1": "shape { dim: 2 dim: 3 } axis: 1 num_axes: 1",
    "append_axis": "shape { dim: 1 } axis: -1 num_axes: 0",
    "axis2_infer": "shape { dim: -1 } axis: 2",
    "axis_neg2_copy": "shape { dim: 0 dim: 1 } axis: -2",
    "insert_front": "shape { dim: 1 } axis: 0 num_axes: 0",
}


@pytest.mark.parametrize("case", sorted(RESHAPE))
def test_reshape(case: str) -> None:
    check_layer(net(layer("Reshape", f"reshape_param {{ {RESHAPE[case]} }}")))


# -- Crop / Tile / Permute -----------------------------------------------------------------------------
CROPS = {
    "axis1_scalar": ("axis: 1 offset: 1", (2, 4, 2, 3)),
    "axis2_default_offset": ("axis: 2", (2, 6, 2, 3)),
    "axis2_scalar": ("axis: 2 offset: 1", (2, 6, 2, 3)),
    "axis2_per_axis": ("axis: 2 offset: 2 offset: 1", (2, 6, 2, 3)),
    "axis3_scalar": ("axis: 3 offset: 2", (2, 6, 4, 3)),
    "axis1_per_axis": ("axis: 1 offset: 2 offset: 0 offset: 1", (2, 3, 3, 4)),
    "negative_axis": ("axis: -1 offset: 1", (1, 1, 1, 2)),
}


@pytest.mark.parametrize("case", sorted(CROPS))
def test_crop(case: str) -> None:
    params, ref = CROPS[case]
    check_layer(net(layer("Crop", f"crop_param {{ {params} }}", bottoms=("data", "data1")), SHAPE, ref))


@pytest.mark.parametrize("params", ["axis: 1 tiles: 3", "axis: -1 tiles: 2", "axis: 0 tiles: 2", "tiles: 1"])
def test_tile(params: str) -> None:
    check_layer(net(layer("Tile", f"tile_param {{ {params} }}")))


@pytest.mark.parametrize("order", [(0, 2, 3, 1), (0, 3, 1, 2), (1, 0), (0, 1, 2, 3), (3,)])
def test_permute(order: tuple[int, ...]) -> None:
    """Permute (SSD) exists in this pycaffe build; missing axes are appended in increasing order."""
    params = " ".join(f"order: {o}" for o in order)
    check_layer(net(layer("Permute", f"permute_param {{ {params} }}")))


# -- Reduction / ArgMax ----------------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["SUM", "ASUM", "SUMSQ", "MEAN"])
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
@pytest.mark.parametrize("coeff", [1.0, -0.5])
def test_reduction(op: str, axis: int, coeff: float) -> None:
    check_layer(net(layer("Reduction", f"reduction_param {{ operation: {op} axis: {axis} coeff: {coeff} }}")))


ARGMAX = {
    "flat_top1": ("", SHAPE),
    "flat_top3": ("top_k: 3", SHAPE),
    "flat_max_val": ("out_max_val: true top_k: 2", SHAPE),
    "flat_2d": ("out_max_val: true top_k: 4", (3, 10)),
    "axis1": ("axis: 1", SHAPE),
    "axis1_top3_max_val": ("axis: 1 top_k: 3 out_max_val: true", SHAPE),
    "axis3_top2": ("axis: 3 top_k: 2", SHAPE),
    "axis_neg2_max_val": ("axis: -2 out_max_val: true", SHAPE),
}


@pytest.mark.parametrize("case", sorted(ARGMAX))
def test_argmax(case: str) -> None:
    params, shape = ARGMAX[case]
    check_layer(net(layer("ArgMax", f"argmax_param {{ {params} }}"), shape))


# -- Upsample (in this pycaffe build: nearest neighbour, upsample_param.scale) -------------------------
@pytest.mark.parametrize("scale", [1, 2, 3])
def test_upsample(scale: int) -> None:
    check_layer(net(layer("Upsample", f"upsample_param {{ scale: {scale} }}")))


# -- refusals: what Caffe itself rejects (or cannot compute) is a ConversionError naming the layer ------
REFUSED = {
    "reshape_count": (layer("Reshape", "reshape_param { shape { dim: 0 dim: 7 } }"), "elements"),
    "reshape_two_inferred": (layer("Reshape", "reshape_param { shape { dim: -1 dim: -1 } }"), "more than one -1"),
    "slice_points": (layer("Slice", "slice_param { axis: 1 slice_point: 4 slice_point: 2 }",
                           tops=("a", "b", "c")), "increase"),
    "slice_unequal": (layer("Slice", "slice_param { axis: 1 }", tops=("a", "b", "c", "d")), "equal parts"),
    "eltwise_coeffs": (layer("Eltwise", "eltwise_param { coeff: 1 }", bottoms=("data", "data")), "coeff"),
    "segnet_upsample": (layer("Upsample", "upsample_param { scale: 2 }", bottoms=("data", "data")), "SegNet"),
    "crop_too_far": (layer("Crop", "crop_param { axis: 2 offset: 3 }", bottoms=("data", "data")), "exceeds"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused(case: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from nnbridge.caffe.formats.net import load_caffe
    from nnbridge.caffe.importer import import_layers
    from nnbridge.caffe.weights import DictWeights
    from nnbridge.errors import ConversionError

    body, message = REFUSED[case]
    path = tmp_path / "net.prototxt"
    path.write_text(net(body))
    loaded = load_caffe(path)
    with pytest.raises(ConversionError, match=message) as info:
        import_layers(list(loaded.net.layer), loaded.inputs, DictWeights({}), source=str(path))
    assert "'l'" in str(info.value)
