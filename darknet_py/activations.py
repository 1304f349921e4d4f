"""Darknet's activation functions (activations.c) and their gradients, on NumPy arrays.

Darknet evaluates several of them in double (`.1*x`, `exp`) and stores float; we do the same
where it changes the last bit. Gradients take the layer's *output*, as darknet's
`gradient_array(l.output, ...)` does.
"""
import numpy as np

F32 = np.float32
F64 = np.float64


def _where(cond, a, b):
    return np.where(cond, a, b).astype(F32, copy=False)


def _logistic(x):
    return (1.0 / (1.0 + np.exp(-x.astype(F64)))).astype(F32)


def _stair(x):
    x64 = x.astype(F64)
    n = np.floor(x64)
    half = np.floor(x64 / 2.0)
    return _where(np.mod(n, 2) == 0, half, (x64 - n) + half)


def _tanh(x):
    e = np.exp(2 * x.astype(F64))
    with np.errstate(invalid="ignore"):
        out = (e - 1) / (e + 1)
    return np.where(np.isinf(e), 1.0, out).astype(F32)


ACTIVATE = {
    "linear": lambda x: x,
    "logistic": _logistic,
    "loggy": lambda x: (2.0 / (1.0 + np.exp(-x.astype(F64))) - 1).astype(F32),
    "relu": lambda x: x * (x > 0),
    "elu": lambda x: _where(x >= 0, x, (np.exp(x.astype(F64)) - 1)),
    "selu": lambda x: _where(x >= 0, 1.0507 * x.astype(F64),
                             1.0507 * 1.6732 * (np.exp(x.astype(F64)) - 1)),
    "relie": lambda x: _where(x > 0, x, 0.01 * x.astype(F64)),
    "ramp": lambda x: (x * (x > 0) + 0.1 * x.astype(F64)).astype(F32),
    "leaky": lambda x: _where(x > 0, x, 0.1 * x.astype(F64)),
    "tanh": _tanh,
    "plse": lambda x: _where(x < -4, 0.01 * (x.astype(F64) + 4),
                             np.where(x > 4, 0.01 * (x.astype(F64) - 4) + 1,
                                      0.125 * x.astype(F64) + 0.5)),
    "stair": _stair,
    "hardtan": lambda x: np.clip(x, -1, 1).astype(F32),
    "lhtan": lambda x: _where(x < 0, 0.001 * x.astype(F64),
                              np.where(x > 1, 0.001 * (x.astype(F64) - 1) + 1, x)),
}

# d(activation)/dx written in terms of the output y, as darknet does.
GRADIENT = {
    "linear": lambda y: np.ones_like(y),
    "logistic": lambda y: (1 - y) * y,
    "loggy": lambda y: (2 * (1 - (y + F32(1)) / F32(2)) * ((y + F32(1)) / F32(2))).astype(F32),
    "relu": lambda y: (y > 0).astype(F32),
    "elu": lambda y: _where(y >= 0, 1.0, y + F32(1)),
    "selu": lambda y: _where(y >= 0, 1.0507, y.astype(F64) + 1.0507 * 1.6732),
    "relie": lambda y: _where(y > 0, 1.0, 0.01),
    "ramp": lambda y: ((y > 0) + 0.1).astype(F32),
    "leaky": lambda y: np.where(y > 0, F32(1), F32(0.1)),   # float .1, as darknet returns
    "tanh": lambda y: 1 - y * y,
    "plse": lambda y: _where((y < 0) | (y > 1), 0.01, 0.125),
    "stair": lambda y: _where(np.floor(y) == y, 0.0, 1.0),
    "hardtan": lambda y: ((y > -1) & (y < 1)).astype(F32),
    "lhtan": lambda y: _where((y > 0) & (y < 1), 1.0, 0.001),
}

NAMES = tuple(ACTIVATE)
