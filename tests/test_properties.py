"""Property tests (hypothesis): whatever bytes the readers get, the answer is a result or
one DarknetError, never another exception. Bounded: few examples, no deadline per example."""
import io

import numpy as np
from hypothesis import HealthCheck, example, given, settings, strategies as st
from PIL import Image

from darknet_py.config import parse_cfg_text
from darknet_py.data.checks import check_detection_labels
from darknet_py.errors import DarknetError
from darknet_py.image import load_image
from darknet_py.network import Network
from darknet_py.weights import read_weights

BOUNDED = settings(max_examples=60, deadline=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture])

SMALL_CFG = """[net]
width=8
height=8
channels=3
[convolutional]
filters=2
size=3
pad=1
batch_normalize=1
activation=leaky
[maxpool]
size=2
stride=2
[connected]
output=3
activation=linear
"""

cfg_lines = st.lists(st.one_of(
    st.sampled_from(["[net]", "[convolutional]", "[maxpool]", "[region]", "[route]",
                     "[softmax]", "[bogus]", "width=8", "height=8", "channels=3",
                     "filters=2", "size=3", "stride=0", "layers=-1", "classes=0",
                     "anchors=1,nan", "activation=leaky", "num=-1", "=3", "x", "# c"]),
    st.text(max_size=12)), max_size=14)


@BOUNDED
@given(cfg_lines)
def test_any_cfg_text_parses_or_is_one_clear_error(lines):
    try:
        sections = parse_cfg_text("\n".join(lines), "p.cfg")
        Network(sections, "p.cfg", device="cpu")
    except DarknetError as err:
        assert str(err) and "p.cfg" in str(err)


@BOUNDED
@given(st.binary(max_size=400))
def test_any_weights_bytes_load_or_are_one_clear_error(tmp_path_factory, data):
    net = Network(parse_cfg_text(SMALL_CFG, "s.cfg"), "s.cfg", device="cpu")
    path = tmp_path_factory.mktemp("w") / "x.weights"
    path.write_bytes(data)
    try:
        found = read_weights(str(path), net.layers)
    except DarknetError as err:
        assert str(path) in str(err)
    else:
        assert all(np.asarray(a).dtype == np.float32 for a in found.arrays.values())


@BOUNDED
@given(st.lists(st.text(alphabet="0123456789 .-einfa\t", max_size=30), max_size=6))
def test_any_label_file_is_trained_on_or_is_one_clear_error(tmp_path_factory, lines):
    folder = tmp_path_factory.mktemp("d")
    (folder / "images").mkdir()
    (folder / "labels").mkdir()
    (folder / "labels" / "a.txt").write_text("\n".join(lines))
    try:
        boxes = check_detection_labels([str(folder / "images" / "a.jpg")], classes=3)
    except DarknetError as err:
        assert "a.txt:" in str(err)
    else:
        assert boxes >= 0


def _small_jpeg():
    pixels = (np.random.default_rng(0).random((12, 14, 3)) * 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=80)
    return out.getvalue()


JPEG = _small_jpeg()


@BOUNDED
@given(st.lists(st.tuples(st.integers(0, len(JPEG) - 1), st.integers(0, 255)), max_size=6),
       st.integers(20, len(JPEG)))
@example(edits=[(23, 69)], length=91)  # 16-bit DQT entries cut at an odd byte (stop 23's CI)
def test_any_damaged_jpeg_decodes_or_is_one_clear_error(tmp_path_factory, edits, length):
    data = bytearray(JPEG)
    for position, value in edits:
        data[position] = value
    path = tmp_path_factory.mktemp("j") / "x.jpg"
    path.write_bytes(bytes(data[:length]))
    try:
        image = load_image(str(path))
    except DarknetError as err:
        assert str(path) in str(err)
    else:
        assert image.dtype == np.float32 and image.ndim == 3
