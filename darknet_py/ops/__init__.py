"""Backends behind one narrow interface: layers call `net.ops.<name>` and never branch on
the device. `numpy_ops` is the reference; a CuPy backend provides the same names."""
import sys

from . import numpy_ops


def gpu_available():
    return False


def get_ops(device=None):
    """The ops module for a device: 'cpu' gives NumPy; a GPU index asks for the GPU.

    Like a darknet built without GPU=1, a GPU request on a machine without one runs on the
    CPU (with a warning instead of darknet's silence).
    """
    if device in (None, "cpu", -1):
        return numpy_ops
    if not gpu_available():
        print(f"darknet_py: no GPU backend available for device {device!r}; using the CPU",
              file=sys.stderr)
    return numpy_ops
