"""Both backends implement ops.interface.Backend: every method, with the same parameters
(names, order, kinds) and defaults. Runs without a GPU (CuPy is not imported)."""
import inspect

import pytest

from darknet_py.ops import numpy_ops
from darknet_py.ops.cupy_ops import CupyOps
from darknet_py.ops.interface import Backend, backend_methods


def _parameters(function, drop_self):
    parameters = list(inspect.signature(function).parameters.values())
    if drop_self:
        parameters = parameters[1:]
    return [(p.name, p.kind, p.default) for p in parameters]


def test_the_interface_lists_the_primitives():
    methods = backend_methods()
    assert {"im2col", "matmul", "maxpool", "maxpool_backward", "region_activate",
            "sgd_step", "synchronize"} <= set(methods)
    assert len(methods) >= 30


@pytest.mark.parametrize("method", backend_methods())
def test_numpy_backend_matches_the_interface(method):
    assert _parameters(getattr(numpy_ops, method), False) == \
        _parameters(getattr(Backend, method), True)


@pytest.mark.parametrize("method", backend_methods())
def test_cupy_backend_matches_the_interface(method):
    assert _parameters(getattr(CupyOps, method), True) == \
        _parameters(getattr(Backend, method), True)


def test_backends_define_no_constants_of_their_own():
    """darknet's constants come from settings.py alone, so the backends cannot drift."""
    import darknet_py.ops.cupy_ops as cupy_module
    for module in (numpy_ops, cupy_module):
        source = inspect.getsource(module)
        for constant in ("BN_EPSILON =", "FLT_MAX =", "SECRET_NUM =", "F32(1e-5)"):
            assert constant not in source, (module.__name__, constant)
