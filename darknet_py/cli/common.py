"""Pieces shared by the detector and classifier commands."""
import os
import time

from ..config import read_data_cfg, read_list
from ..errors import DarknetError
from ..network import load_network


def data_option(options, key, default, data_path):
    value = options.get(key, default)
    if value is None:
        raise DarknetError(f"{data_path}: no '{key} =' line")
    return value


def read_names(data_path, default="data/names.list"):
    """The class names a .data file points at (paths relative to the working directory)."""
    options = read_data_cfg(data_path)
    names_path = options.get("names", default)
    if not os.path.exists(names_path):
        raise DarknetError(f"{data_path}: names = {names_path}: file not found (paths in .data "
                           f"files are relative to the working directory, {os.getcwd()})")
    return options, read_list(names_path, "names list")


def load_for_inference(cfg, weights, device, exact=False):
    return load_network(cfg, weights, batch=1, device=device, verbose=True, exact=exact)


def image_paths(filename):
    """The image to run, or, as darknet does without one, paths typed at a prompt."""
    if filename:
        yield filename
        return
    while True:
        try:
            line = input("Enter Image Path: ")
        except EOFError:
            return
        if line.strip():
            yield line.strip()


class Timer:
    def __enter__(self):
        self.start = time.time()
        return self

    def __exit__(self, *exc):
        self.seconds = time.time() - self.start


def train_command(argv, usage, train_function):
    """`detector train` and `classifier train`: the same options, darknet's spelling."""
    from . import Args, device_from
    args = Args(argv)
    clear = args.flag("-clear")
    seed = args.integer("-seed")
    workers = args.integer("-workers", default=2)
    max_batches = args.integer("-max_batches")
    device = device_from(args)
    _, data, cfg, weights = args.positional(4, usage)
    if cfg is None:
        raise SystemExit(f"usage: {usage}")
    try:
        train_function(data, cfg, weights, clear, seed, workers, device, max_batches)
    except KeyboardInterrupt:   # the trainer has saved the backup already
        return 130
