"""Detection metrics on hand-made cases with answers worked out by hand (pure numpy, no runtime)."""

from __future__ import annotations

import numpy as np
import pytest

from nnbridge.errors import NNBridgeError
from nnbridge.zoo.boxes import agreement, average_precision, iou, parse_detections


def _rows(*rows: list[float]) -> np.ndarray:
    return np.array(rows, np.float64).reshape(-1, 6)


# class 1: detections 0.9 TP, 0.8 FP, 0.7 TP of 2 objects -> precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1
#   all points: 1/2 * 1 + 1/2 * 2/3 = 5/6;  11 points: recall >= 0..0.5 -> 1 (6 points), 0.6..1 -> 2/3 (5 points)
# class 2: one object, a TP at 0.6 and a duplicate at 0.5 (FP) -> AP 1 either way
# class 3: one object, never detected -> AP 0
DETECTIONS = [_rows([1, 0.9, 0.0, 0.0, 0.5, 0.5], [1, 0.8, 0.6, 0.6, 0.9, 0.9]),
              _rows([1, 0.7, 0.5, 0.5, 1.0, 1.0], [2, 0.6, 0.0, 0.0, 1.0, 1.0], [2, 0.5, 0.0, 0.0, 1.0, 1.0])]
TRUTH = [np.array([[1, 0.0, 0.0, 0.5, 0.5]]), np.array([[1, 0.5, 0.5, 1.0, 1.0], [2, 0, 0, 1, 1], [3, 0, 0, 1, 1]])]


def test_average_precision_all_points() -> None:
    result = average_precision(DETECTIONS, TRUTH, 0.5, "all")
    assert result["per_class"] == pytest.approx({"1": 5 / 6, "2": 1.0, "3": 0.0})
    assert result["map"] == pytest.approx((5 / 6 + 1.0) / 3)


def test_average_precision_voc11() -> None:
    result = average_precision(DETECTIONS, TRUTH, 0.5, "voc11")
    assert result["per_class"]["1"] == pytest.approx((6 + 5 * 2 / 3) / 11)
    assert result["per_class"]["2"] == 1.0 and result["per_class"]["3"] == 0.0


def test_iou_threshold_decides_a_true_positive() -> None:
    # IoU of [0, 0, 1, 1] and [0, 0, 1, 0.6] is 0.6: a hit at 0.5, a miss at 0.7
    dets, truth = [_rows([1, 0.9, 0, 0, 1, 0.6])], [np.array([[1, 0, 0, 1, 1.0]])]
    assert iou(np.array([0, 0, 1, 1.0]), np.array([[0, 0, 1, 0.6]]))[0] == pytest.approx(0.6)
    assert average_precision(dets, truth, 0.5, "all")["map"] == 1.0
    assert average_precision(dets, truth, 0.7, "all")["map"] == 0.0


def test_agreement_identical_and_shifted() -> None:
    same = agreement(DETECTIONS, [d.copy() for d in DETECTIONS])
    assert same["agreement"] == 1.0 and same["mean_iou"] == 1.0 and same["max_score_diff"] == 0.0
    assert same["matched"] == 5 and same["unmatched"] == same["unmatched_source"] == 0
    moved = [d.copy() for d in DETECTIONS]
    moved[0][0, 4] = 0.6  # box [0, 0, 0.5, 0.6]: IoU 0.25 / 0.30 = 5/6 with the original
    moved[1][0, 1] = 0.65  # score 0.7 -> 0.65
    moved[1] = moved[1][:2]  # drop one class-2 box
    got = agreement(DETECTIONS, moved)
    assert got["matched"] == 4 and got["unmatched_source"] == 1 and got["unmatched"] == 0
    assert got["agreement"] == pytest.approx(4 / 5) and got["min_iou"] == pytest.approx(5 / 6)
    assert got["max_score_diff"] == pytest.approx(0.05)
    # another class is never a match, whatever the overlap
    relabelled = [d.copy() for d in DETECTIONS]
    relabelled[0][:, 0] = 4
    assert agreement(DETECTIONS, relabelled)["unmatched"] == 2


def test_parse_caffe_ssd_and_mxnet_multibox() -> None:
    caffe = np.array([[[[0, 1, 0.9, 0, 0, 1, 1], [1, 2, 0.8, 0, 0, 1, 1], [-1, -1, 0, 0, 0, 0, 0],
                        [2, 1, 0.7, 0, 0, 1, 1]]]], np.float32)  # a padding row; image 2 is a padding image
    images = parse_detections(caffe, "caffe_ssd", 2)
    assert [len(rows) for rows in images] == [1, 1] and images[1][0, 0] == 2
    assert len(parse_detections(caffe, "caffe_ssd", 2, score_threshold=0.85)[1]) == 0
    multibox = np.array([[[0, 0.9, 0, 0, 1, 1], [-1, 0.5, 0, 0, 1, 1]], [[3, 0.4, 0, 0, 1, 1], [-1, 0, 0, 0, 0, 0]]])
    assert [len(rows) for rows in parse_detections(multibox, "mxnet_multibox", 2)] == [1, 1]
    with pytest.raises(NNBridgeError, match=r"not Caffe SSD's \(1, 1, N, 7\)"):
        parse_detections(multibox, "caffe_ssd", 2)
