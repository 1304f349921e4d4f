"""`detector demo` on video as AlexeyAB's fork users run it: one drawn output frame per input
frame at the input's size and rate, each frame's boxes those the API finds on the same
decoded frame, darknet's per-frame lines, and one-line errors for a missing file, a camera
that cannot be opened, an output that cannot be written and a missing OpenCV.

OpenCV is optional (CI does not install it): the tests that decode or write video skip
without it; argument parsing and the errors found before any video is opened run anyway."""
import json
import re
import subprocess
import sys

import numpy as np
import pytest

import darknet_py
from darknet_py import api, video
from darknet_py.__main__ import main
from darknet_py.cli import parse
from darknet_py.cli.demo import demo_parser
from conftest import ORACLE, ROOT, SHARED, need_shared

TTT4_CFG = ORACLE / "cfg/ttt4-anchors1.cfg"
TTT4_WEIGHTS = SHARED / "weights/ttt4_minloss.weights"
# a tiny detector with random weights (no batch norm: darknet's random init gives batch
# norm a rolling variance of 0, whose outputs overflow the region's exp)
TINY_CFG = """[net]
batch=1
width=32
height=32
channels=3
[convolutional]
filters=8
size=3
stride=1
pad=1
activation=leaky
[maxpool]
size=2
stride=2
[convolutional]
filters=14
size=1
stride=1
activation=linear
[region]
anchors=1,1,3,3
classes=2
num=2
softmax=1
"""
FPS_LINE = re.compile(r"^FPS:\d+\.\d \t AVG_FPS:\d+\.\d$")
EXT = re.compile(r"^(\w+): (\d+)%\t\(left_x: +(-?\d+) +top_y: +(-?\d+) +width: +(-?\d+) +"
                 r"height: +(-?\d+)\)$")


def need_cv2():
    return pytest.importorskip("cv2", reason="OpenCV (the [video] extra) is not installed")


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A working folder with a 2-class .data file and the tiny random network."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "two.names").write_text("thing\nother\n")
    (tmp_path / "two.data").write_text("classes=2\nnames=two.names\n")
    (tmp_path / "tiny.cfg").write_text(TINY_CFG)
    darknet_py.load_network(str(tmp_path / "tiny.cfg"), None, batch=1) \
        .save_weights(str(tmp_path / "tiny.weights"))
    return tmp_path


def write_clip(path, frames, fps, fourcc="MJPG"):
    cv2 = need_cv2()
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def moving_box_frames(count=8, width=160, height=120):
    cv2 = need_cv2()
    frames = []
    for i in range(count):
        frame = np.full((height, width, 3), 40, np.uint8)
        cv2.rectangle(frame, (10 + 9 * i, 20), (70 + 9 * i, 95), (0, 0, 255), -1)
        cv2.circle(frame, (120, 30 + 6 * i), 12, (255, 200, 0), -1)
        frames.append(frame)
    return frames


def read_clip(path):
    """Every frame OpenCV decodes from a file, and its size and rate, read independently of
    darknet_py.video."""
    cv2 = need_cv2()
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), path
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames, fps


