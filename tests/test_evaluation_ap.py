"""AP and mAP against values worked out by hand (VOC devkit procedure, both interpolations).

Boxes are (xmin, ymin, xmax, ymax) in plain units (pixel_inclusive=False) unless a test says
otherwise. In the comments, TP/FP sequences are in decreasing score order, prec = cumulative
TP / detections so far, rec = cumulative TP / npos (non-difficult ground truth).
"""
import math

import numpy as np
import pytest

from darknet_py.errors import DarknetError
from darknet_py.evaluation.ap import (ScoredBox, TruthBox, box_overlaps, class_ap, evaluate,
                                      interpolated_ap, mean_ap, read_detection_file)
from darknet_py.evaluation.writers import format_detection_line

ALL_POINTS, ELEVEN = 0, 11


def det(image, score, box):
    return ScoredBox(image, score, box)


def gt(image, box, difficult=False):
    return TruthBox(image, box, difficult)


# Two images, three objects; one duplicate and one detection on empty background.
BASIC_TRUTH = [gt("a", (0, 0, 10, 10)), gt("a", (20, 20, 30, 30)), gt("b", (0, 0, 10, 10))]
BASIC_DETS = [
    det("a", 0.9, (0, 0, 10, 10)),     # IoU 1 with a's first box: TP
    det("a", 0.8, (1, 0, 11, 10)),     # IoU 90/110 with the same (already found) box: FP
    det("b", 0.7, (50, 50, 60, 60)),   # overlaps nothing: FP
    det("b", 0.6, (0, 0, 10, 10)),     # b's box: TP
    det("a", 0.5, (20, 20, 30, 30)),   # a's second box: TP
]


def test_basic_sequence_counts():
    # TP FP FP TP TP: tp = 1 1 1 2 3, fp = 0 1 2 2 2, npos = 3
    result = class_ap(BASIC_DETS, BASIC_TRUTH, points=ALL_POINTS)
    assert (result.tp, result.fp, result.npos) == (3, 2, 3)
    np.testing.assert_allclose(result.precision, [1, 1 / 2, 1 / 3, 2 / 4, 3 / 5])
    np.testing.assert_allclose(result.recall, [1 / 3, 1 / 3, 1 / 3, 2 / 3, 1])


def test_basic_all_point():
    # precision envelope (max to the right): 1 up to rec 1/3, then max(.5, .6) = .6 to rec 1
    # AP = 1/3 * 1 + (2/3 - 1/3) * .6 + (1 - 2/3) * .6 = 1/3 + .2 + .2 = 0.73333...
    assert class_ap(BASIC_DETS, BASIC_TRUTH, points=ALL_POINTS).ap == pytest.approx(11 / 15)


def test_basic_eleven_point():
    # levels 0, .1, .2, .3 are reached at rec 1/3 with precision 1 -> 4 * 1
    # levels .4 .. 1.0 (7 levels) only at rec 2/3 or 1: best precision max(.5, .6) = .6
    # AP = (4 * 1 + 7 * .6) / 11 = 8.2 / 11 = 0.745454...
    assert class_ap(BASIC_DETS, BASIC_TRUTH, points=ELEVEN).ap == pytest.approx(8.2 / 11)


def test_order_of_input_does_not_matter_when_scores_differ():
    shuffled = [BASIC_DETS[i] for i in (3, 0, 4, 2, 1)]
    assert class_ap(shuffled, BASIC_TRUTH).ap == pytest.approx(8.2 / 11)


@pytest.mark.parametrize("points", [ALL_POINTS, ELEVEN])
def test_ties_keep_file_order(points):
    truth = [gt("a", (0, 0, 10, 10))]
    miss = det("a", 0.8, (50, 50, 60, 60))
    hit = det("a", 0.8, (0, 0, 10, 10))
    # equal scores: a stable sort keeps the order given (as MATLAB's sort in the devkit)
    # miss first: FP TP -> prec 0, 1/2; rec 0, 1: every recall level reaches only prec 1/2
    # all-point: (1 - 0) * 1/2 = .5; 11-point: 11 * .5 / 11 = .5
    assert class_ap([miss, hit], truth, points=points).ap == pytest.approx(0.5)
    # hit first: TP FP -> prec 1, 1/2; rec 1, 1: envelope 1 everywhere -> AP 1
    assert class_ap([hit, miss], truth, points=points).ap == pytest.approx(1.0)


