"""MXNet attribute strings: tuples, booleans, numbers, as MXNet's own parameter parser (dmlc) reads them.

``"(3, 3)"``, ``"(3,3)"``, ``"[3, 3]"``, ``"(3,)"``, ``"()"`` and a bare ``"3"`` (a 1-tuple) are tuples; Python 2
longs (``"3L"``) are accepted; booleans are ``True``/``true``/``1`` and ``False``/``false``/``0``; floats use C
spellings (``"1e-05"``, ``"inf"``). ``"None"`` marks an unset optional parameter (:func:`is_none`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _number_token(text: str) -> str:
    token = text.strip()
    return token[:-1] if token[-1:] in ("L", "l") and token[:-1].strip("+-").isdigit() else token


def parse_int(text: str) -> int:
    """An MXNet integer attribute (``"128"``, ``"-1"``, ``"3L"``)."""
    try:
        return int(_number_token(text))
    except ValueError:
        raise ValueError(f"not an integer: {text!r}") from None


def parse_float(text: str) -> float:
    """An MXNet float attribute (``"1e-05"``, ``"0.001"``, ``"inf"``, ``"-inf"``, ``"nan"``)."""
    try:
        return float(_number_token(text))
    except ValueError:
        raise ValueError(f"not a number: {text!r}") from None


def parse_bool(text: str) -> bool:
    """An MXNet boolean attribute: ``True``/``true``/``1`` or ``False``/``false``/``0`` (dmlc parameter rules)."""
    value = text.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def parse_tuple(text: str, kind: Callable[[str], Any] = parse_int) -> tuple[Any, ...]:
    """An MXNet tuple attribute: ``"(3, 3)"``, ``"(3,3)"``, ``"[3, 3]"``, ``"(3,)"``, ``"()"`` or a bare ``"3"``."""
    body = text.strip()
    if body[:1] in ("(", "["):
        closing = ")" if body[0] == "(" else "]"
        if not body.endswith(closing):
            raise ValueError(f"not a tuple: {text!r}")
        body = body[1:-1]
    parts = [p for p in (s.strip() for s in body.split(",")) if p]
    if body.strip() and not parts:
        raise ValueError(f"not a tuple: {text!r}")
    try:
        return tuple(kind(p) for p in parts)
    except ValueError:
        raise ValueError(f"not a tuple of {getattr(kind, '__name__', 'values')}: {text!r}") from None


def is_none(text: str | None) -> bool:
    """True for a missing attribute or MXNet's ``"None"`` (an unset optional parameter)."""
    return text is None or text.strip() == "None"
