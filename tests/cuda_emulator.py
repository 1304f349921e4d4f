"""A CPU stand-in for the part of CuPy that darknet_py's GPU backend uses, so the CUDA
kernels in kernels/*.cu and the backend's Python side (darknet_py/ops/cupy_ops.py) can be
run and checked against the NumPy backend on a machine without a GPU.

This is a test double, not a GPU: it proves the kernels' indexing, arithmetic and launch
arguments, not their speed, their behaviour under real concurrency, or CUDA's own math
library (the host's libm stands in for exp/log/pow). What it does:

* `RawModule(code=...)` compiles the kernel source as C++ with g++ against a small shim
  (CUDA's qualifiers as no-ops, `threadIdx`/`blockIdx`/... as globals, `__shared__` as
  static storage, `__fadd_rn`/`__fmul_rn` as plain float operations, -ffp-contract=off).
  Each block runs its threads one after another; kernels that call `__syncthreads` (found
  by reading the source) run each thread as a coroutine (ucontext) that yields at every
  barrier, so shared-memory reductions behave as on a GPU.
* Kernel calls are checked more strictly than CuPy does: every argument must match the
  kernel's parameter type exactly (numpy.int32 for `int`, numpy.float32 for `float`, a
  C-contiguous device array of the pointer's element type, writeable unless `const`).
* Device arrays are `DeviceArray`, an ndarray subclass that refuses to mix with plain
  (host) arrays in arithmetic, as CuPy raises on implicit host/device mixing.
"""
import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
import types
from pathlib import Path

import numpy as np

CACHE = Path(os.environ.get("DARKNET_PY_EMULATOR_CACHE",
                            Path(tempfile.gettempdir()) / "darknet_py_cuda_emulator"))


def compiler():
    """The C++ compiler the emulator needs, or None."""
    return shutil.which(os.environ.get("CXX", "g++"))


# ------------------------------------------------------------------ device arrays
class DeviceArray(np.ndarray):
    """An array 'on the device': arithmetic with host arrays raises, as in CuPy."""

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        for value in inputs + (out or ()):
            if isinstance(value, np.ndarray) and not isinstance(value, DeviceArray) \
                    and value.ndim > 0:
                raise TypeError(f"emulated cupy: {ufunc.__name__} mixes a host numpy array "
                                "with a device array (CuPy raises here too)")
        plain = tuple(v.view(np.ndarray) if isinstance(v, DeviceArray) else v for v in inputs)
        if out is not None:
            kwargs["out"] = tuple(v.view(np.ndarray) if isinstance(v, DeviceArray) else v
                                  for v in out)
        result = getattr(ufunc, method)(*plain, **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(result)

    def __setitem__(self, key, value):
        if isinstance(value, np.ndarray) and not isinstance(value, DeviceArray) and value.ndim:
            raise TypeError("emulated cupy: assigning a host array into a device array")
        super().__setitem__(key, value)

    def get(self):
        return np.array(self.view(np.ndarray))


def _wrap(result):
    if isinstance(result, tuple):
        return tuple(_wrap(r) for r in result)
    if isinstance(result, np.ndarray):
        return result.view(DeviceArray)
    return result


def _device(values, name):
    for value in values:
        if isinstance(value, np.ndarray) and not isinstance(value, DeviceArray) and value.ndim:
            raise TypeError(f"emulated cupy.{name}: got a host numpy array")
    return [v.view(np.ndarray) if isinstance(v, DeviceArray) else v for v in values]


# ------------------------------------------------------------------ kernels
SHIM = r"""
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <ucontext.h>
#include <vector>
#include <functional>
struct emu_dim3 { unsigned x, y, z; };
static emu_dim3 threadIdx, blockIdx, blockDim, gridDim;
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
namespace emu {
static const size_t STACK = 256 * 1024;
static ucontext_t scheduler;
static std::vector<ucontext_t> contexts;
static std::vector<char*> stacks;
static std::vector<int> finished;
static int current = -1;
static bool cooperative = false;
static std::function<void()>* body = nullptr;
static void set_thread(unsigned t) {
    threadIdx.x = t % blockDim.x;
    threadIdx.y = (t / blockDim.x) % blockDim.y;
    threadIdx.z = t / (blockDim.x * blockDim.y);
}
static void trampoline() { (*body)(); finished[current] = 1; }
static void sync() {
    if (!cooperative) {
        fprintf(stderr, "emulator: __syncthreads() in a kernel not run cooperatively\n");
        abort();
    }
    swapcontext(&contexts[current], &scheduler);
}
static void run_block(unsigned threads) {
    while (contexts.size() < threads) {
        contexts.emplace_back();
        stacks.push_back((char*)malloc(STACK));
        finished.push_back(0);
    }
    for (unsigned t = 0; t < threads; ++t) {
        getcontext(&contexts[t]);
        contexts[t].uc_stack.ss_sp = stacks[t];
        contexts[t].uc_stack.ss_size = STACK;
        contexts[t].uc_link = &scheduler;
        makecontext(&contexts[t], trampoline, 0);
        finished[t] = 0;
    }
    unsigned remaining = threads;
    while (remaining) {
        for (unsigned t = 0; t < threads; ++t) {
            if (finished[t]) continue;
            set_thread(t);
            current = (int)t;
            swapcontext(&scheduler, &contexts[t]);
            if (finished[t]) --remaining;
        }
    }
}
template <typename F>
static void launch(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                   unsigned bz, bool needs_sync, F f) {
    gridDim = {gx, gy, gz};
    blockDim = {bx, by, bz};
    std::function<void()> fn = f;
    body = &fn;
    cooperative = needs_sync;
    const unsigned threads = bx * by * bz;
    for (unsigned z = 0; z < gz; ++z)
        for (unsigned y = 0; y < gy; ++y)
            for (unsigned x = 0; x < gx; ++x) {
                blockIdx = {x, y, z};
                if (needs_sync) {
                    run_block(threads);
                } else {
                    for (unsigned t = 0; t < threads; ++t) { set_thread(t); fn(); }
                }
            }
    body = nullptr;
}
}  // namespace emu
static inline void __syncthreads() { emu::sync(); }
"""

_SIGNATURE = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(([^)]*)\)', re.S)
_FUNCTION = re.compile(r'(?:__global__|__device__)[^;{}()]*?\b(\w+)\s*\([^)]*\)\s*\{', re.S)
_POINTER_TYPES = {"float": np.float32, "double": np.float64, "int": np.int32,
                  "long long": np.int64}
