"""detector valid / map / recall with a small random-weights net on a few BCCD images.

The weights are random, so the numbers mean nothing; what is checked is the file format
(darknet's print_detector_detections), that the files parse back, that map on them equals map
computed straight from the network, and the output of recall.
"""
import io
import json
import re

import numpy as np
import pytest

from conftest import DARKNET, ORACLE, need_shared
from darknet_py import detection, load_network
from darknet_py.__main__ import main as cli_main
from darknet_py.cli import evaluate
from darknet_py.data.labels import image_id, label_path, read_label_file
from darknet_py.evaluation.ap import interpolated_ap, read_detection_file
from darknet_py.evaluation.writers import COCO_IDS
from darknet_py.image import letterbox_image, load_image
from darknet_py.voc_label import voc_label

CFG = ORACLE / "cfg" / "yolov2-tiny-voc-slim.cfg"
WEIGHTS = ORACLE / "yolov2-tiny-voc-slim_dog" / "weights.weights"
# coordinates may be negative: darknet clips xmin, ymin only from below, xmax, ymax from above
LINE = re.compile(r"^BloodImage_\d{5} \d+\.\d{6}( -?\d+\.\d{6}){4}$")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """BCCD's test split converted, a data file over 3 of its images, the net loaded once and
    `detector valid` run once through the command line."""
    need_shared("datasets", "bccd")
    need_shared("oracle", "yolov2-tiny-voc-slim_dog")
    folder = tmp_path_factory.mktemp("valid")
    report = voc_label(DARKNET.parent / "datasets" / "bccd" / "BCCD", folder / "bccd",
                       sets=["test"], warn=lambda m: None)
    paths = report.sets["test"][:3]
    (folder / "valid.txt").write_text("".join(p + "\n" for p in paths))
    # the net has 20 (VOC) classes: BCCD's three names first so its label ids line up
    names = ["Platelets", "RBC", "WBC"] + [f"other{i}" for i in range(3, 20)]
    (folder / "names.txt").write_text("\n".join(names) + "\n")
    data = folder / "bccd.data"
    results = folder / "results" / "nested"     # does not exist: valid creates it
    data.write_text(f"classes = 20\nvalid = {folder / 'valid.txt'}\n"
                    f"names = {folder / 'names.txt'}\nresults = {results}\n")
    assert cli_main(["detector", "valid", str(data), str(CFG), str(WEIGHTS)]) == 0
    net = load_network(str(CFG), str(WEIGHTS), batch=1)
    return {"folder": folder, "data": data, "paths": paths, "names": names,
            "results": results, "net": net}


def test_valid_writes_one_file_per_class(setup):
    files = sorted(p.name for p in setup["results"].iterdir())
    assert files == sorted(f"comp4_det_test_{name}.txt" for name in setup["names"])


def test_valid_lines_are_darknets_format(setup):
    ids = {image_id(p) for p in setup["paths"]}
    count = 0
    for path in setup["results"].iterdir():
        for line in path.read_text().splitlines():
            assert LINE.match(line), line
            image, prob, x0, y0, x1, y1 = line.split()
            assert image in ids
            # thresh .005 (printed with 6 decimals); 1-based pixels; a box wholly outside the
            # image keeps e.g. ymin > 480 or ymax < 1, as in darknet
            assert float(prob) >= 0.005
            assert float(x0) >= 1 and float(y0) >= 1
            assert float(x1) <= 640 and float(y1) <= 480
            count += 1
    assert count > 100


def test_valid_lines_match_a_plain_reimplementation(setup):
    """One image recomputed with a plain loop written like darknet's C code."""
    net, path = setup["net"], setup["paths"][0]
    image = image_id(path)
    im = load_image(path)
    h, w = im.shape[1:]
    net.forward(letterbox_image(im, net.width, net.height)[None])
    boxes = detection.network_boxes(net, w, h, 0.005, 0.5, relative=False)
    order = detection.do_nms_sort(boxes, 0.45)
    expected = {name: [] for name in setup["names"]}
    for i in order:
        x, y, bw, bh = (float(v) for v in boxes.xywh[i])   # float -> double, as in C
        xmin = np.float32(x - bw / 2.0 + 1)
        xmax = np.float32(x + bw / 2.0 + 1)
        ymin = np.float32(y - bh / 2.0 + 1)
        ymax = np.float32(y + bh / 2.0 + 1)
        xmin, ymin = max(xmin, np.float32(1)), max(ymin, np.float32(1))
        xmax, ymax = min(xmax, np.float32(w)), min(ymax, np.float32(h))
        for j, name in enumerate(setup["names"]):
            if boxes.prob[i, j] != 0:
                expected[name].append("%s %f %f %f %f %f" % (
                    image, boxes.prob[i, j], xmin, ymin, xmax, ymax))
    for name, lines in expected.items():
        written = (setup["results"] / f"comp4_det_test_{name}.txt").read_text().splitlines()
        assert [line for line in written if line.split()[0] == image] == lines, name


