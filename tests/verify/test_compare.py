"""compare(): presence of outputs, shapes, dtypes, non-finite values, permutations, tolerances."""

from __future__ import annotations

import numpy as np
import pytest

from nnbridge.verify.compare import compare

RNG = np.random.default_rng(0)
A = RNG.standard_normal((2, 3, 4)).astype(np.float32)
B = RNG.standard_normal((5,)).astype(np.float32)


def _rows(result):  # type: ignore[no-untyped-def]
    return {row.name: row for row in result.rows}


def test_identical_blobs_pass_in_reference_order() -> None:
    result = compare({"b": B, "a": A}, {"a": A.copy(), "b": B.copy(), "extra": A}, outputs=["a"])
    assert result.passed
    assert [row.name for row in result.rows] == ["b", "a"]  # reference order; "extra" is not compared
    assert all(row.max_abs == 0 and row.max_rel == 0 for row in result.rows)


@pytest.mark.parametrize("side", ["reference", "candidate"])
def test_missing_output_fails(side: str) -> None:
    full = {"a": A, "out": B}
    partial = {"a": A}
    ref, got = (partial, full) if side == "reference" else (full, partial)
    result = compare(ref, got, outputs=["out"])
    assert not result.passed
    row = _rows(result)["out"]
    assert not row.passed and f"missing in {side}" in row.reason
    assert _rows(result)["a"].passed


def test_missing_intermediate_is_not_a_failure() -> None:
    assert compare({"a": A, "hidden": B}, {"a": A}, outputs=["a"]).passed


def test_shape_mismatch_fails_even_with_equal_values() -> None:
    result = compare({"a": A}, {"a": A.reshape(6, 4)}, outputs=["a"])
    row = _rows(result)["a"]
    assert not result.passed and row.reason == "shape mismatch"
    assert row.shape_ref == (2, 3, 4) and row.shape_got == (6, 4)


def test_dtype_kind_mismatch_fails_but_float_widths_do_not() -> None:
    ints = np.arange(6, dtype=np.int64)
    result = compare({"i": ints}, {"i": ints.astype(np.float32)}, outputs=["i"])
    assert not result.passed and "dtype mismatch" in _rows(result)["i"].reason
    assert compare({"a": A}, {"a": A.astype(np.float64)}, outputs=["a"]).passed
    assert compare({"i": ints}, {"i": ints.astype(np.int32)}, outputs=["i"]).passed


def test_permuted_values_fail() -> None:
    # Same multiset of values, different positions: a sorted comparison would pass this.
    result = compare({"b": B}, {"b": B[::-1].copy()}, outputs=["b"])
    assert not result.passed
    assert _rows(result)["b"].max_abs > 0.1


def test_nan_and_inf() -> None:
    x = A.copy()
    x[0, 0, 0] = np.nan
    x[1, 2, 3] = np.inf
    assert compare({"x": x}, {"x": x.copy()}, outputs=["x"]).passed  # same non-finite values, same places
    y = x.copy()
    y[0, 0, 0] = 0.0
    result = compare({"x": x}, {"x": y}, outputs=["x"])
    assert not result.passed and "NaN/Inf mismatch at 1" in _rows(result)["x"].reason
    z = x.copy()
    z[1, 2, 3] = -np.inf
    assert not compare({"x": x}, {"x": z}, outputs=["x"]).passed
    assert not compare({"x": A}, {"x": x}, outputs=["x"]).passed  # NaN only in the candidate


def test_tolerances() -> None:
    ref = np.linspace(-10, 10, 101, dtype=np.float32)  # max |ref| = 10
    got = ref.copy()
    got[7] += 5e-4  # abs 5e-4, rel 5e-5
    row = compare({"r": ref}, {"r": got}, outputs=["r"]).rows[0]
    assert row.passed
    assert row.max_abs == pytest.approx(5e-4, rel=1e-2)
    assert row.max_rel == pytest.approx(5e-5, rel=1e-2)
    assert not compare({"r": ref}, {"r": got}, outputs=["r"], rtol=1e-5).passed
    assert compare({"r": ref}, {"r": got}, outputs=["r"], rtol=1e-5, atol=1e-3).passed
    # tiny blobs: the absolute tolerance decides
    small = np.full(4, 1e-9, np.float32)
    assert compare({"s": small}, {"s": small * 2}, outputs=["s"]).passed
    assert not compare({"s": small}, {"s": small * 2}, outputs=["s"], atol=0).passed


def test_name_map_table_worst_and_dict() -> None:
    got = {"renamed": A + 1e-3, "b": B}
    result = compare({"a": A, "b": B}, got, outputs=["a"], name_map={"a": "renamed"})
    assert not result.passed
    assert [row.name for row in result.rows] == ["a -> renamed", "b"]
    worst = result.worst
    assert worst is not None and worst.name == "a -> renamed"
    table = result.table().splitlines()
    assert table[0].split() == ["blob", "shape", "max", "abs", "err", "max", "rel", "err", "result"]
    assert "2x3x4" in table[1] and "FAIL" in table[1] and table[2].endswith("pass")
    assert table[1].index("2x3x4") == table[0].index("shape")  # aligned columns
    as_dict = result.to_dict()
    assert as_dict["passed"] is False and len(as_dict["blobs"]) == 2


def test_empty_and_integer_blobs() -> None:
    empty = np.zeros((0, 3), np.float32)
    assert compare({"e": empty}, {"e": empty.copy()}, outputs=["e"]).passed
    ints = np.array([1, 2, 3])
    assert not compare({"i": ints}, {"i": np.array([1, 2, 4])}, outputs=["i"], atol=0).passed
