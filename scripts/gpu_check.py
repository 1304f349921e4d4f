#!/usr/bin/env python3
"""darknet_py's GPU check, in one call on a machine with an NVIDIA GPU and CuPy (no internet):

    python3 scripts/gpu_check.py [--batches 1,8,32] [--train-batches 8,16] [--quick]

1. prints the environment (Python, NumPy, CuPy, CUDA, the device);
2. runs the whole GPU test suite: `pytest -m gpu tests` (every kernel against the NumPy
   backend, whole networks forward/backward/train_step on the oracle cases) and the kernel
   compile tests (nvcc and NVRTC);
3. times every kernel of the CuPy backend at darknet-sized shapes (CUDA events around each
   call after warm-up; the median and the minimum of the repetitions, in ms);
4. times whole networks (random weights, darknet's cfgs from cfg/): forward at a few batch
   sizes and a train_step (forward, backward, region loss on the host, SGD update), wall
   clock with the device synchronised, and one NumPy forward at batch 1 for comparison;
5. prints a short table last, and writes gpu_check.log and gpu_check.json to $OUT (or
   --out) when one is given.

The oracle cases live in ../shared, which does not travel to a device machine. Before the
call, on a machine that has ../shared, run

    python3 scripts/gpu_check.py --stage

which copies the cases the GPU tests use (cfgs, weights, inputs, training batches; not the
reference dumps) into .gpu/shared (git-ignored, under 50 MB), and carry `.gpu` with the
call; this script then points DARKNET_PY_SHARED at it. Exit status: 0 when every test
passed on a GPU, 1 when a test failed (the timings run either way), 2 when no GPU was found
(the GPU tests then skip, so nothing was proven).
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STAGE = ROOT / ".gpu" / "shared"
STAGE_BUDGET = 50 * 2**20
# forward and training cases in the order they are staged until the budget is spent
STAGE_CASES = ("cifar_minin_dog", "yolov2-tiny-voc-slim_dog", "ttt4_dog", "ttt4_pre_conv4_dog",
               "darknet19-slim_dog", "train_yolov2-tiny-voc-slim_b2", "train_darknet19-slim_b2",
               "yolov2-voc-slim_dog", "train_yolov2-voc-slim_b1s2", "darknet9000-slim_dog",
               "yolo9000-slim_dog_160", "ttt5_pre_conv7_dog", "tiny_dog", "yolov2-slim_dog",
               "train_yolov2-voc-slim_b2", "train_yolov2-voc-slim_b2_seen20000",
               "yolov2-voc-slim_horses", "yolov2-tiny-voc-slim_horses", "ttt4_person",
               "tiny_eagle", "yolo9000-slim_dog")


# ------------------------------------------------------------------ staging (no GPU needed)
def stage(shared):
    """Copy what the GPU tests read from ../shared into .gpu/shared, within the budget."""
    shared = Path(shared).resolve()
    oracle = shared / "oracle"
    if not oracle.is_dir():
        sys.exit(f"{oracle} not found: run --stage where ../shared is (or give --shared)")
    if STAGE.exists():
        shutil.rmtree(STAGE)
    wanted = {}   # relative path -> size

    def want(path):
        path = path.resolve()
        wanted[str(path.relative_to(shared))] = path.stat().st_size

    for folder in ("darknet/cfg", "darknet/data", "oracle/cfg"):
        for path in (shared / folder).rglob("*"):
            if path.is_file() and path.suffix not in (".jpg", ".png"):
                want(path)
    want(oracle / "CASES.md")
    staged = []
    for name in STAGE_CASES:
        case = oracle / name
        if not (case / "manifest.json").exists():
            continue
        manifest = json.loads((case / "manifest.json").read_text())
        files = [case / "manifest.json", case / manifest["effective_cfg"]]
        if manifest["tool"].startswith("dn_train"):
            files += [case / f for f in ("X.npy", "truth.npy", "weights_before.weights")]
        else:
            files.append(case / manifest["weights"])
            if (case / "input.npy").exists():
                files.append(case / "input.npy")
        extra = {str(f.resolve().relative_to(shared)): f.stat().st_size for f in files}
        new = sum(size for path, size in extra.items() if path not in wanted)
        if sum(wanted.values()) + new > STAGE_BUDGET:
            print(f"  {name}: skipped ({new / 2**20:.1f} MB would pass the budget)")
            continue
        wanted.update(extra)
        staged.append(name)
    for relative in wanted:
        target = STAGE / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(shared / relative, target)
    total = sum(wanted.values())
    print(f"staged {len(staged)} cases, {len(wanted)} files, {total / 2**20:.1f} MB in {STAGE}:")
    print("  " + " ".join(staged))
    print("carry '.gpu' with the device call (it is git-ignored).")


# ------------------------------------------------------------------ output
class Log:
    def __init__(self, out):
        self.out = Path(out) if out else None
        self.handle = None
        if self.out:
            self.out.mkdir(parents=True, exist_ok=True)
            self.handle = open(self.out / "gpu_check.log", "w")

    def __call__(self, line=""):
        print(line, flush=True)
        if self.handle:
            self.handle.write(line + "\n")
            self.handle.flush()


def environment(log):
    info = {"python": platform.python_version(), "platform": platform.platform()}
    import numpy
    info["numpy"] = numpy.__version__
    try:
        import cupy
        info["cupy"] = cupy.__version__
        runtime = cupy.cuda.runtime
        info["cuda_runtime"] = runtime.runtimeGetVersion()
        info["cuda_driver"] = runtime.driverGetVersion()
        props = runtime.getDeviceProperties(0)
        device_name = props["name"]
        info["device"] = device_name.decode() if isinstance(device_name, bytes) else device_name
        info["compute_capability"] = f"{props['major']}.{props['minor']}"
        info["multiprocessors"] = props["multiProcessorCount"]
        info["memory_gib"] = round(props["totalGlobalMem"] / 2**30, 1)
    except Exception as err:   # report and go on: the tests will say what is missing
        info["cupy_error"] = f"{type(err).__name__}: {err}"
    nvcc = shutil.which("nvcc")
    if nvcc:
        info["nvcc"] = subprocess.run([nvcc, "--version"], capture_output=True,
                                      text=True).stdout.strip().splitlines()[-1]
    for key, value in info.items():
        log(f"  {key}: {value}")
    return info


# ------------------------------------------------------------------ tests
def run_tests(log, quick):
    results = {}
    commands = {
        "gpu": [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                "-m", "gpu", "tests"],
        "compile": [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                    "tests/test_kernels_compile.py"],
    }
    if quick:
        commands["gpu"][-1:] = ["tests/test_gpu_kernels.py"]
    for name, command in commands.items():
        log(f"$ {' '.join(command[1:])}")
        start = time.time()
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        last = ""
        for line in process.stdout:
            line = line.rstrip("\n")
            log(line)
            if line.strip():
                last = line.strip()
        process.wait()
        results[name] = {"returncode": process.returncode, "summary": last.strip("= "),
                         "seconds": round(time.time() - start, 1)}
    return results


# ------------------------------------------------------------------ kernel timings
def time_kernel(cp, call, warmup=3, repeats=21):
    for _ in range(warmup):
        call()
    cp.cuda.Device().synchronize()
    times = []
    for _ in range(repeats):
        start, end = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        call()
        end.record()
        end.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, end))
    return statistics.median(times), min(times)


def kernel_timings(ops, log, batch):
    """Each backend operation at shapes from yolov2-voc at 416 (per `batch` images)."""
    import numpy as np
    cp, f32 = ops.cp, np.float32
    rng = np.random.default_rng(0)

    def dev(*shape, scale=1.0, offset=0.0):
        return ops.to_device((rng.standard_normal(shape) * scale + offset).astype(f32))

    b = batch
    x = dev(b, 64, 104, 104)
    big = dev(b, 32, 416, 416)
    cols3 = ops.im2col(x, 3, 1, 1, 104, 104)
    weights = dev(1, 128, 64 * 9)
    mean, var = dev(32), ops.to_device(np.abs(rng.standard_normal(32)).astype(f32) + .1)
    scales = dev(32)
    out_pool, indexes = ops.maxpool(big, 2, 2, 1, 208, 208)
    pooled_delta = dev(*out_pool.shape)
    grad_input = dev(b, 32, 416, 416)
    classes = dev(b, 1000)
    tree_offsets = _tree_offsets()
    tree_x = dev(b, 3 * (9418 + 5), 17, 17) if tree_offsets is not None else None
    region_x = dev(b, 125, 13, 13, scale=3)
    reorg_x = dev(b, 64, 26, 26)
    params, updates = dev(50_000_000 // 8), dev(50_000_000 // 8)
    draws = rng.random((b, 1024, 13, 13), dtype=f32)
    avg_x = dev(b, 1000, 7, 7)
    input_delta = dev(b, 64, 104, 104)
    rolling, scales_1024 = dev(1024), dev(1024)
    cases = [
        ("im2col 3x3/1", f"{b}x64x104x104", lambda: ops.im2col(x, 3, 1, 1, 104, 104)),
        ("col2im_add 3x3/1", f"{b}x64x104x104",
         lambda: ops.col2im_add(cols3, input_delta, 3, 1, 1, 104, 104)),
        ("matmul (cuBLAS)", f"128x576 @ {b}x576x10816",
         lambda: ops.matmul(weights, cols3.reshape(b, 1, 576, -1))),
        ("matmul ordered (exact)", "128x576 @ 1x576x10816",
         lambda: ops.matmul(weights, cols3[:1].reshape(1, 1, 576, -1), True)),
        ("batchnorm_inference", f"{b}x32x416x416", lambda: ops.batchnorm_inference(big, mean, var)),
        ("scale_bias", f"{b}x32x416x416", lambda: ops.scale_bias(big, scales)),
        ("add_bias", f"{b}x32x416x416", lambda: ops.add_bias(big, scales)),
        ("activate leaky", f"{b}x32x416x416", lambda: ops.activate(big, "leaky")),
        ("activate logistic", f"{b}x32x416x416", lambda: ops.activate(big, "logistic")),
        ("gradient leaky", f"{b}x32x416x416", lambda: ops.gradient(big, "leaky")),
        ("batchnorm_statistics", f"{b}x32x416x416", lambda: ops.batchnorm_statistics(big)),
        ("batchnorm_statistics exact", f"{b}x32x416x416",
         lambda: ops.batchnorm_statistics(big, True)),
        ("channel_sums", f"{b}x32x416x416", lambda: ops.channel_sums(big)),
        ("batchnorm_backward", f"{b}x32x416x416",
         lambda: ops.batchnorm_backward(big, big, mean, var, scales)),
        ("update_rolling", "1024", lambda: ops.update_rolling(rolling, scales_1024)),
        ("maxpool 2x2/2", f"{b}x32x416x416", lambda: ops.maxpool(big, 2, 2, 1, 208, 208)),
        ("maxpool_backward 2x2/2", f"{b}x32x416x416",
         lambda: ops.maxpool_backward(pooled_delta, indexes, grad_input.shape, 2, 2, 1)),
        ("avgpool", f"{b}x1000x7x7", lambda: ops.avgpool(avg_x)),
        ("avgpool_backward", f"{b}x1000x7x7",
         lambda: ops.avgpool_backward(avg_x[:, :, :1, :1], avg_x)),
        ("reorg /2", f"{b}x64x26x26", lambda: ops.reorg(reorg_x, 2, False)),
        ("softmax flat", f"{b}x1000", lambda: ops.softmax_groups(classes, [0])),
        ("region_activate softmax", f"{b}x125x13x13",
         lambda: ops.region_activate(region_x, 5, 25, 4, 20, 0, 1)),
        ("sequential_sum", f"{b}x1000", lambda: ops.sequential_sum(classes)),
        ("sgd_step (decay)", "6.25M", lambda: ops.sgd_step(params, updates, 1e-5, .9, -0.03)),
        ("dropout_mask", f"{b}x1024x13x13", lambda: ops.dropout_mask(draws, .5, 2.0)),
    ]
    if tree_x is not None:
        cases.append(("region_activate tree (9k)", f"{b}x{tree_x.shape[1]}x17x17",
                      lambda: ops.region_activate(tree_x, 3, 9418 + 5, 4, 9418, 0, 0,
                                                  tree_offsets)))
        tree_flat = dev(b, 9418)
        cases.append(("softmax tree (9k)", f"{b}x9418",
                      lambda: ops.softmax_groups(tree_flat, tree_offsets, gpu=True)))
    rows = []
    for name, shape, call in cases:
        median, best = time_kernel(cp, call)
        rows.append({"kernel": name, "shape": shape, "median_ms": round(median, 4),
                     "min_ms": round(best, 4)})
        log(f"  {name:28s} {shape:26s} {median:9.4f} ms (min {best:.4f})")
    return rows


def _tree_offsets():
    from darknet_py.tree import read_tree
    shared = Path(os.environ.get("DARKNET_PY_SHARED", ROOT.parent / "shared"))
    for folder in (shared / "darknet", ROOT):
        path = folder / "data" / "9k.tree"
        if path.exists():
            return read_tree(str(path)).group_offset
    return None


# ------------------------------------------------------------------ network timings
NETWORKS = (("yolov2-voc", "cfg/yolov2-voc.cfg"), ("yolov2-tiny-voc", "cfg/yolov2-tiny-voc.cfg"),
            ("darknet19", "cfg/darknet19.cfg"))


def random_network(cfg, batch, device, seed=0):
    """darknet's network of `cfg` with random weights (bench's: NumPy draws of darknet's
    distributions, rolling variance 1), placed on `device`."""
    from darknet_py.bench import random_network as bench_network
    return bench_network(str(ROOT / cfg), batch, device, seed)


def network_timings(ops, log, batches, train_batches, numpy_baseline):
    import numpy as np
    cp = ops.cp
    rng = np.random.default_rng(1)
    rows = []

    def wall(call, warmup=2, repeats=5):
        for _ in range(warmup):
            call()
        cp.cuda.Device().synchronize()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            cp.cuda.Device().synchronize()
            times.append((time.perf_counter() - start) * 1000)
        return statistics.median(times)

    for name, cfg in NETWORKS:
        for batch in batches:
            try:
                net = random_network(cfg, batch, ops)
                x = rng.random((batch, net.channels, net.height, net.width), dtype=np.float32)
                ms = wall(lambda: net.forward(x))
            except Exception as err:   # out of memory at a large batch, say: report, go on
                log(f"  {name} forward batch {batch}: {type(err).__name__}: {err}")
                rows.append({"network": name, "mode": "forward", "batch": batch,
                             "error": str(err)})
                continue
            rows.append({"network": name, "mode": "forward", "batch": batch,
                         "ms": round(ms, 2), "images_per_s": round(batch * 1000 / ms, 1),
                         "bflops_per_image": round(net.bflops(), 3)})
            log(f"  {name:16s} forward batch {batch:3d}: {ms:9.2f} ms  "
                f"{batch * 1000 / ms:8.1f} img/s")
            del net
            cp.get_default_memory_pool().free_all_blocks()
        for batch in train_batches:
            try:
                net = random_network(cfg, batch, ops)
                net.options.batch, net.options.subdivisions = batch, 1
                x = rng.random((batch, net.channels, net.height, net.width), dtype=np.float32)
                truth = _truth(net, batch, rng)
                ms = wall(lambda: net.train_step(x, truth), warmup=2, repeats=5)
            except Exception as err:
                log(f"  {name} train batch {batch}: {type(err).__name__}: {err}")
                rows.append({"network": name, "mode": "train", "batch": batch,
                             "error": str(err)})
                continue
            rows.append({"network": name, "mode": "train", "batch": batch, "ms": round(ms, 2),
                         "images_per_s": round(batch * 1000 / ms, 1)})
            log(f"  {name:16s} train   batch {batch:3d}: {ms:9.2f} ms  "
                f"{batch * 1000 / ms:8.1f} img/s")
            del net
            cp.get_default_memory_pool().free_all_blocks()
        if numpy_baseline:
            net = random_network(cfg, 1, "cpu")
            x = rng.random((1, net.channels, net.height, net.width), dtype=np.float32)
            net.forward(x)
            start = time.perf_counter()
            net.forward(x)
            ms = (time.perf_counter() - start) * 1000
            rows.append({"network": name, "mode": "forward (NumPy, CPU)", "batch": 1,
                         "ms": round(ms, 2), "images_per_s": round(1000 / ms, 2)})
            log(f"  {name:16s} forward batch   1 on the CPU (NumPy): {ms:9.2f} ms")
    return rows


def _truth(net, batch, rng):
    import numpy as np
    last = net.layers[-1]
    if last.type == "region":
        truth = np.zeros((batch, 30 * 5), dtype=np.float32)
        for row in truth:
            for box in range(3):
                row[box * 5:box * 5 + 5] = [rng.uniform(.1, .9), rng.uniform(.1, .9),
                                            rng.uniform(.05, .5), rng.uniform(.05, .5),
                                            rng.integers(last.classes)]
        return truth
    outputs = net.output_layer().outputs
    truth = np.zeros((batch, outputs), dtype=np.float32)
    truth[np.arange(batch), rng.integers(0, outputs, batch)] = 1
    return truth


def bench_targets(log, out_dir):
    """Issue #7's GPU targets: yolov2-voc at 416, inference at batch 1 and 64 and training at
    batch 64 through `bench` (with --vs torch where PyTorch is installed: cuDNN, TF32 off,
    timed alternately), then throughput against batch size with its plot."""
    import importlib.util
    import io
    from darknet_py.bench import bench, sweep
    cfg = str(ROOT / "cfg/yolov2-voc.cfg")
    vs = "torch" if importlib.util.find_spec("torch") else None
    results = []
    for batch, train in ((1, False), (64, True)):
        text = io.StringIO()
        try:
            results.append(bench(cfg, batch=batch, device=0, train=train, runs=10, vs=vs,
                                 out=text))
        except Exception as err:   # report and go on: the other figures still count
            log(f"  bench batch {batch}: {type(err).__name__}: {err}")
        for line in text.getvalue().splitlines():
            log(f"  {line}")
    text = io.StringIO()
    plot = Path(out_dir) / "gpu_throughput_yolov2-voc.png" if out_dir else None
    try:
        results.append(sweep(cfg, [1, 2, 4, 8, 16, 32, 64], device=0, train=True, runs=5,
                             plot=str(plot) if plot else None, out=text))
    except Exception as err:
        log(f"  sweep: {type(err).__name__}: {err}")
    for line in text.getvalue().splitlines():
        if not line.startswith("  "):   # the sweep's summary, not each run's layer lines
            log(f"  {line}")
    return results


# ------------------------------------------------------------------ main
def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", action="store_true",
                        help="copy the oracle cases into .gpu/shared (run where ../shared is)")
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    parser.add_argument("--out", default=os.environ.get("OUT"))
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--train-batches", default="8,16")
    parser.add_argument("--kernel-batch", type=int, default=8)
    parser.add_argument("--quick", action="store_true",
                        help="kernel tests only, one batch size, no CPU baseline")
    parser.add_argument("--skip-tests", action="store_true")
    parser.add_argument("--skip-timings", action="store_true")
    args = parser.parse_args()
    if args.stage:
        stage(args.shared)
        return 0
    if "DARKNET_PY_SHARED" not in os.environ and STAGE.exists():
        os.environ["DARKNET_PY_SHARED"] = str(STAGE)
    log = Log(args.out)
    report = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "shared":
              os.environ.get("DARKNET_PY_SHARED", str(ROOT.parent / "shared"))}

    def checkpoint():
        """The JSON as it stands, after every stage: a run cut short keeps what it did."""
        if args.out:
            (Path(args.out) / "gpu_check.json").write_text(json.dumps(report, indent=1))
    log("== environment")
    report["environment"] = environment(log)
    checkpoint()
    status = 0
    from darknet_py.ops import cupy_backend, gpu_available
    if not gpu_available():
        status = 2
        log("!! no GPU: CuPy or a CUDA device is missing; the GPU tests will skip")
    if not args.skip_tests:
        log("== GPU test suite")
        report["tests"] = run_tests(log, args.quick)
        if any(r["returncode"] for r in report["tests"].values()):
            status = 1
        checkpoint()
    if not args.skip_timings:
        if not gpu_available():
            log("== timings skipped: no GPU (CuPy or a CUDA device is missing)")
        else:
            ops = cupy_backend(0)
            log(f"== kernel timings (batch {args.kernel_batch}; CUDA events, median of 21 "
                "after 3 warm-ups)")
            report["kernels"] = kernel_timings(ops, log, args.kernel_batch)
            checkpoint()
            batches = [int(b) for b in args.batches.split(",") if b]
            train_batches = [int(b) for b in args.train_batches.split(",") if b]
            if args.quick:
                batches, train_batches = batches[:1], train_batches[:1]
            log("== network timings (random weights; wall clock, device synchronised, "
                "median of 5 after 2 warm-ups)")
            report["networks"] = network_timings(ops, log, batches, train_batches,
                                                 numpy_baseline=not args.quick)
            checkpoint()
            if not args.quick:
                log("== issue #7 targets: bench cfg/yolov2-voc.cfg on the GPU (--vs torch)")
                report["bench"] = bench_targets(log, args.out)
    summary(log, report)
    checkpoint()
    return status


def summary(log, report):
    log("")
    log("== summary")
    env = report.get("environment", {})
    log(f"device: {env.get('device', env.get('cupy_error', '?'))}, CuPy {env.get('cupy', '-')}, "
        f"CUDA runtime {env.get('cuda_runtime', '-')}")
    for name, result in report.get("tests", {}).items():
        log(f"tests {name:8s}: {result['summary']} ({result['seconds']} s)")
    if report.get("kernels"):
        log(f"{'kernel':28s} {'shape':26s} {'median ms':>10s}")
        for row in report["kernels"]:
            log(f"{row['kernel']:28s} {row['shape']:26s} {row['median_ms']:10.4f}")
    if report.get("networks"):
        log(f"{'network':16s} {'mode':22s} {'batch':>5s} {'ms':>10s} {'img/s':>9s}")
        for row in report["networks"]:
            if "error" in row:
                log(f"{row['network']:16s} {row['mode']:22s} {row['batch']:5d}  error")
            else:
                log(f"{row['network']:16s} {row['mode']:22s} {row['batch']:5d} "
                    f"{row['ms']:10.2f} {row['images_per_s']:9.1f}")


if __name__ == "__main__":
    sys.exit(main())
