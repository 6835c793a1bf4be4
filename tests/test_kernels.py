"""Each kernel against the plain NumPy reference in tests/reference.py, in both dtypes.

CI runs this file a second time with NUMBA_BOUNDSCHECK=1 (see .ci/run).
"""

import numpy as np
import pytest
import reference as ref
from conftest import (
    HEADS,
    HIDDEN,
    RTOL,
    csr_tuple,
    kernel_epoch,
    kernel_loss_grad,
    net_of,
    network,
    targets,
)

from fastbp import _activations, _kernels, _losses, _optim
from fastbp._activations import code as activation_code
from fastbp._layout import Buffers, coef_views, intercept_views
from fastbp._losses import code as loss_code
from fastbp._optim import Hyper


def forward(Z, b, name):
    _activations.activation_forward_cols(Z, 0, Z.shape[1], b, activation_code(name))

@pytest.mark.parametrize("lo,hi", [(0, 9), (3, 7)])
@pytest.mark.parametrize("name", HIDDEN + ["exp", "softmax"])
def test_activation_forward(name, lo, hi, dtype):
    """All columns, or [lo, hi) only (a thread's share): the others are left as they are."""
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((7, 9)).astype(dtype) * 3
    b = rng.standard_normal(hi - lo).astype(dtype)
    out = Z.copy()
    _activations.activation_forward_cols(out, lo, hi, b, activation_code(name))
    np.testing.assert_allclose(out[:, lo:hi], ref.activation(name, Z[:, lo:hi] + b),
                               rtol=RTOL[dtype])
    assert out.dtype == dtype
    np.testing.assert_array_equal(out[:, :lo], Z[:, :lo])
    np.testing.assert_array_equal(out[:, hi:], Z[:, hi:])


@pytest.mark.parametrize("name", [n for n in HIDDEN if not _activations.keeps(n)])
def test_activation_backward(name, dtype):
    rng = np.random.default_rng(1)
    A = ref.activation(name, rng.standard_normal((6, 4))).astype(dtype)
    A[0, 0] = 0 if name == "relu" else A[0, 0]
    D = rng.standard_normal((6, 4)).astype(dtype)
    out = D.copy()
    _activations.activation_backward_cols(out, A, 0, 4, activation_code(name))
    np.testing.assert_allclose(out, D * ref.derivative_from_output(name, A), rtol=RTOL[dtype])


@pytest.mark.parametrize("lo,hi", [(0, 9), (3, 7)])
@pytest.mark.parametrize("name", HIDDEN)
def test_activation_forward_keep(name, lo, hi, dtype):
    """The forward pass of a layer that keeps f' (every activation can: dropout keeps
    it): f(Z + b) as without keeping, and f'(Z + b) from Z, on columns [lo, hi) only."""
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((7, 9)).astype(dtype) * 3
    Z[0, lo] = 0  # f' at 0: PyTorch's convention (relu 0, leaky_relu 0.01, elu 1)
    b = np.zeros(hi - lo, dtype) if name in ("relu", "leaky_relu") else (
        rng.standard_normal(hi - lo).astype(dtype))
    out, G = Z.copy(), np.full_like(Z, np.nan)
    _activations.activation_forward_keep(out, G, lo, hi, b, activation_code(name))
    plain = Z.copy()
    _activations.activation_forward_cols(plain, lo, hi, b, activation_code(name))
    # (the same formula compiled in another loop: LLVM may fuse other multiply-adds, so
    # to rounding, not bit for bit; measured up to 5e-15 for gelu near its minimum)
    np.testing.assert_allclose(out, plain, rtol=RTOL[dtype], atol=0)
    z = (Z[:, lo:hi] + b).astype(np.float64)
    np.testing.assert_allclose(G[:, lo:hi], ref.derivative(name, z), rtol=RTOL[dtype],
                               atol=RTOL[dtype])
    assert np.isnan(G[:, :lo]).all() and np.isnan(G[:, hi:]).all()


