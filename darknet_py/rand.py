"""glibc's rand() and darknet's rand_normal/rand_uniform, bit for bit.

Darknet initialises weights with `rand()` from glibc (`random_r`'s TYPE_3 additive feedback
generator). A network whose weights file covers only its first layers (a partial file) keeps
darknet's random init in the rest, so reproducing darknet's outputs there needs the same
stream of numbers. The generator is

    r[i] = r[i-3] + r[i-31]  (mod 2**32),   rand() = r[i] >> 1

seeded by a Lehmer generator and warmed up by 310 discarded draws. Drawing one number at a
time in Python is slow (millions of weights), so blocks of outputs are computed at once: every
r[n+k] is a fixed linear combination of the 31 values before r[n], with coefficients that
depend only on k; a block is one small integer matrix product (numpy's uint64 products wrap
modulo 2**64, and 2**32 divides that, so the low 32 bits stay exact).
"""
import numpy as np

RAND_MAX = 2147483647
_LAG = 31
_BLOCK = 2048
# darknet: #define TWO_PI 6.2831853071795864769252866f (a float literal).
_TWO_PI = float(np.float32(6.2831853071795864769252866))


def _block_coefficients(block):
    """C[k, j] such that r[n+k] = sum_j C[k, j] * r[n-31+j] (mod 2**32)."""
    coeffs = np.zeros((_LAG + block, _LAG), dtype=np.uint64)
    coeffs[:_LAG] = np.eye(_LAG, dtype=np.uint64)
    for k in range(_LAG, _LAG + block):
        coeffs[k] = (coeffs[k - 3] + coeffs[k - _LAG]) & 0xFFFFFFFF
    return coeffs[_LAG:]


_COEFFS = _block_coefficients(_BLOCK)


def _mulmod(a, b):
    """Matrix product modulo 2**32 (uint64 products wrap modulo 2**64, a multiple of it)."""
    return (a @ b) & 0xFFFFFFFF


def _step_matrix():
    """T with state' = T @ state for one draw: the 31-value window shifts by one and gains
    r[i] = r[i-31] + r[i-3] (window positions 0 and 28)."""
    step = np.zeros((_LAG, _LAG), dtype=np.uint64)
    step[np.arange(_LAG - 1), np.arange(1, _LAG)] = 1
    step[_LAG - 1, 0] = step[_LAG - 1, _LAG - 3] = 1
    return step


_STEP = _step_matrix()


class GlibcRandom:
    """The state of glibc's rand() after srand(seed), plus darknet's rand_normal spare."""

    def __init__(self, seed=1):
        self.seed(seed)

    def seed(self, seed):
        seed &= 0xFFFFFFFF
        if seed == 0:
            seed = 1
        r = [0] * 34
        r[0] = seed
        for i in range(1, 31):
            # glibc computes 16807 * r mod (2**31 - 1) with Schrage's method on signed ints.
            hi, lo = divmod(r[i - 1] if r[i - 1] < 2**31 else r[i - 1] - 2**32, 127773)
            word = 16807 * lo - 2836 * hi
            if word < 0:
                word += 2147483647
            r[i] = word & 0xFFFFFFFF
        for i in range(31, 34):
            r[i] = r[i - 31]
        self._state = np.array(r[-_LAG:], dtype=np.uint64)
        self._spare = None
        self._raw(310)  # srandom_r discards 10 * 31 outputs

    def _raw(self, count):
        """The next `count` 32-bit words of the additive generator."""
        out = np.empty(count, dtype=np.uint64)
        done = 0
        while done < count:
            take = min(_BLOCK, count - done)
            block = (_COEFFS[:take] @ self._state) & 0xFFFFFFFF
            out[done:done + take] = block
            if take >= _LAG:
                self._state = block[-_LAG:].copy()
            else:
                self._state = np.concatenate([self._state[take:], block])
            done += take
        return out

    def skip(self, count):
        """Advance by `count` draws without producing them: T**count by repeated squaring,
        so jumping over the millions of draws of a loaded layer costs microseconds."""
        jump = np.eye(_LAG, dtype=np.uint64)
        power = _STEP
        while count:
            if count & 1:
                jump = _mulmod(power, jump)
            power = _mulmod(power, power)
            count >>= 1
        self._state = _mulmod(jump, self._state)

    def skip_normal(self, count):
        """Advance as `count` rand_normal() calls would, spare included."""
        if count and self._spare is not None:
            self._spare = None
            count -= 1
        if count % 2:
            self.skip(count - 1)
            self.normal(1)   # the last pair for real: its sin() is the spare the next call uses
        else:
            self.skip(count)

    def skip_uniform(self, count):
        self.skip(count)

    def rand(self, count=None):
        """glibc rand(): one int, or an int64 array of `count` draws."""
        values = (self._raw(1 if count is None else count) >> np.uint64(1)).astype(np.int64)
        return int(values[0]) if count is None else values

    def normal(self, count):
        """`count` draws of darknet's rand_normal() (Box-Muller, cos then the spare sin)."""
        out = np.empty(count, dtype=np.float32)
        pos = 0
        if count and self._spare is not None:
            out[0] = self._spare
            self._spare = None
            pos = 1
        pairs = (count - pos + 1) // 2
        if pairs:
            draws = self.rand(2 * pairs).astype(np.float64)
            u1 = np.maximum(draws[0::2] / RAND_MAX, 1e-100)
            radius = np.sqrt(-2 * np.log(u1))
            angle = (draws[1::2] / RAND_MAX) * _TWO_PI
            values = np.empty(2 * pairs, dtype=np.float32)
            values[0::2] = radius * np.cos(angle)
            values[1::2] = radius * np.sin(angle)
            n_used = count - pos
            out[pos:] = values[:n_used]
            if n_used < 2 * pairs:
                self._spare = values[-1]
        return out

    def uniform(self, count, low, high):
        """`count` draws of darknet's rand_uniform(low, high), in float as darknet computes it."""
        if high < low:
            low, high = high, low
        draws = self.rand(count).astype(np.float32)
        span = np.float32(high - low)
        return (draws / np.float32(RAND_MAX)) * span + np.float32(low)
