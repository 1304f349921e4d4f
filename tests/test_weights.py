"""Acceptance 3 of the core engine: .weights files load and save back byte for byte,
partial files load into their cfgs, and bad files fail with the layer and byte counts."""
import struct

import numpy as np
import pytest

import darknet_py
from darknet_py.errors import WeightsError
from darknet_py.network import partial
from darknet_py.weights import read_header
from conftest import DARKNET, ORACLE, SHARED, need_shared

# (cfg, weights) pairs for every weights file in ../shared, paths relative to ../shared
REAL = [("oracle/cfg/tiny-darknet_ros.cfg", "weights/tiny.weights"),
        ("oracle/cfg/ttt4-anchors1.cfg", "weights/ttt4_minloss.weights"),
        ("oracle/cfg/cifar_minin-lf.cfg", "weights/cifar_minin.weights"),
        ("oracle/cfg/ttt4_pre.cfg", "weights/ttt4_pre_conv4.weights"),
        ("oracle/cfg/ttt5_pre.cfg", "weights/ttt5_pre_141_conv7.weights")]
RANDOM = [(f"oracle/cfg/{cfg}.cfg", f"oracle/{folder}/{name}")
          for cfg, folder, name in [
              ("yolov2-voc-slim", "yolov2-voc-slim_dog", "weights.weights"),
              ("yolov2-voc-slim", "yolov2-voc-slim_horses", "weights.weights"),
              ("yolov2-tiny-voc-slim", "yolov2-tiny-voc-slim_dog", "weights.weights"),
              ("yolov2-tiny-voc-slim", "yolov2-tiny-voc-slim_horses", "weights.weights"),
              ("yolov2-slim", "yolov2-slim_dog", "weights.weights"),
              ("yolo9000-slim", "yolo9000-slim_dog", "weights.weights"),
              ("darknet19-slim", "darknet19-slim_dog", "weights.weights"),
              ("darknet9000-slim", "darknet9000-slim_dog", "weights.weights"),
              ("yolov2-voc-slim", "train_yolov2-voc-slim_b2", "weights_before.weights"),
              ("yolov2-voc-slim", "train_yolov2-voc-slim_b2", "weights_after.weights"),
              ("yolov2-voc-slim", "train_yolov2-voc-slim_b2_seen20000", "weights_after.weights"),
              ("yolov2-voc-slim", "train_yolov2-voc-slim_b1s2", "weights_after.weights"),
              ("yolov2-tiny-voc-slim", "train_yolov2-tiny-voc-slim_b2", "weights_after.weights"),
              ("darknet19-slim", "train_darknet19-slim_b2", "weights_after.weights")]]


@pytest.mark.parametrize("cfg,weights", REAL + RANDOM, ids=[w for _, w in REAL + RANDOM])
def test_load_save_round_trip_is_byte_identical(cfg, weights, tmp_path, in_darknet_dir):
    source = need_shared(weights)
    net = darknet_py.load_network(str(SHARED / cfg), str(source))
    out = tmp_path / "copy.weights"
    net.save_weights(str(out), cutoff=net.loaded_layers)
    assert out.read_bytes() == source.read_bytes()


def test_old_header_has_32_bit_seen():
    path = need_shared("weights/tiny.weights")
    version, seen, size = read_header(path.read_bytes(), path)
    assert version == (0, 1, 0) and size == 16
    assert seen == 204800000   # CASES.md: tiny.weights, 32-bit seen = 204800000


@pytest.mark.parametrize("cfg,weights,layers", [
    ("oracle/cfg/ttt4_pre.cfg", "weights/ttt4_pre_conv4.weights", 4),
    ("oracle/cfg/ttt5_pre.cfg", "weights/ttt5_pre_141_conv7.weights", 7)])
def test_partial_files_load_their_first_layers(cfg, weights, layers):
    need_shared(weights)
    net = darknet_py.load_network(str(SHARED / cfg), str(SHARED / weights), seed=1234)
    assert net.loaded_layers == layers
    assert net.seen == 0


