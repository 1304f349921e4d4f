"""numba-compiled loops for the NumPy backend's inference path, and how they are compiled.

NumPy cannot fuse a chain of element-wise steps, and its strided copies (im2col, maxpool's
window cells) make one pass over memory per step. The loops here make one pass each.

Threads. The inference kernels split their work with numba's `prange` (parallel=True) on
numba's OpenMP (or TBB) threads, and call OpenBLAS's sgemm themselves from those threads
(cblas_sgemm, with OpenBLAS on one thread meanwhile: blas_single_threaded), so that one
team of threads does a layer's transforms, GEMMs and tails and waits between the steps
without coming back to Python. The Python pool (threads.for_blocks) did this before: each
block cost a hand-off and the GIL going back and forth between threads (tens of
microseconds each, more after the machine sat idle: a forward timed after a 0.3 s pause
took 50% longer than back to back, where ONNX Runtime, whose threads spin between
operators, took the same). OpenMP's threads spin a little after each region too, which is
why nothing else of ours may be running on other threads then: the GEMMs are inside the
kernels, not beside them. The pool remains the path where there is no safe threading
layer (numba's workqueue layer aborts when two threads launch kernels at once), where
NumPy's BLAS is not OpenBLAS, and in a child forked after the parent started OpenMP's
threads (numba_threads): those run the same serial kernels over for_blocks.

A function marked @kernel is plain Python until `compiled()` is first called; then every
marked function is replaced, in its module, by its numba.njit(cache=True) version, so
kernels find their compiled helpers as globals. The first call in a process initialises
numba and loads machine code from its cache (2-5 s on this machine under load, most of
it numba's own start-up; compiling everything on a machine that never ran it takes 25 s
and writes the cache beside these files). Without numba, compiled() is False and the
callers keep their NumPy paths: the kernels are never run as Python (far too slow).

Kernels here: darknet's maxpool at inference (forward_maxpool_layer: windows starting at
-pad/2, cells outside the input count as -FLT_MAX, a cell wins only when strictly
greater); the GEMM of a convolution with its folded batch norm, bias and activation by
tasks (gemm_tail); the direct 3x3 convolution of a 3-channel input (rgb_conv3x3). The
Winograd convolution is in winograd.py. Every parallel kernel's result is independent of
the number of threads and of the path (each output is computed by the same serial code
whichever thread takes it; tests/test_fast_conv.py checks both paths).

Loops that LLVM must vectorise index 1-D arrays from 0 (numba then knows no index is
negative and drops its wrap-around test) and do not branch on the activation inside the
loop (one copy of the loop per activation, the code a constant there): either mistake
made a loop 3x slower.
"""
import contextlib
import ctypes
import functools
import importlib
import math
import os
import threading

import numpy as np

from ..settings import FLT_MAX, import_numba, thread_count
from .threads import for_blocks

prange = range   # numba.prange in the kernels marked parallel, once compiled

_KERNELS = []   # (module namespace, name, inline, parallel, fastmath) of every @kernel
_LOCK = threading.Lock()
_STATE = {"compiled": None,   # None: not tried yet; True/False afterwards
          "threads_pid": None}   # the process whose parallel kernels started numba's threads


def kernel(fn=None, *, inline=False, parallel=False, fastmath=False):
    """Mark fn for numba.njit(cache=True, nogil=True); inline: small helpers inlined into
    their callers in numba's IR (no call per element); parallel: its `prange` loops run
    on numba's threads (see parallel_tasks); fastmath: LLVM's flags for its float
    arithmetic (and that of the helpers inlined into it), for default-mode kernels only."""
    if fn is None:
        return lambda f: kernel(f, inline=inline, parallel=parallel, fastmath=fastmath)
    with _LOCK:
        if _STATE["compiled"]:   # a module imported after compiled(): compiled at once
            return _jitted(fn, inline, parallel, fastmath)
        _KERNELS.append((fn.__globals__, fn.__name__, inline, parallel, fastmath))
    return fn


@functools.lru_cache(maxsize=None)
def parallel_loops():
    """Whether the kernels marked parallel run their prange loops on numba's threads:
    only with a thread-safe threading layer (OpenMP or TBB). numba's fallback, the
    workqueue layer, aborts the process when two threads launch parallel kernels at once
    (networks run from several threads); without a safe layer the kernels run serially."""
    numba = import_numba()
    # numba's "default" takes TBB, then OpenMP, then workqueue: safe when either loads
    if numba.config.THREADING_LAYER not in ("default", "threadsafe", "safe", "omp", "tbb"):
        return False
    for layer in ("omppool", "tbbpool"):
        try:
            importlib.import_module(f"numba.np.ufunc.{layer}")
            return True
        except (ImportError, OSError):
            continue
    return False


def _jitted(fn, inline, parallel=False, fastmath=False):
    numba = import_numba()
    parallel = parallel and parallel_loops()
    if parallel:
        fn.__globals__["prange"] = numba.prange
    # error_model="numpy": a division by zero gives inf/NaN as NumPy does, instead of a
    # check and a Python exception on every division
    return numba.njit(cache=True, nogil=True, error_model="numpy", parallel=parallel,
                      inline="always" if inline else "never", fastmath=fastmath)(fn)