def run_cli(capsys, *args):
    code = main(["detector", "demo", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def frame_blocks(stdout):
    """The box lines of each frame: those between 'Objects:' and its 'FPS:' line."""
    blocks, current = [], None
    for line in stdout.splitlines():
        if line == "Objects:":
            current = []
        elif FPS_LINE.match(line):
            blocks.append(current)
            current = None
        elif current is not None and line:
            current.append(line)
    return blocks


def expected_lines(objects, w, h):
    """A box line as AlexeyAB's -ext_output prints it, from the API's DetectedObject."""
    return [f"{o.name}: {o.prob * 100:.0f}%\t(left_x: {round(o.left):4.0f}   top_y: "
            f"{round(o.top):4.0f}   width: {round(o.right - o.left):4.0f}   height: "
            f"{round(o.bottom - o.top):4.0f})" for o in objects]


def check_against_api(net, frames, stdout, json_path, thresh, names):
    """Each frame's printed lines and JSON objects are api.detect's on the decoded frame."""
    blocks = frame_blocks(stdout)
    data = json.loads(json_path.read_text())
    assert len(blocks) == len(data) == len(frames)
    assert [frame["frame_id"] for frame in data] == list(range(1, len(frames) + 1))
    total = 0
    for frame, block, record in zip(frames, blocks, data):
        reference = api.detect(net, frame, thresh=thresh, names=names, bgr=True)
        total += len(reference)
        h, w = frame.shape[:2]
        assert block == expected_lines(reference, w, h)
        assert [o["class_id"] for o in record["objects"]] == [r.class_id for r in reference]
        assert [o["name"] for o in record["objects"]] == [r.name for r in reference]
        assert [o["confidence"] for o in record["objects"]] == \
            pytest.approx([r.prob for r in reference], abs=1e-5)
        boxes = [o["relative_coordinates"] for o in record["objects"]]
        assert [v for b in boxes for v in (b["center_x"], b["center_y"], b["width"],
                                           b["height"])] == \
            pytest.approx([v for r in reference for v in (r.x, r.y, r.w, r.h)], abs=1e-5)
    return total


# ----------------------------------------------------------------------- without OpenCV

def test_help_exits_0_and_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["detector", "demo", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m darknet_py detector demo")
    for option in ("-thresh", "-hier", "-nms", "-out_filename", "-dont_show", "-ext_output",
                   "-json", "-batch", "-frames", "-nogpu", "-exact", "-avgframes",
                   "-mjpeg_port"):
        assert option in out, option
    assert main(["detector", "-h"]) == 0
    assert "detector demo <data> <cfg> <weights> [video|camera]" in capsys.readouterr().out


def test_arguments_and_ignored_flags(capsys):
    args = parse(demo_parser(), ["a.data", "-thresh", ".3", "b.cfg", "c.weights", "clip.mp4",
                                 "-out_filename", "o.avi", "-avgframes", "3", "-mjpeg_port",
                                 "8090", "-prefix", "p", "-frames", "5", "-batch", "4",
                                 "-dont_show", "-nogpu"])
    assert (args.data, args.cfg, args.weights, args.source) == \
        ("a.data", "b.cfg", "c.weights", "clip.mp4")
    assert (args.thresh, args.out_filename, args.frames, args.batch) == (0.3, "o.avi", 5, 4)
    assert args.dont_show and args.nogpu and args.camera == 0
    notes = capsys.readouterr().err.splitlines()
    assert len(notes) == 3 and all("is accepted and ignored" in note for note in notes)
    assert "-avgframes 3" in notes[0] and "-mjpeg_port 8090" in notes[1]
    # a camera: a number that is not a file, or darknet's -c
    assert video.source_of("3") == 3 and video.source_of("clip.mp4") == "clip.mp4"
    assert parse(demo_parser(), ["a", "b", "c", "-c", "2"]).camera == 2


@pytest.mark.parametrize("flags, message", [
    (["-batch", "0"], "-batch: expected a positive batch size, found 0"),
    (["-frames", "0"], "-frames: expected a positive number of frames, found 0"),
    (["-out_filename", "out.gif"], "out.gif: cannot write a video: expected a name ending "
                                   ".mp4, .m4v, .mov, .avi, .mkv, found '.gif'"),
    (["-out_filename", "no/such/folder/out.mp4"], "cannot write: the folder"),
    (["-out_filename", "two.names/out.mp4"], "cannot write: the folder"),
    (["-json", "no/such/f.json"], "no/such/f.json: cannot write: the folder"),
])
def test_bad_options_are_one_line_errors_before_any_video(folder, capsys, flags, message):
    (folder / "clip.mp4").write_bytes(b"not opened")
    code, _, err = run_cli(capsys, "two.data", "tiny.cfg", "tiny.weights", "clip.mp4", *flags)
    assert code == 1 and len(err.splitlines()) == 1
    assert err.startswith("darknet_py: ") and message in err


def test_missing_video_file_is_one_line(folder, capsys):
    code, out, err = run_cli(capsys, "two.data", "tiny.cfg", "tiny.weights", "gone.mp4",
                             "-dont_show")
    assert code == 1 and err == "darknet_py: gone.mp4: video file not found\n"
    assert "FPS" not in out


def test_missing_video_file_in_a_process_has_no_traceback(folder):
    result = subprocess.run([sys.executable, "-m", "darknet_py", "detector", "demo", "two.data",
                             "tiny.cfg", "tiny.weights", "gone.avi"], cwd=folder,
                            capture_output=True, text=True, timeout=120,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 1
    assert result.stderr == "darknet_py: gone.avi: video file not found\n"


def test_without_opencv_one_line_says_how_to_install(folder, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)   # `import cv2` raises ImportError
    (folder / "clip.mp4").write_bytes(b"\0" * 16)
    code, _, err = run_cli(capsys, "two.data", "tiny.cfg", "tiny.weights", "clip.mp4",
                           "-dont_show")
    assert code == 1 and len(err.splitlines()) == 1
    assert "pip install darknet_py[video]" in err and "opencv-python-headless<5" in err


def test_frames_are_the_decoders_bytes_over_255():
    """The network input of a frame is darknet's load_image rule applied to the decoder's
    bytes (RGB order), and bgr_frame turns it back into the same bytes."""
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    im = api.as_image(frame, bgr=True)
    assert im.shape == (3, 5, 7)
    np.testing.assert_array_equal(im[0], (frame[:, :, 2] / 255.0).astype(np.float32))
    np.testing.assert_array_equal(video.bgr_frame(im), frame)


# ----------------------------------------------------------------------- with OpenCV

def test_video_in_video_out_with_the_apis_boxes(folder, capsys):
    clip = write_clip(folder / "clip.avi", moving_box_frames(8), fps=10)
    frames, fps = read_clip(clip)
    assert len(frames) == 8 and fps == 10
    code, out, err = run_cli(capsys, "two.data", "tiny.cfg", "tiny.weights", clip,
                             "-thresh", ".45", "-out_filename", "out.mp4", "-dont_show",
                             "-ext_output", "-json", "boxes.json", "-batch", "3")
    assert code == 0, err
    assert "no window" not in err   # -dont_show
    lines = out.splitlines()
    assert lines[:2] == ["Demo", f"video file: {clip}"]
    assert sum(1 for line in lines if FPS_LINE.match(line)) == 8
    assert lines.count("Objects:") == 8
    assert re.fullmatch(r"8 frames in \d+\.\d\d seconds: average FPS:\d+\.\d; wrote out.mp4 "
                        r"\(160x120, 10 fps\)", lines[-1])
    written, written_fps = read_clip(folder / "out.mp4")
    assert len(written) == 8 and written_fps == 10
    assert all(frame.shape == (120, 160, 3) for frame in written)
    assert not list(folder.glob(".tmp-*"))
    net = darknet_py.load_network(str(folder / "tiny.cfg"), str(folder / "tiny.weights"),
                                  batch=1)
    assert check_against_api(net, frames, out, folder / "boxes.json", 0.45,
                             ["thing", "other"]) > 0


def test_drawn_frames_are_the_drawing_of_detector_test(folder, capsys):
    """The written frames are draw_detections' pictures of the frames (up to the codec's
    loss), not the frames themselves."""
    from darknet_py.draw import draw_detections
    clip = write_clip(folder / "clip.avi", moving_box_frames(4, 320, 240), fps=8)
    frames, _ = read_clip(clip)
    code, _, err = run_cli(capsys, "two.data", "tiny.cfg", "tiny.weights", clip,
                           "-thresh", ".4", "-out_filename", "drawn.avi")
    assert code == 0, err
    assert "darknet_py: note: no window is shown here" in err
    written, _ = read_clip(folder / "drawn.avi")
    net = darknet_py.load_network(str(folder / "tiny.cfg"), str(folder / "tiny.weights"),
                                  batch=1)
    reference = []
    for frame in frames:
        im = api.predict_image(net, frame, bgr=True)
        found = api.detections_for(net, 320, 240, 0.4)
        assert found
        reference.append(video.bgr_frame(draw_detections(im, found, 0.4, ["thing", "other"])))
    # the same drawing through the same encoder gives the same decoded frames
    encoded, _ = read_clip(write_clip(folder / "reference.avi", reference, fps=8))
    assert len(written) == len(encoded) == 4
    for out, expected, frame in zip(written, encoded, frames):
        np.testing.assert_array_equal(out, expected)
        assert np.abs(out.astype(int) - frame).mean() > 1   # boxes and labels were drawn


def test_trained_detector_on_a_clip_and_frames_limit(folder, capsys):
    need_shared("weights/ttt4_minloss.weights")
    need_shared("oracle/cfg/ttt4-anchors1.cfg")
    cv2 = need_cv2()
    dog = cv2.resize(cv2.imread(str(need_shared("darknet/data/dog.jpg"))), (240, 180))
    clip = write_clip(folder / "dog.mp4", [np.ascontiguousarray(dog[4 * i:4 * i + 150,
                                                                     6 * i:6 * i + 200])
                                           for i in range(6)], fps=12, fourcc="mp4v")
    frames, _ = read_clip(clip)
    assert len(frames) == 6
    code, out, err = run_cli(capsys, "two.data", TTT4_CFG, TTT4_WEIGHTS, clip, "-thresh", ".2",
                             "-ext_output", "-json", "dog.json", "-out_filename", "dog.avi",
                             "-batch", "2", "-frames", "5", "-dont_show", "-nogpu")
    assert code == 0, err
    written, written_fps = read_clip(folder / "dog.avi")
    assert len(written) == 5 and written_fps == 12 and written[0].shape == (150, 200, 3)
    assert "Stream closed." not in out   # stopped by -frames, not by the end of the file
    net = darknet_py.load_network(str(TTT4_CFG), str(TTT4_WEIGHTS), batch=1)
    assert check_against_api(net, frames[:5], out, folder / "dog.json", 0.2,
                             ["thing", "other"]) >= 5


def test_ctrl_c_keeps_the_frames_done(folder, capsys, monkeypatch):
    clip = write_clip(folder / "clip.avi", moving_box_frames(8), fps=10)
    calls = []
    predict = api.predict_images

    def interrupted_on_the_third_batch(net, images, bgr=False):
        calls.append(len(images))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return predict(net, images, bgr)

    monkeypatch.setattr(api, "predict_images", interrupted_on_the_third_batch)
    code, out, err = run_cli(capsys, "two.data", "tiny.cfg", "tiny.weights", clip,
                             "-out_filename", "part.avi", "-json", "part.json", "-batch", "2",
                             "-dont_show")
    assert code == 130, err
    assert len(read_clip(folder / "part.avi")[0]) == 4
    assert len(json.loads((folder / "part.json").read_text())) == 4
    assert "4 frames in" in out.splitlines()[-1]


def test_too_few_names_or_no_region_layer_is_one_line(folder, capsys):
    clip = write_clip(folder / "clip.avi", moving_box_frames(2), fps=10)
    (folder / "one.names").write_text("thing\n")
    (folder / "one.data").write_text("classes=1\nnames=one.names\n")
    code, _, err = run_cli(capsys, "one.data", "tiny.cfg", "tiny.weights", clip, "-dont_show")
    assert code == 1
    assert err.splitlines()[-1] == \
        "darknet_py: one.data: the names file lists 1 names, the network has 2 classes"
    (folder / "flat.cfg").write_text(TINY_CFG.split("[region]")[0] + "[softmax]\n")
    code, _, err = run_cli(capsys, "two.data", "flat.cfg", "tiny.weights", clip, "-dont_show")
    assert code == 1 and err.splitlines()[-1].endswith(
        "the last layer is [softmax], not a [region] detection layer")


def test_unreadable_video_and_bad_camera_are_one_line(folder, capsys):
    need_cv2()
    (folder / "text.mp4").write_text("not a video\n")
    code, _, err = run_cli(capsys, "two.data", "tiny.cfg", "tiny.weights", "text.mp4",
                           "-dont_show")
    assert code == 1 and len(err.splitlines()) == 1
    assert err.startswith("darknet_py: text.mp4: cannot open as a video")
    code, out, err = run_cli(capsys, "two.data", "tiny.cfg", "tiny.weights", "97", "-dont_show")
    assert code == 1 and len(err.splitlines()) == 1
    assert err.startswith("darknet_py: camera 97: cannot open the camera")
    code, _, err = run_cli(capsys, "two.data", "tiny.cfg", "tiny.weights", "-c", "98",
                           "-dont_show")
    assert code == 1 and err.startswith("darknet_py: camera 98: cannot open the camera")
    assert len(err.splitlines()) == 1
