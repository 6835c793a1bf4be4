"""The floor: one epoch's matrix products alone (../shared/DESIGN.md section 7).

The same products fastbp's epoch issues, with the same shapes, the same BLAS (numba's
np.dot), back to back from one njit loop on preallocated buffers: forward ``A_{l-1} W_l``,
backward ``A_{l-1}ᵀ δ_l`` and ``δ_l W_lᵀ``. No gather, bias, activation, loss or update:
any BLAS-based trainer needs at least this time per epoch.
"""

import numpy as np
from numba import njit

from fastbp._config import JIT


@njit(**JIT)
def floor_epoch(acts, deltas, dWs, Ws, X, n_rows, batch_size):
    """Products of every minibatch of an epoch of ``n_rows`` rows.

    acts, deltas : tuples of (B, H_l) buffers, l = 1..L.  dWs, Ws : tuples of (H_{l-1}, H_l).
    X : (B, F) one batch of input (products cost the same whatever the rows hold).
    """
    L = len(Ws)
    for start in range(0, n_rows, batch_size):
        nb = min(batch_size, n_rows - start)
        A_prev = X[:nb]
        for l in range(L):
            np.dot(A_prev, Ws[l], acts[l][:nb])
            A_prev = acts[l][:nb]
        for l in range(L - 1, -1, -1):
            A_in = X[:nb] if l == 0 else acts[l - 1][:nb]
            np.dot(A_in.T, deltas[l][:nb], dWs[l])
            if l > 0:
                np.dot(deltas[l][:nb], Ws[l].T, deltas[l - 1][:nb])


def make_floor(units, batch_size, dtype, seed=0):
    """Buffers for ``floor_epoch`` with layer widths ``units``; returns a callable(n_rows)."""
    rng = np.random.default_rng(seed)
    B = batch_size
    Ws = tuple(rng.standard_normal((units[l], units[l + 1])).astype(dtype) for l in range(len(units) - 1))
    dWs = tuple(np.empty_like(W) for W in Ws)
    acts = tuple(np.zeros((B, u), dtype=dtype) for u in units[1:])
    deltas = tuple(rng.standard_normal((B, u)).astype(dtype) for u in units[1:])
    X = rng.standard_normal((B, units[0])).astype(dtype)

    def run(n_rows):
        floor_epoch(acts, deltas, dWs, Ws, X, n_rows, B)

    return run


def epoch_flops(units, n_rows):
    """Floating-point operations of the epoch's products: 2·n·(3Σ fan_in·fan_out − F·H_1)."""
    macs = sum(units[l] * units[l + 1] for l in range(len(units) - 1))
    first = units[0] * units[1]  # the first layer has no δ W^T product
    return 2.0 * n_rows * (3 * macs - first)
