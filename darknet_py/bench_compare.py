"""`bench --vs opencv|torch|onnxruntime`: the same cfg, weights and input through another
engine, timed alternately with ours.

OpenCV's darknet importer (opencv-python-headless < 5) reads the cfg and weights itself.
For PyTorch the network is rebuilt from our layer graph with torch ops (cuDNN on a GPU,
TF32 off), so both run the same weights. For onnxruntime our network is exported in memory
(export_onnx: batch norm folded, darknet's maxpool and reorg) and run with graph
optimisations on, one intra-op thread per core. Outputs are compared at the last layer
before the region/softmax head, the last tensor all engines compute the same way.
"""
import os
import tempfile
import time

import numpy as np

# OpenBLAS's (and onnxruntime's) idle worker threads spin for about 0.1 s after each
# parallel region before they sleep: an engine timed right after another one shares the
# cores with those spinning threads and pays for the other's work. Every timed run starts
# after this pause (outside the timed interval), so each engine starts with idle cores.
PAUSE_SECONDS = 0.3


def _compared_layer(net):
    """Index of the layer whose output is compared: the one feeding a region layer, else
    the network output."""
    last = net.output_layer()
    return last.index - 1 if last.type == "region" else last.index


def _diff(ours, theirs):
    ours = np.asarray(ours, np.float64).reshape(-1)
    theirs = np.asarray(theirs, np.float64).reshape(-1)
    return {"max_abs_diff": float(np.abs(ours - theirs).max()),
            "rel_l2": float(np.linalg.norm(ours - theirs) / max(np.linalg.norm(ours), 1e-30))}


def _alternating(ours, theirs, warmup, runs):
    """Median seconds of ours() and theirs(), timed one after the other `runs` times.
    Alternating puts both engines under the same machine conditions: on a shared machine
    the speed drifts by tens of percent over a minute, which would bias back-to-back series.
    Each callable synchronises its own device before returning. Each timed run waits
    PAUSE_SECONDS first, for the previous run's spinning BLAS threads to go idle."""
    for _ in range(warmup):
        ours()
        theirs()
    times = {"ours": [], "theirs": []}
    for _ in range(runs):
        for name, function in (("ours", ours), ("theirs", theirs)):
            time.sleep(PAUSE_SECONDS)
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return float(np.median(times["ours"])), float(np.median(times["theirs"]))


def opencv_runner(cfg, weights, x, net):
    """run() of OpenCV's darknet importer on the same cfg and weights, returning the
    compared layer's output."""
    try:
        import cv2
    except ImportError:
        raise RuntimeError("--vs opencv needs opencv-python-headless<5 (OpenCV 5 dropped the "
                           "darknet importer): pip install 'opencv-python-headless<5'") from None
    with tempfile.TemporaryDirectory() as tmp:
        if weights is None:   # the random weights we run, written for OpenCV to read
            weights = os.path.join(tmp, "net.weights")
            net.save_weights(weights)
        other = cv2.dnn.readNetFromDarknet(cfg, weights)
    index = _compared_layer(net)
    layer = net.layers[index]
    name = {"convolutional": "conv", "maxpool": "pool", "avgpool": "avg", "softmax": "softmax",
            "connected": "fc"}.get(layer.type, layer.type) + f"_{index}"
    names = set(other.getLayerNames())
    if layer.type == "convolutional" and layer.activation == "leaky":
        name = f"leaky_{index}"
    if name not in names:
        raise RuntimeError(f"OpenCV has no layer {name} to compare with")

    def run():
        other.setInput(x)
        return other.forward(name)
    return run, {}


def our_output(net, x):
    """Our forward of x, at the compared layer, on the host."""
    net.forward(net.ops.to_device(x))
    return net.ops.to_host(net.layers[_compared_layer(net)].output)


def compare_opencv(cfg, weights, x, net, ours, warmup, runs):
    run, extra = opencv_runner(cfg, weights, x, net)
    our_seconds, seconds = _alternating(ours, run, warmup, runs)
    return {"seconds": seconds, "ours_seconds": our_seconds, **extra,
            **_diff(our_output(net, x), run())}


def _torch_model(x, net, train):
    """torch, the device (the GPU when ours runs on one), our network rebuilt in torch up
    to the compared layer, and the input there. float32 throughout: TF32 off."""
    import torch
    from .torch_net import TorchNet
    device = "cuda" if net.ops.name != "numpy" and torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = TorchNet(net, _compared_layer(net), train=train).to(device)
    return torch, device, model, torch.from_numpy(x).to(device)


def torch_runner(x, net):
    """run() of our network rebuilt in PyTorch (inference), returning the compared
    layer's output as a NumPy array."""
    torch, device, model, tensor = _torch_model(x, net, train=False)
    model.eval()

    def run():
        with torch.no_grad():
            result = model(tensor)
        if device == "cuda":
            torch.cuda.synchronize()
        return result.cpu().numpy()
    return run, {"device": device}


def compare_torch(x, net, ours, warmup, runs):
    run, extra = torch_runner(x, net)
    our_seconds, seconds = _alternating(ours, run, warmup, runs)
    return {"seconds": seconds, "ours_seconds": our_seconds, **extra,
            **_diff(our_output(net, x), run())}


