"""darknet_py.image against darknet's image.c and stb_image, and against the oracle inputs."""
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from darknet_py import jpeg as djpeg
from darknet_py.draw import draw_detections, get_color, save_image
from darknet_py.errors import ImageError
from darknet_py.image import letterbox_image, letterbox_size, load_image, resize_image

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
ORACLE = SHARED / "oracle"
f32 = np.float32


def _letterbox_cases():
    if not ORACLE.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{ORACLE} not present"))]
    cases = []
    for case in sorted(ORACLE.iterdir()):
        manifest = case / "manifest.json"
        if (case / "input.npy").exists() and manifest.exists():
            if json.loads(manifest.read_text()).get("resize") == "letterbox":
                cases.append(pytest.param(case, id=case.name))
    return cases


@pytest.mark.parametrize("case", _letterbox_cases())
def test_letterbox_input_matches_darknet_exactly(case):
    # Tolerance 0: with stb_image's integer JPEG arithmetic reproduced in jpeg.decode_jpeg and
    # resize_image in darknet's float32 order, every oracle input.npy matched bit for bit
    # (measured: 18 cases, 0 differing values). Decoding with Pillow/libjpeg instead gives
    # 5-15 % of the decoded bytes 1-3 levels off: max |diff| 2.9/255, rel L2 ~1.8e-3.
    manifest = json.loads((case / "manifest.json").read_text())
    expected = np.load(case / "input.npy")[0]
    got = letterbox_image(load_image(case / manifest["image"]), manifest["net"]["w"],
                          manifest["net"]["h"])
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


def test_classifier_training_rows_are_letterboxed_images():
    # Classifier training rows are letterbox_image at the training size (CASES.md).
    case = ORACLE / "train_darknet19-slim_b2"
    if not case.is_dir():
        pytest.skip(f"{case} not present")
    rows = np.load(case / "X.npy")
    for row, name in zip(rows, ["dog", "eagle"]):
        im = load_image(SHARED / "darknet" / "data" / f"{name}.jpg")
        np.testing.assert_array_equal(letterbox_image(im, 128, 128), row)


# ------------------------------------------------------------------------ resize_image

def _resize_reference(im, w, h):
    """darknet's resize_image transliterated loop for loop (slow; tiny images only)."""
    c_n, im_h, im_w = im.shape
    part = np.zeros((c_n, im_h, w), f32)
    resized = np.zeros((c_n, h, w), f32)
    w_scale = f32(im_w - 1) / f32(w - 1)
    h_scale = f32(im_h - 1) / f32(h - 1)
    for k in range(c_n):
        for r in range(im_h):
            for c in range(w):
                if c == w - 1 or im_w == 1:
                    val = im[k, r, im_w - 1]
                else:
                    sx = f32(c) * w_scale
                    ix = int(sx)
                    dx = sx - f32(ix)
                    val = (f32(1) - dx) * im[k, r, ix] + dx * im[k, r, ix + 1]
                part[k, r, c] = val
    for k in range(c_n):
        for r in range(h):
            sy = f32(r) * h_scale
            iy = int(sy)
            dy = sy - f32(iy)
            for c in range(w):
                resized[k, r, c] = (f32(1) - dy) * part[k, iy, c]
            if r == h - 1 or im_h == 1:
                continue
            for c in range(w):
                resized[k, r, c] += dy * part[k, iy + 1, c]
    return resized


def test_resize_2x2_to_3x3_by_hand():
    # w_scale = h_scale = (2-1)/(3-1) = 0.5. Horizontal pass, row [a, b] -> [a, (a+b)/2, b]
    # (last column copied); vertical pass the same, the last row only (1-dy)*part[iy] with
    # iy = 1, dy = 0.
    im = np.array([[[0.0, 1.0], [0.5, 0.25]]], f32)
    expected = np.array([[[0.0, 0.5, 1.0], [0.25, 0.4375, 0.625], [0.5, 0.375, 0.25]]], f32)
    np.testing.assert_array_equal(resize_image(im, 3, 3), expected)


@pytest.mark.parametrize("src,dst", [((5, 4), (3, 7)), ((7, 9), (13, 4)), ((1, 3), (4, 5)),
                                     ((6, 1), (2, 3)), ((3, 3), (3, 3)), ((2, 2), (42, 2))])
def test_resize_matches_darknet_loops_bitwise(src, dst):
    rng = np.random.default_rng(sum(src) * 31 + sum(dst))
    im = rng.random((2, src[1], src[0])).astype(f32)
    np.testing.assert_array_equal(resize_image(im, *dst), _resize_reference(im, *dst))


def test_resize_last_row_quirk():
    # 2 rows -> 42: h_scale = 1/41 in float32, and 41*h_scale rounds to 0.99999994, so the
    # last row is (1-dy)*row0 with dy ~ 1: nearly black. darknet does this; so do we.
    im = np.ones((1, 2, 1), f32)
    out = resize_image(im, 1, 42)
    assert out[0, -1, 0] < 1e-6
    assert out[0, -2, 0] == pytest.approx(1.0)


