"""Acceptance 4 and 5 of the core engine: darknet's cfgs parse with darknet's shapes and
BFLOPs; malformed cfgs fail with file, line and section named."""
import pytest

import darknet_py
from darknet_py.config import parse_cfg_text, read_data_cfg
from darknet_py.errors import CfgError
from conftest import ORACLE, need_shared

# Totals as darknet and pjreddie's model table report them (yolov2-voc from the issue).
FULL_SIZE = {
    "yolov2-voc": (416, 29.360, (125, 13, 13)),
    "yolov2": (608, 62.938, (425, 19, 19)),
    "yolov2-tiny": (416, 5.406, (425, 13, 13)),
    "yolov2-tiny-voc": (416, 6.971, (125, 13, 13)),
    "yolo9000": (544, 49.062, (28269, 17, 17)),
    "darknet19": (256, 7.291, (1000, 1, 1)),
    "darknet19_448": (448, 22.328, (1000, 1, 1)),
    "darknet9000": (448, 25.707, (9418, 1, 1)),
    "tiny": (224, 0.983, (1000, 1, 1)),
    "darknet": (256, 0.965, (1000, 1, 1)),
    "extraction": (224, 8.519, (1000, 1, 1)),
}


@pytest.mark.parametrize("name", sorted(FULL_SIZE))
def test_darknet_cfgs_parse_at_full_size(name, in_darknet_dir):
    width, bflops, out_shape = FULL_SIZE[name]
    net = darknet_py.parse_network_cfg(f"cfg/{name}.cfg")
    assert net.width == width
    assert round(net.bflops(), 3) == pytest.approx(bflops, abs=1e-3)
    assert net.output_layer().out_shape == out_shape


def test_yolov2_voc_layer_shapes_as_darknet_prints_them(in_darknet_dir):
    net = darknet_py.parse_network_cfg("cfg/yolov2-voc.cfg")
    lines = net.summary().splitlines()
    assert lines[1] == ("    0 conv     32  3 x 3 / 1   416 x 416 x   3   ->   416 x 416 x  32"
                        "  0.299 BFLOPs")
    assert lines[2] == "    1 max          2 x 2 / 2   416 x 416 x  32   ->   208 x 208 x  32"
    assert lines[26] == "   25 route  16"
    assert lines[28] == "   27 reorg              / 2    26 x  26 x  64   ->    13 x  13 x 256"
    assert lines[29] == "   28 route  27 24"
    assert lines[32] == "   31 detection"
    assert lines[-1] == "Total BFLOPS 29.360"


def test_slim_cfg_shapes_match_the_oracle_manifests(in_darknet_dir):
    import json
    for case in ("yolov2-voc-slim_dog", "yolo9000-slim_dog", "darknet9000-slim_dog",
                 "yolov2-tiny-voc-slim_dog", "ttt4_dog", "cifar_minin_dog"):
        manifest = json.loads((ORACLE / case / "manifest.json").read_text())
        net = darknet_py.parse_network_cfg(str(ORACLE / case / manifest["effective_cfg"]))
        for layer, ref in zip(net.layers, manifest["layers"]):
            assert layer.type == ref["type"]
            assert layer.outputs == ref["outputs"], (case, layer.index)
            if "out_c" in ref and layer.type not in ("softmax", "cost"):
                assert layer.out_shape == (ref["out_c"], ref["out_h"], ref["out_w"])


@pytest.mark.parametrize("name,section", [("yolov1", "local"), ("yolov1-tiny", "detection")])
def test_layers_outside_darknet_py_are_reported(name, section, in_darknet_dir):
    with pytest.raises(CfgError, match=rf"cfg/{name}.cfg:\d+: \[{section}\] unsupported layer"):
        darknet_py.parse_network_cfg(f"cfg/{name}.cfg")


NET = "[net]\nwidth=8\nheight=8\nchannels=3\n"