def compiled():
    """Whether the kernels are compiled (numba is installed). Compiles on the first call."""
    state = _STATE["compiled"]
    if state is not None:
        return state
    with _LOCK:
        if _STATE["compiled"] is None:
            try:
                import_numba()
            except ImportError:
                _STATE["compiled"] = False
                return False
            jitted = {}
            for namespace, name, inline, parallel, fastmath in _KERNELS:
                original = namespace[name]
                jitted[id(original)] = namespace[name] = _jitted(original, inline, parallel,
                                                                 fastmath)
            # a kernel imported into another kernel module (from .cpu_kernels import
            # activated) is rebound there too, so the importer's kernels see it compiled
            for namespace in {id(entry[0]): entry[0] for entry in _KERNELS}.values():
                for name, value in list(namespace.items()):
                    if callable(value) and id(value) in jitted:
                        namespace[name] = jitted[id(value)]
            _STATE["compiled"] = True
    return _STATE["compiled"]


# ---------------------------------------------------------------- tasks
# Work is cut into about this many tasks per thread: enough that a thread descheduled by
# a busy machine leaves the rest to the other, few enough that the pool's hand-offs
# (tens of microseconds each) stay negligible; one task per output row of a 416x416
# layer spent milliseconds in them.
TASKS_PER_THREAD = 6


