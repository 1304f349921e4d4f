"""`detector demo`: detection on a video file, stream or camera, as darknet's demo.c and
AlexeyAB's fork run it, without a window.

Each frame goes through the network exactly as an image in `detector test` does (letterbox,
get_network_boxes, do_nms_sort: api.predict_images / detections_for / detected_objects), in
batches of -batch frames; boxes are drawn with darknet_py.draw and the frames written to
-out_filename (one output frame per input frame, the input's size and rate). Per frame it
prints AlexeyAB's lines ("Objects:", each box as `name: NN%`, "FPS:x \t AVG_FPS:y"), and a
summary at the end. Video I/O is darknet_py.video (OpenCV, optional).
"""
import argparse
import json
import os
import sys
import time

from .. import api, log, video
from ..draw import draw_detections
from ..errors import DarknetError, WriteError
from ..fileio import atomic_write_text
from . import _Ignored, add_device, device_from, make_parser
from .common import batches, load_for_inference, read_names
from .detector import check_region_names, ext_box, json_frame

# AlexeyAB's / pjreddie's demo flags that mean nothing here, with why (the shared list in
# cli/__init__.py gives reasons for the other commands)
DEMO_IGNORED = {
    "-avgframes": (True, "each frame is detected on its own, as in detector test"),
    "-avg": (True, "each frame is detected on its own, as in detector test"),
    "-time_limit_sec": (True, "use -frames N to stop after N frames"),
    "-prefix": (True, "frames are not saved as images here: use -out_filename"),
    "-fps": (True, "the output keeps the source's rate"),
    "-http_port": (True, "there is no HTTP stream here"),
}


class _DemoIgnored(_Ignored):
    def __call__(self, parser, namespace, values, option_string=None):
        why = DEMO_IGNORED[option_string][1]
        value = f" {values}" if isinstance(values, str) else ""
        print(f"darknet_py: note: {option_string}{value} is accepted and ignored ({why})",
              file=sys.stderr)


def demo_parser(prog="detector demo"):
    own = ", ".join(name + (" X" if has_value else "")
                    for name, (has_value, _) in DEMO_IGNORED.items())
    parser = make_parser(
        prog, "Detect objects in every frame of a video file, stream URL or camera, as "
        "darknet's demo (AlexeyAB's fork): prints each frame's boxes and FPS, writes the "
        "drawn frames to -out_filename. No window is ever opened. Needs OpenCV: "
        "pip install darknet_py[video].",
        epilog=f"also accepted and ignored by demo: {own}",
        skip_ignored=("-dont_show", "-avgframes", "-time_limit_sec"))
    for name, (has_value, _) in DEMO_IGNORED.items():
        parser.add_argument(name, action=_DemoIgnored, nargs=None if has_value else 0,
                            help=argparse.SUPPRESS, dest=argparse.SUPPRESS,
                            default=argparse.SUPPRESS)
    parser.add_argument("data", help=".data file (names=)")
    parser.add_argument("cfg", help="network .cfg")
    parser.add_argument("weights", help=".weights file")
    parser.add_argument("source", nargs="?", default=None, metavar="video|camera",
                        help="video file, stream URL, or camera index (default: -c's camera)")
    parser.add_argument("-c", dest="camera", type=int, default=0, metavar="INDEX",
                        help="camera index when no video is given (darknet's -c, default 0)")
    parser.add_argument("-thresh", type=float, default=0.5, help="box threshold (default .5)")
    parser.add_argument("-hier", type=float, default=0.5,
                        help="WordTree hierarchy threshold (default .5)")
    parser.add_argument("-nms", type=float, default=0.45, help="NMS IoU (default .45; 0: off)")
    parser.add_argument("-out_filename", default=None, metavar="FILE",
                        help="write the drawn frames as a video (.mp4/.m4v/.mov: mp4v, "
                             ".avi/.mkv: MJPG), the input's size and frame rate")
    parser.add_argument("-batch", type=int, default=1, help="frames per forward (default 1)")
    parser.add_argument("-frames", type=int, default=None, metavar="N",
                        help="stop after N frames")
    parser.add_argument("-ext_output", action="store_true",
                        help="print each box in pixels (left_x top_y width height)")
    parser.add_argument("-json", "-json_file_output", dest="json", default=None,
                        metavar="FILE",
                        help="write every frame's boxes as AlexeyAB's JSON (a list of frames)")
    parser.add_argument("-dontdraw_bbox", action="store_true",
                        help="write the frames without boxes")
    parser.add_argument("-dont_show", action="store_true",
                        help="no window (there never is one here; without it a note says so)")
    add_device(parser)
    return parser


def _frames(source, limit):
    """The source's frames, stopping after `limit` (None: all)."""
    for count, frame in enumerate(source, 1):
        yield frame
        if limit is not None and count >= limit:
            return