@pytest.mark.parametrize("name", ["gelu", "silu", "softplus", "elu"])
def test_new_activations_in_their_tails(name, dtype):
    """No overflow, and relative accuracy where the output is tiny (z -> -inf) or equal
    to z (z -> +inf): the forms chosen (erfc for gelu, log1p(e^-|z|) for softplus,
    expm1 for elu) against SciPy's."""
    z = np.array([[-700.0, -80.0, -30.0, -5.0, -1e-8, 0.0, 1e-8, 5.0, 30.0, 80.0, 700.0]])
    if dtype == np.float32:
        z = np.clip(z, -80, 80)
    Z = z.astype(dtype)
    forward(Z, np.zeros(z.shape[1], dtype), name)
    want = ref.activation(name, z.astype(dtype).astype(np.float64)).astype(dtype)
    assert np.isfinite(Z).all()
    np.testing.assert_allclose(Z, want, rtol=4 * RTOL[dtype], atol=0)


def test_relu_keeps_nan(dtype):
    """A NaN pre-activation must stay NaN (a diverging fit must not turn silent)."""
    Z = np.array([[np.nan, -1.0, 2.0]], dtype=dtype)
    forward(Z, np.zeros(3, dtype=dtype), "relu")
    assert np.isnan(Z[0, 0]) and Z[0, 1] == 0 and Z[0, 2] == 2


def test_softmax_large_logits_are_stable(dtype):
    Z = np.array([[1e4, 0.0, -1e4], [800.0, 800.0, 800.0]], dtype=dtype)
    forward(Z, np.zeros(3, dtype=dtype), "softmax")
    np.testing.assert_allclose(Z, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]], rtol=RTOL[dtype])


@pytest.mark.parametrize("name", HIDDEN)
def test_dense_forward(name, dtype):
    rng = np.random.default_rng(2)
    A_prev = rng.standard_normal((9, 4)).astype(dtype)
    W = rng.standard_normal((4, 3)).astype(dtype)
    b = rng.standard_normal(3).astype(dtype)
    A = np.full((9, 5), np.nan, dtype=dtype)
    _kernels.dense_forward(A, 1, 4, A_prev, W, b, activation_code(name))  # columns 1-3
    np.testing.assert_allclose(A[:, 1:4], ref.activation(name, A_prev @ W + b),
                               rtol=RTOL[dtype], atol=1e-6)
    assert np.isnan(A[:, [0, 4]]).all()


def test_weight_and_bias_sums(dtype):
    """The sums of eq. (4) on a block of columns: Xᵀ D[:, lo:hi] and Σ_rows D[:, lo:hi]."""
    rng = np.random.default_rng(3)
    A_prev = rng.standard_normal((9, 4)).astype(dtype)
    D = rng.standard_normal((9, 5)).astype(dtype)
    dW = np.empty((4, 3), dtype=dtype)
    db = np.empty(3, dtype=dtype)
    _kernels.dot_xtd(dW, A_prev, D, 2, 5)
    _kernels.column_sums(db, D, 2, 5)
    np.testing.assert_allclose(dW, A_prev.T @ D[:, 2:], rtol=RTOL[dtype])
    np.testing.assert_allclose(db, D[:, 2:].sum(axis=0), rtol=RTOL[dtype])


def test_finish_gradient(dtype):
    """(sums + alpha W) / S on the weights, sums / S on the biases."""
    rng = np.random.default_rng(3)
    g, p = (rng.standard_normal(20).astype(dtype) for _ in range(2))
    want = np.concatenate([(g[:12] + 0.3 * p[:12]) / 7.5, g[12:] / 7.5])
    _kernels.finish_gradient(g, p, 12, 0.3, 7.5)
    np.testing.assert_allclose(g, want, rtol=RTOL[dtype])


