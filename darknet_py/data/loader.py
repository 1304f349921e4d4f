"""Batches loaded in background worker processes, one batch ahead, as darknet's load
thread does: while the network trains on batch k, workers decode and augment batch k+1.

Every sample's random numbers come from (seed, batch number, position), so a run with a
seed is reproducible whatever the number of workers.
"""
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from ..errors import DarknetError
from .classification import load_classification_sample
from .detection import load_detection_sample

# How long close() waits for a worker to end before it is killed.
WORKER_EXIT_SECONDS = 2.0


class LoaderError(DarknetError):
    """A loader worker died (killed, out of memory): the batch cannot be made."""


def _ignore_interrupts():
    """Workers leave Ctrl-C and SIGTERM to the trainer, which saves and closes them (no
    traceback from each worker)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _detection_job(job):
    path, width, height, params, seed = job
    return load_detection_sample(path, width, height, rng=np.random.default_rng(seed), **params)


def _classification_job(job):
    path, width, height, params, seed = job
    return load_classification_sample(path, size=width, rng=np.random.default_rng(seed),
                                      **params)


class BatchLoader:
    """next_batch(width, height) -> (X (n, 3, h, w) float32, truth (n, ...) float32)."""

    def __init__(self, kind, paths, images_per_batch, params, seed=None, workers=2):
        if not paths:
            raise ValueError("the training list is empty")
        self.job = {"detection": _detection_job, "classification": _classification_job}[kind]
        self.paths = list(paths)
        self.count = images_per_batch
        self.params = params
        self.seed = int(np.random.SeedSequence().entropy % 2**32) if seed is None else seed
        self.batch_number = 0
        self.pool = ProcessPoolExecutor(workers, initializer=_ignore_interrupts) \
            if workers > 0 else None
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
