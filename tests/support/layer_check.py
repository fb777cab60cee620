"""Per-layer and whole-net checks against REAL Caffe.

``check_layer(prototxt_text)``:
1. builds the net in real Caffe (pycaffe), fills every parameter blob with realistic random values
   (or the given ``weights``), runs forward on seeded N(0, 1) inputs (or ``inputs``) and keeps every blob;
2. parses the prototxt with nnbridge's own schema, imports it into the hub with the same weights, runs the hub
   model in onnxruntime (custom-domain ops through their numpy references) with every intermediate value,
   and compares every blob present on both sides by name (shape, dtype, then values; graph outputs must match);
3. with ``roundtrip=True``, exports the hub model back to Caffe, saves it with nnbridge's writer, runs it in
   real Caffe and compares again.

Any failure raises ``AssertionError`` with the comparison table.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("GLOG_minloglevel", "2")

#: Which kind of statistics each parameter blob of a layer type gets (see nnbridge.caffe.weights).
BLOB_KINDS: dict[str, Sequence[str]] = {
    "Convolution": ("weight", "bias"),
    "Deconvolution": ("weight", "bias"),
    "InnerProduct": ("weight", "bias"),
    "BatchNorm": ("mean", "var", "scale_factor"),
    "Scale": ("gamma", "beta"),
    "Bias": ("beta",),
    "PReLU": ("slope",),
    "Normalize": ("gamma",),
    "Embed": ("weight", "bias"),
}


def caffe_module():  # type: ignore[no-untyped-def]
    """pycaffe, or a pytest skip when real Caffe is not installed."""
    try:
        import caffe
    except ImportError:
        pytest.skip("real BVLC Caffe (pycaffe) is not installed; run .ci/run to build it")
    return caffe


def realistic_blob(rng: np.random.Generator, kind: str, shape: tuple[int, ...]) -> np.ndarray:
    if kind == "weight":
        fan_in = int(np.prod(shape[1:])) if len(shape) >= 2 else max(int(shape[0]), 1)
        out = rng.normal(0.0, np.sqrt(2.0 / max(fan_in, 1)), shape)
    elif kind in ("bias", "beta"):
        out = rng.normal(0.0, 0.1, shape)
    elif kind == "mean":
        out = rng.normal(0.0, 0.2, shape)
    elif kind == "var":
        out = rng.uniform(0.5, 1.5, shape)
    elif kind == "scale_factor":
        out = np.ones(shape)
    elif kind == "gamma":
        out = rng.uniform(0.5, 1.5, shape)
    elif kind == "slope":
        out = rng.uniform(0.1, 0.4, shape)
    else:
        out = rng.normal(0.0, 0.5, shape)
    return np.ascontiguousarray(out, dtype=np.float32)


@dataclass
class CaffeRun:
    blobs: dict[str, np.ndarray]
    weights: dict[str, list[np.ndarray]]
    inputs: dict[str, np.ndarray]
    outputs: list[str] = field(default_factory=list)


def run_real_caffe(
    prototxt: Path,
    *,
    caffemodel: Path | None = None,
    weights: Mapping[str, Sequence[np.ndarray]] | None = None,
    inputs: Mapping[str, np.ndarray] | None = None,
    seed: int = 0,
) -> CaffeRun:
    """Forward ``prototxt`` in real Caffe. Missing weights are random and realistic; returns every blob."""
    caffe = caffe_module()
    net = caffe.Net(str(prototxt), caffe.TEST) if caffemodel is None else \
        caffe.Net(str(prototxt), str(caffemodel), caffe.TEST)
    rng = np.random.default_rng(seed)
    used: dict[str, list[np.ndarray]] = {}
    for layer_name, params in net.params.items():
        layer_type = net.layer_dict[layer_name].type
        kinds = BLOB_KINDS.get(layer_type, ())
        arrays = []
        for j, param in enumerate(params):
            given = (weights or {}).get(layer_name)
            if given is not None and j < len(given):
                array = np.asarray(given[j], dtype=np.float32).reshape(param.data.shape)
            elif caffemodel is not None:
                array = param.data.copy()
            else:
                kind = kinds[j] if j < len(kinds) else "other"
                array = realistic_blob(rng, kind, tuple(param.data.shape))
            param.data[...] = array
            arrays.append(array)
        used[layer_name] = arrays
    feeds: dict[str, np.ndarray] = {}
    for name in net.inputs:
        shape = tuple(net.blobs[name].data.shape)
        value = (inputs or {}).get(name)
        if value is None:
            value = rng.standard_normal(shape).astype(np.float32)
        feeds[name] = np.asarray(value, dtype=np.float32)
        net.blobs[name].reshape(*feeds[name].shape)
        net.blobs[name].data[...] = feeds[name]
    net.forward()
    blobs = {name: blob.data.copy() for name, blob in net.blobs.items()}
    return CaffeRun(blobs, used, feeds, list(net.outputs))


def run_hub(model, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """Every value of a hub model, computed by onnxruntime (+ numpy references for custom ops)."""
    from nnbridge.verify.runtimes import onnxruntime_rt

    return dict(onnxruntime_rt.run(model, dict(feeds), intermediates=True))


def assert_same(reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray], outputs: Sequence[str],
                *, rtol: float, atol: float, what: str) -> None:
    from nnbridge.verify.compare import compare

    result = compare(reference, candidate, outputs=outputs, rtol=rtol, atol=atol)
    compared = [row for row in result.rows if row.max_abs is not None]
    log_worst(what, result)
    assert result.passed, f"{what}:\n{result.table()}"
    assert compared, f"{what}: no blob was compared\n{result.table()}"


def log_worst(what: str, result: object) -> None:
    """With ``$NNBRIDGE_ERROR_LOG`` set, append ``{"what", "blob", "max_rel", "blobs"}`` as one JSON line (the
    figures the closing notes and README quote: ``pytest tests/mxnet/test_gluon_zoo.py`` with it set)."""
    path = os.environ.get("NNBRIDGE_ERROR_LOG")
    worst = getattr(result, "worst", None)
    if not path or worst is None:
        return
    import json

    rows = [r for r in getattr(result, "rows", []) if r.max_abs is not None]
    with open(path, "a") as out:
        out.write(json.dumps({"what": what, "blob": worst.name, "max_rel": float(worst.max_rel),
                              "blobs": len(rows)}) + "\n")


def check_layer(
    prototxt_text: str,
    *,
    seed: int = 0,
    rtol: float = 1e-4,
    atol: float = 1e-6,
    roundtrip: bool = False,
    weights: Mapping[str, Sequence[np.ndarray]] | None = None,
    inputs: Mapping[str, np.ndarray] | None = None,
    dialect: str = "bvlc",
) -> None:
    """Real Caffe vs the hub in onnxruntime (and, with ``roundtrip``, vs the re-exported Caffe net)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "net.prototxt"
        path.write_text(prototxt_text)
        check_net(path, seed=seed, rtol=rtol, atol=atol, roundtrip=roundtrip, weights=weights, inputs=inputs,
                  dialect=dialect, workdir=Path(tmp))