@pytest.mark.parametrize("points", [ALL_POINTS, ELEVEN])
def test_duplicates_are_false_positives(points):
    truth = [gt("a", (0, 0, 10, 10))]
    dets = [det("a", 0.9, (0, 0, 10, 10)), det("a", 0.8, (0, 0, 10, 10)),
            det("a", 0.7, (0, 0, 10, 10))]
    # TP FP FP: prec 1, 1/2, 1/3; rec 1, 1, 1 -> envelope 1 at every level: AP 1, but 2 FP
    result = class_ap(dets, truth, points=points)
    assert (result.tp, result.fp) == (1, 2)
    assert result.ap == pytest.approx(1.0)


@pytest.mark.parametrize("points", [ALL_POINTS, ELEVEN])
def test_best_overlap_box_taken_makes_a_duplicate(points):
    # The devkit matches the box of highest IoU even when it is already found.
    truth = [gt("a", (0, 0, 10, 10)), gt("a", (5, 0, 15, 10))]
    dets = [det("a", 0.9, (0, 0, 10, 10)),    # IoU 1 with box 1: TP
            det("a", 0.8, (2, 0, 12, 10))]    # IoU 80/120=.667 box 1, 70/130=.538 box 2
    # second detection goes to box 1 (best IoU, taken): FP although box 2 is free and >= .5
    # TP FP: prec 1, 1/2; rec 1/2, 1/2
    # all-point: .5 * 1 + .5 * 0 = .5; 11-point: levels 0...5 (6 of them) at prec 1 -> 6/11
    result = class_ap(dets, truth, points=points)
    assert (result.tp, result.fp) == (1, 1)
    assert result.ap == pytest.approx(0.5 if points == ALL_POINTS else 6 / 11)


@pytest.mark.parametrize("points", [ALL_POINTS, ELEVEN])
def test_no_detections(points):
    result = class_ap([], [gt("a", (0, 0, 10, 10))], points=points)
    # no point on the curve: every level has precision 0
    assert (result.ap, result.tp, result.fp, result.npos) == (0.0, 0, 0, 1)


@pytest.mark.parametrize("points", [ALL_POINTS, ELEVEN])
def test_class_without_ground_truth(points):
    result = class_ap([det("a", 0.9, (0, 0, 10, 10))], [], points=points)
    # recall is undefined (npos = 0): AP is NaN and the class is left out of the mean
    assert math.isnan(result.ap)
    assert (result.tp, result.fp, result.npos) == (0, 1, 0)


@pytest.mark.parametrize("points", [ALL_POINTS, ELEVEN])
def test_difficult_boxes_are_ignored(points):
    truth = [gt("a", (0, 0, 10, 10)), gt("a", (30, 30, 40, 40), difficult=True)]
    dets = [det("a", 0.95, (30, 30, 40, 40)),   # on the difficult box: neither TP nor FP
            det("a", 0.9, (0, 0, 10, 10)),      # TP
            det("a", 0.8, (30, 30, 40, 40)),    # difficult again: still ignored
            det("a", 0.7, (36, 36, 46, 46))]    # IoU 16/184 with the difficult box: FP
    # counted: TP FP (npos = 1, the difficult box does not count)
    # prec 1, 1/2; rec 1, 1 -> envelope 1 at every level -> AP 1
    result = class_ap(dets, truth, points=points)
    assert (result.tp, result.fp, result.npos) == (1, 1, 1)
    assert result.ap == pytest.approx(1.0)


@pytest.mark.parametrize("points", [ALL_POINTS, ELEVEN])
def test_only_difficult_ground_truth_means_no_ground_truth(points):
    result = class_ap([det("a", 0.9, (0, 0, 10, 10))], [gt("a", (0, 0, 10, 10), True)],
                      points=points)
    assert math.isnan(result.ap) and result.npos == 0 and result.fp == 0


