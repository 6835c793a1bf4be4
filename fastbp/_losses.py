"""The output heads: each loss with its output activation, its residual and its value.

scikit-learn's heads are canonical pairs (the loss is the negative log-likelihood of
the output activation's distribution), so their residual is δ_L = A - Y (docs/backprop.md,
eq. 2). The seed's squared error on a classifier's outputs (its eqs. 9.22-9.23,
``MLPClassifier(loss='squared_error')``) is not: J = Σ_n s_n ½‖y_n - a_n‖² / S, whose
residual goes through the output activation's Jacobian, δ = s (a - y) ⊙ a (1 - a) on
logistic outputs and δ_k = s a_k (g_k - Σ_j a_j g_j), g = a - y, on softmax outputs.
``output_delta_and_loss`` computes the residual and the batch's loss in one pass,
``data_loss`` the loss alone.

Adding a loss (the recipe):

1. its per-element term in ``element_loss`` (as scikit-learn's ``LOSS_FUNCTIONS``
   compute it, before the division by S) and, where the output's total is not simply
   Σ sw · term / S, the scale in ``finish_loss``;
2. its code and a row in ``LOSSES`` (the output activation it pairs with);
3. a residual that is not A - Y (a non-canonical pair, such as squared error on a
   logistic output) needs its own branch in ``output_delta_and_loss``;
4. its NumPy reference in ``tests/reference.py`` (``data_loss``) and a row in the
   parametrised tests (``tests/test_kernels.py``'s ``HEADS``).
"""

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from ._config import JIT


class Loss(NamedTuple):
    """A registry entry: the kernels' code and the output activation it pairs with."""

    code: int
    output: str


SQUARED_ERROR, LOG_LOSS, BINARY_LOG_LOSS, POISSON = 0, 1, 2, 3
HALF_SQUARED_SOFTMAX, HALF_SQUARED_LOGISTIC = 4, 5

LOSSES = {
    "squared_error": Loss(SQUARED_ERROR, "identity"),
    "log_loss": Loss(LOG_LOSS, "softmax"),
    "binary_log_loss": Loss(BINARY_LOG_LOSS, "logistic"),
    "poisson": Loss(POISSON, "exp"),
    # the classifier's loss='squared_error' (the seed's), by its output
    "half_squared_error_softmax": Loss(HALF_SQUARED_SOFTMAX, "softmax"),
    "half_squared_error_logistic": Loss(HALF_SQUARED_LOGISTIC, "logistic"),
}


def code(name):
    """The kernels' code of the loss ``name``."""
    return LOSSES[name].code


@njit(inline="always", **JIT)
def element_loss(code, a, y, eps):
    """One output's loss term, in float64 (probabilities clipped to [eps, 1 - eps] for
    the log losses, as scikit-learn does; δ is never clipped):

    squared_error    (y - a)²                               (½ and / K: finish_loss)
    log_loss         -y log a                               (softmax output)
    binary_log_loss  -[y log a + (1-y) log(1-a)]            (logistic output)
    poisson          y log(y/a) - y + a                     (exp output)
    half_squared_*   ½ (y - a)²                             (the classifier's)
    """
    if code == SQUARED_ERROR:
        return (y - a) * (y - a)
    if code == HALF_SQUARED_SOFTMAX or code == HALF_SQUARED_LOGISTIC:
        return 0.5 * ((y - a) * (y - a))
    if code == LOG_LOSS:
        return -y * math.log(min(max(a, eps), 1 - eps)) if y != 0 else 0.0
    if code == BINARY_LOG_LOSS:
        p = min(max(a, eps), 1 - eps)
        term = 0.0
        if y != 0:
            term -= y * math.log(p)
        if y != 1:
            term -= (1 - y) * math.log(1 - p)
        return term
    if code == POISSON:
        term = a - y
        if y != 0:
            term += y * math.log(y / a)
        elif a == 0:  # scikit-learn's xlogy(0, 0 / 0): nan (exp underflowed)
            term += math.nan
        return term
    return 0.0


@njit(inline="always", **JIT)
def finish_loss(code, total, S, k):
    """The loss from Σ_i sw_i Σ_k term and S = Σ sw: squared error is reported as ½ ·
    the mean over the K outputs, although its residual A - Y is the gradient of ½ · the
    sum (scikit-learn does the same; docs/backprop.md section 2)."""
    if code == SQUARED_ERROR:
        return 0.5 * total / (S * k)
    return total / S


@njit(**JIT)
def output_delta_and_loss(D, A, Y, sw, code, want_loss=True):
    """Eq. (2): ``D = (A - Y) ⊙ sw`` (through the output's Jacobian for the half squared
    errors) and the batch's data loss, weighted by ``sw``.

    D, A, Y : (N, K);  sw : (N,) sample weights (ones when the fit has none).
    Returns (data loss, S) in float64, S = Σ sw; the loss is 0 unless ``want_loss``.
    Raises ZeroDivisionError, as scikit-learn, when the batch's weights sum to zero.
    """
    n, k = A.shape
    eps = np.finfo(A.dtype).eps
    total = 0.0
    S = 0.0
    for i in range(n):
        w = sw[i]
        S += w
        row = 0.0
        for j in range(k):
            a = A[i, j]
            y = Y[i, j]
            D[i, j] = (a - y) * w
            if want_loss:
                row += element_loss(code, a, y, eps)
        total += w * row
        if code == HALF_SQUARED_LOGISTIC:
            for j in range(k):
                a = A[i, j]
                D[i, j] = D[i, j] * a * (1 - a)
        elif code == HALF_SQUARED_SOFTMAX:
            dot = 0.0
            for j in range(k):
                dot += A[i, j] * D[i, j]
            for j in range(k):
                D[i, j] = A[i, j] * (D[i, j] - dot)
    if S == 0.0:  # as scikit-learn's np.average, before the batch updates anything
        raise ZeroDivisionError("Weights sum to zero, can't be normalized")
    return finish_loss(code, total, S, k), S


@njit(**JIT)
def data_loss(A, Y, sw, code):
    """The data loss alone (no residual): ``output_delta_and_loss``'s value, for A, Y
    (N, K) and sw (N,). Returns (loss, S)."""
    n, k = A.shape
    eps = np.finfo(A.dtype).eps
    total = 0.0
    S = 0.0
    for i in range(n):
        row = 0.0
        for j in range(k):
            row += element_loss(code, A[i, j], Y[i, j], eps)
        total += sw[i] * row
        S += sw[i]
    if S == 0.0:
        raise ZeroDivisionError("Weights sum to zero, can't be normalized")
    return finish_loss(code, total, S, k), S
