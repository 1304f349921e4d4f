"""Run NumPy work on every core: split an array's leading axis into blocks and hand the
blocks to a thread pool.

NumPy's element-wise operations run on one core; only the GEMM (BLAS) is multi-threaded.
NumPy releases the GIL inside a ufunc on large arrays, so Python threads working on
disjoint blocks really do run side by side. Blocks are also cache-sized: a chain of
operations on one block (scale, shift, activate) then reads memory once instead of once per
operation.

DARKNET_PY_THREADS sets the number of threads (default: the cores this process may use).
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from ..settings import thread_count

# Below this many elements a job runs inline: the pool's hand-off (~20 us) would cost more.
MIN_PARALLEL_ELEMENTS = 1 << 16
# Elements per block: 64K floats = 256 KB, well inside a core's L2 next to a temporary.
BLOCK_ELEMENTS = 1 << 16

_pool = None
_pool_pid = None
_inside = threading.local()   # .block: this thread is running a block of for_blocks


def _executor():
    """The pool, created on first use and again in a forked child (whose copy of the parent's
    pool has no threads behind it)."""
    global _pool, _pool_pid
    if _pool is None or _pool_pid != os.getpid():
        _pool = ThreadPoolExecutor(max_workers=thread_count(),
                                   thread_name_prefix="darknet_py")
        _pool_pid = os.getpid()
    return _pool


def for_blocks(length, elements_per_item, work, block_elements=BLOCK_ELEMENTS):
    """Call work(start, stop) over [0, length) in blocks of whole items (rows, channels),
    in parallel when the job is big enough. Each block gets about block_elements elements
    (at least one item): small enough to stay in cache for a chain of operations, large
    enough that the Python calls per block are few. work must only touch its own items.

    The calling thread works too: it and thread_count() - 1 pool threads take blocks from
    one shared iterator until none are left. A job thus costs one hand-off per helper
    thread, not one per block (a pool hand-off and the wake-up of a sleeping thread cost
    tens of microseconds each here: a 13x13 maxpool in 12 pooled blocks took 0.47 ms, on
    the calling thread alone 0.10 ms), and a thread the machine descheduled still leaves
    the remaining blocks to the others. A call from inside a block runs inline."""
    total = length * elements_per_item
    per_block = max(1, block_elements // max(1, elements_per_item))
    threads = thread_count()
    if total < MIN_PARALLEL_ELEMENTS or length < 2 or threads < 2 or \
            getattr(_inside, "block", False):
        for start in range(0, length, per_block):
            work(start, min(length, start + per_block))
        return
    # at least two blocks per thread so that both cores stay busy to the end
    per_block = min(per_block, -(-length // (2 * threads)))
    starts = iter(range(0, length, per_block))   # next() on it is atomic under the GIL
    failed = []

    def drain():
        _inside.block = True
        try:
            for start in starts:
                if failed:
                    return
                work(start, min(length, start + per_block))
        except BaseException as error:
            failed.append(error)
            raise
        finally:
            _inside.block = False

    helpers = [_executor().submit(drain) for _ in range(threads - 1)]
    try:
        drain()
    finally:
        for helper in helpers:
            if not helper.cancel():   # not started yet: nothing left for it to take
                helper.exception()    # wait; its error is in `failed`
    if failed:
        raise failed[0]
