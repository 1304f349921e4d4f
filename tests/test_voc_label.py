"""voc_label: darknet's label arithmetic, the label path rule and the defects of real data."""
import os

import numpy as np
import pytest
from PIL import Image

from conftest import need_shared
from darknet_py.__main__ import main as cli_main
from darknet_py.data.labels import (difficult_label_path, image_id, label_path, read_image_labels,
                                    read_label_file, read_voc_xml)
from darknet_py.errors import DarknetError
from darknet_py.voc_label import convert_box, voc_label


def xml(filename, width, height, objects):
    rows = "".join(
        f"<object><name>{name}</name><difficult>{int(hard)}</difficult><bndbox>"
        f"<xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        for name, (x0, y0, x1, y1), hard in objects)
    return (f"<annotation><filename>{filename}</filename><size><width>{width}</width>"
            f"<height>{height}</height><depth>3</depth></size>{rows}</annotation>")


@pytest.fixture
def voc_root(tmp_path):
    """A small VOC root with one defect per image."""
    root = tmp_path / "VOC"
    for folder in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / folder).mkdir(parents=True)

    def add(image_id, filename, xml_size, objects, image_file=None, image_size=(100, 50),
            image_format="JPEG"):
        (root / "Annotations" / f"{image_id}.xml").write_text(
            xml(filename, *xml_size, objects))
        if image_file:
            Image.new("RGB", image_size, (90, 120, 150)).save(root / "JPEGImages" / image_file,
                                                               image_format)

    add("a", "a.jpg", (100, 50), [("cat", (10, 5, 30, 25), False),     # ordinary box
                                  ("dog", (40, 10, 60, 30), True),     # difficult
                                  ("cat", (5, 5, 5, 9), False),        # zero width
                                  ("zebra", (1, 1, 20, 20), False)],   # not in -names
        "a.jpg")
    add("b", "b.jpg", (0, 0), [("dog", (11, 1, 51, 21), False)], "b.jpg", (80, 40))
    add("c", "c.jpg", (100, 50), [("cat", (1, 1, 100, 50), False)], "c.jpg",
        image_format="PNG")                                            # a PNG named .jpg
    add("d", "d.jpg", (100, 50), [("dog", (2, 2, 12, 12), False)], "d.jpeg")  # XML name lies
    add("e", "e.jpg", (100, 50), [("cat", (2, 2, 12, 12), False)])   # image missing
    (root / "ImageSets/Main/train.txt").write_text("a\nb\nc\n")
    (root / "ImageSets/Main/val.txt").write_text("d 1\ne -1\nnot_annotated 1\n")
    return root


def test_convert_box_is_darknets_arithmetic():
    # centre ((10+30)/2 - 1, (5+25)/2 - 1) = (19, 14) over 100x50; size 20x20
    assert convert_box(100, 50, 10, 30, 5, 25) == pytest.approx((0.19, 0.28, 0.2, 0.4))
    x, y, w, h = convert_box(640, 480, 260, 491, 177, 376)
    # the same operations in the same order, so the same doubles (and the same str())
    assert (x, y) == (((260 + 491) / 2.0 - 1) * (1.0 / 640), ((177 + 376) / 2.0 - 1) * (1.0 / 480))
    assert (w, h) == ((491 - 260) * (1.0 / 640), (376 - 177) * (1.0 / 480))


def test_label_path_rule():
    assert label_path("/d/VOC2007/JPEGImages/000001.jpg") == "/d/VOC2007/labels/000001.txt"
    assert label_path("/d/coco/images/train2014/C_1.JPEG") == "/d/coco/labels/train2014/C_1.txt"
    assert label_path("images/x.png") == "labels/x.txt"
    assert label_path("/d/raw/x.bmp") == "/d/raw/x.txt"            # whole folder names only
    assert label_path("/d/myimages/a.b.jpeg") == "/d/myimages/a.b.txt"
    assert difficult_label_path("/d/JPEGImages/1.jpg") == "/d/labels/1.difficult.txt"
    assert image_id("/d/JPEGImages/2008_000123.jpg") == "2008_000123"
    assert image_id("/d/x/a.b.jpg") == "a"                         # darknet's basecfg


def test_conversion_with_defects(voc_root, tmp_path):
    out = tmp_path / "out"
    warnings = []
    report = voc_label(voc_root, out, names=["cat", "dog"], warn=warnings.append)
    text = "\n".join(warnings)
    assert "zero-area box cat" in text
    assert "size 0x0 in the XML, the image is 80x40" in text
    assert "extension '.jpg' but the file is PNG" in text
    assert "image e.jpg not found" in text
    assert "not_annotated.xml: listed in a split but missing" in text
    assert "no such split list, set 'test' skipped" in text
    assert "unknown class name 'zebra' (1 boxes) skipped" in text
    assert report.classes == ["cat", "dog"]
    # a, b, c in train; d in val (found as d.jpeg); e and not_annotated skipped
    assert [os.path.basename(p) for p in report.sets["train"]] == ["a.jpg", "b.jpg", "c.png"]
    assert [os.path.basename(p) for p in report.sets["val"]] == ["d.jpeg"]
    assert (report.boxes, report.difficult, report.skipped_boxes) == (4, 1, 2)

    listed = (out / "train.txt").read_text().splitlines()
    assert all(os.path.isabs(p) and os.path.exists(p) for p in listed)
    # a: cat -> (.19, .28, .2, .4); the difficult dog goes to the side file
    a_labels = (out / "labels" / "a.txt").read_text()
    assert a_labels == "0 " + " ".join(map(str, convert_box(100, 50, 10, 30, 5, 25))) + "\n"
    hard = read_label_file(out / "labels" / "a.difficult.txt")
    # dog (40,10)-(60,30): centre (49, 19) -> (.49, .38), size (.2, .4)
    np.testing.assert_allclose(hard.xywh, [[0.49, 0.38, 0.2, 0.4]])
    merged = read_image_labels(listed[0])
    assert merged.classes.tolist() == [0, 1] and merged.difficult.tolist() == [False, True]
    # b: size from the image, 80x40: dog (11,1)-(51,21) -> centre (30, 10) -> (.375, .25)
    np.testing.assert_allclose(read_label_file(out / "labels" / "b.txt").xywh,
                               [[0.375, 0.25, 0.5, 0.5]])
    # c: linked under its true extension so tools that trust extensions read it
    assert os.path.basename(listed[2]) == "c.png" and Image.open(listed[2]).format == "PNG"
    data = (out / "voc.data").read_text()
    assert f"train = {out / 'train.txt'}" in data and f"valid = {out / 'val.txt'}" in data
    assert (out / "classes.names").read_text() == "cat\ndog\n"


