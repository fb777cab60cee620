"""nnbridge.mxnet.CaffeOp native translations of the layers added for issue 5 vs REAL Caffe: forward, bottom diffs
and parameter diffs blob by blob, plus a float64 finite-difference check of MXNet's gradients, all cases in one
MXNet process. The cases and their exceptions (fork layers pycaffe lacks: forward vs nnbridge's hub model in
onnxruntime and backward by finite differences only; Threshold/ArgMax without a Caffe backward; Upsample whose
pycaffe backward is broken; SSD Normalize whose Caffe bottom diff is not the exact gradient) are described in
support/caffe_layer_cases.py.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from caffe_in_mxnet_check import Case, check_case, run_cases

from support.caffe_layer_cases import CASES, make_case
from support.layer_check import caffe_module

logger = logging.getLogger(__name__)
#: cases CaffeOp does not translate natively (see nnbridge.mxnet.caffe_op: "Not translated")
TORCH_ONLY = {"interp_zoom"}


def _case(text: str, shapes: list[tuple[int, ...]], num_weight: int, options: dict[str, Any]) -> Case:
    c = make_case(text, shapes, num_weight, options)
    return Case(c.layer_text, c.bottoms, num_weight=c.num_weight, tops=c.tops, backward=c.backward, hub=c.hub,
                caffe_diffs=c.caffe_diffs, fd_bottoms=c.fd_bottoms, force_backward=c.force_backward)


@pytest.fixture(scope="module")
def results() -> tuple[dict[str, Case], dict[str, Any]]:
    caffe_module()
    cases = {key: _case(*spec) for key, spec in CASES.items() if key not in TORCH_ONLY}
    return cases, run_cases(cases)


@pytest.mark.caffe
@pytest.mark.parametrize("key", [k for k in CASES if k not in TORCH_ONLY])
def test_caffe_op_new_layers_match(key: str, results: tuple[dict[str, Case], dict[str, Any]]) -> None:
    cases, got = results
    errors = check_case(cases[key], got[key])
    logger.info("%s: worst %s", key, max(errors.items(), key=lambda kv: kv[1]))
