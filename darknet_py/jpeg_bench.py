"""Time darknet_py's stb-exact JPEG loading against Pillow (libjpeg-turbo).

Both sides produce the same thing, a float32 (3, h, w) array of byte/255: ours is
image.load_image (darknet_py.jpeg's decoder), Pillow's is
np.asarray(Image.open(p).convert("RGB"), np.float32).transpose(2, 0, 1) / 255.
The two are timed alternately, one pass over all the paths per timed run, with a short
pause before each so that a busy, shared machine disturbs both sides alike.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from darknet_py import jpeg
from darknet_py.image import load_image

PAUSE_S = 0.3


def _pillow(path) -> np.ndarray:
    with Image.open(path) as pil:
        return np.asarray(pil.convert("RGB"), np.float32).transpose(2, 0, 1) / 255.0


def _ours(path) -> np.ndarray:
    return load_image(path)


def jpeg_benchmark(paths, runs: int = 5, pause_s: float = PAUSE_S) -> dict:
    """Median seconds per pass over `paths` for ours and Pillow, and their ratio.

    The first, untimed pass also reports first_call_s: in a fresh process that includes
    loading numba and its cached machine code (or compiling it, the first time ever)."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("jpeg_benchmark needs at least one image")
    start = time.perf_counter()
    _ours(paths[0])
    first_call_s = time.perf_counter() - start
    for path in paths:  # warm the file cache and both decoders
        _ours(path)
        _pillow(path)
    times = {"ours": [], "pillow": []}
    for _ in range(runs):
        for name, load in (("ours", _ours), ("pillow", _pillow)):
            time.sleep(pause_s)
            start = time.perf_counter()
            for path in paths:
                load(path)
            times[name].append(time.perf_counter() - start)
    ours, pillow = statistics.median(times["ours"]), statistics.median(times["pillow"])
    return {"images": len(paths), "runs": runs, "numba": jpeg.numba_available(),
            "first_call_s": first_call_s,
            "ours_s": ours, "pillow_s": pillow, "ours_ms_per_image": 1000 * ours / len(paths),
            "pillow_ms_per_image": 1000 * pillow / len(paths), "ratio": ours / pillow,
            "ours_all_s": times["ours"], "pillow_all_s": times["pillow"]}