@pytest.mark.parametrize("out,loss", HEADS)
@pytest.mark.parametrize("k", [1, 3])
def test_output_delta_and_loss(out, loss, k, dtype):
    rng = np.random.default_rng(4)
    A = ref.activation(out, rng.standard_normal((8, k))).astype(dtype)
    Y = targets(loss, 8, k, rng, dtype)
    sw = rng.uniform(0.5, 2.0, 8).astype(dtype)
    D = np.empty_like(A)
    value, S = _losses.output_delta_and_loss(D, A, Y, sw, loss_code(loss))
    np.testing.assert_allclose(D, ref.output_delta(loss, A, Y, sw), rtol=RTOL[dtype],
                               atol=RTOL[dtype])
    np.testing.assert_allclose(S, sw.sum(), rtol=RTOL[dtype])
    np.testing.assert_allclose(value, ref.data_loss(loss, A, Y, sw), rtol=RTOL[dtype])
    alone, S2 = _losses.data_loss(A, Y, sw, loss_code(loss))  # the loss alone
    assert (alone, S2) == (value, S)


def test_log_losses_are_clipped(dtype):
    """Probabilities of exactly 0 or 1 give a finite loss (clipped to [eps, 1-eps])."""
    A = np.array([[0.0, 1.0]], dtype=dtype)
    Y = np.array([[1.0, 0.0]], dtype=dtype)
    for loss in ("log_loss", "binary_log_loss"):
        value, _ = _losses.output_delta_and_loss(np.empty_like(A), A, Y, np.ones(1, dtype),
                                                 loss_code(loss))
        assert np.isfinite(value)
        np.testing.assert_allclose(value, ref.data_loss(loss, A, Y, np.ones(1, dtype)), rtol=RTOL[dtype])


@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("out,loss", HEADS)
def test_loss_grad(hidden, out, loss, dtype):
    rng = np.random.default_rng(5)
    units = [4, 5, 3, 3 if loss == "log_loss" else 2]
    layout, flat, Ws, bs = network(units, rng, dtype)
    n = 11
    X = rng.standard_normal((n, 4)).astype(dtype)
    Y = targets(loss, n, units[-1], rng, dtype)
    sw = rng.uniform(0.5, 2.0, n).astype(dtype)
    J, grads = kernel_loss_grad(flat, layout, X, Y, sw, hidden, out, loss, 0.1)
    J_ref, dWs, dbs = ref.loss_grad(Ws, bs, X, Y, sw, hidden, out, loss, 0.1)
    np.testing.assert_allclose(J, J_ref, rtol=RTOL[dtype])
    for got, want in zip(coef_views(grads, layout) + intercept_views(grads, layout), dWs + dbs):
        np.testing.assert_allclose(got, want, rtol=RTOL[dtype] * 10, atol=RTOL[dtype])


def finished(sums, p, n_coefs, alpha, scale):
    """The gradient the optimizers finish on the fly, by ``finish_gradient``."""
    g = sums.copy()
    _kernels.finish_gradient(g, p, n_coefs, alpha, scale)
    return g


def hyper(solver, alpha, lr=0.1, momentum=0.9, nesterov=True):
    return Hyper(solver, alpha, lr, momentum, nesterov, 0.9, 0.999, 1e-8)


@pytest.mark.parametrize("nesterov", [True, False])
def test_sgd_update(nesterov, dtype):
    """The update takes the raw sums and finishes the gradient itself (weights [:30]
    penalised), bit for bit as finish_gradient, then steps as the reference."""
    rng = np.random.default_rng(6)
    p, v, sums = (rng.standard_normal(50).astype(dtype) for _ in range(3))
    g = finished(sums, p, 30, 0.2, 3.0)
    want_p, want_v = ref.sgd(p, v, g, 0.1, 0.9, nesterov)
    q, w = p.copy(), v.copy()
    _optim.sgd_update(p, v, sums, 0, 30, p.size, hyper(_optim.SGD, 0.2, nesterov=nesterov),
                      3.0, 0.1)
    np.testing.assert_allclose(p, want_p, rtol=RTOL[dtype])
    np.testing.assert_allclose(v, want_v, rtol=RTOL[dtype])
    _optim.sgd_update(q, w, g, 0, 0, q.size, hyper(_optim.SGD, 0.0, nesterov=nesterov), 1.0,
                      0.1)  # g already finished
    np.testing.assert_array_equal(p, q)
    np.testing.assert_array_equal(v, w)