_SCALAR_TYPES = {"float": (np.float32, ctypes.c_float), "double": (np.float64, ctypes.c_double),
                 "int": (np.int32, ctypes.c_int), "long long": (np.int64, ctypes.c_longlong)}


def _bodies(code):
    """{function name: body text} for every __global__/__device__ function definition."""
    bodies = {}
    for match in _FUNCTION.finditer(code):
        depth, start = 0, match.end() - 1
        for position in range(start, len(code)):
            depth += {"{": 1, "}": -1}.get(code[position], 0)
            if depth == 0:
                bodies[match.group(1)] = code[start:position + 1]
                break
    return bodies


def _needs_sync(code):
    """Names of the functions that reach __syncthreads, directly or through a callee."""
    bodies = _bodies(code)
    syncing = {name for name, body in bodies.items() if "__syncthreads" in body}
    changed = True
    while changed:
        changed = False
        for name, body in bodies.items():
            if name not in syncing and any(re.search(rf"\b{callee}\s*\(", body)
                                           for callee in syncing):
                syncing.add(name)
                changed = True
    return syncing


class _Param:
    def __init__(self, text):
        text = " ".join(text.replace("__restrict__", " ").split())
        match = re.match(r"(.*?)(\w+)$", text)
        self.ctype, self.name = match.group(1).strip(), match.group(2)
        self.pointer = "*" in self.ctype
        self.const = self.ctype.startswith("const")
        self.base = self.ctype.replace("const", "").replace("*", "").strip()


class RawKernel:
    def __init__(self, module, name, params):
        self.module, self.name, self.params = module, name, params
        self.function = getattr(module.library, f"emu_launch_{name}")
        self.function.argtypes = [ctypes.c_uint] * 6 + [ctypes.POINTER(ctypes.c_void_p)]
        self.function.restype = None

    def __call__(self, grid, block, args, shared_mem=0):
        grid, block = (tuple(grid) + (1, 1))[:3], (tuple(block) + (1, 1))[:3]
        if len(args) != len(self.params):
            raise TypeError(f"{self.name}: {len(args)} arguments for {len(self.params)} "
                            "parameters")
        holders = []
        for value, param in zip(args, self.params):
            where = f"{self.name}({param.ctype} {param.name})"
            if param.pointer:
                if not isinstance(value, DeviceArray):
                    raise TypeError(f"{where}: expected a device array, got {type(value)}")
                if value.dtype != _POINTER_TYPES[param.base]:
                    raise TypeError(f"{where}: array of {value.dtype}")
                if not value.flags.c_contiguous:
                    raise TypeError(f"{where}: array is not C-contiguous")
                if not param.const and not value.flags.writeable:
                    raise TypeError(f"{where}: array is read-only")
                holders.append(ctypes.c_void_p(value.ctypes.data))
            else:
                numpy_type, ctype = _SCALAR_TYPES[param.base]
                if type(value) is not numpy_type:
                    raise TypeError(f"{where}: expected {numpy_type.__name__}, got "
                                    f"{type(value).__name__} (CuPy would pass it with the "
                                    "wrong size)")
                holders.append(ctype(value))
        argv = (ctypes.c_void_p * max(1, len(holders)))(
            *[ctypes.addressof(holder) for holder in holders])
        self.function(*(int(v) for v in grid + block), argv)


