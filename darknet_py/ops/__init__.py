"""Backends behind one narrow interface: layers call `net.ops.<name>` and never branch on
the device. `numpy_ops` is the reference; `cupy_ops.CupyOps` provides the same names on an
NVIDIA GPU with hand-written CUDA kernels (kernels/*.cu). CuPy is imported only when a GPU
backend is asked for or probed, so darknet_py runs without it.

Device choice follows darknet: a GPU index (`-i <gpu>`, `device=0`) asks for that GPU,
'cpu' (`-nogpu`) for NumPy, and None for darknet's default: the GPU when CuPy finds one,
else the CPU. The environment variable DARKNET_PY_DEVICE ('cpu' or an index) replaces that
default (e.g. to run the CPU test suite on a GPU machine).
"""
from .. import log, settings
from ..errors import DarknetError
from . import numpy_ops
from .interface import Backend  # noqa: F401 (the typed interface both backends implement)

_GPU_COUNT = None
_BACKENDS = {}


def gpu_count():
    """The number of CUDA devices CuPy sees (0 without CuPy, a driver or a GPU)."""
    global _GPU_COUNT
    if _GPU_COUNT is None:
        try:
            from .cupy_ops import import_cupy
            _GPU_COUNT = int(import_cupy().cuda.runtime.getDeviceCount())
        except Exception:   # no cupy, no driver, no device: all mean "no GPU"
            _GPU_COUNT = 0
    return _GPU_COUNT


def gpu_available():
    return gpu_count() > 0


def _default_device():
    try:
        return settings.default_device()
    except ValueError as err:
        log.warn(f"{err}; ignored")
        return None


def get_ops(device=None):
    """The ops for a device: 'cpu' (or -1) gives NumPy; a GPU index the CuPy backend on that
    GPU; None the GPU 0 when one is available, else NumPy; a backend object itself.

    Like a darknet built without GPU=1, a GPU request on a machine without one runs on the
    CPU (with a warning instead of darknet's silence).
    """
    if hasattr(device, "im2col"):   # already a backend (tests hand in their own)
        return device
    if device is None:
        device = _default_device()
    if device is None:
        return cupy_backend(0) if gpu_available() else numpy_ops
    if device in ("cpu", -1):
        return numpy_ops
    index = int(device)
    count = gpu_count()
    if not count:
        log.warn(f"no GPU backend available for device {device!r} (CuPy or a CUDA device "
                 "is missing); using the CPU")
        return numpy_ops
    if not 0 <= index < count:
        raise DarknetError(f"GPU {index} does not exist: CuPy sees {count} device(s), "
                           f"0..{count - 1}")
    return cupy_backend(index)


def cupy_backend(index=0):
    """The CuPy backend on GPU `index`, one per device and process (kernels compile once)."""
    backend = _BACKENDS.get(index)
    if backend is None:
        from .cupy_ops import CupyOps
        backend = _BACKENDS[index] = CupyOps(index)
    return backend
