"""Slow, obvious NumPy references for the kernels (stumpy's ``tests/naive.py`` habit).

Written from the equations in docs/backprop.md, independently of fastbp's kernels: whole-
array NumPy, one line per equation, float64 unless the caller passes float32.
"""

import numpy as np
from scipy.special import ndtr

EPS = {np.float32: np.finfo(np.float32).eps, np.float64: np.finfo(np.float64).eps}


def activation(name, Z):
    if name == "identity":
        return Z
    if name == "logistic":
        return 1.0 / (1.0 + np.exp(-Z))
    if name == "tanh":
        return np.tanh(Z)
    if name == "relu":
        return np.maximum(Z, 0)
    if name == "leaky_relu":
        return np.where(Z < 0, 0.01 * Z, Z)
    if name == "elu":
        return np.where(Z > 0, Z, np.expm1(np.minimum(Z, 0)))
    if name == "gelu":
        return Z * ndtr(Z)
    if name == "silu":
        return Z / (1.0 + np.exp(-Z))
    if name == "softplus":
        return np.logaddexp(0, Z)
    if name == "exp":
        return np.exp(Z)
    if name == "softmax":
        E = np.exp(Z - Z.max(axis=1, keepdims=True))
        return E / E.sum(axis=1, keepdims=True)
    raise ValueError(name)


def derivative_from_output(name, A):
    """f'(Z) written in terms of A = f(Z), for the activations whose A determines it."""
    return {
        "identity": np.ones_like(A),
        "logistic": A * (1 - A),
        "tanh": 1 - A**2,
        "relu": (A > 0).astype(A.dtype),
        "leaky_relu": np.where(A > 0, 1, 0.01).astype(A.dtype),
        "elu": np.where(A > 0, 1, A + 1).astype(A.dtype),
    }[name]


def derivative(name, Z):
    """f'(Z), from Z (every hidden activation)."""
    if name == "identity":
        return np.ones_like(Z)
    if name in ("logistic", "silu", "softplus"):
        s = 1.0 / (1.0 + np.exp(-Z))
        return {"logistic": s * (1 - s), "silu": s * (1 + Z * (1 - s)), "softplus": s}[name]
    if name == "tanh":
        return 1 - np.tanh(Z) ** 2
    if name == "relu":
        return (Z > 0).astype(Z.dtype)
    if name == "leaky_relu":
        return np.where(Z > 0, 1, 0.01).astype(Z.dtype)
    if name == "elu":
        return np.where(Z > 0, 1, np.exp(np.minimum(Z, 0))).astype(Z.dtype)
    if name == "gelu":
        return ndtr(Z) + Z * np.exp(-0.5 * Z**2) / np.sqrt(2 * np.pi)
    raise ValueError(name)


def output_delta(loss, A, Y, sw):
    """δ_L = ∂(S J)/∂Z_L (eq. 2): A - Y for the canonical heads; through the output's
    Jacobian for the classifier's half squared error."""
    G = (A - Y) * sw[:, None]
    if loss == "half_squared_error_logistic":
        return G * A * (1 - A)
    if loss == "half_squared_error_softmax":  # J_softmax = diag(a) - a aᵀ, per row
        return A * G - A * (A * G).sum(axis=1, keepdims=True)
    return G


def data_loss(loss, A, Y, sw):
    """The data part of the loss, as scikit-learn reports it (sklearn/neural_network/_base.py)."""
    eps = np.finfo(A.dtype).eps
    S = sw.sum()
    if loss == "squared_error":
        return 0.5 * (sw[:, None] * (Y - A) ** 2).sum() / (S * A.shape[1])
    if loss == "log_loss":
        P = np.clip(A, eps, 1 - eps)
        return -(sw[:, None] * np.where(Y != 0, Y * np.log(P), 0)).sum() / S
    if loss == "binary_log_loss":
        P = np.clip(A, eps, 1 - eps)
        t = np.where(Y != 0, Y * np.log(P), 0) + np.where(Y != 1, (1 - Y) * np.log(1 - P), 0)
        return -(sw[:, None] * t).sum() / S
    if loss == "poisson":
        t = np.where(Y != 0, Y * np.log(np.where(Y != 0, Y, 1) / A), 0) - Y + A
        return (sw[:, None] * t).sum() / S
    if loss.startswith("half_squared_error"):  # the seed's J (eqs. 9.22-9.23)
        return 0.5 * (sw[:, None] * (Y - A) ** 2).sum() / S
    raise ValueError(loss)


def forward(Ws, bs, X, hidden, out, pre=None):
    """All layer outputs [A_1, ..., A_L] (eq. 1); their Z_l appended to ``pre``."""
    acts, A = [], X
    for l, (W, b) in enumerate(zip(Ws, bs)):
        Z = A @ W + b
        A = activation(hidden if l < len(Ws) - 1 else out, Z)
        acts.append(A)
        if pre is not None:
            pre.append(Z)
    return acts


def loss_grad(Ws, bs, X, Y, sw, hidden, out, loss, alpha):
    """Batch loss and gradients (eqs. 2-4), as lists dWs, dbs."""
    Zs = []
    acts = forward(Ws, bs, X, hidden, out, Zs)
    S = sw.sum()
    J = data_loss(loss, acts[-1], Y, sw) + 0.5 * alpha * sum((W**2).sum() for W in Ws) / S
    D = output_delta(loss, acts[-1], Y, sw)  # eq. 2
    dWs, dbs = [None] * len(Ws), [None] * len(Ws)
    for l in range(len(Ws) - 1, -1, -1):
        A_prev = X if l == 0 else acts[l - 1]
        dWs[l] = (A_prev.T @ D + alpha * Ws[l]) / S  # eq. 4
        dbs[l] = D.sum(axis=0) / S
        if l > 0:
            D = (D @ Ws[l].T) * derivative(hidden, Zs[l - 1])  # eq. 3
    return J, dWs, dbs


def sgd(params, velocity, grads, lr, momentum, nesterov):
    v = momentum * velocity - lr * grads
    step = momentum * v - lr * grads if nesterov else v
    return params + step, v


def adam(params, m, v, grads, lr, beta1, beta2, eps, t):
    m = beta1 * m + (1 - beta1) * grads
    v = beta2 * v + (1 - beta2) * grads**2
    lr_t = lr * np.sqrt(1 - beta2**t) / (1 - beta1**t)
    return params - lr_t * m / (np.sqrt(v) + eps), m, v