def check_net(
    prototxt: Path,
    *,
    caffemodel: Path | None = None,
    seed: int = 0,
    rtol: float = 1e-4,
    atol: float = 1e-6,
    roundtrip: bool = True,
    weights: Mapping[str, Sequence[np.ndarray]] | None = None,
    inputs: Mapping[str, np.ndarray] | None = None,
    dialect: str = "bvlc",
    workdir: Path | None = None,
) -> None:
    from nnbridge.caffe.formats.net import load_caffe
    from nnbridge.caffe.importer import import_layers
    from nnbridge.caffe.weights import DictWeights

    ref = run_real_caffe(prototxt, caffemodel=caffemodel, weights=weights, inputs=inputs, seed=seed)
    shapes = {name: tuple(array.shape) for name, array in ref.inputs.items()}
    loaded = load_caffe(prototxt, caffemodel, input_shapes=shapes)
    source = loaded.weights if caffemodel is not None else DictWeights(ref.weights)
    model = import_layers(list(loaded.net.layer), loaded.inputs, source, source=str(prototxt))
    hub = run_hub(model, ref.inputs)
    assert_same(ref.blobs, hub, ref.outputs, rtol=rtol, atol=atol, what=f"{prototxt.name}: real Caffe vs hub")
    if not roundtrip:
        return
    from nnbridge.caffe.exporter import export_caffe
    from nnbridge.caffe.formats.net import save_caffe

    exported = export_caffe(model, dialect=dialect)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        out_proto, out_model = Path(tmp) / "rt.prototxt", Path(tmp) / "rt.caffemodel"
        save_caffe(exported.net, exported.blobs, out_proto, out_model)
        back = run_real_caffe(out_proto, caffemodel=out_model, inputs=ref.inputs, seed=seed)
    assert_same(ref.blobs, back.blobs, ref.outputs, rtol=rtol, atol=atol,
                what=f"{prototxt.name}: real Caffe vs round trip in real Caffe")
