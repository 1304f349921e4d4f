"""darknet's constants and darknet_py's environment settings, each defined once.

Constants are the numbers darknet hard-codes in several C files; the backends, layers and
loss import them from here so that the NumPy and CuPy paths cannot drift apart.

Settings are the `DARKNET_PY_*` environment variables, read when asked for (tests change
them with monkeypatch.setenv), each with its meaning and default:

    DARKNET_PY_DEVICE   'cpu' (or -1) or a GPU index: the default device when none is given
                        (unset: the GPU when CuPy finds one, else the CPU, as darknet)
    DARKNET_PY_THREADS  threads for the NumPy backend's element-wise work (default: the
                        cores this process may use)
    DARKNET_PY_TF32     1: TF32 tensor-core GEMMs on the GPU (default 0: plain float32)
    DARKNET_PY_KERNELS  the folder of the CUDA sources (default: kernels/ of the checkout)
"""
import os
from pathlib import Path

import numpy as np

F32 = np.float32
F64 = np.float64

# The most negative float: darknet's maxpool starts each window at -FLT_MAX.
FLT_MAX = float(np.finfo(np.float32).max)
# darknet's CPU batch norm divides by sqrt(var) + .000001f (normalize_cpu); the float
# constant promoted to double. Every backend uses it: docs/QUIRKS.md.
BN_EPSILON = F64(F32(1e-6))
# backward_batchnorm_layer uses sqrt(var + .00001f) instead.
BN_BACKWARD_EPSILON = F32(1e-5)
# darknet marks "no truth here" entries of a truth vector with this value (SECRET_NUM).
SECRET_NUM = -1234
# Truth boxes per image in a detection truth vector (the region layer's max=30 default).
MAX_TRUTHS = 30
# forward_region_layer: while net->seen < 12800 every box is pulled toward its anchor.
PRIOR_SEEN = 12800


def _environment(name):
    return os.environ.get(name, "").strip()


def default_device():
    """DARKNET_PY_DEVICE as 'cpu', a GPU index, or None (unset). Raises ValueError on
    anything else, so the caller can say what was wrong."""
    value = _environment("DARKNET_PY_DEVICE").lower()
    if not value:
        return None
    if value in ("cpu", "-1"):
        return "cpu"
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"DARKNET_PY_DEVICE={value!r} is neither 'cpu' nor a GPU index") \
            from None


def thread_count():
    """DARKNET_PY_THREADS, else the cores this process may use."""
    value = _environment("DARKNET_PY_THREADS")
    if value.isdigit() and int(value) > 0:
        return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # not Linux
        return os.cpu_count() or 1


def import_numba():
    """numba, imported with its parallel loops (prange) on thread_count() threads: numba
    reads NUMBA_NUM_THREADS once, when first imported (a user's own setting wins).
    Raises ImportError without numba."""
    os.environ.setdefault("NUMBA_NUM_THREADS", str(thread_count()))
    import numba
    return numba


def tf32_enabled():
    return _environment("DARKNET_PY_TF32") not in ("", "0")


def memory_bytes():
    """This machine's physical memory (sizes beyond it are refused before allocating)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):   # not POSIX: no limit known
        return 1 << 62


def kernel_dir():
    """The CUDA sources: kernels/ beside the package (an editable install or a checkout)."""
    value = _environment("DARKNET_PY_KERNELS")
    return Path(value) if value else Path(__file__).resolve().parents[1] / "kernels"
