"""classifier predict/train and detector valid refuse what cannot work with one line:
a detector cfg, a names or labels list that does not cover the network's outputs, text
where .data and map files hold integers (darknet reads past the list or atoi's the text)."""
import pytest

from conftest import ORACLE, ROOT, need_shared
from darknet_py.__main__ import main as cli_main

DETECTOR_CFG = ORACLE / "cfg/ttt4-anchors1.cfg"
TINY_CFG = ROOT / "cfg/tiny.cfg"


def detector_weights():
    need_shared("oracle/cfg/ttt4-anchors1.cfg")
    return str(need_shared("weights", "ttt4_minloss.weights"))


def tiny_weights():
    return str(need_shared("weights", "tiny.weights"))


def _error(capsys, argv):
    assert cli_main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


@pytest.fixture
def photo(tmp_path):
    return need_shared("darknet/data", "dog.jpg")


def test_classifier_predict_on_a_detector_cfg(tmp_path, capsys, photo):
    weights = detector_weights()
    (tmp_path / "n.names").write_text("a\nb\n")
    (tmp_path / "x.data").write_text(f"names={tmp_path / 'n.names'}\n")
    line = _error(capsys, ["classifier", "predict", str(tmp_path / "x.data"),
                           str(DETECTOR_CFG), weights, "-nogpu", str(photo)])
    assert "ends in a [region] layer (a detector): use `detector test`" in line


def test_classifier_predict_with_too_few_names(tmp_path, capsys, photo):
    (tmp_path / "n.names").write_text("only\n")
    (tmp_path / "x.data").write_text(f"names={tmp_path / 'n.names'}\n")
    line = _error(capsys, ["classifier", "predict", str(tmp_path / "x.data"), str(TINY_CFG),
                           tiny_weights(), "-nogpu", str(photo)])
    assert line.endswith("the names file lists 1 names, the network has 1000 outputs")


def test_text_where_top_is_an_integer(tmp_path, capsys, photo):
    names = ROOT / "data/imagenet.shortnames.list"
    (tmp_path / "x.data").write_text(f"names={names}\ntop=abc\n")
    line = _error(capsys, ["classifier", "predict", str(tmp_path / "x.data"), str(TINY_CFG),
                           tiny_weights(), "-nogpu", str(photo)])
    assert line.endswith("x.data: top = abc: expected an integer")


def test_classifier_train_on_a_detector_cfg(tmp_path, capsys, photo):
    need_shared("oracle/cfg/ttt4-anchors1.cfg")
    (tmp_path / "labels.txt").write_text("a\nb\nc\n")
    (tmp_path / "train.txt").write_text(f"{photo}\n")
    (tmp_path / "x.data").write_text(f"train={tmp_path / 'train.txt'}\nlabels="
                                     f"{tmp_path / 'labels.txt'}\nbackup={tmp_path}\n")
    line = _error(capsys, ["classifier", "train", str(tmp_path / "x.data"), str(DETECTOR_CFG),
                           "-nogpu", "-max_batches", "1"])
    assert "ends in a [region] layer (a detector): train it with `detector train`" in line
    assert not list(tmp_path.glob("*.weights"))


def test_detector_valid_with_text_in_the_map_file(tmp_path, capsys, photo):
    weights = detector_weights()
    (tmp_path / "map.txt").write_text("0\nzero\n")
    (tmp_path / "valid.txt").write_text(f"{photo}\n")
    (tmp_path / "n.names").write_text("a\nb\n")
    (tmp_path / "x.data").write_text(f"valid={tmp_path / 'valid.txt'}\nmap="
                                     f"{tmp_path / 'map.txt'}\nresults={tmp_path}\n"
                                     f"names={tmp_path / 'n.names'}\n")
    line = _error(capsys, ["detector", "valid", str(tmp_path / "x.data"), str(DETECTOR_CFG),
                           weights, "-nogpu"])
    assert line.endswith("map.txt:2: expected a class index, found 'zero'")
