"""NDArray files (.params/.nd) reader/writer against REAL MXNet 1.9.1 (through tests/support/mxnet_env.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nnbridge.errors import FormatError
from nnbridge.mxnet.formats.params import load_ndarrays, read_params, save_ndarrays, split_prefixed
from support.mxnet_env import run_mxnet

DTYPES = ("float32", "float64", "float16", "uint8", "int32", "int8", "int64", "bool")


def _sample(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Realistic arrays of every supported dtype, odd sizes (unaligned offsets), prefixed names."""
    arrays: dict[str, np.ndarray] = {
        "arg:conv0_weight": rng.normal(0, np.sqrt(2 / 27), (8, 3, 3, 3)).astype(np.float32),
        "arg:conv0_bias": rng.normal(0, 0.1, (8,)).astype(np.float32),
        "aux:bn0_moving_var": rng.uniform(0.5, 1.5, (8,)).astype(np.float32),
        "aux:bn0_moving_mean": rng.normal(0, 0.2, (8,)).astype(np.float32),
    }
    for dtype in DTYPES:
        value: np.ndarray
        if dtype == "bool":
            value = rng.random((3, 5)) > 0.5
        elif dtype.startswith("float"):
            value = rng.normal(0, 1, (3, 5)).astype(dtype)
        else:
            info = np.iinfo(dtype)
            value = rng.integers(max(info.min, -1000), min(info.max, 1000), (7,), endpoint=True).astype(dtype)
        arrays[f"arg:{dtype}_x"] = value
    return arrays


def _assert_exact(ours: np.ndarray, ref: np.ndarray, name: str) -> None:
    assert ours.dtype == ref.dtype, name
    assert ours.shape == ref.shape, name
    assert ours.tobytes() == ref.tobytes(), name


SAVE = "mx.nd.save(args['path'], {k: mx.nd.array(v, dtype=v.dtype) for k, v in arrays.items()})"
LOAD = "result['loaded'] = {k: v.asnumpy() for k, v in mx.nd.load(args['path']).items()}"


def test_reads_mxnet_written_params(tmp_path: Path) -> None:
    ref = _sample(np.random.default_rng(0))
    path = tmp_path / "m-0000.params"
    run_mxnet(SAVE, arrays=ref, path=path)
    file = load_ndarrays(path)
    assert file.names == list(ref) and set(file.layouts) == {"v2"}
    for name, value in file.as_dict().items():
        _assert_exact(value, ref[name], name)
    arg, aux = split_prefixed(file.as_dict())
    assert sorted(aux) == ["bn0_moving_mean", "bn0_moving_var"] and "conv0_weight" in arg


def test_written_params_load_in_mxnet_byte_identical(tmp_path: Path) -> None:
    ref = _sample(np.random.default_rng(1))
    ref["arg:strided"] = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4))  # non-contiguous input
    ours, theirs = tmp_path / "ours.params", tmp_path / "theirs.params"
    save_ndarrays(ours, ref)
    result = run_mxnet(LOAD + "\n" + SAVE.replace("args['path']", "args['theirs']"), arrays=ref, path=ours,
                       theirs=theirs)
    assert list(result["loaded"]) == list(ref)
    for name, value in ref.items():
        _assert_exact(result["loaded"][name], value, name)
    assert ours.read_bytes() == theirs.read_bytes()  # exactly what MXNet 1.9.1 writes


def test_unnamed_list_round_trip(tmp_path: Path) -> None:
    values: list[np.ndarray] = [np.arange(6, dtype=np.float32).reshape(2, 3), np.array([7, 8], dtype=np.int64)]
    ours = tmp_path / "list.nd"
    save_ndarrays(ours, values)
    result = run_mxnet("result['loaded'] = [v.asnumpy() for v in mx.nd.load(args['p'])]", p=ours)
    for got, want in zip(result["loaded"], values, strict=True):
        _assert_exact(got, want, "list")
    file = load_ndarrays(ours)
    assert file.names == [] and len(file.arrays) == 2
    with pytest.raises(FormatError, match="unnamed list"):
        file.as_dict()


