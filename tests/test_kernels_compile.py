"""CI's check of the CUDA sources without a GPU: every kernels/*.cu compiles with nvcc, warnings
as errors, to Hopper machine code (sm_90, the H100/H200), from exactly the text cupy_ops hands
to NVRTC (common.cuh inlined) and with the same --fmad=false. A syntax error fails the suite;
without nvcc (no CUDA toolkit) the compile tests skip and say so.

Also checked everywhere: the kernel files cupy_ops lists are the files in kernels/, and every
kernel it launches is defined, with extern "C" linkage, in the file it names.
"""
import ctypes
import ctypes.util
import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from darknet_py.ops import cupy_ops

KERNELS = cupy_ops.KERNEL_DIR
ARCH = os.environ.get("DARKNET_PY_NVCC_ARCH", "sm_90")


def nvcc():
    found = shutil.which("nvcc")
    if found is None and Path("/usr/local/cuda/bin/nvcc").exists():
        found = "/usr/local/cuda/bin/nvcc"
    return found


@pytest.mark.parametrize("name", sorted(p.name for p in KERNELS.glob("*.cu")))
def test_kernel_file_compiles_with_nvcc(name, tmp_path):
    compiler = nvcc()
    if compiler is None:
        pytest.skip("nvcc not found (no CUDA toolkit on this machine): kernels/*.cu are not "
                    "compiled here")
    source = tmp_path / name
    source.write_text(cupy_ops.kernel_source(name))
    command = [compiler, f"-arch={ARCH}", "-cubin", *cupy_ops.COMPILE_OPTIONS,
               "-Werror", "all-warnings", "-o", str(tmp_path / "out.cubin"), str(source)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout}{result.stderr}"


def nvrtc_library():
    """libnvrtc (what cupy.RawModule compiles with), from the system or NVIDIA's wheels."""
    candidates = [ctypes.util.find_library("nvrtc")]
    for folder in map(Path, __import__("sys").path):
        candidates += sorted(glob.glob(str(folder / "nvidia" / "*" / "lib" / "libnvrtc.so*")))
    for candidate in filter(None, candidates):
        if "builtins" in candidate:
            continue
        try:
            return ctypes.CDLL(candidate)
        except OSError:
            continue
    return None


@pytest.mark.parametrize("name", sorted(p.name for p in KERNELS.glob("*.cu")))
def test_kernel_file_compiles_with_nvrtc(name):
    """The exact path CuPy takes (NVRTC, no system headers), where libnvrtc is installed."""
    nvrtc = nvrtc_library()
    if nvrtc is None:
        pytest.skip("libnvrtc not found (pip package nvidia-cuda-nvrtc or a CUDA toolkit): "
                    "the NVRTC compile is not checked here")
    program = ctypes.c_void_p()
    source = cupy_ops.kernel_source(name).encode()
    assert nvrtc.nvrtcCreateProgram(ctypes.byref(program), source, name.encode(), 0, None,
                                    None) == 0
    options = [f"-arch=compute_{ARCH.split('_')[-1]}".encode(),
               *(o.encode() for o in cupy_ops.COMPILE_OPTIONS)]
    status = nvrtc.nvrtcCompileProgram(program, len(options),
                                       (ctypes.c_char_p * len(options))(*options))
    size = ctypes.c_size_t()
    nvrtc.nvrtcGetProgramLogSize(program, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    nvrtc.nvrtcGetProgramLog(program, log)
    nvrtc.nvrtcDestroyProgram(ctypes.byref(program))
    assert status == 0, log.value.decode(errors="replace")


def test_kernel_files_are_the_ones_cupy_ops_loads():
    assert sorted(cupy_ops.KERNEL_FILES) == sorted(p.name for p in KERNELS.glob("*.cu"))


def test_every_launched_kernel_is_defined_in_its_file():
    code = Path(cupy_ops.__file__).read_text()
    launches = set(re.findall(r'"(\w+\.cu)",\s*"(\w+)"', code))
    assert len(launches) > 20
    for file_name, kernel in sorted(launches):
        text = (KERNELS / file_name).read_text()
        assert re.search(rf'extern\s+"C"\s+__global__\s+void\s+{kernel}\s*\(', text), \
            f"{kernel} is not an extern \"C\" kernel of kernels/{file_name}"