def test_map_on_valid_files_equals_map_from_the_network(setup):
    direct, direct_map = evaluate.detector_map(str(setup["data"]), net=setup["net"],
                                               points=11, stream=io.StringIO())
    parsed, parsed_map = evaluate.detector_map(str(setup["data"]),
                                               dets_folder=str(setup["results"]),
                                               points=11, stream=io.StringIO())
    assert parsed_map == direct_map
    assert [r.ap for r in parsed[:3]] == [r.ap for r in direct[:3]]
    assert [(r.tp, r.fp, r.npos) for r in parsed] == [(r.tp, r.fp, r.npos) for r in direct]
    # all-point AP: from the files by the command, from the network's precision/recall curve
    parsed_all, _ = evaluate.detector_map(str(setup["data"]), dets_folder=str(setup["results"]),
                                          points=0, stream=io.StringIO())
    for from_files, from_net in zip(parsed_all[:3], direct[:3]):
        assert from_files.ap == interpolated_ap(from_net.recall, from_net.precision, 0)
    # ground truth: every label line of the three images, all in BCCD's three classes
    total = sum(len(read_label_file(label_path(p))) for p in setup["paths"])
    assert sum(r.npos for r in direct) == total
    assert all(r.npos == 0 for r in direct[3:])
    # the detections counted are exactly the lines of the files
    lines = sum(len(read_detection_file(p)) for p in setup["results"].iterdir())
    assert sum(r.tp + r.fp for r in parsed) == lines


def test_map_command_line(setup, capsys):
    capsys.readouterr()
    assert cli_main(["detector", "map", str(setup["data"]), "-dets", str(setup["results"]),
                     "-points", "0", "-iou", ".5"]) == 0
    out = capsys.readouterr().out
    assert "3 images, IoU >= 0.5, all-point (VOC2010+) interpolation" in out
    assert re.search(r"^RBC\s+[\d.]+ %\s+\d+\s+\d+\s+\d+$", out, re.M)
    assert re.search(r"^other3\s+n/a", out, re.M)
    assert re.search(r"^mAP = [\d.]+ %$", out, re.M)


def test_out_prefix_and_coco_results(setup, tmp_path):
    folder = setup["folder"]
    (tmp_path / "one.txt").write_text(setup["paths"][0] + "\n")
    data = tmp_path / "coco.data"
    data.write_text(f"valid = {tmp_path / 'one.txt'}\nnames = {folder / 'names.txt'}\n"
                    f"results = {tmp_path / 'res'}\neval = coco\n")
    [written] = evaluate.validate_detector(str(data), None, None, net=setup["net"])
    assert written.endswith("res/coco_results.json")
    entries = json.loads(open(written).read())
    # same boxes and probabilities as the comp4 files, 0-based and as x, y, w, h
    image = image_id(setup["paths"][0])
    comp4 = [line for p in sorted(setup["results"].iterdir())
             for line in p.read_text().splitlines() if line.startswith(image + " ")]
    assert len(entries) == len(comp4)
    assert {e["image_id"] for e in entries} == {int(image.split("_")[1])}
    assert {e["category_id"] for e in entries} <= set(COCO_IDS[:20])
    assert all(e["bbox"][2] >= 0 and e["bbox"][0] + e["bbox"][2] <= 640 + 1e-3
               for e in entries)
    # -out replaces darknet's "comp4_det_test_" prefix
    data.write_text(data.read_text().replace("eval = coco", "eval = voc"))
    written = evaluate.validate_detector(str(data), None, None, outfile="mine_",
                                         net=setup["net"])
    assert written[1].endswith("res/mine_RBC.txt")


def test_recall_output(setup, tmp_path):
    stream = io.StringIO()
    totals = evaluate.validate_detector_recall(str(setup["data"]), None, None,
                                               net=setup["net"], stream=stream)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    pattern = re.compile(r"^\s+(\d+)\s+(\d+)\s+(\d+)\tRPs/Img: [\d.]+\tIOU: [\d.]+%\t"
                         r"Recall:([\d.]+)%$")
    last = pattern.match(lines[-1])
    assert [int(pattern.match(line).group(1)) for line in lines] == [0, 1, 2]
    total = sum(len(read_label_file(label_path(p))) for p in setup["paths"])
    assert int(last.group(3)) == totals["total"] == total
    assert int(last.group(2)) == totals["correct"]
    assert float(last.group(4)) == pytest.approx(100 * totals["correct"] / total, abs=0.005)


def test_missing_label_file_is_a_clear_error(setup, tmp_path, capsys):
    image = tmp_path / "JPEGImages" / "lonely.jpg"
    image.parent.mkdir()
    image.symlink_to(setup["paths"][0])
    (tmp_path / "v.txt").write_text(f"{image}\n")
    data = tmp_path / "d.data"
    data.write_text(setup["data"].read_text().replace(str(setup["folder"] / "valid.txt"),
                                                      str(tmp_path / "v.txt")))
    capsys.readouterr()
    assert cli_main(["detector", "map", str(data), "-dets", str(setup["results"])]) == 1
    assert f"{tmp_path}/labels/lonely.txt: label file not found" in capsys.readouterr().err