def test_adam_update(dtype):
    rng = np.random.default_rng(7)
    p, m, sums = (rng.standard_normal(50).astype(dtype) for _ in range(3))
    v = rng.uniform(0, 1, 50).astype(dtype)
    t = 3
    g = finished(sums, p, 30, 0.2, 3.0)
    want_p, want_m, want_v = ref.adam(p, m, v, g, 0.01, 0.9, 0.999, 1e-8, t)
    lr_t = _optim.adam_step_size(0.01, 0.9, 0.999, t)
    assert lr_t == 0.01 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t)
    q, m2, v2 = p.copy(), m.copy(), v.copy()
    _optim.adam_update(p, m, v, sums, 0, 30, p.size, hyper(_optim.ADAM, 0.2), 3.0, lr_t)
    np.testing.assert_allclose(p, want_p, rtol=RTOL[dtype])
    np.testing.assert_allclose(m, want_m, rtol=RTOL[dtype])
    np.testing.assert_allclose(v, want_v, rtol=RTOL[dtype])
    _optim.adam_update(q, m2, v2, g, 0, 0, q.size, hyper(_optim.ADAM, 0.0), 1.0,
                       lr_t)  # g already finished
    for got, want in ((p, q), (m, m2), (v, v2)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_train_epoch_matches_batch_by_batch_reference(solver, dtype):
    """The fused epoch = gather, loss_grad, update per batch, in permutation order,
    including a short last batch and a call that starts mid-epoch (chunking)."""
    rng = np.random.default_rng(8)
    units = [3, 6, 4, 3]
    layout, flat, Ws, bs = network(units, rng, dtype)
    n, B = 23, 5
    X = rng.standard_normal((n, 3)).astype(dtype)
    Y = targets("log_loss", n, 3, rng, dtype)
    sw = np.ones(n, dtype)
    perm = rng.permutation(n).astype(np.int64)
    bufs = Buffers(flat, np.empty_like(flat), np.zeros_like(flat), np.zeros_like(flat))
    h = Hyper(_optim.OPTIMIZERS[solver].code, 0.01, 0.05, 0.9, True, 0.9, 0.999, 1e-8)
    net = net_of(layout, "tanh", "softmax", "log_loss")
    p = flat.astype(np.float64)
    loss1, t = kernel_epoch(bufs, layout, X, Y, sw, perm, B, net, h, 0, 10, 0)
    loss2, t = kernel_epoch(bufs, layout, X, Y, sw, perm, B, net, h, 10, n, t)
    assert t == 5  # steps taken (SGD counts them too: the dropout masks use t)

    # reference: plain NumPy in float64, batch by batch
    st1, st2 = np.zeros_like(p), np.zeros_like(p)
    total = 0.0
    for k, start in enumerate(range(0, n, B)):
        idx = perm[start : start + B]
        Wr, br = coef_views(p, layout), intercept_views(p, layout)
        J, dWs, dbs = ref.loss_grad(Wr, br, X[idx].astype(np.float64), Y[idx].astype(np.float64),
                                    np.ones(len(idx)), "tanh", "softmax", "log_loss", 0.01)
        total += J * len(idx)
        g = np.concatenate([d.ravel() for d in dWs + dbs])
        if solver == "sgd":
            p, st1 = ref.sgd(p, st1, g, 0.05, 0.9, True)
        else:
            p, st1, st2 = ref.adam(p, st1, st2, g, 0.05, 0.9, 0.999, 1e-8, k + 1)
    tol = 1e-10 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(loss1 + loss2, total, rtol=tol)
    np.testing.assert_allclose(flat, p, rtol=tol, atol=tol)


@pytest.mark.parametrize("units", [[4, 1], [4, 6, 3], [4, 7, 5, 2]])
def test_predict_forward_blocks(units, dtype):
    """Row blocks smaller than the data (the ping-pong buffers are reused per block)."""
    rng = np.random.default_rng(9)
    layout, flat, Ws, bs = network(units, rng, dtype)
    X = rng.standard_normal((13, 4)).astype(dtype)
    h_max = max([1] + units[1:-1])
    out = np.empty((13, units[-1]), dtype)
    net = net_of(layout, "relu", "softmax" if units[-1] > 1 else "logistic", "log_loss")
    _kernels.predict_forward(out, X, flat, net, np.empty(4 * h_max, dtype),
                             np.empty(4 * h_max, dtype))
    want = ref.forward(Ws, bs, X, "relu", "softmax" if units[-1] > 1 else "logistic")[-1]
    np.testing.assert_allclose(out, want, rtol=RTOL[dtype] * 10)


def sparse_matrix(n, f, rng, dtype):
    X = rng.standard_normal((n, f)).astype(dtype)
    X[rng.uniform(size=(n, f)) < 0.6] = 0
    return X


def test_first_layer_products_csr(dtype):
    """CSR rows (a permuted subset) give the same products as their dense copy."""
    rng = np.random.default_rng(11)
    X = sparse_matrix(12, 7, rng, dtype)
    rows = rng.permutation(12)[:5].astype(np.int64)
    W = rng.standard_normal((7, 4)).astype(dtype)
    D = rng.standard_normal((5, 4)).astype(dtype)
    Z = np.full((5, 6), np.nan, dtype)
    _kernels.dot_xw(Z, 1, 5, csr_tuple(X, dtype, rows), W)  # columns 1-4
    dW = np.full((7, 3), np.nan, dtype)
    _kernels.dot_xtd(dW, csr_tuple(X, dtype, rows), D, 1, 4)
    np.testing.assert_allclose(Z[:, 1:5], X[rows] @ W, rtol=RTOL[dtype])
    assert np.isnan(Z[:, [0, 5]]).all()
    np.testing.assert_allclose(dW, X[rows].T @ D[:, 1:], rtol=RTOL[dtype], atol=RTOL[dtype])


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_train_epoch_csr_equals_dense(solver, dtype):
    rng = np.random.default_rng(12)
    units = [6, 5, 2]
    layout, flat, _, _ = network(units, rng, dtype)
    n, B = 17, 4
    X = sparse_matrix(n, 6, rng, dtype)
    Y = targets("binary_log_loss", n, 2, rng, dtype)
    perm = rng.permutation(n).astype(np.int64)
    results = []
    net = net_of(layout, "relu", "logistic", "binary_log_loss")
    h = Hyper(_optim.OPTIMIZERS[solver].code, 1e-3, 0.05, 0.9, True, 0.9, 0.999, 1e-8)
    for Xk in (X, csr_tuple(X, dtype)):
        bufs = Buffers(flat.copy(), np.empty_like(flat), np.zeros_like(flat),
                       np.zeros_like(flat))
        loss, _ = kernel_epoch(bufs, layout, Xk, Y, np.ones(n, dtype), perm, B, net, h, 0,
                               n, 0)
        results.append((loss, bufs.params))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=RTOL[dtype])
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=RTOL[dtype] * 10, atol=RTOL[dtype])


def test_predict_forward_csr(dtype):
    rng = np.random.default_rng(13)
    units = [6, 5, 3]
    layout, flat, Ws, bs = network(units, rng, dtype)
    X = sparse_matrix(11, 6, rng, dtype)
    out = np.empty((11, 3), dtype)
    _kernels.predict_forward(out, csr_tuple(X, dtype), flat,
                             net_of(layout, "tanh", "softmax", "log_loss"),
                             np.empty(4 * 5, dtype), np.empty(4 * 5, dtype))
    np.testing.assert_allclose(out, ref.forward(Ws, bs, X, "tanh", "softmax")[-1], rtol=RTOL[dtype] * 10)