def test_gluon_save_parameters_and_export(tmp_path: Path) -> None:
    script = r"""
from mxnet import gluon
net = gluon.nn.HybridSequential()
net.add(gluon.nn.Conv2D(8, 3, padding=1), gluon.nn.BatchNorm(), gluon.nn.Activation("relu"),
        gluon.nn.Dense(10))
net.initialize(mx.init.Xavier())
net.hybridize()
net(mx.nd.random.normal(shape=(1, 3, 8, 8)))
net.save_parameters(args["plain"])
net.export(args["prefix"], epoch=3)
result["plain"] = {k: v.asnumpy() for k, v in mx.nd.load(args["plain"]).items()}
result["export"] = {k: v.asnumpy() for k, v in mx.nd.load(args["prefix"] + "-0003.params").items()}
"""
    result = run_mxnet(script, plain=tmp_path / "net.params", prefix=str(tmp_path / "net"))
    for key, path in (("plain", tmp_path / "net.params"), ("export", tmp_path / "net-0003.params")):
        ours = read_params(path)
        assert list(ours) == list(result[key])
        for name, value in ours.items():
            _assert_exact(value, result[key][name], name)
    assert all(not name.startswith(("arg:", "aux:")) for name in read_params(tmp_path / "net.params"))
    arg, aux = split_prefixed(read_params(tmp_path / "net-0003.params"))
    assert len(aux) == 2 and all(name.endswith(("running_mean", "running_var")) for name in aux)


def test_legacy_v0_ndarray(shared_models: Path) -> None:
    legacy = shared_models / "mxnet" / "legacy_ndarray.v0"
    file = load_ndarrays(legacy)
    assert set(file.layouts) == {"v0"}
    result = run_mxnet("result['loaded'] = [v.asnumpy() for v in mx.nd.load(args['p'])]", p=legacy)
    assert len(result["loaded"]) == len(file.arrays)
    for i, (ours, ref) in enumerate(zip(file.arrays, result["loaded"], strict=True)):
        _assert_exact(ours, ref, f"#{i}")


def test_reader_is_zero_copy(tmp_path: Path) -> None:
    ref = _sample(np.random.default_rng(2))
    path = tmp_path / "z.params"
    save_ndarrays(path, ref)
    file = load_ndarrays(path)
    whole = np.frombuffer(file.buffer, dtype=np.uint8)
    start = whole.__array_interface__["data"][0]
    for name, value in file.as_dict().items():
        address = value.__array_interface__["data"][0]
        assert start <= address and address + value.nbytes <= start + whole.nbytes, name
        assert not value.flags.owndata and not value.flags.writeable, name


def test_sparse_storage_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sparse.params"
    run_mxnet("mx.nd.save(args['p'], {'w': mx.nd.ones((4, 3)).tostype('row_sparse'), "
              "'c': mx.nd.ones((2, 2)).tostype('csr')})", p=path)
    with pytest.raises(FormatError, match="row_sparse storage is not supported"):
        load_ndarrays(path)


NAME_LIST_BYTES = 8 + 3 * (8 + 5)  # count, then ("arg:w", "aux:m", "arg:i") each with a uint64 length


@pytest.fixture(scope="module")
def small_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("cut") / "small.params"
    rng = np.random.default_rng(3)
    save_ndarrays(path, {"arg:w": rng.normal(0, 1, (2, 3)).astype(np.float32),
                         "aux:m": rng.normal(0, 1, (3,)).astype(np.float16),
                         "arg:i": np.arange(3, dtype=np.int8)})
    return path.read_bytes()


def test_truncated_files_raise_format_error(small_file: bytes, tmp_path: Path) -> None:
    for cut in range(len(small_file)):
        path = tmp_path / f"cut{cut}.params"
        path.write_bytes(small_file[:cut])
        with pytest.raises(FormatError) as info:
            load_ndarrays(path)
        assert str(path) in str(info.value)
        assert cut == 0 or "byte " in str(info.value)
        if 40 < cut < len(small_file) - NAME_LIST_BYTES:  # inside the arrays: the array is named
            assert "array #" in str(info.value), str(info.value)


def test_corrupted_files_load_or_raise_format_error(small_file: bytes, tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    path = tmp_path / "flip.params"
    outcomes = {"ok": 0, "error": 0}
    for _ in range(400):
        data = bytearray(small_file)
        for pos in rng.integers(0, len(data), rng.integers(1, 4)):
            data[pos] = int(rng.integers(0, 256))
        path.write_bytes(bytes(data))
        try:
            load_ndarrays(path)
            outcomes["ok"] += 1
        except FormatError:
            outcomes["error"] += 1
    assert outcomes["error"] > 50 and outcomes["ok"] > 50, outcomes


def test_not_an_ndarray_file(tmp_path: Path) -> None:
    path = tmp_path / "x.params"
    path.write_bytes(b"\x08\x01" + bytes(40))
    with pytest.raises(FormatError, match="bad magic"):
        load_ndarrays(path)
    path.write_bytes(b"")
    with pytest.raises(FormatError, match="empty file"):
        load_ndarrays(path)
