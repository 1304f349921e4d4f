"""What every bench run times, in any process: the network with random weights from a
seed, its input and a training truth. bench and bench_processes' workers build them
the same way, so that engines in separate processes run identical weights and inputs."""
import numpy as np

from .layers.params import init_numpy_random
from .network import parse_network_cfg


def random_network(cfg, batch=1, device="cpu", seed=0, exact=False):
    """The network of `cfg` with random weights for timing: darknet's distributions drawn
    by NumPy (layers.params.init_numpy_random; darknet's own glibc stream in Python takes
    a minute for yolov2's 50M weights), on `device`.

    darknet's initial rolling variance of 0 would make every inference batch norm divide
    by 1e-6 and the activations overflow to inf/NaN by the tenth layer, which slows some
    engines (denormals, NaN paths) and makes outputs incomparable; benchmarks use variance
    1 (mean 0, scales 1) instead."""
    net = parse_network_cfg(cfg, batch=batch, device=device, exact=exact)
    init_numpy_random(net.layers, np.random.default_rng(seed))
    for layer in net.layers:
        if getattr(layer, "rolling_variance", None) is not None:
            layer.rolling_variance[...] = 1
    net.loaded_layers = len(net.layers)   # nothing left for darknet's random init
    net.ensure_initialized()
    return net


def bench_input(net, batch):
    """The input every bench run times (and every engine compared with it gets)."""
    rng = np.random.default_rng(0)
    return rng.random((batch, net.channels, net.height, net.width), dtype=np.float32)


def bench_truth(net, batch):
    """The truth of a timed training step: one box per image (a region net), else class 0."""
    truth = np.zeros((batch, _truth_size(net)), dtype=np.float32)
    if net.layers[-1].type == "region":
        truth[:, :5] = [0.5, 0.5, 0.2, 0.3, 0]
    else:
        truth[:, 0] = 1
    return truth


def _truth_size(net):
    last = net.layers[-1]
    return 30 * (last.coords + 1) if last.type == "region" else net.output_layer().outputs
