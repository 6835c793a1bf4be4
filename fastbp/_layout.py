"""The flat parameter buffer, after llm.c: one allocation, many views.

All parameters of an MLP with layer sizes ``units = [F, H_1, ..., H_{L-1}, K]`` live in
one contiguous vector ordered as scikit-learn packs them::

    [ W_1 | W_2 | ... | W_L | b_1 | b_2 | ... | b_L ]

``W_l`` has shape ``(units[l-1], units[l])`` in C order, ``b_l`` has ``units[l]`` entries.
Gradients, Adam's moments and SGD's velocities use the same layout, so the optimizer is
one loop over a vector and L2 touches one slice (``flat[:n_coefs]``).

The estimators expose ``coefs_[i]`` and ``intercepts_[i]`` as reshaped views of the
buffer; pickling does not keep views shared, so they are rebuilt on load.

The kernels take their arguments grouped, each group one NamedTuple (Numba passes it as
one argument): ``Net`` (the layout and the model's codes), ``Buffers`` (the flat
buffers: parameters, gradients, optimizer state), ``Workspace`` (per-minibatch
buffers), ``Batches`` (the training data and the epoch's row order) and ``Team`` (the
threads an epoch runs on and how the layers are shared among them, ``_threads``).
"""

import itertools
import math
from typing import NamedTuple

import numpy as np


class Layout(NamedTuple):
    """Offsets of every layer's parameters in the flat buffer.

    Attributes
    ----------
    units : int64 array of shape (L + 1,)
        Layer widths, input features first, outputs last.
    w_off : int64 array of shape (L,)
        Start of ``W_l`` (l = 1..L stored at index l-1).
    b_off : int64 array of shape (L,)
        Start of ``b_l``.
    n_coefs : int
        Number of weights (the L2-penalised part, ``flat[:n_coefs]``).
    size : int
        Total number of parameters.
    """

    units: np.ndarray
    w_off: np.ndarray
    b_off: np.ndarray
    n_coefs: int
    size: int


class Net(NamedTuple):
    """What every kernel needs to read the flat buffer and run the layers: the layout
    (``Layout``'s units, w_off, b_off, n_coefs) and the codes of the hidden layers'
    activation, the output activation and the loss (``_activations``, ``_losses``)."""

    units: np.ndarray
    w_off: np.ndarray
    b_off: np.ndarray
    n_coefs: int
    hidden: int
    output: int
    loss: int


class Buffers(NamedTuple):
    """The flat buffers of one layout: ``params`` (P,), ``grads`` (P,) and the optimizer's
    state ``moment1``, ``moment2`` (P,) or empty where the optimizer has fewer
    (``_optim``)."""

    params: np.ndarray
    grads: np.ndarray
    moment1: np.ndarray
    moment2: np.ndarray


class Workspace(NamedTuple):
    """Buffers for minibatches of up to B rows, run by T threads (``Team``).

    acts, deltas : the hidden layers' outputs A_l and residuals δ_l, layer l's (B, H_l)
        block at ``a_off[l - 1]`` (``activation_offsets``); each thread writes its own
        columns of them.
    xbuf : (G, B, F) the minibatch's rows of dense X, gathered (G = 2 on two threads:
        minibatches alternate between two, as one may still be read while the next is
        written; 1 otherwise); (G, B, 0) for sparse X, whose rows are read in place.
    ybuf : (T, B, K), swbuf : (T, B) each thread's gathered rows of Y and sw.
    heads : (T, 2, B, K) each thread's output A_L (``[t, 0]``) and residual δ_L (``[t, 1]``).
    fprime : the hidden layers' f'(Z), laid out as ``acts``, for layers that keep it
        (``_activations.Activation.keep``, or dropout: ``_dropout``); otherwise a 2-D
        empty array, another type, so that the kernels compile no code for it.
    """

    acts: np.ndarray
    deltas: np.ndarray
    a_off: np.ndarray
    xbuf: np.ndarray
    ybuf: np.ndarray
    swbuf: np.ndarray
    heads: np.ndarray
    fprime: np.ndarray


class Batches(NamedTuple):
    """The training rows: X (n, F) dense or the CSR tuple (``_kernels``), Y (n, K), sw (n,)
    and ``perm`` (n,) int64, the epoch's row order, cut into minibatches of
    ``batch_size`` rows."""

    X: object
    Y: np.ndarray
    sw: np.ndarray
    perm: np.ndarray
    batch_size: int


class Team(NamedTuple):
    """The threads an epoch runs on, and each one's share of the layers.

    threads : 1 or 2.
    cuts : int64 (L + 1,) thread 0's share of each layer's units, ``[0, cuts[j])`` of
        ``units[j]``; thread 1 has the rest. On one thread ``cuts = units``.
    ws_off : int64 (L, 2) where thread t's block of the hidden layer l + 1's weights
        starts (``_threads.split_layout``); on one thread ``w_off`` (one block).
    sync : int64 (24,) zeros, the barrier's counters; shared : float64 (24,) the
        threads' partial sums (``_threads``); new for each kernel call. On one thread
        ``sync`` is a 2-D empty array, another type: the kernels then compile the
        one-thread versions of the team's functions, with no barrier (``_kernels``).
    """

    threads: int
    cuts: np.ndarray
    ws_off: np.ndarray
    sync: np.ndarray
    shared: np.ndarray