# --------------------------------------------------------------------- letterbox_image

def test_letterbox_size_rule():
    assert letterbox_size(768, 576, 416, 416) == (416, 312)  # landscape: width-limited
    assert letterbox_size(576, 768, 416, 416) == (312, 416)  # portrait: height-limited
    assert letterbox_size(640, 424, 360, 360) == (360, 238)  # 424*360/640 = 238.5 -> 238
    assert letterbox_size(500, 500, 224, 224) == (224, 224)  # equal ratios: else branch


def test_letterbox_geometry_and_half_fill():
    rng = np.random.default_rng(3)
    im = rng.random((3, 30, 50)).astype(f32)  # 50 wide, 30 high
    boxed = letterbox_image(im, 40, 40)  # new size 40 x 24, placed at y = (40-24)/2 = 8
    assert boxed.shape == (3, 40, 40) and boxed.dtype == np.float32
    assert np.all(boxed[:, :8, :] == f32(0.5)) and np.all(boxed[:, 32:, :] == f32(0.5))
    np.testing.assert_array_equal(boxed[:, 8:32, :], resize_image(im, 40, 24))
    odd = letterbox_image(rng.random((3, 40, 25)).astype(f32), 30, 30)  # new 18 x 30
    assert np.all(odd[:, :, :6] == f32(0.5)) and np.all(odd[:, :, 24:] == f32(0.5))
    assert not np.any(odd[:, :, 6:24] == f32(0.5))


# ------------------------------------------------------------------------- load_image

def _jpeg_bytes(arr, **options):
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, "JPEG", **options)
    return buffer.getvalue()


def _gradient(h=37, w=53):
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 4, yy * 6, (xx + yy) * 2], axis=-1).astype(np.uint8)


def test_load_png_is_byte_over_255_in_chw_rgb(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "a.png")
    im = load_image(tmp_path / "a.png")
    assert im.shape == (3, 5, 7) and im.dtype == np.float32
    expected = (arr.astype(np.float64) / 255.0).astype(f32).transpose(2, 0, 1)
    np.testing.assert_array_equal(im, expected)


def test_load_grey_alpha_and_palette_become_rgb(tmp_path):
    grey = np.arange(20, dtype=np.uint8).reshape(4, 5) * 10
    Image.fromarray(grey).save(tmp_path / "g.png")
    im = load_image(tmp_path / "g.png")
    assert im.shape == (3, 4, 5)
    assert np.all(im[0] == im[1]) and np.all(im[1] == im[2])
    np.testing.assert_array_equal(im[0], (grey / 255.0).astype(f32))
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 0  # fully transparent red: stb drops alpha, no matting
    Image.fromarray(rgba).save(tmp_path / "a.png")
    red = load_image(tmp_path / "a.png")[0]
    np.testing.assert_array_equal(red, np.full((2, 2), f32(200 / 255)))
    Image.fromarray(rgba[..., :3]).convert("P").save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png").shape == (3, 2, 2)


@pytest.mark.parametrize("subsampling", [0, 1, 2])
@pytest.mark.parametrize("extra", [{}, {"restart_marker_blocks": 2}, {"optimize": True}])
def test_jpeg_decoder_is_close_to_libjpeg(subsampling, extra):
    # Without stb_image at hand, a sanity bound: stb and libjpeg round differently, by at most
    # 3 levels on this smooth image (measured max 3; a decoding bug gives far more).
    data = _jpeg_bytes(_gradient(), quality=90, subsampling=subsampling, **extra)
    ours = djpeg.decode_jpeg(data).astype(int)
    pillow = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)
    assert ours.shape == pillow.shape
    assert np.abs(ours - pillow).max() <= 3


def test_jpeg_grey_is_replicated():
    data = _jpeg_bytes(_gradient()[..., 0], quality=90)
    ours = djpeg.decode_jpeg(data)
    assert np.all(ours[..., 0] == ours[..., 1]) and np.all(ours[..., 1] == ours[..., 2])


def test_progressive_jpeg_goes_through_pillow(tmp_path):
    path = tmp_path / "p.jpg"
    path.write_bytes(_jpeg_bytes(_gradient(), quality=90, progressive=True))
    expected = np.asarray(Image.open(path).convert("RGB")).transpose(2, 0, 1) / 255.0
    np.testing.assert_array_equal(load_image(path), expected.astype(f32))


