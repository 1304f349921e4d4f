"""glibc rand() and darknet's rand_normal/rand_uniform, which the partial-weights oracle
cases depend on (layers past the file keep darknet's random init)."""
import ctypes
import ctypes.util

import numpy as np
import pytest

from darknet_py.rand import GlibcRandom


def test_known_glibc_values():
    # glibc: srand(1) (the default seed) then rand(), rand(), rand()
    assert list(GlibcRandom(1).rand(3)) == [1804289383, 846930886, 1681692777]


def test_matches_this_machines_glibc():
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "gnu_get_libc_version"):
        pytest.skip("no glibc on this machine to compare with")
    libc.srand(1234)
    expected = [libc.rand() for _ in range(10000)]
    assert list(GlibcRandom(1234).rand(10000)) == expected


def test_block_and_single_draws_agree():
    one_by_one = GlibcRandom(7)
    singles = [one_by_one.rand() for _ in range(5000)]
    assert list(GlibcRandom(7).rand(5000)) == singles


def test_rand_normal_pairs_cos_then_sin():
    rng = GlibcRandom(1)
    u1, u2 = 1804289383 / 2147483647, 846930886 / 2147483647
    two_pi = float(np.float32(6.2831853071795864769252866))
    radius = np.sqrt(-2 * np.log(u1))
    assert list(rng.normal(2)) == [np.float32(radius * np.cos(u2 * two_pi)),
                                   np.float32(radius * np.sin(u2 * two_pi))]


def test_skipping_lands_where_drawing_does():
    drawn, skipped = GlibcRandom(1234), GlibcRandom(1234)
    drawn.normal(1001)
    skipped.skip_normal(1001)        # odd: the spare must survive the skip
    np.testing.assert_array_equal(drawn.normal(5), skipped.normal(5))
    drawn.uniform(7, -1, 1)
    skipped.skip_uniform(7)
    np.testing.assert_array_equal(drawn.normal(3), skipped.normal(3))


def test_rand_uniform_in_float():
    rng = GlibcRandom(1)
    value = rng.uniform(1, -1, 1)[0]
    expected = np.float32(1804289383) / np.float32(2147483647) * np.float32(2) + np.float32(-1)
    assert value == expected