def task_elements(length, elements_per_item):
    """for_blocks' block_elements giving about TASKS_PER_THREAD tasks per thread over
    `length` items (at least one item per task)."""
    items = max(1, -(-length // (TASKS_PER_THREAD * thread_count())))
    return items * max(1, elements_per_item)


# A parallel kernel's job below this many elements runs on one thread: waking the other
# costs more than the work (a 13x13x512 pool: ~0.1 ms alone).
MIN_PARALLEL_ELEMENTS = 1 << 16


def parallel_tasks(length, elements_per_item):
    """How many tasks a `prange` kernel should cut `length` items into: one for a small
    job, else about TASKS_PER_THREAD per thread (at most one item each)."""
    if length * elements_per_item < MIN_PARALLEL_ELEMENTS:
        return 1
    return max(1, min(length, TASKS_PER_THREAD * thread_count()))


# ---------------------------------------------------------------- scratch and output arrays
_scratch = threading.local()


def scratch(name, count):
    """A float32 array of `count` elements kept per thread under `name` and grown as
    needed, valid until the thread's next scratch(name): the kernels' workspaces (a
    fresh array per layer costs its page faults on every forward and training step)."""
    buffers = getattr(_scratch, "buffers", None)
    if buffers is None:
        buffers = _scratch.buffers = {}
    buffer = buffers.get(name)
    if buffer is None or buffer.size < count:
        buffer = buffers[name] = np.empty(count, dtype=np.float32)
    return buffer[:count]


def output_array(out, shape, source):
    """`out` when an inference kernel may write a result of `shape` into it: a writable,
    C-contiguous float32 NumPy array of that shape that shares no memory with `source`
    (the input); else a new array. Layers pass their previous output (layers.base
    reusable_output): a fresh 10-180 MB array per layer and forward costs its page
    faults, and more after an idle moment, when other processes took the free pages."""
    if isinstance(out, np.ndarray) and out.shape == tuple(shape) and \
            out.dtype == np.float32 and out.flags.c_contiguous and out.flags.writeable \
            and not np.may_share_memory(out, source):
        return out
    return np.empty(shape, dtype=np.float32)


# ---------------------------------------------------------------- BLAS threads
@functools.lru_cache(maxsize=None)
def _openblas_threads():
    """(set, get) of OpenBLAS's thread count in the library NumPy loaded, or None (another
    BLAS, or no /proc). NumPy's wheels bundle OpenBLAS as scipy_openblas with 64-bit
    symbols; older ones as plain openblas."""
    functions = _openblas_functions("set_num_threads", "get_num_threads")
    if functions is None:
        return None
    setter, getter = functions
    setter.argtypes, setter.restype = [ctypes.c_int], None
    getter.argtypes, getter.restype = [], ctypes.c_int
    return setter, getter


@functools.lru_cache(maxsize=None)
def openblas_corename():
    """The kernels NumPy's OpenBLAS runs ('SkylakeX', 'Haswell', ...), or None (another
    BLAS). OpenBLAS picks them from the CPU when it is loaded, unless OPENBLAS_CORETYPE
    names others (some machines set it: docs/BENCHMARKS.md)."""
    functions = _openblas_functions("get_corename")
    if functions is None:
        return None
    (function,) = functions
    function.argtypes, function.restype = [], ctypes.c_char_p
    return function().decode(errors="replace")


def _openblas_functions(*names):
    """OpenBLAS's functions `names` (without prefix and suffix) from the first library
    NumPy loaded that has them all, under one naming: scipy_openblas_* with 64-bit
    symbols in NumPy's wheels, plain openblas_* in older ones. None if none has them."""
    for path in _openblas_paths():
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                found = [getattr(library, f"{prefix}_{name}{suffix}", None) for name in names]
                if all(function is not None for function in found):
                    return found
    return None


def _openblas_paths():
    """The OpenBLAS libraries loaded in this process (NumPy's), from /proc/self/maps."""
    try:
        with open("/proc/self/maps") as handle:
            return sorted({line.split()[-1] for line in handle
                           if "openblas" in line.lower() and ".so" in line})
    except OSError:
        return []


@functools.lru_cache(maxsize=None)
def cblas_sgemm():
    """cblas_sgemm of NumPy's OpenBLAS as a ctypes function, for kernels to call from
    numba's threads (a ctypes function passed as an argument: the compiled kernel then
    stays cacheable), or None where that BLAS is not found. Row-major calls
    sgemm(101, 111, 111, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) with A, B and C
    as addresses; the integer width follows the library's interface (ILP64 for the
    `64_` names NumPy's wheels export)."""
    if _openblas_threads() is None:   # the same library blas_single_threaded controls
        return None
    for path in _openblas_paths():
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for name, integer in (("scipy_cblas_sgemm64_", ctypes.c_int64),
                              ("cblas_sgemm64_", ctypes.c_int64),
                              ("scipy_cblas_sgemm", ctypes.c_int),
                              ("cblas_sgemm", ctypes.c_int)):
            function = getattr(library, name, None)
            if function is None or (integer is ctypes.c_int and "64" in path.rsplit("/", 1)[-1]):
                continue
            pointer, real = ctypes.c_void_p, ctypes.c_float
            function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, integer, integer,
                                 integer, real, pointer, integer, pointer, integer, real,
                                 pointer, integer]
            function.restype = None
            return function
    return None


@kernel(inline=True)
def gemm_rows(sgemm, m, n, k, a, lda, b, ldb, c, ldc):
    """C (m x n, row stride ldc) = A (m x k) @ B (k x n), row-major, at addresses a, b,
    c: one single-threaded OpenBLAS call from the calling thread."""
    sgemm(101, 111, 111, m, n, k, np.float32(1), a, lda, b, ldb, np.float32(0), c, ldc)


@kernel(inline=True)
def gemm_slab(sgemm, transpose_a, m, n, k, a, lda, b, ldb, c, ldc):
    """gemm_rows with op(A) = A (transpose_a 111) or A^T (112: A stored k x m)."""
    sgemm(101, transpose_a, 111, m, n, k, np.float32(1), a, lda, b, ldb, np.float32(0), c,
          ldc)


def numba_threads():
    """Whether the parallel kernels may run on numba's threads in this process: a safe
    threading layer, and not a child forked after its parent started them (GNU OpenMP's
    threads do not survive fork(): a parallel region in such a child would hang, so it
    takes the Python pool's paths instead)."""
    if not (compiled() and parallel_loops()):
        return False
    pid = os.getpid()
    if _STATE["threads_pid"] is None:
        _STATE["threads_pid"] = pid
    return _STATE["threads_pid"] == pid


@kernel(parallel=True)
def backward_gemm_tasks(sgemm, delta, cols, filters, totals, products, columns,
                        input_columns, per_task):
    """backward_convolutional_layer's GEMMs on numba's threads: task t takes images
    [t*per_task, (t+1)*per_task) and sums their weight gradients delta[b, g] . cols[b, g]^T
    in image order into totals[t, g] (each product into products[t] first, then added:
    the float sums of NumPy's `total += product`); with input_columns, columns[b, g] =
    W[g]^T . delta[b, g]. delta (B, G, n, hw), cols (B, G, k, hw), filters (G, n, k),
    totals and products (tasks, G, n, k), columns (B, G, k, hw), all C-contiguous float32.
    The caller adds the totals in task order."""
    batch, groups, n, hw = delta.shape
    k = cols.shape[2]
    tasks = totals.shape[0]
    for task in prange(tasks):
        first = task * per_task
        for image in range(first, min(batch, first + per_task)):
            for group in range(groups):
                target = totals[task, group] if image == first else products[task, group]
                sgemm(101, 111, 112, n, k, hw, np.float32(1), delta[image, group].ctypes.data,
                      hw, cols[image, group].ctypes.data, hw, np.float32(0),
                      target.ctypes.data, k)
                if image != first:
                    total = totals[task, group].reshape(-1)
                    product = target.reshape(-1)
                    for i in range(total.shape[0]):
                        total[i] += product[i]
                if input_columns:
                    sgemm(101, 112, 111, k, hw, n, np.float32(1),
                          filters[group].ctypes.data, k, delta[image, group].ctypes.data, hw,
                          np.float32(0), columns[image, group].ctypes.data, hw)


@kernel(parallel=True)
def sliced_gemms(sgemm, a, b, out, a_index, parts, by_rows):
    """out[p] = a[a_index[p]] @ b[p] for every p, a (Pa, M, K), b (P, K, N), out (P, M, N)
    C-contiguous float32, on numba's threads: each task one of `parts` bands of out[p]'s
    rows (by_rows) or columns, one single-threaded OpenBLAS call. The GEMM's own threads
    would spin ~0.1 s after it (OpenBLAS's thread timeout) beside ours."""
    pairs, m, k = out.shape[0], a.shape[1], a.shape[2]
    n = out.shape[2]
    per_part = -(-(m if by_rows else n) // parts)
    for task in prange(pairs * parts):
        pair, part = task // parts, task % parts
        start = part * per_part
        if by_rows:
            count = min(m, start + per_part) - start
            if count > 0:
                sgemm(101, 111, 111, count, n, k, np.float32(1),
                      a[a_index[pair]].ctypes.data + 4 * start * k, k,
                      b[pair].ctypes.data, n, np.float32(0),
                      out[pair].ctypes.data + 4 * start * n, n)
        else:
            count = min(n, start + per_part) - start
            if count > 0:
                sgemm(101, 111, 111, m, count, k, np.float32(1),
                      a[a_index[pair]].ctypes.data, k,
                      b[pair].ctypes.data + 4 * start, n, np.float32(0),
                      out[pair].ctypes.data + 4 * start, n)


@kernel(parallel=True)
def backward_gemm_slices(sgemm, delta, cols, filters, weight_updates, columns,
                         input_columns, tasks):
    """backward_convolutional_layer's GEMMs for big weight matrices on numba's threads,
    each task a slice of the results: tasks [0, tasks) a band of the filters' rows of
    weight_updates[g] += delta[b, g] . cols[b, g]^T, added by the GEMM itself (beta = 1)
    image after image; with input_columns tasks [tasks, 2 tasks) a band of the rows of
    columns[b, g] = W[g]^T . delta[b, g]. No product arrays, and each thread streams its
    half of the weights. delta (B, G, n, hw), cols and columns (B, G, k, hw), filters and
    weight_updates (G, n, k), all C-contiguous float32."""
    batch, groups, n, hw = delta.shape
    k = cols.shape[2]
    rows_per_task = -(-n // tasks)
    cols_per_task = -(-k // tasks)
    items = 2 * tasks if input_columns else tasks
    for item in prange(items):
        if item < tasks:
            r0 = item * rows_per_task
            rows = min(n, r0 + rows_per_task) - r0
            for image in range(batch if rows > 0 else 0):
                for group in range(groups):
                    sgemm(101, 111, 112, rows, k, hw, np.float32(1),
                          delta[image, group].ctypes.data + 4 * r0 * hw, hw,
                          cols[image, group].ctypes.data, hw, np.float32(1),
                          weight_updates[group].ctypes.data + 4 * r0 * k, k)
        else:
            c0 = (item - tasks) * cols_per_task
            count = min(k, c0 + cols_per_task) - c0
            for image in range(batch if count > 0 else 0):
                for group in range(groups):
                    sgemm(101, 112, 111, count, hw, n, np.float32(1),
                          filters[group].ctypes.data + 4 * c0, k,
                          delta[image, group].ctypes.data, hw, np.float32(0),
                          columns[image, group].ctypes.data + 4 * c0 * hw, hw)


def fused_gemms():
    """The cblas_sgemm kernels call, where kernels may run GEMMs on numba's threads (see
    numba_threads; NumPy's BLAS is OpenBLAS), else None."""
    return cblas_sgemm() if numba_threads() else None


@contextlib.contextmanager
def blas_single_threaded():
    """OpenBLAS on one thread inside the block, so that each of our pool's threads can
    run its own GEMMs: yields whether it could (False: another BLAS, whose GEMMs the
    caller should not run from several threads at once). Our threads then take GEMMs
    (and the transforms around them) from one queue: when the machine is busy and one
    thread is descheduled, the other takes the remaining work, where OpenBLAS's static
    split of each GEMM waits for the late half (2-3x slower medians under load)."""
    threads = _openblas_threads()
    if threads is None:
        yield False
        return
    setter, getter = threads
    # the count is process-wide: with several callers at once (networks run from
    # several threads), the first in sets 1 and the last out restores it
    with _BLAS_LOCK:
        if _BLAS_USERS["count"] == 0:
            _BLAS_USERS["before"] = getter()
            if _BLAS_USERS["before"] != 1:
                setter(1)
        _BLAS_USERS["count"] += 1
    try:
        yield True
    finally:
        with _BLAS_LOCK:
            _BLAS_USERS["count"] -= 1
            if _BLAS_USERS["count"] == 0 and _BLAS_USERS["before"] != 1:
                setter(_BLAS_USERS["before"])


_BLAS_USERS = {"count": 0, "before": 1}
_BLAS_LOCK = threading.Lock()


# ---------------------------------------------------------------- maxpool
_LOWEST = np.float32(-FLT_MAX)


@kernel(inline=True)
def pooled_window(y00, y01, y10, y11, right, lower):
    """darknet's maxpool of one 2x2 window (forward_maxpool_layer): from -FLT_MAX, cells
    (0,0), (0,1), (1,0), (1,1) in order, each taken only when strictly greater (a NaN never
    wins); right/lower say whether the window's second column/row lies in the map. The
    convolutions that pool their own output (fused) use it."""
    # selects, not branches: a window's cells compare in order, NaNs lose, and no
    # comparison outcome is predicted (random data mispredicted half of them)
    best = y00 if y00 > _LOWEST else _LOWEST
    best = y01 if right and y01 > best else best
    best = y10 if lower and y10 > best else best
    return y11 if right and lower and y11 > best else best


@kernel(inline=True)
def pool_rows(upper, lower, target, width, lower_in):
    """target[j] = pooled_window of columns 2j, 2j+1 of rows upper and lower (a map
    `width` wide; lower_in: whether the lower row lies in it)."""
    half = width // 2
    for j in range(half):
        target[j] = pooled_window(upper[2 * j], upper[2 * j + 1], lower[2 * j],
                                  lower[2 * j + 1], True, lower_in)
    if width & 1:
        target[half] = pooled_window(upper[width - 1], upper[width - 1], lower[width - 1],
                                     lower[width - 1], False, lower_in)


@kernel
def _maxpool_planes(x, out, size, stride, top, p0, p1):
    """out[p] = darknet's maxpool of x[p] for planes p0..p1 of (planes, h, w) arrays.
    Each output starts from -FLT_MAX and takes the window's cells in row-major order, a
    cell replacing the running maximum only when strictly greater (so a NaN never wins).
    Each plane is first copied into a buffer bordered with -FLT_MAX, darknet's value for
    cells outside the input, so that the window loops need no bounds checks."""
    height, width = x.shape[1], x.shape[2]
    out_h, out_w = out.shape[1], out.shape[2]
    padded_h = max(height + top, (out_h - 1) * stride + size)
    padded_w = max(width + top, (out_w - 1) * stride + size)
    padded = np.full((padded_h, padded_w), _LOWEST, dtype=np.float32)
    for p in range(p0, p1):
        for i in range(height):
            for j in range(width):
                padded[top + i, top + j] = x[p, i, j]
        for i in range(out_h):
            for j in range(out_w):
                best = _LOWEST
                for n in range(size):
                    for m in range(size):
                        value = padded[i * stride + n, j * stride + m]
                        if value > best:
                            best = value
                out[p, i, j] = best


@kernel
def _maxpool_2x2_stride1_planes(x, out, top, p0, p1):
    """_maxpool_planes for 2x2 windows at stride 1 (yolov2-tiny's pool at 13x13): the
    same bordered copy, then each output row in one loop over its four cells in order."""
    height, width = x.shape[1], x.shape[2]
    out_h, out_w = out.shape[1], out.shape[2]
    padded = np.full((max(height + top, out_h + 1), max(width + top, out_w + 1)), _LOWEST,
                     dtype=np.float32)
    for p in range(p0, p1):
        for i in range(height):
            for j in range(width):
                padded[top + i, top + j] = x[p, i, j]
        for i in range(out_h):
            upper = padded[i]
            lower = padded[i + 1]
            target = out[p, i]
            for j in range(out_w):
                best = _LOWEST
                value = upper[j]
                if value > best:
                    best = value
                value = upper[j + 1]
                if value > best:
                    best = value
                value = lower[j]
                if value > best:
                    best = value
                value = lower[j + 1]
                if value > best:
                    best = value
                target[j] = best


@kernel
def _maxpool_2x2_planes(x, out, p0, p1):
    """The usual 2x2/2 pool of a plane whose windows all lie inside it: the same strict
    '>' order as _maxpool_planes (cells (0,0), (0,1), (1,0), (1,1)), no bounds checks."""
    out_h, out_w = out.shape[1], out.shape[2]
    for p in range(p0, p1):
        for i in range(out_h):
            upper = x[p, 2 * i]
            lower = x[p, 2 * i + 1]
            target = out[p, i]
            for j in range(out_w):
                best = _LOWEST
                a = upper[2 * j]
                if a > best:
                    best = a
                a = upper[2 * j + 1]
                if a > best:
                    best = a
                a = lower[2 * j]
                if a > best:
                    best = a
                a = lower[2 * j + 1]
                if a > best:
                    best = a
                target[j] = best


@kernel(parallel=True)
def _maxpool_tasks(x, out, size, stride, top, inside, tasks):
    """The planes of x split into `tasks` ranges run on numba's threads, each by the
    plane kernel for the shape."""
    planes = x.shape[0]
    for task in prange(tasks):
        p0 = task * planes // tasks
        p1 = (task + 1) * planes // tasks
        if inside:
            _maxpool_2x2_planes(x, out, p0, p1)
        elif size == 2 and stride == 1:
            _maxpool_2x2_stride1_planes(x, out, top, p0, p1)
        else:
            _maxpool_planes(x, out, size, stride, top, p0, p1)


def maxpool(x, size, stride, pad, out_h, out_w, out=None):
    """darknet's maxpool values of x (B, C, H, W) float32, the planes split between
    numba's threads; into `out` where it suits (output_array)."""
    batch, channels, height, width = x.shape
    planes = np.ascontiguousarray(x).reshape(batch * channels, height, width)
    result = output_array(out, (batch, channels, out_h, out_w), planes)
    out = result.reshape(batch * channels, out_h, out_w)
    top = pad // 2
    inside = (size == 2 and stride == 2 and top == 0 and 2 * out_h <= height
              and 2 * out_w <= width)
    if numba_threads():
        _maxpool_tasks(planes, out, size, stride, top, inside,
                       parallel_tasks(batch * channels, height * width))
    else:
        if inside:
            work = functools.partial(_maxpool_2x2_planes, planes, out)
        elif size == 2 and stride == 1:
            work = functools.partial(_maxpool_2x2_stride1_planes, planes, out, top)
        else:
            work = functools.partial(_maxpool_planes, planes, out, size, stride, top)
        for_blocks(batch * channels, height * width, work,
                   block_elements=task_elements(batch * channels, height * width))
    return result


# ---------------------------------------------------------------- GEMM + tail by tasks
# The activations the output passes apply themselves, and their codes; any other is
# linear there and applied afterwards by the backend's element-wise pass.
FUSED_ACTIVATIONS = {"linear": 0, "leaky": 1, "relu": 2, "logistic": 3}


@kernel(inline=True)
def activated(y, code):
    """activate(fast=True)'s arithmetic for the activations FUSED_ACTIVATIONS codes:
    leaky max(x, 0.1f*x), relu x*(x>0), logistic 1/(1 + exp(-x)) in float32; any other
    code leaves y linear (the caller activates afterwards)."""
    if code == 1:
        return max(y, y * np.float32(0.1))
    if code == 2:
        return y * np.float32(y > 0)
    if code == 3:
        return np.float32(1) / (np.float32(1) + np.exp(-y))
    return y


@kernel(inline=True)
def _tail_loop(out, factors, shifts, code, first, last):
    for k in range(out.shape[0]):
        row = out[k, first:last]
        factor = factors[k]
        shift = shifts[k]
        for j in range(last - first):
            row[j] = activated(row[j] * factor + shift, code)


@kernel
def _tail_columns(out, factors, shifts, code, first, last):
    """out[k, first:last] = activated(out[k, first:last]*factors[k] + shifts[k]); one
    loop per activation code, a constant there (a branch on it in the loop keeps LLVM
    from vectorising: 3x slower)."""
    if code == 1:
        _tail_loop(out, factors, shifts, 1, first, last)
    elif code == 0:
        _tail_loop(out, factors, shifts, 0, first, last)
    elif code == 2:
        _tail_loop(out, factors, shifts, 2, first, last)
    else:
        _tail_loop(out, factors, shifts, code, first, last)


# The widest block of columns one GEMM task takes: its output block (filters x columns)
# is activated right after its GEMM, and beyond this it would no longer be in cache.
GEMM_COLUMNS = 8192
# Fewer filters or columns than these per task make OpenBLAS's kernels run mostly edges.
GEMM_MIN_FILTERS = 16
GEMM_MIN_COLUMNS = 64


def gemm_split(batch, n_filters, columns, threads):
    """(column_parts, filter_parts) per image for gemm_tail: as few GEMM calls as keep
    every thread busy, each as large as can be. Every OpenBLAS call packs its operands
    afresh, so blocks of 512 columns (the earlier split) repacked the filters 2-21 times
    per image; one call per thread, along the larger of the two dimensions, measured
    1.1-1.8x faster on yolov2's 1x1 layers (docs/BENCHMARKS.md). Each image takes
    threads / gcd(batch, threads) parts, so that the tasks divide evenly among the
    threads (batch 1 or 3 on 2 threads: 2 parts; batch 2 or 8: whole images)."""
    parts = max(1, threads // math.gcd(batch, threads))
    column_parts = filter_parts = 1
    if columns >= n_filters:
        column_parts = max(1, min(parts, columns // GEMM_MIN_COLUMNS))
    else:
        filter_parts = max(1, min(parts, n_filters // GEMM_MIN_FILTERS))
    widest = -(-columns // column_parts)
    if widest > GEMM_COLUMNS:   # a big map: blocks within GEMM_COLUMNS, still even
        blocks = -(-columns // GEMM_COLUMNS)
        column_parts = -(-blocks // column_parts) * column_parts
    return column_parts, filter_parts


def gemm_tail(filters, cols, out, factors, shifts, code, for_blocks):
    """out[b] = filters @ cols[b], then the per-filter tail (_tail_columns), for
    filters (K, D), cols (B, D, N), out (B, K, N): tasks of one image's block of
    columns or of filters (gemm_split), each a single-threaded GEMM followed by the tail
    on the block it wrote. Returns False (nothing done) where NumPy's BLAS cannot be made
    to run one GEMM per thread."""
    batch, depth, columns = cols.shape
    n_filters = filters.shape[0]
    column_parts, filter_parts = gemm_split(batch, n_filters, columns, thread_count())
    block_columns = -(-columns // column_parts)
    part_rows = -(-n_filters // filter_parts)
    tasks = batch * column_parts * filter_parts
    errors = np.geterr()

    def blocks(first, last):
        with np.errstate(**errors):
            for task in range(first, last):
                rest, part = divmod(task, filter_parts)
                image, block = divmod(rest, column_parts)
                c0, k0 = block * block_columns, part * part_rows
                c1, k1 = min(columns, c0 + block_columns), min(n_filters, k0 + part_rows)
                if c1 <= c0 or k1 <= k0:
                    continue
                target = out[image, k0:k1]
                np.matmul(filters[k0:k1], cols[image, :, c0:c1], out=target[:, c0:c1])
                _tail_columns(target, factors[k0:k1], shifts[k0:k1], code, c0, c1)

    sgemm = fused_gemms()
    with blas_single_threaded() as own_gemms:
        if not own_gemms:
            return False
        if sgemm is not None and filters.flags.c_contiguous and cols.flags.c_contiguous \
                and out.flags.c_contiguous and filters.dtype == cols.dtype == np.float32:
            _gemm_tail_tasks(sgemm, filters, cols, out, factors, shifts, code, column_parts,
                             block_columns, filter_parts, part_rows, tasks)
            return True
        work = part_rows * depth * block_columns
        for_blocks(tasks, work, blocks, block_elements=task_elements(tasks, work))
    return True


@kernel(parallel=True)
def _gemm_tail_tasks(sgemm, filters, cols, out, factors, shifts, code, column_parts,
                     block_columns, filter_parts, part_rows, tasks):
    """gemm_tail's tasks on numba's threads, each an OpenBLAS call on its own thread and
    the tail on the block it wrote (all arrays C-contiguous float32)."""
    depth, columns = cols.shape[1], cols.shape[2]
    n_filters = filters.shape[0]
    for task in prange(tasks):
        rest = task // filter_parts
        part = task - rest * filter_parts
        image = rest // column_parts
        block = rest - image * column_parts
        c0 = block * block_columns
        c1 = min(columns, c0 + block_columns)
        k0 = part * part_rows
        k1 = min(n_filters, k0 + part_rows)
        if k1 <= k0 or c1 <= c0:
            continue
        gemm_rows(sgemm, k1 - k0, c1 - c0, depth, filters.ctypes.data + 4 * k0 * depth,
                  depth, cols.ctypes.data + 4 * (image * depth * columns + c0), columns,
                  out.ctypes.data + 4 * ((image * n_filters + k0) * columns + c0), columns)
        _tail_columns(out[image, k0:k1], factors[k0:k1], shifts[k0:k1], code, c0, c1)


# ---------------------------------------------------------------- the region layer
@kernel(inline=True)
def _logistic(value):
    """darknet's logistic_activate: 1./(1. + exp(-x)) in double, stored as float."""
    return np.float32(1.0 / (1.0 + np.exp(-np.float64(value))))


@kernel
def region_cells(x, out, coords, classes, background, softmax):
    """forward_region_layer's activations without a tree, cell by cell: x and out are
    (batch, anchors, entries, cells). Logistic on x, y and (unless background) the
    objectness; with softmax, darknet's softmax() over the classes (and the background
    entry) of each cell: the largest by comparison from -FLT_MAX, each exp(x - largest)
    in double stored as float and added to a float sum left to right, then divided by
    it; every other entry copied."""
    batch, anchors, entries, cells = x.shape
    start = coords + (0 if background else 1)
    count = classes + background
    for b in range(batch):
        for a in range(anchors):
            block, target = x[b, a], out[b, a]
            for e in range(entries):
                row, result = block[e], target[e]
                if e < 2 or (e == coords and not background):
                    for c in range(cells):
                        result[c] = _logistic(row[c])
                elif not (softmax and start <= e < start + count):
                    for c in range(cells):
                        result[c] = row[c]
            if not softmax:
                continue
            for c in range(cells):
                largest = np.float32(-FLT_MAX)
                for e in range(start, start + count):
                    if block[e, c] > largest:
                        largest = block[e, c]
                total = np.float32(0)
                for e in range(start, start + count):
                    value = np.float32(np.exp(np.float64(block[e, c] - largest)))
                    target[e, c] = value
                    total += value
                for e in range(start, start + count):
                    target[e, c] = target[e, c] / total


# ---------------------------------------------------------------- 3-channel 3x3 convolution
@kernel(inline=True)
def _rgb_row_loop(out_row, rows, w, factor, shift, code, count):
    """One output row of one filter: the 27 taps of a 3x3 kernel over 3 channels as one
    expression per output (no accumulator stored between taps), activated."""
    r0, r1, r2, r3, r4, r5, r6, r7, r8 = rows
    for j in range(count):
        total = (w[0] * r0[j] + w[1] * r0[j + 1] + w[2] * r0[j + 2]
                 + w[3] * r1[j] + w[4] * r1[j + 1] + w[5] * r1[j + 2]
                 + w[6] * r2[j] + w[7] * r2[j + 1] + w[8] * r2[j + 2]
                 + w[9] * r3[j] + w[10] * r3[j + 1] + w[11] * r3[j + 2]
                 + w[12] * r4[j] + w[13] * r4[j + 1] + w[14] * r4[j + 2]
                 + w[15] * r5[j] + w[16] * r5[j + 1] + w[17] * r5[j + 2]
                 + w[18] * r6[j] + w[19] * r6[j + 1] + w[20] * r6[j + 2]
                 + w[21] * r7[j] + w[22] * r7[j + 1] + w[23] * r7[j + 2]
                 + w[24] * r8[j] + w[25] * r8[j + 1] + w[26] * r8[j + 2])
        out_row[j] = activated(total * factor + shift, code)


@kernel(inline=True)
def _rgb_taps(padded, image, y):
    """The nine padded input rows (3 channels x 3 rows) that output row y reads."""
    return (padded[image, 0, y], padded[image, 0, y + 1], padded[image, 0, y + 2],
            padded[image, 1, y], padded[image, 1, y + 1], padded[image, 1, y + 2],
            padded[image, 2, y], padded[image, 2, y + 1], padded[image, 2, y + 2])


@kernel(inline=True)
def _rgb_row(rows, w, factor, shift, code, target, count):
    """One output row of one filter (taps w) into target: _rgb_row_loop with its
    activation code a constant in each loop, so that LLVM vectorises it."""
    if code == 1:
        _rgb_row_loop(target, rows, w, factor, shift, 1, count)
    elif code == 0:
        _rgb_row_loop(target, rows, w, factor, shift, 0, count)
    elif code == 2:
        _rgb_row_loop(target, rows, w, factor, shift, 2, count)
    else:
        _rgb_row_loop(target, rows, w, factor, shift, code, count)


@kernel(fastmath={"contract", "reassoc"})
def _rgb_pooled_rows(padded, filters, factors, shifts, code, out, r0, r1, conv_h, conv_w):
    """_rgb_rows' convolution pooled by darknet's 2x2/2 maxpool as it goes: pooled rows
    r0..r1 (r = image * pooled_h + i), each from two output rows computed into buffers
    that stay in L1 (the full map, 11 MB for 16 filters at 416x416, is never written)."""
    n_filters, pooled_h = out.shape[1], out.shape[2]
    w = np.empty(27, dtype=np.float32)
    upper = np.empty(conv_w, dtype=np.float32)
    lower = np.empty(conv_w, dtype=np.float32)
    for r in range(r0, r1):
        image = r // pooled_h
        i = r - image * pooled_h
        lower_in = 2 * i + 1 < conv_h
        upper_taps = _rgb_taps(padded, image, 2 * i)
        lower_taps = _rgb_taps(padded, image, 2 * i + 1 if lower_in else 2 * i)
        for k in range(n_filters):
            for t in range(27):
                w[t] = filters[k, t]
            _rgb_row(upper_taps, w, factors[k], shifts[k], code, upper, conv_w)
            if lower_in:
                _rgb_row(lower_taps, w, factors[k], shifts[k], code, lower, conv_w)
            pool_rows(upper, lower, out[image, k, i], conv_w, lower_in)


@kernel(fastmath={"contract", "reassoc"})
def _rgb_rows(padded, filters, factors, shifts, code, out, r0, r1):
    """Output rows r0..r1 (r = image * out_h + y) of every filter of a 3x3 stride-1
    convolution over 3 channels, from the zero-padded input. The nine input rows a row
    needs are taken once and serve every filter; one loop per activation code (a
    constant there), so that LLVM vectorises the loop over the row. The 27 products are
    fused into multiply-adds and summed in the order LLVM picks (fastmath contract,
    reassoc; not nnan or ninf, so inf and NaN still propagate): 1.2x faster, and within
    1e-6 of the float64 convolution (tests/test_fast_conv.py). (Two output rows per pass,
    sharing their loads, kept LLVM from vectorising: 10x slower.)"""
    n_filters, out_h, out_w = out.shape[1], out.shape[2], out.shape[3]
    w = np.empty(27, dtype=np.float32)
    for r in range(r0, r1):
        image = r // out_h
        y = r - image * out_h
        rows = _rgb_taps(padded, image, y)
        for k in range(n_filters):
            for i in range(27):
                w[i] = filters[k, i]
            _rgb_row(rows, w, factors[k], shifts[k], code, out[image, k, y], out_w)


_padded = threading.local()


_PADDED_GEOMETRIES = 16   # padded arrays a thread keeps (a network has a few geometries)


def zero_bordered(shape, pad, inner_h, inner_w):
    """This thread's padded-input array of `shape` whose cells outside the inner window
    (rows pad..pad+inner_h, columns pad..pad+inner_w) are zero: kept from the last call
    with the same geometry, whose copy wrote only the inner window (the next forward's
    input then costs no fresh pages), else new zeros. One per geometry, so that layers
    of different shapes (the 3-channel and blocked kernels') keep theirs."""
    arrays = getattr(_padded, "arrays", None)
    if arrays is None:
        arrays = _padded.arrays = {}
    key = (shape, pad, inner_h, inner_w)
    array = arrays.get(key)
    if array is None:
        if len(arrays) >= _PADDED_GEOMETRIES:
            arrays.clear()
        array = arrays[key] = np.zeros(shape, dtype=np.float32)
    return array


def rgb_conv3x3(x, weights, pad, factors, shifts, code, out=None, pool=False):
    """The 3x3 stride-1 convolution of a 3-channel x (B, 3, H, W) with weights (K, 3, 3,
    3), then y*factors + shifts and activation `code` (FUSED_ACTIVATIONS), computed
    directly: a network's first layer, where Winograd's transforms cost more than its
    saved multiplications (27 per output, 3 channels) and im2col's copy more still.
    pool: darknet's 2x2/2 maxpool of that instead, (B, K, ceil(out_h/2), ceil(out_w/2))."""
    compiled()
    batch, channels, height, width = x.shape
    out_h, out_w = height + 2 * pad - 2, width + 2 * pad - 2
    # one padded copy (2 MB for 416x416): the row loop then needs no edge cases
    inner_h, inner_w = min(height, out_h + 2 - pad), min(width, out_w + 2 - pad)
    padded = zero_bordered((batch, channels, out_h + 2, out_w + 2), pad, inner_h, inner_w)
    padded[:, :, pad:pad + inner_h, pad:pad + inner_w] = x[:, :, :inner_h, :inner_w]
    out_rows = (out_h + 1) // 2 if pool else out_h
    out = output_array(out, (batch, weights.shape[0], out_rows,
                             (out_w + 1) // 2 if pool else out_w), x)
    filters = np.ascontiguousarray(weights, dtype=np.float32).reshape(weights.shape[0], 27)
    rows, per_row = batch * out_rows, weights.shape[0] * 27 * out_w * (2 if pool else 1)
    if numba_threads():
        _rgb_row_tasks(padded, filters, factors, shifts, code, out, rows,
                       parallel_tasks(rows, per_row), pool, out_h, out_w)
    else:
        work = functools.partial(_rgb_pooled_rows, padded, filters, factors, shifts, code,
                                 out) if pool else \
            functools.partial(_rgb_rows, padded, filters, factors, shifts, code, out)
        extra = (out_h, out_w) if pool else ()
        for_blocks(rows, per_row, lambda r0, r1: work(r0, r1, *extra),
                   block_elements=task_elements(rows, per_row))
    return out


@kernel(parallel=True)
def _rgb_row_tasks(padded, filters, factors, shifts, code, out, rows, tasks, pool, conv_h,
                   conv_w):
    """_rgb_rows (or with pool _rgb_pooled_rows) over all output rows, split into `tasks`
    ranges on numba's threads."""
    for task in prange(tasks):
        if pool:
            _rgb_pooled_rows(padded, filters, factors, shifts, code, out, task * rows // tasks,
                             (task + 1) * rows // tasks, conv_h, conv_w)
        else:
            _rgb_rows(padded, filters, factors, shifts, code, out, task * rows // tasks,
                      (task + 1) * rows // tasks)