def test_stb_upsampling_and_idct_by_hand():
    # stb's horizontal 2x filter, including its quirk at the right edge: the second-to-last
    # output is (3*in[w-2] + in[w-1] + 2) >> 2, not (3*in[w-1] + in[w-2] + 2) >> 2.
    row = np.array([[0, 40, 100]])
    expected = [0, (0 + 40 + 2) >> 2, (120 + 0 + 2) >> 2, (120 + 100 + 2) >> 2,
                (120 + 100 + 2) >> 2, 100]
    assert djpeg._upsample_h2(row)[0].tolist() == expected
    t = np.array([[4, 8]])  # 2x2 filter on t = 3*near + far
    assert djpeg._upsample_hv2(t)[0].tolist() == [(4 + 2) >> 2, (12 + 8 + 8) >> 4,
                                                   (24 + 4 + 8) >> 4, (8 + 2) >> 2]
    # A block with only a DC coefficient of 80 (dequantised) is flat 80/8 + 128 = 138.
    comp = {"coef": np.zeros((1, 64), np.int16), "bh": 1, "bw": 1}
    comp["coef"][0, 0] = 80
    assert np.all(djpeg._idct_plane(comp) == 138)


def test_truncated_jpeg_raises(tmp_path):
    data = _jpeg_bytes(_gradient(64, 64), quality=95)
    path = tmp_path / "half.jpg"
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(ImageError, match="half.jpg.*truncated"):
        load_image(path)


def test_truncated_shared_jpeg_raises(tmp_path):
    source = SHARED / "darknet" / "data" / "dog.jpg"
    if not source.exists():
        pytest.skip(f"{source} not present")
    data = source.read_bytes()
    path = tmp_path / "dog_half.jpg"
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(ImageError, match="truncated"):
        load_image(path)


def test_bad_files_raise_image_error(tmp_path):
    (tmp_path / "notes.jpg").write_text("not an image at all\n")
    with pytest.raises(ImageError, match="notes.jpg.*not a recognised image"):
        load_image(tmp_path / "notes.jpg")
    with pytest.raises(ImageError, match="missing.png.*no such file"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        load_image(tmp_path / "empty.png")
    with pytest.raises(ImageError):
        load_image(tmp_path)  # a directory
    zero = bytearray(_jpeg_bytes(_gradient()))
    sof = zero.find(b"\xff\xc0")
    zero[sof + 5:sof + 7] = b"\0\0"  # height 0 in the frame header
    (tmp_path / "zero.jpg").write_bytes(bytes(zero))
    with pytest.raises(ImageError, match="zero size"):
        load_image(tmp_path / "zero.jpg")


# ----------------------------------------------------------------- save / draw

def test_save_png_truncates_like_darknet_and_jpeg_writes(tmp_path):
    im = np.random.default_rng(1).random((3, 6, 9)).astype(f32) * 1.2 - 0.1
    save_image(im, tmp_path / "a.png")
    back = np.asarray(Image.open(tmp_path / "a.png"))
    expected = (np.clip(im, 0, 1) * f32(255)).astype(np.uint8).transpose(1, 2, 0)
    np.testing.assert_array_equal(back, expected)
    save_image(im, tmp_path / "a.jpg")
    with Image.open(tmp_path / "a.jpg") as jpg:
        assert jpg.format == "JPEG" and jpg.size == (9, 6)
    with pytest.raises(ImageError, match="a.bmp"):
        save_image(im, tmp_path / "a.bmp")


class _Det:
    def __init__(self, x, y, w, h, prob):
        self.x, self.y, self.w, self.h = x, y, w, h
        self.prob = np.asarray(prob, f32)
        self.objectness = 1.0


def test_get_color_ramp():
    # 20 classes, class 1: offset = 123457 % 20 = 17, ratio 17/20*5 = 4.25 between colours
    # 4 {1,1,0} and 5 {1,0,0}; red is element 2, green 1, blue 0 of each.
    assert [get_color(c, 17, 20) for c in (2, 1, 0)] == [0.0, 0.75, 1.0]
    assert [get_color(c, 0, 20) for c in (2, 1, 0)] == [1.0, 0.0, 1.0]


def test_draw_detections_box_and_threshold(tmp_path):
    im = np.full((3, 200, 300), 0.5, f32)
    names = [f"class{i}" for i in range(20)]
    prob = np.zeros(20, f32)
    prob[1] = 0.9
    low = np.zeros(20, f32)
    low[3] = 0.2
    dets = [_Det(0.5, 0.5, 0.4, 0.5, prob), _Det(0.2, 0.2, 0.1, 0.1, low)]
    out = draw_detections(im, dets, 0.5, names, path=tmp_path / "out.png")
    assert (tmp_path / "out.png").exists()
    assert np.all(im == f32(0.5))  # the input is left alone
    # width = int(200 * .006) = 1; left = int(0.3*300) = 90, right = 210, top 50, bot 150.
    colour = np.array([0.0, 0.75, 1.0], f32)  # class 1 of 20, see test_get_color_ramp
    np.testing.assert_array_equal(out[:, 150, 90:211], np.repeat(colour[:, None], 121, 1))
    np.testing.assert_array_equal(out[:, 50:151, 210], np.repeat(colour[:, None], 101, 1))
    assert np.all(out[:, 100, 150] == f32(0.5))  # inside the box
    assert np.all(out[:, 25:56, 40:81] == f32(0.5))  # the below-threshold box is not drawn
