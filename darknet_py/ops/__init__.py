"""Backends behind one narrow interface: layers call `net.ops.<name>` and never branch on
the device. `numpy_ops` is the reference; a CuPy backend provides the same names."""
from ..errors import DarknetError
from . import numpy_ops


def get_ops(device=None):
    """The ops module for a device: None or 'cpu' gives NumPy."""
    if device in (None, "cpu", -1):
        return numpy_ops
    raise DarknetError(f"device {device!r}: the GPU backend is not available in this build; "
                       "use the CPU (-nogpu)")