@pytest.mark.parametrize("text,message", [
    ("width=8\n[net]\n", r"t.cfg:1: option 'width=8' before the first section"),
    ("[convolutional]\nfilters=2\n", r"t.cfg:1: \[convolutional\] first section must be \[net\]"),
    (NET + "[convolutional]\nfilters 2\n", r"t.cfg:6: \[convolutional\] cannot parse line "
                                           r"'filters 2' \(expected key=value\)"),
    (NET + "[convolutional]\nfilters=two\n", r"t.cfg:6: \[convolutional\] option 'filters': "
                                             r"expected an integer, found 'two'"),
    (NET + "[conv]\nactivation=sigmoid\n", r"t.cfg:6: \[conv\] layer 0: unknown activation "
                                           r"'sigmoid'"),
    (NET + "[wibble]\n", r"t.cfg:5: unknown section \[wibble\]"),
    (NET + "[convolutional\n", r"t.cfg:5: malformed section header"),
    (NET + "[route]\nlayers=-3\n", r"t.cfg:6: \[route\] layer 0: layers=-3 points at layer -3"),
    (NET + "[route]\n", r"t.cfg:5: \[route\] layer 0: a route layer needs 'layers='"),
    (NET + "[convolutional]\nsize=9\nstride=1\n", r"a 9x9/1 convolution of a 8x8 input leaves "
                                                  r"no output"),
    (NET + "[region]\nnum=5\nclasses=20\n", r"\[region\] layer 0: num=5 anchors x .* = 125 "
                                            r"channels expected, but the previous layer gives 3"),
    ("[net]\nbatch=1\nsubdivisions=2\nwidth=8\nheight=8\nchannels=3\n",
     r"t.cfg:2: \[net\] batch=1 with subdivisions=2 gives a minibatch of 0"),
    ("[net]\nwidth=8\nheight=8\nchannels=3\npolicy=cosine\n", r"unknown policy 'cosine'"),
    ("", r"t.cfg: empty cfg"),
])
def test_malformed_cfgs_name_file_line_and_section(text, message, tmp_path):
    path = tmp_path / "t.cfg"
    path.write_text(text)
    with pytest.raises(CfgError, match=message):
        darknet_py.parse_network_cfg(str(path))


def test_unused_fields_are_reported_like_darknet(tmp_path, capsys):
    path = tmp_path / "t.cfg"
    path.write_text(NET + "[maxpool]\nsize=2\nstride=2\nfilters=3\n")
    darknet_py.parse_network_cfg(str(path))
    assert "t.cfg:8: [maxpool] Unused field: 'filters = 3'" in capsys.readouterr().err
    with pytest.raises(CfgError, match="Unused field: 'filters = 3'"):
        darknet_py.parse_network_cfg(str(path), strict=True)


def test_darknet_reading_rules():
    """Spaces anywhere are dropped, '#' and ';' comment, aliases map, first repeat wins."""
    sections = parse_cfg_text("[network]\n  wid th = 4 \n# x=1\n;y=2\nwidth=9\n[conv]\n"
                              "[max]\n[avg]\n[soft]\n[conn]\n", "t.cfg")
    assert [s.type for s in sections] == ["net", "convolutional", "maxpool", "avgpool",
                                          "softmax", "connected"]
    net = sections[0]
    assert net.integer("width") == 4
    assert [o.key for o in net.unused()] == ["width"]   # the repeat on line 5


def test_crlf_cfg_reads_like_its_lf_copy():
    """darknet rejects CRLF cfgs ("First section must be [net]"); darknet_py reads them."""
    crlf = need_shared("weights/cifar_minin.cfg")
    assert b"\r\n" in crlf.read_bytes()
    a = darknet_py.parse_network_cfg(str(crlf))
    b = darknet_py.parse_network_cfg(str(ORACLE / "cfg/cifar_minin-lf.cfg"))
    assert a.summary() == b.summary()


def test_extra_anchors_keep_the_pairs_darknet_reads(capsys):
    """ttt4.cfg lists 5 anchor pairs for num=1 (darknet overruns its buffer)."""
    net = darknet_py.parse_network_cfg(str(need_shared("weights/ttt4.cfg")))
    assert list(net.layers[-1].biases) == pytest.approx([1.08, 1.19])
    assert "using the first 2" in capsys.readouterr().err   # a warning: standard error


def test_data_files_read_as_darknet(in_darknet_dir):
    options = read_data_cfg("cfg/coco.data")
    assert options["classes"] == "80" and options["names"] == "data/coco.names"
    assert options["eval"] == "coco"
