"""The one comparison helper: a reference run against a candidate run, blob by blob, never sorted.

Checks, in this order:

1. every name in ``outputs`` exists on both sides (a missing output fails the comparison);
2. for every blob present on both sides, in the reference's order: the shape must be identical, and the
   dtypes must be of the same kind (floating point, signed/unsigned integer, bool);
3. values, elementwise at the same positions (no sorting, so permutations are caught)::

       max_abs = max |ref - got|                    (over positions where both are finite)
       max_rel = max_abs / max(max |ref|, tiny)     (tiny = smallest positive normal float32)
       pass   <=>  max_rel <= rtol  or  max_abs <= atol

   A NaN or infinity passes only where the other side has the same non-finite value at that position.

Blob names can be mapped with ``name_map`` (reference name -> candidate name).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

TINY = float(np.finfo(np.float32).tiny)


def _kind(dtype: np.dtype) -> str:
    if dtype.kind in "fc":
        return "float"
    if dtype.kind in "iu":
        return "int"
    if dtype.kind == "b":
        return "bool"
    return dtype.kind


@dataclass
class BlobResult:
    """The verdict for one blob (or one missing output)."""

    name: str
    shape_ref: tuple[int, ...] | None
    shape_got: tuple[int, ...] | None
    dtype: str
    max_abs: float = float("nan")
    max_rel: float = float("nan")
    passed: bool = False
    reason: str = ""


@dataclass
class Comparison:
    rows: list[BlobResult] = field(default_factory=list)
    rtol: float = 1e-4
    atol: float = 1e-6

    @property
    def passed(self) -> bool:
        return all(row.passed for row in self.rows)

    @property
    def failures(self) -> list[BlobResult]:
        return [row for row in self.rows if not row.passed]

    @property
    def worst(self) -> BlobResult | None:
        """The first failing row, else the row with the largest relative error."""
        if not self.rows:
            return None
        failing = self.failures
        if failing:
            return failing[0]
        return max(self.rows, key=lambda r: -1.0 if np.isnan(r.max_rel) else r.max_rel)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "rtol": self.rtol,
            "atol": self.atol,
            "blobs": [asdict(row) for row in self.rows],
        }

    def table(self) -> str:
        """Aligned text table: blob, shape, max abs err, max rel err, pass/fail (and why)."""
        header = ("blob", "shape", "max abs err", "max rel err", "result")
        lines: list[tuple[str, ...]] = [header]
        for row in self.rows:
            if row.shape_ref == row.shape_got or row.shape_got is None:
                shape = _fmt_shape(row.shape_ref)
            elif row.shape_ref is None:
                shape = _fmt_shape(row.shape_got)
            else:
                shape = f"{_fmt_shape(row.shape_ref)} vs {_fmt_shape(row.shape_got)}"
            verdict = "pass" if row.passed else "FAIL" + (f": {row.reason}" if row.reason else "")
            lines.append((row.name, shape, _fmt_err(row.max_abs), _fmt_err(row.max_rel), verdict))
        widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
        out = []
        for line in lines:
            cells = [cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=True)]
            out.append("  ".join([*cells, line[-1]]).rstrip())
        return "\n".join(out)


def _fmt_shape(shape: tuple[int, ...] | None) -> str:
    return "-" if shape is None else "x".join(str(d) for d in shape) or "scalar"


def _fmt_err(value: float) -> str:
    return "-" if np.isnan(value) else f"{value:.3e}"


def compare(
    reference: Mapping[str, np.ndarray],
    candidate: Mapping[str, np.ndarray],
    *,
    outputs: Sequence[str],
    rtol: float = 1e-4,
    atol: float = 1e-6,
    name_map: Mapping[str, str] | None = None,
) -> Comparison:
    """Compare every blob present on both sides; every name in ``outputs`` must be present on both."""
    name_map = name_map or {}
    result = Comparison(rtol=rtol, atol=atol)
    for name in outputs:
        got_name = name_map.get(name, name)
        missing = [side for side, ok in (("reference", name in reference), ("candidate", got_name in candidate))
                   if not ok]
        if missing:
            ref_shape = tuple(np.shape(reference[name])) if name in reference else None
            got_shape = tuple(np.shape(candidate[got_name])) if got_name in candidate else None
            result.rows.append(BlobResult(name, ref_shape, got_shape, "-", passed=False,
                                          reason=f"output missing in {' and '.join(missing)}"))
    for name, ref in reference.items():
        got_name = name_map.get(name, name)
        if got_name not in candidate:
            continue
        label = name if got_name == name else f"{name} -> {got_name}"
        result.rows.append(compare_arrays(label, np.asarray(ref), np.asarray(candidate[got_name]),
                                          rtol=rtol, atol=atol))
    return result


def compare_arrays(name: str, ref: np.ndarray, got: np.ndarray, *, rtol: float, atol: float) -> BlobResult:
    """Compare one pair of arrays (see the module docstring for the rules)."""
    dtype = str(ref.dtype) if ref.dtype == got.dtype else f"{ref.dtype}/{got.dtype}"
    row = BlobResult(name, tuple(ref.shape), tuple(got.shape), dtype)
    if ref.shape != got.shape:
        row.reason = "shape mismatch"
        return row
    if _kind(ref.dtype) != _kind(got.dtype):
        row.reason = f"dtype mismatch ({_kind(ref.dtype)} vs {_kind(got.dtype)})"
        return row
    if _kind(ref.dtype) not in ("float", "int", "bool"):
        row.passed = bool(np.array_equal(ref, got))
        row.reason = "" if row.passed else "values differ"
        return row
    a = ref.astype(np.float64)
    b = got.astype(np.float64)
    finite_a = np.isfinite(a)
    finite_b = np.isfinite(b)
    both = finite_a & finite_b
    # Non-finite values must coincide exactly: NaN with NaN, +inf with +inf, -inf with -inf.
    with np.errstate(invalid="ignore"):
        same = (a == b) | (np.isnan(a) & np.isnan(b))
    bad = ~both & ~same
    diff = np.abs(a[both] - b[both])
    row.max_abs = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(a[both]).max()) if diff.size else 0.0
    row.max_rel = row.max_abs / max(scale, TINY)
    if bad.any():
        row.reason = f"NaN/Inf mismatch at {int(np.count_nonzero(bad))} position(s)"
        return row
    row.passed = row.max_rel <= rtol or row.max_abs <= atol
    if not row.passed:
        row.reason = f"max rel err {row.max_rel:.3e} > rtol {rtol:g} and max abs err > atol {atol:g}"
    return row
