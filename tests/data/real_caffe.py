"""Real Caffe's forward of a data-only net, in a child process (a missing DB backend or layer aborts the process).

The Data and ImageData layers need a Caffe built with LMDB/LevelDB and OpenCV: ``.ci/caffe-data.sh`` builds one into
``.venv-caffe-data`` and ``.ci/run`` exports its interpreter as ``NNBRIDGE_CAFFE_DATA_PYTHON``. Without that
variable the reference pycaffe of this interpreter is used, which may lack those parts (the tests then skip).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ENV = "NNBRIDGE_CAFFE_DATA_PYTHON"


def data_caffe_python() -> str:
    """The interpreter whose pycaffe runs Data/ImageData layers: ``$NNBRIDGE_CAFFE_DATA_PYTHON``, else this one."""
    python = os.environ.get(ENV)
    if python:
        if not Path(python).is_file():
            pytest.fail(f"{ENV}={python} does not exist; unset it or build it with bash .ci/caffe-data.sh")
        return python
    pytest.importorskip("caffe", reason=f"real BVLC Caffe (pycaffe) is not installed and {ENV} is not set")
    return sys.executable


def dedicated() -> bool:
    """True when the interpreter is the LMDB/OpenCV build: then a missing backend is a failure, not a skip."""
    return bool(os.environ.get(ENV))


def caffe_forward(python: str, prototxt: Path, forwards: int, phase: str = "TEST"
                  ) -> tuple[list[dict[str, np.ndarray]], str]:
    """``forwards`` forwards of the net in ``prototxt`` by real Caffe: per forward {blob name: array}, or an error."""
    out = prototxt.with_suffix(".npz")
    script = textwrap.dedent(f"""
        import os, numpy as np
        os.environ["GLOG_minloglevel"] = "2"
        import caffe
        net = caffe.Net({str(prototxt)!r}, caffe.{phase})
        out = {{}}
        for i in range({forwards}):
            net.forward()
            for name in net.blobs:
                out[f"{{i}}/{{name}}"] = net.blobs[name].data.copy()
        np.savez({str(out)!r}, **out)
    """)
    env = dict(os.environ, GLOG_minloglevel="2")
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([python, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    if proc.returncode != 0:
        return [], proc.stderr or f"exit status {proc.returncode}"
    with np.load(out) as npz:
        return [{k.split("/")[1]: npz[k] for k in npz.files if k.startswith(f"{i}/")} for i in range(forwards)], ""


def against_caffe(text: str, tmp_path: Path, forwards: int, missing: str, reason: str) -> float:
    """``forwards`` batches of real Caffe (the LMDB/OpenCV build) vs DataLayerReader's; the worst rel error.

    Labels must be equal; data within 1e-6 relative error (the callers ask for exactly 0 where Caffe and nnbridge
    do the same float32 operations)."""
    from caffe_data_ref import max_rel

    from nnbridge.caffe.data import DataLayerReader

    python = data_caffe_python()
    (tmp_path / "net.prototxt").write_text(text)
    blobs, error = caffe_forward(python, tmp_path / "net.prototxt", forwards)
    if missing in error and not dedicated():
        pytest.skip(f"{reason}; checked against caffe_data_ref's transcription of Caffe's transform instead "
                    "(bash .ci/caffe-data.sh builds a Caffe with them; set NNBRIDGE_CAFFE_DATA_PYTHON)")
    assert not error, error[-3000:]
    reader = DataLayerReader(text)
    worst = 0.0
    for forward in blobs:
        data, label = reader.next_batch()
        worst = max(worst, max_rel(data, forward["data"]))
        assert worst <= 1e-6, worst
        np.testing.assert_array_equal(label, forward["label"])
    return worst
