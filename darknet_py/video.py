"""Video in and out for `detector demo`: frames from a video file, a stream URL or a camera,
and a video file written frame by frame, through OpenCV (an optional dependency:
`pip install darknet_py[video]`, which is `opencv-python-headless<5`).

OpenCV is what darknet's own demo reads and writes video with (demo.c / image_opencv.cpp),
one wheel holds its FFmpeg decoders and encoders, and it opens cameras by index. cv2 is
imported only when a video is opened, so everything else in darknet_py works without it.

Frames are what the library's decoder gives: HWC uint8 in BGR order for OpenCV
(`VideoSource.bgr` says so; api.as_image(frame, bgr=True) makes darknet's CHW float image
of it). A video file is written beside its destination under a temporary name and renamed
when closed, as darknet_py.fileio writes every other file.
"""
import math
import os
import tempfile

import numpy as np

from .errors import DarknetError, WriteError
from .fileio import _umask, remove_stale_temporaries

MISSING = ("video needs OpenCV, which is not installed: pip install darknet_py[video] "
           "(or pip install 'opencv-python-headless<5')")

# the codec each container gets (darknet's demo uses DIVX; mp4v and MJPG are in every
# OpenCV wheel's FFmpeg)
FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
# darknet's demo writes at 25 fps where the source does not say its rate
DEFAULT_FPS = 25.0


def cv2_module():
    """cv2, quiet (its FFmpeg and camera warnings would follow our own one-line errors), or a
    one-line error saying how to install it."""
    # FFmpeg's own log level is read when OpenCV first opens a video: quiet unless the user
    # set it
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    try:
        import cv2
    except ImportError:
        raise DarknetError(MISSING) from None
    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except AttributeError:   # pragma: no cover (old OpenCV builds)
        pass
    return cv2


def source_of(text):
    """A camera index (an int) for a number that is not an existing file, else the text
    (a file path or a stream URL), as darknet's demo takes `-c <index>` or a filename."""
    if isinstance(text, int):
        return text
    text = str(text)
    if text.isdigit() and not os.path.exists(text):
        return int(text)
    return text


def describe(source):
    return f"camera {source}" if isinstance(source, int) else str(source)


class VideoSource:
    """Frames of a video file, stream or camera as OpenCV decodes them (HWC uint8, BGR).

    width, height: the first frame's size; fps: the source's rate (DEFAULT_FPS where it
    says none); frame_count: the container's count, or None where it does not say."""
    bgr = True

    def __init__(self, source):
        self.source = source_of(source)
        self.name = describe(self.source)
        is_path = isinstance(self.source, str) and "://" not in self.source
        if is_path and not os.path.exists(self.source):
            raise DarknetError(f"{self.source}: video file not found")
        if is_path and os.path.isdir(self.source):
            raise DarknetError(f"{self.source}: is a folder, not a video file")
        if is_path and not os.access(self.source, os.R_OK):
            raise DarknetError(f"{self.source}: cannot read the video file: permission denied")
        cv2 = cv2_module()
        self._cv2 = cv2
        self._capture = cv2.VideoCapture(self.source)
        if not self._capture.isOpened():
            self._capture.release()
            if isinstance(self.source, int):
                raise DarknetError(f"camera {self.source}: cannot open the camera (no such "
                                   f"device, or it is busy)")
            raise DarknetError(f"{self.source}: cannot open as a video (not a video file, or "
                               f"a format OpenCV's FFmpeg does not decode)")
        # the first frame now: a file that opens but decodes nothing is an error here, and
        # its size is the output's
        ok, frame = self._capture.read()
        if not ok or frame is None:
            self._capture.release()
            raise DarknetError(f"{self.name}: no frame could be decoded")
        self._first = frame
        self.height, self.width = frame.shape[:2]
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if math.isfinite(fps) and fps > 0 else DEFAULT_FPS
        count = self._capture.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count = int(count) if math.isfinite(count) and count > 0 else None

    def read(self):
        """The next frame, or None at the end of the stream."""
        if self._first is not None:
            frame, self._first = self._first, None
            return frame
        if self._capture is None:
            return None
        ok, frame = self._capture.read()
        return frame if ok and frame is not None else None

    def __iter__(self):
        while True:
            frame = self.read()
            if frame is None:
                return
            yield frame

    def close(self):
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def check_output(path):
    """A one-line error now (before a network loads) for an output video that cannot be
    written: an unknown container, a missing or read-only folder, a folder in the way."""
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in FOURCC:
        raise WriteError(f"{path}: cannot write a video: expected a name ending "
                         f"{', '.join(FOURCC)}, found '{suffix or 'no extension'}'")
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise WriteError(f"{path}: cannot write: it is a folder")
    if not os.path.isdir(folder):
        raise WriteError(f"{path}: cannot write: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise WriteError(f"{path}: cannot write: permission denied")
    return path


class VideoWriter:
    """A video file written frame by frame (HWC uint8 BGR frames of one size), under a
    temporary name beside `path` until close() renames it; abort() removes it."""

    def __init__(self, path, width, height, fps):
        self.path = check_output(path)
        cv2 = cv2_module()
        folder = os.path.dirname(os.path.abspath(self.path))
        remove_stale_temporaries(self.path)
        # fileio's temporary naming (.tmp-<pid>-<random>-<name>), so the extension, which
        # picks OpenCV's container, stays last
        try:
            fd, self._tmp = tempfile.mkstemp(prefix=f".tmp-{os.getpid()}-",
                                             suffix="-" + os.path.basename(self.path),
                                             dir=folder)
        except OSError as err:
            raise WriteError(f"{self.path}: cannot write: {err.strerror or err}") from None
        os.close(fd)
        self.size = (int(width), int(height))
        self.fps = float(fps)
        fourcc = cv2.VideoWriter_fourcc(*FOURCC[os.path.splitext(self.path)[1].lower()])
        self._writer = cv2.VideoWriter(self._tmp, fourcc, self.fps, self.size)
        if not self._writer.isOpened():
            self.abort()
            raise WriteError(f"{self.path}: cannot write: OpenCV could not open a "
                             f"{FOURCC[os.path.splitext(self.path)[1].lower()]} video writer")
        self.frames = 0

    def write(self, frame):
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        if (frame.shape[1], frame.shape[0]) != self.size:
            raise DarknetError(f"{self.path}: a frame of {frame.shape[1]}x{frame.shape[0]} in "
                               f"a {self.size[0]}x{self.size[1]} video")
        self._writer.write(frame)
        self.frames += 1

    def close(self):
        """Finish the file and move it to its name."""
        if self._writer is None:
            return
        self._writer.release()
        self._writer = None
        try:
            os.chmod(self._tmp, 0o666 & ~_umask())   # mkstemp made it 0600
            os.replace(self._tmp, self.path)
        except OSError as err:
            self._remove_tmp()
            raise WriteError(f"{self.path}: cannot write: {err.strerror or err}") from None

    def abort(self):
        """Drop the unfinished file."""
        if getattr(self, "_writer", None) is not None:
            self._writer.release()
            self._writer = None
        self._remove_tmp()

    def _remove_tmp(self):
        if os.path.exists(self._tmp):
            os.unlink(self._tmp)


def bgr_frame(im):
    """darknet's CHW float RGB image as an HWC uint8 BGR frame: bytes as save_image makes
    them ((unsigned char)(255*v) after clipping into [0, 1])."""
    pixels = (np.clip(np.asarray(im, np.float32), 0, 1) * np.float32(255)).astype(np.uint8)
    return np.ascontiguousarray(pixels[::-1].transpose(1, 2, 0))
