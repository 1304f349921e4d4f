"""Learning-rate policies: darknet's get_current_rate (network.c), float for float.

batch_num = seen / (batch * subdivisions), evaluated after `seen += batch`. For the first
`burn_in` batches the rate is lr * (batch_num/burn_in)^power (power defaults to 4).
"""
import warnings

import numpy as np

from .log import warn_once as _warn_once

F32 = np.float32
F64 = np.float64


def current_batch(options, seen):
    return seen // (options.batch * options.subdivisions)


def learning_rate(options, seen, rng=None):
    """The learning rate darknet uses after `seen` images (returns a float32)."""
    batch_num = current_batch(options, seen)
    lr = F32(options.learning_rate)
    power = F32(options.power)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # overflow to inf, as C does
        if batch_num < options.burn_in:
            return F32(lr * np.power(F64(F32(batch_num) / F32(options.burn_in)), F64(power)))
        policy = options.policy
        if policy == "constant":
            return lr
        if policy == "step":
            return F32(lr * np.power(F64(F32(options.scale)), F64(batch_num // options.step)))
        if policy == "steps":
            rate = lr
            for step, scale in zip(options.steps, options.scales):
                # darknet compares int steps[i] > size_t batch_num: a negative step
                # converts to a huge unsigned value, so it (and every later one) never fires
                if step < 0:
                    _warn_once(("steps", step), f"steps={step} never fires in darknet "
                               "(unsigned comparison); following darknet")
                    return rate
                if step > batch_num:
                    return rate
                rate = F32(rate * F32(scale))
            return rate
        if policy == "exp":
            return F32(lr * np.power(F64(F32(options.gamma)), F64(batch_num)))
        if policy == "poly":
            base = F32(1) - F32(batch_num) / F32(options.max_batches)
            return F32(lr * np.power(F64(base), F64(power)))
        if policy == "random":
            draw = F32((rng or np.random.default_rng()).random())
            return F32(lr * np.power(F64(draw), F64(power)))
        if policy == "sigmoid":
            # darknet: gamma * (batch_num - step) with size_t batch_num: before `step` the
            # difference wraps to ~1.8e19, exp() overflows and the rate is 0
            if batch_num < options.step:
                _warn_once("sigmoid", "policy=sigmoid gives a learning rate of 0 before "
                           "`step` in darknet (unsigned arithmetic); following darknet")
            difference = F32((batch_num - options.step) % 2**64)
            return F32(lr * (1.0 / (1.0 + np.exp(F64(F32(F32(options.gamma) * difference))))))
    raise ValueError(f"unknown policy {policy}")