def test_truncated_download_fails_with_layer_and_byte_counts():
    path = need_shared("weights/yolov2-tiny.truncated.weights")
    with pytest.raises(WeightsError) as info:
        darknet_py.load_network(str(DARKNET / "cfg/yolov2-tiny.cfg"), str(path))
    message = str(info.value)
    assert "yolov2-tiny.truncated.weights" in message
    assert "ends inside layer" in message and "1260988" in message


def test_file_too_long_for_the_cfg_fails(tmp_path):
    source = need_shared("weights/ttt4_minloss.weights")
    longer = tmp_path / "longer.weights"
    longer.write_bytes(source.read_bytes() + b"\0" * 8)
    with pytest.raises(WeightsError, match="8 bytes left over"):
        darknet_py.load_network(str(ORACLE / "cfg/ttt4-anchors1.cfg"), str(longer))


def test_file_shorter_than_a_header_fails(tmp_path):
    bad = tmp_path / "tiny.weights"
    bad.write_bytes(b"\0\0\0")
    cfg = need_shared("oracle/cfg/ttt4-anchors1.cfg")
    with pytest.raises(WeightsError, match="too short for a darknet weights header"):
        darknet_py.load_network(str(cfg), str(bad))


def test_partial_command_cuts_a_file_like_darknet(tmp_path):
    """darknet partial: header 0.2.0, seen 0, the first N layers' parameters unchanged."""
    source = need_shared("weights/ttt4_minloss.weights")
    cfg = str(ORACLE / "cfg/ttt4-anchors1.cfg")
    out = tmp_path / "ttt4.conv.3"
    partial(cfg, str(source), str(out), 3)
    data = out.read_bytes()
    assert struct.unpack_from("<3iQ", data) == (0, 2, 0, 0)
    full = darknet_py.load_network(cfg, str(source))
    cut = darknet_py.load_network(cfg, str(out))
    assert cut.loaded_layers == 4   # convs 0 and 2; maxpools 1 and 3 have no parameters
    for index in (0, 2):
        np.testing.assert_array_equal(cut.layers[index].weights, full.layers[index].weights)
    expected = 20 + 4 * sum(int(np.prod(shape)) for layer in full.layers[:3]
                            for _, shape in layer.param_layout())
    assert len(data) == expected


def test_connected_layer_transposed_weights_round_trip(tmp_path):
    """Files with major > 1000 store connected weights as (inputs, outputs)."""
    cfg = tmp_path / "fc.cfg"
    cfg.write_text("[net]\nwidth=2\nheight=2\nchannels=1\n[connected]\noutput=3\n"
                   "activation=linear\n")
    weights = np.arange(12, dtype=np.float32).reshape(3, 4)   # (outputs, inputs)
    data = struct.pack("<3ii", 1001, 0, 0, 5)   # major > 1000: 32-bit seen, transposed
    data += np.array([1, 2, 3], np.float32).tobytes() + weights.T.copy().tobytes()
    path = tmp_path / "fc.weights"
    path.write_bytes(data)
    net = darknet_py.load_network(str(cfg), str(path))
    np.testing.assert_array_equal(net.layers[0].weights, weights)
    out = net.forward(np.ones((1, 1, 2, 2), np.float32)).reshape(-1)
    np.testing.assert_allclose(out, weights.sum(axis=1) + [1, 2, 3])
    net.save_weights(str(tmp_path / "again.weights"))
    assert (tmp_path / "again.weights").read_bytes() == data


def test_save_is_atomic_when_interrupted(tmp_path, monkeypatch):
    """A failing write leaves the previous file untouched and no temporary file behind."""
    cfg = ORACLE / "cfg/ttt4-anchors1.cfg"
    need_shared("oracle/cfg/ttt4-anchors1.cfg")
    net = darknet_py.parse_network_cfg(str(cfg))
    target = tmp_path / "keep.weights"
    target.write_bytes(b"previous checkpoint")

    def broken_fsync(fd):
        raise OSError("disk full")
    monkeypatch.setattr("os.fsync", broken_fsync)
    with pytest.raises(OSError):
        net.save_weights(str(target))
    assert target.read_bytes() == b"previous checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.weights"]