def _frame_lines(objects, names, ext_output):
    """AlexeyAB's per-frame block before the FPS line: Objects: and each box."""
    lines = ["Objects:", ""]
    lines += [f"{names[obj.class_id]}: {obj.prob * 100:.0f}%" + (ext_box(obj) if ext_output
                                                                 else "")
              for obj in objects]
    return lines


def run_demo(data, cfg, weights, source=0, thresh=0.5, hier=0.5, nms=0.45, out_filename=None,
             device="cpu", exact=False, batch=1, ext_output=False, json_path=None,
             frames=None, draw=True, show=False):
    """darknet's demo over a video file / stream / camera; returns the JSON frames."""
    if batch < 1:
        raise DarknetError(f"-batch: expected a positive batch size, found {batch}")
    if frames is not None and frames < 1:
        raise DarknetError(f"-frames: expected a positive number of frames, found {frames}")
    if out_filename:
        video.check_output(out_filename)
    if json_path and not os.path.isdir(os.path.dirname(os.path.abspath(json_path))):
        raise WriteError(f"{json_path}: cannot write: the folder "
                         f"{os.path.dirname(os.path.abspath(json_path))} does not exist")
    _options, names = read_names(data)
    print("Demo")
    with video.VideoSource(source) as capture:
        if isinstance(capture.source, int):
            print(f"Webcam index: {capture.source}")
        else:
            print(f"video file: {capture.source}")
        if show:
            log.info("darknet_py: note: no window is shown here (no display); -dont_show "
                     "silences this" + ("" if out_filename else
                                        ", -out_filename FILE writes the drawn video"))
        net = load_for_inference(cfg, weights, device, exact)
        check_region_names(net, data, names)
        writer = None
        if out_filename:
            writer = video.VideoWriter(out_filename, capture.width, capture.height,
                                       capture.fps)
        try:
            result = _run(net, capture, names, thresh, hier, nms, writer, batch, ext_output,
                          frames, draw)
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        interrupted, json_frames, count, seconds = result
        print("input video stream closed.")
        if writer is not None:
            writer.close()
            print("output_video_writer closed.")
    average = count / seconds if seconds > 0 else 0.0
    where = (f"; wrote {out_filename} ({capture.width}x{capture.height}, {capture.fps:g} fps)"
             if writer is not None else "")
    print(f"{count} frames in {seconds:.2f} seconds: average FPS:{average:.1f}{where}",
          flush=True)
    if json_path:
        atomic_write_text(json_path, json.dumps(json_frames, indent=1) + "\n")
    if interrupted:
        raise KeyboardInterrupt
    return json_frames


def _run(net, capture, names, thresh, hier, nms, writer, batch, ext_output, limit, draw):
    """The frame loop: (interrupted, JSON frames, frames done, seconds)."""
    json_frames = []
    start = before = time.perf_counter()
    count = 0
    try:
        for chunk in batches(_frames(capture, limit), batch):
            ims = api.predict_images(net, chunk, bgr=capture.bgr)
            blocks = []
            for i, im in enumerate(ims):
                _, im_h, im_w = im.shape
                found = api.detections_for(net, im_w, im_h, thresh, hier, nms, batch_index=i)
                objects = api.detected_objects(found, thresh, im_w, im_h, names)
                blocks.append(_frame_lines(objects, names, ext_output))
                frame = json_frame(len(json_frames) + 1, None, objects)
                del frame["filename"]   # AlexeyAB's demo JSON names no file
                json_frames.append(frame)
                if writer is not None:
                    drawn = draw_detections(im, found, thresh, names) if draw else im
                    writer.write(video.bgr_frame(drawn))
            # darknet's FPS is the wall time of a whole frame (decode, forward, draw, write);
            # a batch's frames share its time
            now = time.perf_counter()
            fps = len(chunk) / (now - before) if now > before else 0.0
            before = now
            count += len(chunk)
            avg_fps = count / (now - start) if now > start else 0.0
            for lines in blocks:
                print("\n".join(lines + ["", f"FPS:{fps:.1f} \t AVG_FPS:{avg_fps:.1f}"]),
                      flush=True)
        if limit is None or count < limit:
            print("Stream closed.")
        interrupted = False
    except KeyboardInterrupt:   # a camera is stopped with Ctrl-C: keep what was written
        interrupted = True
    return interrupted, json_frames, count, time.perf_counter() - start


def run(args):
    source = args.source if args.source is not None else args.camera
    try:
        run_demo(args.data, args.cfg, args.weights, source, args.thresh, args.hier, args.nms,
                 args.out_filename, device_from(args), args.exact, args.batch,
                 args.ext_output, args.json, args.frames, draw=not args.dontdraw_bbox,
                 show=not args.dont_show)
    except KeyboardInterrupt:
        return 130
    return 0