def torch_train_runner(x, net):
    """step() of a PyTorch training step of our network (see compare_torch_train)."""
    from .settings import thread_count
    torch, device, model, tensor = _torch_model(x, net, train=True)
    torch.set_num_threads(thread_count())
    learned = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(learned, lr=0.0, momentum=0.9, weight_decay=5e-4)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = model(tensor).square().mean()
        loss.backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
    return step, {"device": device, "threads": thread_count()}


def compare_torch_train(x, net, ours, warmup, runs):
    """Our train_step against a PyTorch training step of the same network up to the
    region layer: conv, BatchNorm2d in training mode (batch statistics, rolling averages
    updated), bias, leaky, the mean square of the output as the loss (a stand-in for
    darknet's region loss, which costs little next to the convolutions), backward, an SGD
    step with momentum and weight decay at learning rate 0 (as bench keeps ours). Timed
    alternately; float32, TF32 off, as many intra-op threads as ours (settings.thread_count).

    Also each engine's peak resident memory during its steps (Linux: the process's
    high-water mark, reset before each step; both include what the process already holds,
    `baseline_mb`, e.g. both networks' weights)."""
    step, extra = torch_train_runner(x, net)
    peaks = {}
    baseline = _resident_bytes("VmRSS")
    our_seconds, seconds = _alternating(_peak_tracked(ours, peaks, "ours"),
                                        _peak_tracked(step, peaks, "theirs"), warmup, runs)
    result = {"seconds": seconds, "ours_seconds": our_seconds, **extra}
    if baseline is not None and peaks.get("ours") and peaks.get("theirs"):
        result.update(baseline_mb=baseline / 2**20, ours_peak_mb=peaks["ours"] / 2**20,
                      peak_mb=peaks["theirs"] / 2**20)
    return result


def _resident_bytes(field):
    """VmRSS (now) or VmHWM (the peak since the last reset) of this process, in bytes;
    None where /proc does not say (not Linux)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak_resident():
    """Start a new high-water mark at the current RSS (Linux >= 4.0: clear_refs 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def _peak_tracked(function, peaks, name):
    """function, recording in peaks[name] the highest RSS any of its calls reached."""
    def run():
        reset = _reset_peak_resident()
        function()
        peak = _resident_bytes("VmHWM") if reset else None
        if peak is not None:
            peaks[name] = max(peaks.get(name, 0), peak)
    return run


def _onnxruntime_session(net, batch):
    """An onnxruntime session of our network exported in memory (up to the compared
    layer: the raw output before a region layer), and the device it runs on."""
    try:
        import onnxruntime
    except ImportError:
        raise RuntimeError("--vs onnxruntime needs onnx and onnxruntime: pip install onnx "
                           "onnxruntime (or pip install -e '.[onnx]')") from None
    from .export_onnx import build_model
    from .settings import thread_count
    model = build_model(net, batch=batch, region=False)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = thread_count()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers, device = ["CPUExecutionProvider"], "cpu"
    if net.ops.name != "numpy" and \
            "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        providers, device = ["CUDAExecutionProvider", "CPUExecutionProvider"], "cuda"
    session = onnxruntime.InferenceSession(model.SerializeToString(), options,
                                           providers=providers)
    return session, device


def onnxruntime_runner(x, net):
    """run() of our network exported to ONNX and run by onnxruntime."""
    session, device = _onnxruntime_session(net, x.shape[0])
    feed = {session.get_inputs()[0].name: x}

    def run():
        return session.run(None, feed)[0]
    return run, {"device": device}


def compare_onnxruntime(x, net, ours, warmup, runs):
    run, extra = onnxruntime_runner(x, net)
    our_seconds, seconds = _alternating(ours, run, warmup, runs)
    return {"seconds": seconds, "ours_seconds": our_seconds, **extra,
            **_diff(our_output(net, x), run())}


def runner(name, cfg, weights, x, net):
    """(run, facts) for engine `name` on our network's cfg, weights and input x."""
    if name == "opencv":
        return opencv_runner(cfg, weights, x, net)
    if name == "torch":
        return torch_runner(x, net)
    if name == "onnxruntime":
        return onnxruntime_runner(x, net)
    raise RuntimeError(f"--vs {name}: expected one of {', '.join(ENGINES)}")


ENGINES = ("opencv", "torch", "onnxruntime")


def compare(names, cfg, weights, x, net, sync, warmup, runs):
    """Each named engine against our forward on the same input, timed alternately."""
    x_device = net.ops.to_device(x)

    def ours():
        net.forward(x_device)
        sync()
    results = {}
    for name in names.split(","):
        if name == "opencv":
            results[name] = compare_opencv(cfg, weights, x, net, ours, warmup, runs)
        elif name == "torch":
            results[name] = compare_torch(x, net, ours, warmup, runs)
        elif name == "onnxruntime":
            results[name] = compare_onnxruntime(x, net, ours, warmup, runs)
        else:
            raise RuntimeError(f"--vs {name}: expected one of {', '.join(ENGINES)}")
    return results
