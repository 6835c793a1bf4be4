"""Finite-difference check of the kernels' gradient, float64, on the flat buffer.

The objective differentiated is the one whose gradient scikit-learn (and so fastbp)
computes. It equals the reported loss except for squared error with K outputs: the loss
is averaged over outputs (½·mean) but the gradient uses δ = A − Y, i.e. the gradient of
½·Σ over outputs. fastbp mirrors this (docs/backprop.md, eq. 2); the check makes it explicit.
"""

import numpy as np
import pytest
import reference as ref
from conftest import HEADS, HIDDEN, kernel_loss_grad, targets

from fastbp._layout import coef_views, intercept_views, make_layout


def objective(flat, layout, X, Y, sw, hidden, out, loss, alpha):
    Ws, bs = coef_views(flat, layout), intercept_views(flat, layout)
    A = ref.forward(Ws, bs, X, hidden, out)[-1]
    data = ref.data_loss(loss, A, Y, sw)
    if loss == "squared_error":  # (the classifier's half squared error: J exactly)
        data *= Y.shape[1]
    return data + 0.5 * alpha * sum((W**2).sum() for W in Ws) / sw.sum()


@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("out,loss", HEADS)
@pytest.mark.parametrize("k", [1, 3])
def test_gradient_matches_central_differences(hidden, out, loss, k):
    rng = np.random.default_rng(10)
    units = [3, 5, 4, k]
    layout = make_layout(units)
    flat = 0.7 * rng.standard_normal(layout.size)
    n = 9
    X = rng.standard_normal((n, 3))
    Y = targets(loss, n, k, rng, np.float64)
    sw = rng.uniform(0.5, 2.0, n)
    alpha = 0.05
    _, grads = kernel_loss_grad(flat.copy(), layout, X, Y, sw, hidden, out, loss, alpha)

    h = 1e-6
    fd = np.empty_like(flat)
    for i in range(flat.size):
        up, down = flat.copy(), flat.copy()
        up[i] += h
        down[i] -= h
        fd[i] = (objective(up, layout, X, Y, sw, hidden, out, loss, alpha)
                 - objective(down, layout, X, Y, sw, hidden, out, loss, alpha)) / (2 * h)
    err = np.linalg.norm(grads - fd) / max(np.linalg.norm(fd), 1e-300)
    assert err < 1e-6, err
