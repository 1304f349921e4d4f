"""Batches loaded in background worker processes, one batch ahead, as darknet's load
thread does: while the network trains on batch k, workers decode and augment batch k+1.

Every sample's random numbers come from (seed, batch number, position), so a run with a
seed is reproducible whatever the number of workers.
"""
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from .. import signals
from ..errors import DarknetError
from .classification import load_classification_sample
from .detection import load_detection_sample

# How long close() waits for a worker to end before it is killed.
WORKER_EXIT_SECONDS = 2.0
PR_SET_PDEATHSIG = 1   # linux/prctl.h


class LoaderError(DarknetError):
    """A loader worker died (killed, out of memory): the batch cannot be made."""


def _worker_setup(trainer_pid, from_main_thread):
    """Each worker's start: Ctrl-C and SIGTERM are left to the trainer, which saves and
    closes the workers (no traceback from each of them), and a worker never outlives its
    trainer: killed with -9, the trainer cannot close them, so the kernel does
    (PR_SET_PDEATHSIG, which fires when the creating thread ends: used only for workers
    of the main thread), else a thread watching the parent does."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if not (from_main_thread and _die_with_parent()):
        threading.Thread(target=_watch_parent, args=(trainer_pid,), daemon=True).start()
    if os.getppid() != trainer_pid:   # the trainer died before the line above
        os._exit(1)


def _die_with_parent():
    """Linux: SIGKILL this process when its parent dies. False where unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(trainer_pid, every=0.5):
    while os.getppid() == trainer_pid:
        time.sleep(every)
    os._exit(1)


def _detection_job(job):
    path, width, height, params, seed = job
    return load_detection_sample(path, width, height, rng=np.random.default_rng(seed), **params)


def _classification_job(job):
    path, width, height, params, seed = job
    return load_classification_sample(path, size=width, rng=np.random.default_rng(seed),
                                      **params)


# the cfg's augmentation settings: a NaN or inf here makes every image NaN
AUGMENTATION_KEYS = ("jitter", "hue", "saturation", "exposure", "angle", "aspect")


def check_augmentation(params):
    """Refuse non-finite augmentation settings before any worker starts (the cfg parser
    checks jitter; the [net] ones would otherwise turn each image into NaN, which the
    trainer reports as a diverged first step)."""
    for key in AUGMENTATION_KEYS:
        value = params.get(key)
        if value is not None and not np.isfinite(value):
            raise DarknetError(f"the cfg's {key}={value}: augmentation needs a finite "
                               "number (every image would be NaN)")


class BatchLoader:
    """next_batch(width, height) -> (X (n, 3, h, w) float32, truth (n, ...) float32)."""

    def __init__(self, kind, paths, images_per_batch, params, seed=None, workers=2):
        if not paths:
            raise ValueError("the training list is empty")
        check_augmentation(params)
        self.job = {"detection": _detection_job, "classification": _classification_job}[kind]
        self.paths = list(paths)
        self.count = images_per_batch
        self.params = params
        self.seed = int(np.random.SeedSequence().entropy % 2**32) if seed is None else seed
        self.batch_number = 0
        main = threading.current_thread() is threading.main_thread()
        self.pool = ProcessPoolExecutor(workers, initializer=_worker_setup,
                                        initargs=(os.getpid(), main)) if workers > 0 else None
        self.pending = None

    def _jobs(self, batch_number, width, height):
        # darknet's get_random_paths: images drawn with replacement
        picker = np.random.default_rng([self.seed, batch_number])
        chosen = picker.integers(len(self.paths), size=self.count)
        return [(self.paths[i], width, height, self.params,
                 [self.seed, batch_number, position]) for position, i in enumerate(chosen)]

    def _submit(self, width, height):
        jobs = self._jobs(self.batch_number, width, height)
        self.batch_number += 1
        if self.pool is None:
            return (width, height), [self.job(job) for job in jobs]
        # the first submit forks the workers: CPython runs logging's at-fork hook in the
        # parent after each fork, and a KeyboardInterrupt raised there is "ignored"
        # (printed and lost), so a Ctrl-C while the workers start would leave the run going
        with signals.deferred(default_action="kill"):
            return (width, height), [self.pool.submit(self.job, job) for job in jobs]

    @staticmethod
    def _collect(results):
        samples = [r.result() if hasattr(r, "result") else r for r in results]
        return (np.stack([image for image, _ in samples]),
                np.stack([truth for _, truth in samples]))

    def next_batch(self, width, height):
        try:
            return self._next_batch(width, height)
        except BrokenProcessPool:
            raise LoaderError("a data loader worker process died (killed, or out of "
                              "memory)") from None

    def _next_batch(self, width, height):
        if self.pending is None or self.pending[0] != (width, height):
            if self.pending is not None:   # a resize: the prefetched batch has the old size
                for result in self.pending[1]:
                    if hasattr(result, "cancel"):
                        result.cancel()
            self.pending = self._submit(width, height)
        current, self.pending = self.pending, self._submit(width, height)
        return self._collect(current[1])

    def close(self):
        """Stop the workers now: cancel what is queued, end the processes (none is left
        behind, whatever they were doing)."""
        if self.pool is None:
            return
        processes = list((getattr(self.pool, "_processes", None) or {}).values())
        self.pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(WORKER_EXIT_SECONDS)
            if process.is_alive():
                process.kill()
                process.join(WORKER_EXIT_SECONDS)
        self.pool = None