def make_net(layout, hidden, output, loss):
    """``Net`` of ``layout`` with those codes."""
    return Net(layout.units, layout.w_off, layout.b_off, int(layout.n_coefs), int(hidden),
               int(output), int(loss))


def one_thread(layout):
    """The ``Team`` of one thread: it owns every unit; no barrier (``sync`` 2-D, empty)."""
    ws_off = np.repeat(layout.w_off[:, None], 2, axis=1).astype(np.int64)
    return Team(1, layout.units.copy(), ws_off, np.zeros((0, 0), np.int64),
                np.zeros(24, np.float64))


def make_workspace(layout, batch_size, threads, n_features, dtype, keep=False):
    """A ``Workspace`` for ``threads`` threads and minibatches of up to ``batch_size``
    rows, for X of ``n_features`` columns (0 for sparse X, read in place: no gather
    buffer), with ``fprime`` if the hidden layers ``keep`` f'; every buffer starts on a
    cache line (``aligned_empties``: with widths and cuts multiples of 8, no line of a row
    is then written by both threads)."""
    a_off, size = activation_offsets(layout, batch_size)
    n_out = int(layout.units[-1])
    B, T = batch_size, threads
    acts, deltas, xbuf, ybuf, swbuf, heads, fprime = aligned_empties(
        [size, size, (2 if T == 2 else 1, B, n_features), (T, B, n_out), (T, B),
         (T, 2, B, n_out), size if keep else (0, 0)], dtype)  # (2-D: none kept)
    return Workspace(acts, deltas, a_off, xbuf, ybuf, swbuf, heads, fprime)


def make_layout(layer_units):
    """Layout for layer widths ``[n_features, *hidden_layer_sizes, n_outputs]``."""
    units = np.asarray(layer_units, dtype=np.int64)
    fan_in, fan_out = units[:-1], units[1:]
    w_sizes = fan_in * fan_out
    w_off = np.concatenate(([0], np.cumsum(w_sizes)[:-1])).astype(np.int64)
    n_coefs = int(w_sizes.sum())
    b_off = (n_coefs + np.concatenate(([0], np.cumsum(fan_out)[:-1]))).astype(np.int64)
    size = n_coefs + int(fan_out.sum())
    return Layout(units, w_off, b_off, n_coefs, size)


def coef_views(flat, layout):
    """``[W_1, ..., W_L]`` as reshaped views of ``flat`` (no copy)."""
    u = layout.units
    return [
        flat[o : o + u[l] * u[l + 1]].reshape(u[l], u[l + 1])
        for l, o in enumerate(layout.w_off)
    ]


def intercept_views(flat, layout):
    """``[b_1, ..., b_L]`` as views of ``flat`` (no copy)."""
    u = layout.units
    return [flat[o : o + u[l + 1]] for l, o in enumerate(layout.b_off)]


def pack(coefs, intercepts, dtype):
    """A new flat buffer holding copies of ``coefs`` and ``intercepts``."""
    return np.concatenate([np.ravel(a) for a in list(coefs) + list(intercepts)]).astype(
        dtype, copy=False
    )


def aligned_empty(shape, dtype, align=64):
    """``np.empty(shape, dtype)`` whose data starts on an ``align``-byte boundary (a cache
    line), so that two threads writing neighbouring blocks of rows never share a line."""
    return aligned_empties([shape], dtype, align)[0]


def aligned_empties(shapes, dtype, align=64):
    """``aligned_empty`` of each shape, carved from one allocation: a fit's seven
    workspace buffers cost one allocation and one address lookup (``ctypes.data``,
    1.3 µs), not seven of each (``make_workspace`` 34 -> 15 µs)."""
    dtype = np.dtype(dtype)
    line = align // dtype.itemsize  # (elements a line)
    shapes = [s if isinstance(s, tuple) else (s,) for s in shapes]
    sizes = [math.prod(s) for s in shapes]  # (math.prod, not np.prod: 3 µs a call)
    starts = [0]
    for n in sizes:  # each buffer rounded up to whole lines
        starts.append(starts[-1] + -(-n // line) * line)
    raw = np.empty(starts[-1] + line, dtype=dtype)  # (NumPy aligns it to 16 bytes)
    base = (-raw.ctypes.data) % align // dtype.itemsize
    return [raw[base + a : base + a + n].reshape(s) for s, a, n in zip(shapes, starts, sizes)]


def activation_offsets(layout, batch_size):
    """Offsets of each layer's ``(batch_size, units[l])`` block in a workspace vector.

    Layers 1..L are stored back to back; entry l-1 is layer l's start. Returns the
    offsets and the workspace length.
    """
    sizes = [batch_size * int(u) for u in layout.units[1:]]
    starts = list(itertools.accumulate(sizes, initial=0))  # (NumPy's: 7 µs, this 2)
    return np.array(starts[:-1], dtype=np.int64), starts[-1]
