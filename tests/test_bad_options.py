"""Options that cannot work are one-line errors before anything runs: -max_batches below 1
(a run that would never end), a 1x1 convolution that changes the map size (darknet skips
im2col for 1x1 kernels and reads its input wrongly)."""
import pytest

from darknet_py.__main__ import main as cli_main
from darknet_py.errors import CfgError
from darknet_py.network import load_network

NET = """[net]
batch=1
width=16
height=16
channels=3

[convolutional]
filters=4
size=1
stride={stride}
padding={padding}
activation=leaky
"""


@pytest.mark.parametrize("count", ["0", "-3"])
def test_max_batches_below_one(tmp_path, capsys, count):
    cfg = tmp_path / "n.cfg"
    cfg.write_text(NET.format(stride=1, padding=0))
    (tmp_path / "train.txt").write_text("x.jpg\n")
    data = tmp_path / "n.data"
    data.write_text(f"train={tmp_path / 'train.txt'}\nbackup={tmp_path}\n")
    assert cli_main(["detector", "train", str(data), str(cfg), "-max_batches", count]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"-max_batches {count}: expected at least 1 iteration" in err


@pytest.mark.parametrize("stride, padding", [(2, 0), (1, 1)])
def test_a_1x1_convolution_that_changes_the_map_size(tmp_path, stride, padding):
    cfg = tmp_path / "n.cfg"
    cfg.write_text(NET.format(stride=stride, padding=padding))
    with pytest.raises(CfgError, match=r"layer 0: a 1x1 convolution with stride=%d padding=%d "
                                       r"changes the map size" % (stride, padding)):
        load_network(str(cfg))


def test_a_plain_1x1_convolution_still_loads(tmp_path):
    cfg = tmp_path / "n.cfg"
    cfg.write_text(NET.format(stride=1, padding=0))
    assert load_network(str(cfg)).layers[0].out_shape == (4, 16, 16)
