"""`bench`: how fast a cfg runs here, and how far from this machine's ceilings.

Every figure is the median of timed runs after warm-up; on a GPU the ops module's
`synchronize` is called around each timed region. The machine's ceilings are measured, not
looked up: a large float32 GEMM (GFLOP/s) and a large copy (GB/s, bytes read + written).
"""
import json
import resource
import sys
import time

import numpy as np

from .bench_inputs import bench_input, bench_truth, random_network  # noqa: F401
from .layers.params import parameter_count
from .network import parse_network_cfg


def _median_seconds(function, sync, warmup, runs):
    for _ in range(warmup):
        function()
    sync()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        sync()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def machine_ceilings(ops, sync, size=2048, copy_mb=256):
    """Measured peak rates: a size^3 GEMM and a copy of copy_mb megabytes."""
    xp = ops.xp
    a = ops.to_device(np.random.default_rng(0).random((size, size), dtype=np.float32))
    b = ops.to_device(np.random.default_rng(1).random((size, size), dtype=np.float32))
    gemm = _median_seconds(lambda: ops.matmul(a, b), sync, 2, 5)
    source = xp.ones(copy_mb * 2**20 // 4, dtype=np.float32)
    target = xp.empty_like(source)
    copy = _median_seconds(lambda: xp.copyto(target, source), sync, 2, 5)
    return {"gemm_gflops": 2 * size**3 / gemm / 1e9,
            "copy_gbs": 2 * source.nbytes / copy / 1e9}


def _layer_bytes(layer, batch):
    """Fewest bytes a layer's forward must move: its input and output once, its parameters."""
    params = parameter_count(layer)
    return 4 * (batch * (layer.inputs + layer.outputs) + params)


def bench(cfg, batch=1, device="cpu", train=False, layers=False, runs=10, warmup=2,
          weights=None, exact=False, vs=None, processes=True, out=sys.stdout):
    """Time cfg's forward (and with train its training step) and report it. vs names other
    engines to time alternately with ours: with processes (the default) each engine,
    ours included, runs in a process of its own (bench_processes), else all in this one."""
    if weights:
        net = parse_network_cfg(cfg, batch=batch, device=device, exact=exact)
        net.load_weights(weights)
        net.ensure_initialized()
    else:
        net = random_network(cfg, batch, device, exact=exact)
    ops = net.ops
    sync = ops.synchronize
    x = bench_input(net, batch)
    x_device = ops.to_device(x)
    result = {"cfg": cfg, "batch": batch, "device": str(device), "backend": ops.name,
              "width": net.width, "height": net.height, "bflops_per_image": net.bflops()}
    result["ceilings"] = machine_ceilings(ops, sync)
    result["gemm_library"] = ops.gemm_library()
    # the first forward alone: what a process pays once (compiled kernels loaded from
    # numba's cache, or compiled on a machine that never ran them; filter transforms;
    # workspaces); the median below excludes it
    start = time.perf_counter()
    net.forward(x_device)
    sync()
    result["first_forward_seconds"] = time.perf_counter() - start
    seconds = _median_seconds(lambda: net.forward(x_device), sync, warmup, runs)
    result["forward_seconds"] = seconds
    result["images_per_second"] = batch / seconds
    result["gflops"] = net.bflops() * batch / seconds
    if vs and processes:
        from .bench_processes import compare_processes
        result["vs"] = compare_processes(vs, cfg, weights, batch, device, exact, warmup, runs)
    elif vs:   # before training, which moves the batch-norm rolling statistics
        from .bench_compare import compare
        result["vs"] = compare(vs, cfg, weights, x, net, sync, warmup, runs)
    if layers:
        result["layers"] = _per_layer(net, x_device, sync, warmup, runs, train)
        _roofline(result["layers"], result["ceilings"])
    if train:
        truth = bench_truth(net, batch)
        net.options.learning_rate = 0.0   # time the work, keep the weights
        step = _median_seconds(lambda: net.train_step(x, truth), sync, warmup, runs)
        result["train_seconds"] = step
        result["train_images_per_second"] = batch / step
        if layers:
            _per_layer_backward(net, x, truth, result["layers"], sync, runs)
        if vs and "torch" in vs.split(",") and processes:
            from .bench_processes import compare_processes
            result["vs_train"] = compare_processes("torch", cfg, weights, batch, device,
                                                   exact, warmup, runs, train=True)
        elif vs and "torch" in vs.split(","):
            from .bench_compare import compare_torch_train

            def ours():
                net.train_step(x, truth)
                sync()
            result["vs_train"] = {"torch": compare_torch_train(x, net, ours, warmup, runs)}
    result["peak_host_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if ops.peak_device_bytes() is not None:
        result["peak_device_mb"] = ops.peak_device_bytes() / 2**20
    report(result, out)
    return result


def sweep(cfg, batches, device="cpu", train=False, runs=10, weights=None, exact=False,
          plot=None, out=sys.stdout):
    """bench at each batch size; images/s for inference (and training) per batch, and with
    plot a PNG of throughput against batch size."""
    results = [bench(cfg, batch, device, train, runs=runs, weights=weights, exact=exact,
                     out=out) for batch in batches]
    print("batch  inference img/s" + ("  training img/s" if train else ""), file=out)
    for result in results:
        line = f"{result['batch']:5d}  {result['images_per_second']:16.2f}"
        if train:
            line += f"  {result['train_images_per_second']:14.2f}"
        print(line, file=out)
    if plot:
        from .plot import line_chart
        series = {"inference": [(r["batch"], r["images_per_second"]) for r in results]}
        if train:
            series["training"] = [(r["batch"], r["train_images_per_second"]) for r in results]
        first = results[0]
        line_chart(plot, series, f"{cfg} at {first['width']}x{first['height']}, "
                   f"{first['backend']} ({first['device']})", "batch size", "images/s")
        print(f"plot written to {plot}", file=out)
    return {"cfg": cfg, "runs": results}


def _per_layer(net, x, sync, warmup, runs, train):
    """Each layer's forward (and backward) time on its real input, with its FLOP rate and
    the bytes it must move, and its share of the whole."""
    inputs, value = [], x
    step = net.step()
    for layer in net.layers:
        inputs.append(value)
        value = layer.forward(value, step)
    rows = []
    batch = x.shape[0]
    for layer, layer_input in zip(net.layers, inputs):
        seconds = _median_seconds(lambda: layer.forward(layer_input, step), sync, 1, runs)
        row = {"index": layer.index, "type": layer.type, "forward_seconds": seconds,
               "gflops": layer.bflops() * batch / seconds if layer.bflops() else 0.0,
               "bytes": _layer_bytes(layer, batch)}
        row["gbs"] = row["bytes"] / seconds / 1e9
        rows.append(row)
    total = sum(row["forward_seconds"] for row in rows)
    for row in rows:
        row["share"] = row["forward_seconds"] / total
    return rows


def _per_layer_backward(net, x, truth, rows, sync, runs):
    """Each layer's backward time, measured inside one real training step: the step runs
    each layer's backward through timed_backward, which times it on the delta it really
    gets, restoring the delta (which a backward may replace) before every call and the
    previous layer's delta (which it accumulates into) afterwards, then runs the layer once
    more for real."""
    def timed_backward(layer, step, input_delta):
        delta = layer.delta
        before = None if input_delta is None else input_delta.copy()

        def call():
            layer.delta = None if delta is None else delta.copy()
            layer.backward(step, input_delta)
        rows[layer.index]["backward_seconds"] = _median_seconds(call, sync, 1, runs)
        if input_delta is not None:
            input_delta[...] = before
        layer.delta = delta
        layer.backward(step, input_delta)

    net.train_step(x, truth, run_backward=timed_backward)


def _roofline(rows, ceilings):
    """Each layer's distance to the roofline: the time its FLOPs would take at the GEMM
    ceiling or its bytes at the copy ceiling, whichever is longer, over its measured time."""
    for row in rows:
        flops_seconds = row["gflops"] * row["forward_seconds"] / ceilings["gemm_gflops"]
        bytes_seconds = row["bytes"] / 1e9 / ceilings["copy_gbs"]
        row["roofline_fraction"] = max(flops_seconds, bytes_seconds) / row["forward_seconds"]


def report(result, out):
    ceilings = result["ceilings"]
    print(f"{result['cfg']}: {result['width']}x{result['height']}, batch {result['batch']}, "
          f"{result['backend']} ({result['device']}), {result['bflops_per_image']:.3f} BFLOPs "
          "per image", file=out)
    print(f"machine: GEMM {ceilings['gemm_gflops']:.1f} GFLOP/s, copy "
          f"{ceilings['copy_gbs']:.1f} GB/s; GEMMs by {result.get('gemm_library', '?')}",
          file=out)
    if "first_forward_seconds" in result:
        print(f"first forward (once per process): {result['first_forward_seconds'] * 1e3:.0f}"
              " ms", file=out)
    print(f"inference: {result['forward_seconds'] * 1e3:.2f} ms per batch, "
          f"{result['images_per_second']:.2f} images/s, {result['gflops']:.1f} GFLOP/s "
          f"({100 * result['gflops'] / ceilings['gemm_gflops']:.0f}% of the GEMM ceiling)",
          file=out)
    if "train_seconds" in result:
        print(f"training: {result['train_seconds'] * 1e3:.2f} ms per batch, "
              f"{result['train_images_per_second']:.2f} images/s", file=out)
    for row in result.get("layers", []):
        print(f"  {row['index']:3d} {row['type']:14s} {row['forward_seconds'] * 1e3:9.3f} ms "
              f"{row['gflops']:8.1f} GFLOP/s {row['gbs']:7.2f} GB/s {100 * row['share']:5.1f}%"
              f" of the total, {100 * row['roofline_fraction']:5.1f}% of the roofline"
              + (f"; backward {row['backward_seconds'] * 1e3:9.3f} ms"
                 if "backward_seconds" in row else ""), file=out)
    print(f"peak host memory: {result['peak_host_mb']:.0f} MB", file=out)
    if "peak_device_mb" in result:
        print(f"peak device memory: {result['peak_device_mb']:.0f} MB", file=out)
    for name, other in result.get("vs", {}).items():
        how = "each in its own process" if other.get("processes") else "in this process"
        print(f"vs {name} (timed alternately with darknet_py, {how}): {name} "
              f"{other['seconds'] * 1e3:.2f} ms, darknet_py {other['ours_seconds'] * 1e3:.2f} "
              f"ms per batch; darknet_py/{name} = {other['ours_seconds'] / other['seconds']:.2f}"
              f"; max |diff| of outputs {other['max_abs_diff']:.3g} (relative "
              f"{other['rel_l2']:.3g})", file=out)
    for name, other in result.get("vs_train", {}).items():
        how = "each in its own process" if other.get("processes") else "in this process"
        print(f"training vs {name} (timed alternately, {how}): {name} "
              f"{other['seconds'] * 1e3:.2f} "
              f"ms, darknet_py {other['ours_seconds'] * 1e3:.2f} ms per step; darknet_py/"
              f"{name} = {other['ours_seconds'] / other['seconds']:.2f}", file=out)
        if other.get("processes"):
            print(f"peak memory of each engine's process during its steps (RSS): {name} "
                  f"{other['peak_mb']:.0f} MB, darknet_py {other['ours_peak_mb']:.0f} MB "
                  f"(the {name} worker also holds our network, which built its model)",
                  file=out)
        elif "peak_mb" in other:
            print(f"peak memory during a step (RSS): {name} {other['peak_mb']:.0f} MB, "
                  f"darknet_py {other['ours_peak_mb']:.0f} MB (both include the "
                  f"{other['baseline_mb']:.0f} MB the process held before)", file=out)


def main_json(result, path):
    with open(path, "w") as handle:
        json.dump(result, handle, indent=1)
