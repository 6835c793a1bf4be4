"""The flat parameter buffer, after llm.c: one allocation, many views.

All parameters of an MLP with layer sizes ``units = [F, H_1, ..., H_{L-1}, K]`` live in
one contiguous vector ordered as scikit-learn packs them::

    [ W_1 | W_2 | ... | W_L | b_1 | b_2 | ... | b_L ]

``W_l`` has shape ``(units[l-1], units[l])`` in C order, ``b_l`` has ``units[l]`` entries.
Gradients, Adam's moments and SGD's velocities use the same layout, so the optimizer is
one loop over a vector and L2 touches one slice (``flat[:n_coefs]``).

The estimators expose ``coefs_[i]`` and ``intercepts_[i]`` as reshaped views of the
buffer; pickling does not keep views shared, so they are rebuilt on load.
"""

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
    dtype = np.dtype(dtype)
    n = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(n + align, dtype=np.uint8)
    start = (-raw.ctypes.data) % align
    return raw[start : start + n].view(dtype).reshape(shape)


def activation_offsets(layout, batch_size):
    """Offsets of each layer's ``(batch_size, units[l])`` block in a workspace vector.

    Layers 1..L are stored back to back; entry l-1 is layer l's start. Returns the
    offsets and the workspace length.
    """
    sizes = batch_size * layout.units[1:]
    off = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
    return off, int(sizes.sum())