def test_class_list_defaults_to_sorted_names(voc_root, tmp_path):
    report = voc_label(voc_root, tmp_path / "out", sets=["train"], warn=lambda m: None)
    assert report.classes == ["cat", "dog", "zebra"]
    # zebra (1,1)-(20,20) in a is class 2 now
    assert (tmp_path / "out/labels/a.txt").read_text().splitlines()[1].startswith("2 ")


def test_in_place_conversion(voc_root):
    report = voc_label(voc_root, sets=["train"], warn=lambda m: None)
    assert report.sets["train"][0] == str(voc_root / "JPEGImages" / "a.jpg")
    assert (voc_root / "labels" / "a.txt").exists()
    assert (voc_root / "train.txt").exists()


def test_not_a_voc_root(tmp_path):
    with pytest.raises(DarknetError, match="not a VOC dataset root"):
        voc_label(tmp_path, tmp_path / "out")


def test_no_requested_set(voc_root, tmp_path):
    with pytest.raises(DarknetError, match=r"none of the sets trainval is there \(available: "
                                           r"train, val\)"):
        voc_label(voc_root, tmp_path / "out", sets=["trainval"], warn=lambda m: None)


def test_bad_xml_and_label_files_name_the_file(tmp_path):
    bad = tmp_path / "x.xml"
    bad.write_text("<annotation><object><name>a</name><bndbox><xmin>one</xmin></bndbox>"
                   "</object></annotation>")
    with pytest.raises(DarknetError, match=r"x.xml: <bndbox><xmin> expected a number"):
        read_voc_xml(bad)
    labels = tmp_path / "l.txt"
    labels.write_text("0 .5 .5 .1 .1\n\n1 .5 .5 .1\n")
    with pytest.raises(DarknetError, match=r"l.txt:3: expected 'class x y w h'"):
        read_label_file(labels)


def test_bccd_conversion(tmp_path, capsys):
    root = need_shared("datasets", "bccd", "BCCD")
    assert cli_main(["voc_label", str(root), "-out", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    # 4888 boxes in the XMLs, two of them zero-area (BloodImage_00338, 00343)
    assert "4886 boxes written, 0 difficult (kept aside), 2 skipped, 2 warnings" in out
    assert err.count("zero-area box RBC") == 2
    assert "train: 205 images" in out and "val: 87 images" in out and "test: 72 images" in out
    # BloodImage_00000's first object: WBC (260,177)-(491,376) in 640x480
    first = (tmp_path / "labels" / "BloodImage_00000.txt").read_text().splitlines()[0]
    assert first == "2 " + " ".join(map(str, convert_box(640, 480, 260, 491, 177, 376)))
    assert (tmp_path / "classes.names").read_text().split() == ["Platelets", "RBC", "WBC"]


def test_raccoon_conversion(tmp_path):
    root = need_shared("datasets", "raccoon")
    warnings = []
    report = voc_label(root, tmp_path, warn=warnings.append)
    # no ImageSets: one set 'all'; the three greyscale JPEGs are fine
    assert list(report.sets) == ["all"] and len(report.sets["all"]) == 200
    assert report.boxes == 217 and report.classes == ["raccoon"]
    assert len(warnings) == 1 and "no ImageSets/Main" in warnings[0]


def test_split_gives_disjoint_train_and_valid_lists(tmp_path):
    """raccoon has no ImageSets: -split 0.8 -seed N shuffles it into disjoint lists, the
    same for the same seed, and the .data file points train= and valid= at them."""
    root = need_shared("datasets", "raccoon")
    report = voc_label(str(root), str(tmp_path / "a"), split=0.8, seed=5, warn=lambda m: None)
    train, valid = report.sets["train"], report.sets["valid"]
    assert len(train) == 160 and len(valid) == 40 and not set(train) & set(valid)
    again = voc_label(str(root), str(tmp_path / "b"), split=0.8, seed=5, warn=lambda m: None)
    assert [os.path.basename(p) for p in again.sets["valid"]] == \
        [os.path.basename(p) for p in valid]
    data = (tmp_path / "a" / "voc.data").read_text()
    assert f"train = {tmp_path / 'a' / 'train.txt'}" in data
    assert f"valid = {tmp_path / 'a' / 'valid.txt'}" in data


def test_split_on_the_command_line(tmp_path, capsys):
    root = need_shared("datasets", "raccoon")
    assert cli_main(["voc_label", str(root), "-out", str(tmp_path), "-split", "0.75",
                     "-seed", "2"]) == 0
    out = capsys.readouterr().out
    assert "train: 150 images" in out and "valid: 50 images" in out