class RawModule:
    """cupy.RawModule(code=..., options=...): the source compiled for the host."""

    def __init__(self, code=None, options=(), **_):
        self.code = code
        self.kernels = {m.group(1): [_Param(p) for p in m.group(2).split(",") if p.strip()]
                        for m in _SIGNATURE.finditer(code)}
        syncing = _needs_sync(code)
        launchers = []
        for name, params in self.kernels.items():
            call = ", ".join(f"*({p.ctype}*)args[{i}]" for i, p in enumerate(params))
            launchers.append(
                f'extern "C" void emu_launch_{name}(unsigned gx, unsigned gy, unsigned gz, '
                f"unsigned bx, unsigned by, unsigned bz, void** args) {{\n"
                f"    emu::launch(gx, gy, gz, bx, by, bz, {str(name in syncing).lower()}, "
                f"[&]() {{ {name}({call}); }});\n}}\n")
        source = SHIM + "\n#line 1 \"kernel.cu\"\n" + code + "\n" + "".join(launchers)
        digest = hashlib.sha256(source.encode()).hexdigest()[:24]
        CACHE.mkdir(parents=True, exist_ok=True)
        library = CACHE / f"{digest}.so"
        if not library.exists():
            cpp = CACHE / f"{digest}.{os.getpid()}.cpp"
            cpp.write_text(source)
            partial = CACHE / f"{digest}.{os.getpid()}.so"
            result = subprocess.run(
                [compiler(), "-O2", "-std=c++17", "-shared", "-fPIC", "-ffp-contract=off",
                 "-fno-fast-math", "-w", "-o", str(partial), str(cpp)],
                capture_output=True, text=True)
            cpp.unlink()
            if result.returncode:
                raise RuntimeError(f"emulator: g++ failed on the kernel source:\n"
                                   f"{result.stderr[-4000:]}")
            os.replace(partial, library)
        self.library = ctypes.CDLL(str(library))

    def get_function(self, name):
        if name not in self.kernels:
            raise AttributeError(f"no kernel named {name!r} in the module")
        return RawKernel(self, name, self.kernels[name])


# ------------------------------------------------------------------ the cupy stand-in
def _to_device(a, dtype=None):
    if isinstance(a, DeviceArray) and (dtype is None or a.dtype == np.dtype(dtype)):
        return a
    source = a.view(np.ndarray) if isinstance(a, DeviceArray) else a
    return np.array(source, dtype=dtype, copy=True).view(DeviceArray)


def _ascontiguousarray(a, dtype=None):
    if not isinstance(a, DeviceArray):
        raise TypeError("emulated cupy.ascontiguousarray: expects a device array (as CuPy)")
    return np.ascontiguousarray(a.view(np.ndarray), dtype=dtype).view(DeviceArray) \
        if not (a.flags.c_contiguous and (dtype is None or a.dtype == np.dtype(dtype))) else a


def _asnumpy(a):
    if isinstance(a, DeviceArray):
        return np.array(a.view(np.ndarray))
    return np.asarray(a)


def _routine(name):
    function = getattr(np, name)

    def call(*args, **kwargs):
        flat = []
        for arg in args:
            flat.extend(arg if isinstance(arg, (list, tuple)) else [arg])
        _device(flat, name)
        plain = [[v.view(np.ndarray) if isinstance(v, DeviceArray) else v for v in arg]
                 if isinstance(arg, (list, tuple)) else
                 (arg.view(np.ndarray) if isinstance(arg, DeviceArray) else arg)
                 for arg in args]
        return _wrap(function(*plain, **kwargs))
    return call


class _Device:
    def __init__(self, index=0):
        self.id = index

    def use(self):
        return None

    def synchronize(self):
        return None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _Event:
    """cupy.cuda.Event on the host clock (everything the emulator runs is synchronous)."""

    def record(self, stream=None):
        self.time = time.perf_counter()

    def synchronize(self):
        return None


class _MemoryPool:
    def total_bytes(self):
        return 0

    def used_bytes(self):
        return 0

    def free_all_blocks(self):
        return None


def make_cupy():
    """A module object with the slice of CuPy's API that cupy_ops uses."""
    module = types.ModuleType("emulated_cupy")
    module.ndarray = DeviceArray
    module.float32, module.float64 = np.float32, np.float64
    module.int32, module.int64 = np.int32, np.int64
    module.asarray = _to_device
    module.array = _to_device
    module.ascontiguousarray = _ascontiguousarray
    module.asnumpy = _asnumpy
    for name in ("empty", "zeros", "ones", "full"):
        module.__dict__[name] = (lambda f: lambda *a, **k: f(*a, **k).view(DeviceArray))(
            getattr(np, name))
    for name in ("matmul", "concatenate", "where", "broadcast_to", "stack", "isfinite",
                 "count_nonzero"):
        module.__dict__[name] = _routine(name)
    module.may_share_memory = np.may_share_memory   # cupy.may_share_memory: bounds only
    module.RawModule = RawModule
    module.cuda = types.SimpleNamespace(
        Device=_Device, Event=_Event,
        get_elapsed_time=lambda start, end: (end.time - start.time) * 1000.0,
        runtime=types.SimpleNamespace(getDeviceCount=lambda: 1,
                                      runtimeGetVersion=lambda: 13000),
    )
    pool = _MemoryPool()
    module.get_default_memory_pool = lambda: pool
    return module
