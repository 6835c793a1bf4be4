"""Inverted dropout on the hidden layers' outputs, in training only.

A unit of hidden layer l is dropped (its output set to 0) with probability p_l and kept
otherwise, its output then scaled by 1 / (1 - p_l), so that the next layer's input keeps
its expectation and nothing changes at predict time. The backward pass multiplies by the
same factor: the layer keeps ``f'(Z) · mask / (1 - p)`` from its forward pass (the
Workspace's ``fprime``), its residual is ``δ ⊙ that`` (``_activations.multiply_cols``).

The masks come from a counter-based generator, not a stream: unit j of row r of a
minibatch, in hidden layer l at optimizer step t, is kept when
``hash(key(seed, t, l) ^ (r · H_l + j)) >= p_l · 2^64`` (the top 32 bits compared). Every
mask is thus a function of where the unit is, not of which thread computes it or how an
epoch is cut into kernel calls: one thread and two draw the same masks. ``seed`` is drawn
from the estimator's ``random_state`` (only when a rate is non-zero: without dropout the
draws, and so the model, are scikit-learn's); ``t`` counts the optimizer's steps across
epochs and ``partial_fit`` calls. The hash is splitmix64's finaliser (Steele, Lea and
Flood 2014), a bijection of 64-bit words whose outputs pass BigCrush for counter inputs.
"""

import numpy as np
from numba import njit

from ._config import JIT

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_S30, _S27, _S31, _S32 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(32)
_TWO32 = 4294967296.0


@njit(inline="always", **JIT)
def mix64(z):
    """splitmix64's finaliser of the uint64 ``z``."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(**JIT)
def layer_key(seed, t, l):
    """The key of hidden layer l's masks at optimizer step t (uint64)."""
    k = mix64(np.uint64(seed) + _GOLDEN)
    k = mix64(k ^ (np.uint64(t) * _GOLDEN))
    return mix64(k ^ np.uint64(l + 1))


@njit(**JIT)
def threshold(rate):
    """``rate`` as the 32-bit threshold below which a unit is dropped."""
    return np.uint64(min(rate * _TWO32, _TWO32 - 1.0))


@njit(**JIT)
def dropout_cols(A, G, lo, hi, key, rate):
    """Drop the units of columns ``[lo, hi)`` of A (N, H) with probability ``rate`` and
    scale the others by 1 / (1 - rate); G, the layer's kept f', gets the same factor."""
    thr = threshold(rate)
    scale = A.dtype.type(1.0 / (1.0 - rate))
    zero = A.dtype.type(0.0)
    H = A.shape[1]
    m = hi - lo
    for i in range(A.shape[0]):
        a, g = A[i, lo:hi], G[i, lo:hi]
        base = np.uint64(i * H + lo)
        for j in range(m):
            h = mix64(key ^ (base + np.uint64(j))) >> _S32
            s = scale if h >= thr else zero
            a[j] *= s
            g[j] *= s


def masks(seed, t, l, n_rows, width, rate):
    """The keep mask (n_rows, width) of hidden layer l at step t, in NumPy: the same
    draws as ``dropout_cols``, for the tests and for reading a mask."""
    key = layer_key(seed, t, l)
    idx = np.arange(n_rows * width, dtype=np.uint64).reshape(n_rows, width)
    z = idx ^ np.uint64(key)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(32)) >= threshold(rate)
