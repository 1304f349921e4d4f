"""Acceptance 2 of the training issue: each learning-rate policy's curve against darknet's
formulas (network.c get_current_rate), burn_in included. batch_num = seen/(batch*subdivs)."""
import math

import numpy as np
import pytest

from darknet_py.network import NetOptions
from darknet_py.policy import learning_rate


def options(**kwargs):
    base = dict(batch=4, subdivisions=2, learning_rate=0.01, power=4.0, burn_in=0,
                max_batches=1000)
    base.update(kwargs)
    return NetOptions(**base)


def rate_at(opts, batch_num):
    return float(learning_rate(opts, batch_num * opts.batch * opts.subdivisions))


BATCHES = [0, 1, 7, 99, 100, 101, 250, 999]


@pytest.mark.parametrize("batch_num", BATCHES)
def test_constant_step_exp_poly(batch_num):
    assert rate_at(options(policy="constant"), batch_num) == pytest.approx(0.01, rel=1e-6)
    step = options(policy="step", step=100, scale=0.5)
    assert rate_at(step, batch_num) == pytest.approx(0.01 * 0.5 ** (batch_num // 100), rel=1e-6)
    exp = options(policy="exp", gamma=0.999)
    gamma = float(np.float32(0.999))   # darknet holds gamma in a float
    assert rate_at(exp, batch_num) == pytest.approx(0.01 * gamma ** batch_num, rel=1e-6)
    poly = options(policy="poly", power=4)
    assert rate_at(poly, batch_num) == pytest.approx(0.01 * (1 - batch_num / 1000) ** 4,
                                                     rel=1e-5, abs=1e-12)


@pytest.mark.parametrize("batch_num,expected", [(0, 0.01), (99, 0.01), (100, 0.001),
                                                (249, 0.001), (250, 0.0001), (999, 0.0001)])
def test_steps(batch_num, expected):
    opts = options(policy="steps", steps=[100, 250], scales=[0.1, 0.1])
    assert rate_at(opts, batch_num) == pytest.approx(expected, rel=1e-6)


def test_negative_steps_never_fire_like_darknet(capsys, monkeypatch):
    """yolov2-tiny-voc.cfg: steps=-1,100,20000,30000 scales=.1,10,.1,.1 trains at the base
    rate: darknet compares int steps with a size_t batch number, so -1 is huge."""
    monkeypatch.setattr("darknet_py.log._said", set())   # other tests may have warned
    opts = options(policy="steps", steps=[-1, 100, 20000, 30000], scales=[.1, 10, .1, .1])
    for batch_num in (0, 150, 25000, 40000):
        assert rate_at(opts, batch_num) == pytest.approx(0.01, rel=1e-6)
    assert capsys.readouterr().err.count("never fires") == 1   # warned once


@pytest.mark.parametrize("batch_num", [100, 150, 400])
def test_sigmoid_after_step(batch_num):
    opts = options(policy="sigmoid", gamma=0.05, step=200)
    expected = 0.01 / (1 + math.exp(0.05 * (batch_num - 200)))
    if batch_num < 200:
        expected = 0.0   # darknet's size_t arithmetic wraps: exp() overflows before `step`
    assert rate_at(opts, batch_num) == pytest.approx(expected, rel=1e-5, abs=1e-12)


@pytest.mark.parametrize("batch_num", [0, 1, 50, 99])
def test_burn_in_raises_the_rate_with_power(batch_num):
    opts = options(policy="steps", steps=[400], scales=[0.1], burn_in=100, power=4)
    expected = 0.01 * (batch_num / 100) ** 4
    assert rate_at(opts, batch_num) == pytest.approx(expected, rel=1e-5, abs=1e-15)
    assert rate_at(opts, 100) == pytest.approx(0.01, rel=1e-6)   # burn-in over
    assert rate_at(opts, 400) == pytest.approx(0.001, rel=1e-6)


def test_random_policy_stays_in_range():
    opts = options(policy="random", power=1)
    rng = np.random.default_rng(3)
    rates = [float(learning_rate(opts, 8 * i, rng)) for i in range(200)]
    assert 0 <= min(rates) and max(rates) <= 0.01 and len(set(rates)) > 100


def test_rate_uses_batch_times_subdivisions():
    opts = options(policy="step", step=10, scale=0.1)
    # 10 batches of 4*2 = 80 images: the first step
    assert float(learning_rate(opts, 79)) == pytest.approx(0.01, rel=1e-6)
    assert float(learning_rate(opts, 80)) == pytest.approx(0.001, rel=1e-6)