def test_iou_exactly_at_threshold_counts():
    # (0,0,10,20) over (0,0,10,10): inter 100, union 200 -> IoU .5, which is >= .5
    result = class_ap([det("a", 0.9, (0, 0, 10, 20))], [gt("a", (0, 0, 10, 10))])
    assert result.tp == 1
    assert class_ap([det("a", 0.9, (0, 0, 10, 20))], [gt("a", (0, 0, 10, 10))],
                    iou_threshold=0.51).tp == 0


def test_pixel_inclusive_overlaps():
    # devkit convention: (1,1)-(10,10) is 10x10 pixels; (6,1)-(15,10) shares columns 6..10
    # inter 5*10 = 50, union 100 + 100 - 50 = 150 -> 1/3 (plain geometry: 4*9/(81+81-36))
    box = (1, 1, 10, 10)
    assert box_overlaps(box, [(6, 1, 15, 10)], pixel_inclusive=True)[0] == pytest.approx(1 / 3)
    assert box_overlaps(box, [(6, 1, 15, 10)])[0] == pytest.approx(36 / 126)
    # touching boxes share a pixel column in the devkit's convention, none in geometry
    assert box_overlaps(box, [(10, 1, 19, 10)], pixel_inclusive=True)[0] == pytest.approx(
        10 / 190)
    assert box_overlaps(box, [(10, 1, 19, 10)])[0] == 0


def test_eleven_point_levels_are_exact_fractions():
    # 10 objects, 3 found with precision 1: rec .1 .2 .3 (3/10 is the double nearest .3)
    # levels 0, .1, .2, .3 are reached -> (4 * 1) / 11 (a devkit stepping by 0.1 in floating
    # point has its "0.3" level at 0.30000000000000004 and would give 3/11)
    recall = np.array([1, 2, 3]) / 10
    assert interpolated_ap(recall, [1.0, 1.0, 1.0], 11) == pytest.approx(4 / 11)
    # all-point: .3 * 1
    assert interpolated_ap(recall, [1.0, 1.0, 1.0], 0) == pytest.approx(0.3)
    # 101 levels (COCO style): 0, .01, ..., .30 reached -> 31/101
    assert interpolated_ap(recall, [1.0, 1.0, 1.0], 101) == pytest.approx(31 / 101)
    with pytest.raises(DarknetError):
        interpolated_ap(recall, [1.0, 1.0, 1.0], 1)


def test_map_over_classes():
    detections = {0: BASIC_DETS, 1: [], 2: [det("a", 0.5, (0, 0, 1, 1))]}
    truths = {0: BASIC_TRUTH, 1: [gt("a", (0, 0, 10, 10))], 2: []}
    results, mean = evaluate(detections, truths, 3, points=ELEVEN)
    # class 0: 8.2/11, class 1: 0 (no detections), class 2: no ground truth (left out)
    # mAP = (8.2/11 + 0) / 2 = 0.372727...
    assert mean == pytest.approx(8.2 / 11 / 2)
    assert math.isnan(results[2].ap)
    _, mean_all_point = evaluate(detections, truths, 3, points=ALL_POINTS)
    # (11/15 + 0) / 2
    assert mean_all_point == pytest.approx(11 / 30)
    assert math.isnan(mean_ap([results[2]]))


def test_detection_file_round_trip(tmp_path):
    path = tmp_path / "comp4_det_test_cat.txt"
    lines = [format_detection_line("000001", 0.25, 1.0, 2.5, 100.0, 200.125),
             format_detection_line("000002", 0.0123456789, 10, 20, 30, 40)]
    # darknet's "%s %f %f %f %f %f": six decimals
    assert lines[0] == "000001 0.250000 1.000000 2.500000 100.000000 200.125000\n"
    path.write_text("".join(lines))
    found = read_detection_file(path)
    assert found[0] == ScoredBox("000001", 0.25, (1.0, 2.5, 100.0, 200.125))
    assert found[1].score == 0.012346


def test_bad_detection_file_names_the_line(tmp_path):
    path = tmp_path / "comp4_det_test_cat.txt"
    path.write_text("000001 0.5 1 2 3 4\n000002 0.5 1 2 3\n")
    with pytest.raises(DarknetError, match=r"comp4_det_test_cat.txt:2: expected"):
        read_detection_file(path)
