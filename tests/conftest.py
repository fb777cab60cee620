"""Shared pytest configuration: paths to ../shared and markers for optional runtimes."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("GLOG_minloglevel", "2")
# pycaffe's C++ protobuf must be loaded before TensorFlow's (the TF tests import keras when collected), else Caffe
# segfaults in this process (the reference install's documented import order)
with contextlib.suppress(ImportError):
    import caffe  # noqa: F401
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

SHARED_MODELS = ROOT.parent / "shared" / "models"


@pytest.fixture
def shared_models() -> Path:
    """``../shared/models`` or a skip when this checkout has no shared folder beside it."""
    if not SHARED_MODELS.is_dir():
        pytest.skip(f"real models not available: {SHARED_MODELS} does not exist")
    return SHARED_MODELS
