"""What the GPU tests share: the two ways to run darknet_py's CUDA backend.

* "cuda": the real thing, CuPy on an NVIDIA GPU. Those tests carry the `gpu` marker (see
  pytest.ini) and skip, saying why, when CuPy or a CUDA device is missing.
* "emulated": the same kernels and the same cupy_ops code with tests/cuda_emulator.py
  standing in for CuPy (the kernels compiled for the CPU with g++). They run in CI, so a
  kernel's indexing or arithmetic is checked on every machine; they skip without g++.
"""
import functools

import pytest

from cuda_emulator import compiler, make_cupy


@functools.lru_cache(maxsize=None)
def cuda_skip_reason():
    """Why the real GPU backend cannot run here, or None when it can."""
    try:
        import cupy
    except Exception as err:   # ImportError, or a broken CUDA install
        return f"CuPy is not installed or does not import ({type(err).__name__}: {err})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:
        return f"CuPy finds no CUDA driver or device ({type(err).__name__}: {err})"
    if not count:
        return "CuPy finds no CUDA device"
    return None


def emulator_skip_reason():
    if not compiler():
        return "no C++ compiler (g++) to build the CUDA emulator's kernels"
    return None


@functools.lru_cache(maxsize=None)
def _backend(kind):
    from darknet_py.ops.cupy_ops import CupyOps
    if kind == "cuda":
        from darknet_py.ops import cupy_backend
        return cupy_backend(0)
    return CupyOps(0, cupy_module=make_cupy())


def backend(kind):
    """The CuPy backend of that kind, or a pytest skip saying why it cannot run here."""
    reason = cuda_skip_reason() if kind == "cuda" else emulator_skip_reason()
    if reason:
        pytest.skip(reason)
    return _backend(kind)


# parametrize a fixture or test over both kinds; the real one is marked `gpu`
KINDS = [pytest.param("cuda", marks=pytest.mark.gpu, id="cuda"),
         pytest.param("emulated", id="emulated")]
