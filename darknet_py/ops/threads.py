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
from concurrent.futures import ThreadPoolExecutor

from ..settings import thread_count

# Below this many elements a job runs inline: the pool's hand-off (~20 us) would cost more.
MIN_PARALLEL_ELEMENTS = 1 << 16
# Elements per block: 64K floats = 256 KB, well inside a core's L2 next to a temporary.
BLOCK_ELEMENTS = 1 << 16

_pool = None
_pool_pid = None


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
    enough that the Python calls per block are few. work must only touch its own items."""
    total = length * elements_per_item
    per_block = max(1, block_elements // max(1, elements_per_item))
    if total < MIN_PARALLEL_ELEMENTS or length < 2 or thread_count() < 2:
        for start in range(0, length, per_block):
            work(start, min(length, start + per_block))
        return
    # at least two blocks per thread so that both cores stay busy to the end
    per_block = min(per_block, -(-length // (2 * thread_count())))
    starts = range(0, length, per_block)
    futures = [_executor().submit(work, start, min(length, start + per_block))
               for start in starts]
    for future in futures:
        future.result()   # re-raises a worker's exception here
