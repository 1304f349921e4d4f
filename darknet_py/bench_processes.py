"""`bench --vs ENGINES` with each engine in its own process, timed alternately.

Timed in one process, two engines share more than the machine: OpenBLAS's, numba's and
onnxruntime's thread pools, the allocator's arenas, the caches' contents. The pause
before each run (bench_compare.PAUSE_SECONDS) lets spinning threads go idle, but on this
project's machine darknet_py still ran 40% slower alternating with onnxruntime in one
process than alone. Here each engine (darknet_py included) runs in a worker process of its
own, built the same way from the same seed (bench.random_network: identical weights and
input in every process); the parent, which computes nothing, asks the workers for one
timed run each in turn, pausing before each, and takes medians. The outputs are compared
at the end through .npy files.

Protocol: the worker gets its spec as JSON in argv, answers "ready" once built and warm,
then reads commands on stdin and answers one line on its original stdout (the library's own
prints go to stderr): `run` (one run: "seconds peak_bytes"), `save PATH` (the compared
output as .npy), `quit`.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from . import bench_compare

OURS = "darknet_py"


def _network(spec):
    from .bench_inputs import random_network
    from .network import parse_network_cfg
    if spec["weights"]:
        net = parse_network_cfg(spec["cfg"], batch=spec["batch"], device=spec["device"],
                                exact=spec["exact"])
        net.load_weights(spec["weights"])
        net.ensure_initialized()
    else:
        net = random_network(spec["cfg"], spec["batch"], spec["device"], exact=spec["exact"])
    return net


def _worker_runner(spec):
    """(run, output) of the engine in spec: run() does one timed unit of work, output()
    the compared tensor (None for training steps)."""
    from .bench_inputs import bench_input, bench_truth
    net = _network(spec)
    x = bench_input(net, spec["batch"])
    engine, train = spec["engine"], spec["train"]
    if engine == OURS:
        sync = net.ops.synchronize
        if train:
            truth = bench_truth(net, spec["batch"])
            net.options.learning_rate = 0.0   # time the work, keep the weights

            def run():
                net.train_step(x, truth)
                sync()
            return run, None, {}
        x_device = net.ops.to_device(x)

        def run():
            net.forward(x_device)
            sync()
        return run, lambda: bench_compare.our_output(net, x), {}
    if train:
        if engine != "torch":
            raise RuntimeError(f"-train --vs {engine}: only torch times training steps")
        step, facts = bench_compare.torch_train_runner(x, net)
        return step, None, facts
    run, facts = bench_compare.runner(engine, spec["cfg"], spec["weights"], x, net)
    return run, run, facts


def worker(spec_json):
    """A worker process's main loop (see the module's docstring)."""
    reply = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)   # whatever the library prints goes to stderr, not into the protocol
    sys.stdout = sys.stderr
    spec = json.loads(spec_json)
    run, output, facts = _worker_runner(spec)
    for _ in range(spec["warmup"]):
        run()
    reply.write("ready " + json.dumps(facts) + "\n")
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "run":
            reset = bench_compare._reset_peak_resident()
            start = time.perf_counter()
            run()
            seconds = time.perf_counter() - start
            peak = bench_compare._resident_bytes("VmHWM") if reset else None
            reply.write(f"{seconds!r} {peak or 0}\n")
        elif command == "save":
            np.save(argument, np.asarray(output(), dtype=np.float32))
            reply.write("ok\n")
        elif command == "quit":
            break
    reply.close()


class _Worker:
    def __init__(self, spec, log_dir):
        self.engine = spec["engine"]
        self.log_path = os.path.join(log_dir, f"{self.engine}.log")
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "darknet_py.bench_processes", json.dumps(spec)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
            bufsize=1)
        self.facts = {}

    def ask(self, command):
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.answer()

    def answer(self):
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            self.log.flush()
            with open(self.log_path, errors="replace") as handle:
                lines = [text.strip() for text in handle if text.strip()]
            why = lines[-1] if lines else f"exit status {self.process.returncode}"
            raise RuntimeError(f"bench worker for {self.engine} failed: {why}")
        return line.strip()

    def close(self):
        if self.process.poll() is None:
            try:
                self.process.stdin.write("quit\n")
                self.process.stdin.close()
            except OSError:
                pass
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def alternate(workers, runs, pause=None):
    """Median seconds and peak RSS bytes per worker, one timed run of each in turn,
    `runs` times, each after a pause (bench_compare.PAUSE_SECONDS)."""
    pause = bench_compare.PAUSE_SECONDS if pause is None else pause
    times = {worker.engine: [] for worker in workers}
    peaks = {worker.engine: 0 for worker in workers}
    for _ in range(runs):
        for worker in workers:
            time.sleep(pause)
            seconds, peak = worker.ask("run").split()
            times[worker.engine].append(float(seconds))
            peaks[worker.engine] = max(peaks[worker.engine], int(peak))
    return ({name: float(np.median(values)) for name, values in times.items()}, peaks)


def compare_processes(names, cfg, weights, batch, device="cpu", exact=False, warmup=2,
                      runs=10, train=False):
    """Each engine in `names` (comma-separated) against darknet_py, every engine in its own
    process, timed alternately. Returns {engine: result} as bench_compare.compare does,
    plus "processes": True and the peak RSS of each worker during its runs."""
    engines = [name for name in names.split(",") if name]
    for name in engines:
        if name not in bench_compare.ENGINES:
            raise RuntimeError(f"--vs {name}: expected one of "
                               f"{', '.join(bench_compare.ENGINES)}")
    if train:
        engines = [name for name in engines if name == "torch"]
        if not engines:
            return {}
    base = {"cfg": cfg, "weights": weights, "batch": batch, "device": str(device),
            "exact": exact, "train": train, "warmup": warmup}
    results = {}
    with tempfile.TemporaryDirectory(prefix="darknet_py_bench_") as tmp:
        ours = _Worker({**base, "engine": OURS}, tmp)
        try:
            ours.facts = json.loads(ours.answer().partition(" ")[2])
            for name in engines:
                theirs = _Worker({**base, "engine": name}, tmp)
                try:
                    theirs.facts = json.loads(theirs.answer().partition(" ")[2])
                    medians, peaks = alternate([ours, theirs], runs)
                    result = {"seconds": medians[name], "ours_seconds": medians[OURS],
                              "processes": True, "peak_mb": peaks[name] / 2**20,
                              "ours_peak_mb": peaks[OURS] / 2**20, **theirs.facts}
                    if not train:
                        paths = [os.path.join(tmp, f"{engine}.npy") for engine in (OURS, name)]
                        ours.ask(f"save {paths[0]}")
                        theirs.ask(f"save {paths[1]}")
                        result.update(bench_compare._diff(np.load(paths[0]),
                                                          np.load(paths[1])))
                    results[name] = result
                finally:
                    theirs.close()
        finally:
            ours.close()
    return results


if __name__ == "__main__":
    worker(sys.argv[1])
