"""Acceptance 2 of the core engine: detections after NMS and classifier top-k as darknet
prints them.

Detections are taken from the oracle's network input (input.npy, or the first kept dump)
with exact, so they test the box arithmetic, the tree walk and NMS on darknet's own
numbers: same boxes in the same order, class identical, prob and box within 1e-4.
With the default BLAS GEMM, box sizes go through exp() of the head conv's output and move
by up to ~5e-3 (see test_oracle_forward), so that mode is compared on the region output only.
The seven Tiny Darknet cases run the whole pipeline from the JPEG file.
"""
import json

import numpy as np
import pytest

import darknet_py
from darknet_py import api, detection
from conftest import ORACLE, oracle_cases
from oracle_forward import ForwardCase

DETECTION_CASES = [name for name in oracle_cases("dn_forward")
                   if json.loads((ORACLE / name / "manifest.json").read_text()).get("detections")]
TOP_CASES = [name for name in oracle_cases("dn_forward") if name.startswith("tiny_")]
TOLERANCE = 1e-4


def _reference_lines(path):
    return [line.split() for line in path.read_text().splitlines() if not line.startswith("#")]


@pytest.mark.parametrize("name", DETECTION_CASES)
def test_detections_match_darknet(name, in_darknet_dir):
    case = ForwardCase(name)
    net = case.load(exact=True)
    case.run(net)
    manifest = case.manifest
    for spec in manifest["detections"]:
        boxes = detection.network_boxes(net, manifest["image_w"], manifest["image_h"],
                                        spec["thresh"], spec["hier"])
        # every box darknet listed as a candidate (objectness > 0), before NMS
        candidates = _reference_lines(case.folder / spec["candidates_file"])
        for line in candidates:
            index = int(line[0])
            assert boxes.objectness[index] == pytest.approx(float(line[1]), abs=TOLERANCE)
            assert boxes.xywh[index] == pytest.approx([float(v) for v in line[2:6]],
                                                      abs=TOLERANCE)
        assert np.count_nonzero(boxes.objectness) == len(candidates)
        order = detection.do_nms_sort(boxes, spec["nms"])
        found = detection.labelled(detection.detections(boxes, order), spec["thresh"])
        reference = _reference_lines(case.folder / spec["file"])
        assert len(found) == len(reference), f"thresh {spec['thresh']}"
        for (det, cls, prob), line in zip(found, reference):
            assert (det.index, cls) == (int(line[0]), int(line[1]))
            assert prob == pytest.approx(float(line[2]), abs=TOLERANCE)
            assert [det.x, det.y, det.w, det.h] == pytest.approx(
                [float(v) for v in line[4:8]], abs=TOLERANCE)


@pytest.mark.parametrize("name", TOP_CASES)
def test_tiny_darknet_top5_from_the_image(name, in_darknet_dir):
    """The whole pipeline (JPEG decode, letterbox, forward, top_k) with the default GEMM."""
    case = ForwardCase(name)
    net = darknet_py.load_network(case.path(case.manifest["effective_cfg"]),
                                  case.path(case.manifest["weights"]), batch=1)
    top = darknet_py.classify(net, case.path(case.manifest["image"]), top=5)
    reference = _reference_lines(case.folder / "top5.txt")
    assert [index for index, _ in top] == [int(line[1]) for line in reference]
    assert [prob for _, prob in top] == pytest.approx([float(line[2]) for line in reference],
                                                      abs=1e-5)


@pytest.mark.parametrize("name", ["darknet9000-slim_dog", "darknet19-slim_dog",
                                  "cifar_minin_dog", "ttt4_pre_conv4_dog",
                                  "ttt5_pre_conv7_dog"])
def test_classifier_top_k_matches_darknet(name, in_darknet_dir):
    """top_k on the network output, after hierarchy_predictions for a WordTree softmax."""
    case = ForwardCase(name)
    net = case.load(exact=True)
    case.run(net)
    top_file = next(case.folder.glob("top*.txt"))
    reference = _reference_lines(top_file)
    predictions = api.classifier_predictions(net)
    top = api.top_k(predictions, len(reference))
    assert top == [int(line[1]) for line in reference]
    assert [predictions[i] for i in top] == pytest.approx([float(line[2]) for line in reference],
                                                          rel=1e-5)
