"""Fixtures and the helpers more than one test module uses (NumPy references of the
math are in reference.py)."""

import os
import sys
import warnings

import numpy as np
import pytest
from sklearn import neural_network as sk
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, os.path.dirname(__file__))  # tests/reference.py

import fastbp  # noqa: E402
from fastbp import _kernels  # noqa: E402
from fastbp import _layout  # noqa: E402
from fastbp._activations import code as activation_code  # noqa: E402
from fastbp._activations import keeps  # noqa: E402
from fastbp._optim import Hyper  # noqa: E402
from fastbp._losses import code as loss_code  # noqa: E402

DTYPES = [np.float64, np.float32]
# Kernel vs NumPy reference: float64 to rounding, float32 to float32 rounding.
RTOL = {np.float64: 1e-12, np.float32: 2e-5}


@pytest.fixture(params=DTYPES, ids=["float64", "float32"])
def dtype(request):
    return request.param


@pytest.fixture
def nrt_stats():
    """A reader of Numba's runtime allocation counters (alloc, free, meminfo alloc, free)."""
    from numba.core.runtime import _nrt_python

    was_on = _nrt_python.memsys_stats_enabled()
    _nrt_python.memsys_enable_stats()

    def read():
        return np.array([_nrt_python.memsys_get_stats_alloc(),
                         _nrt_python.memsys_get_stats_free(),
                         _nrt_python.memsys_get_stats_mi_alloc(),
                         _nrt_python.memsys_get_stats_mi_free()])

    yield read
    if not was_on:
        _nrt_python.memsys_disable_stats()


# ---- the kernels: data, networks and calls ----------------------------------------------

HIDDEN = list(fastbp._activations.HIDDEN)  # every hidden activation of the registry
HEADS = [  # (output activation, loss)
    ("identity", "squared_error"),
    ("softmax", "log_loss"),
    ("logistic", "binary_log_loss"),
    ("exp", "poisson"),
    ("softmax", "half_squared_error_softmax"),  # the classifier's loss='squared_error'
    ("logistic", "half_squared_error_logistic"),
]


def targets(loss, n, k, rng, dtype):
    """Targets valid for the loss: one-hot for softmax, 0/1, counts, or reals."""
    if loss in ("log_loss", "half_squared_error_softmax"):
        return np.eye(k, dtype=dtype)[rng.integers(0, k, n)]
    if loss in ("binary_log_loss", "half_squared_error_logistic"):
        return rng.integers(0, 2, (n, k)).astype(dtype)
    if loss == "poisson":
        return rng.poisson(1.5, (n, k)).astype(dtype)
    return rng.standard_normal((n, k)).astype(dtype)


def network(units, rng, dtype, scale=0.5):
    layout = _layout.make_layout(units)
    flat = (scale * rng.standard_normal(layout.size)).astype(dtype)
    return layout, flat, _layout.coef_views(flat, layout), _layout.intercept_views(flat, layout)



def csr_tuple(X, dtype, rows=None):
    import scipy.sparse as sp

    M = sp.csr_matrix(X)
    rows = np.arange(X.shape[0], dtype=np.int64) if rows is None else rows
    return (M.data.astype(dtype), M.indices, M.indptr, rows)




def net_of(layout, hidden, out, loss):
    """The kernels' ``Net`` for activation and loss names."""
    return _layout.make_net(layout, activation_code(hidden), activation_code(out),
                            loss_code(loss))


def kernel_loss_grad(flat, layout, X, Y, sw, hidden, out, loss, alpha):
    """``_kernels.loss_grad`` on all rows of X (dense or a CSR tuple): (loss, grads)."""
    dtype = flat.dtype
    n = _kernels.n_rows(X)
    ws = _layout.make_workspace(layout, n, 1, 0, dtype, keeps(hidden))
    empty = np.empty(0, dtype)
    bufs = _layout.Buffers(flat, np.empty_like(flat), empty, empty)
    hyper = Hyper(0, float(alpha), 0.0, 0.0, False, 0.0, 0.0, 1.0)
    J = _kernels.loss_grad(_layout.one_thread(layout), bufs, ws, X, Y, sw,
                           net_of(layout, hidden, out, loss), hyper)
    return J, bufs.grads


def kernel_epoch(bufs, layout, X, Y, sw, perm, batch_size, net, hyper, first, last, t,
                 keep=False):
    """``_kernels.train_epoch`` on one thread, with a workspace of its own (``keep``: the
    hidden layers keep f')."""
    dense = isinstance(X, np.ndarray)
    ws = _layout.make_workspace(layout, batch_size, 1, X.shape[1] if dense else 0,
                                bufs.params.dtype, keep)
    data = _layout.Batches(X, Y, sw, perm, batch_size)
    return _kernels.train_epoch(0, _layout.one_thread(layout), bufs, ws, data, net, hyper, first,
                                last, t)


# ---- the estimators against scikit-learn's ----------------------------------------------

PARITY_RTOL = 1e-9  # fastbp against scikit-learn, float64
ACTIVATIONS = ["identity", "logistic", "tanh", "relu"]
SOLVERS = {
    "adam": dict(solver="adam", learning_rate_init=0.01),
    "sgd-nesterov": dict(solver="sgd", learning_rate_init=0.05, nesterovs_momentum=True),
    "sgd": dict(solver="sgd", learning_rate_init=0.05, nesterovs_momentum=False, momentum=0.5),
}
TASKS = ["binary", "multiclass", "regression-1", "regression-3", "poisson"]
SCHEDULES = ["constant", "invscaling", "adaptive"]


def make_task(task, n=90, n_features=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_features))
    w = rng.standard_normal((n_features, 3))
    Z = X @ w
    if task == "binary":
        return X, np.where(Z[:, 0] > 0, "yes", "no")  # string labels
    if task == "multiclass":
        return X, Z.argmax(axis=1) * 10 + 1
    if task == "regression-1":
        return X, Z[:, 0] + 0.1 * rng.standard_normal(n)
    if task == "regression-3":
        return X, Z + 0.1 * rng.standard_normal((n, 3))
    if task == "poisson":
        return X, rng.poisson(np.exp(0.3 * Z[:, 0])).astype(float)
    raise ValueError(task)


def estimators(task, **params):
    if task in ("binary", "multiclass"):
        return fastbp.MLPClassifier(**params), sk.MLPClassifier(**params)
    loss = "poisson" if task == "poisson" else "squared_error"
    return fastbp.MLPRegressor(loss=loss, **params), sk.MLPRegressor(loss=loss, **params)


def assert_close(got, want, what):
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    assert got.shape == want.shape, what
    scale = max(np.max(np.abs(want)), 1e-300)
    np.testing.assert_allclose(got, want, rtol=PARITY_RTOL, atol=PARITY_RTOL * scale, err_msg=what)


def assert_same_model(a, b, X):
    assert a.n_iter_ == b.n_iter_
    assert a.t_ == b.t_
    assert a.n_layers_ == b.n_layers_ and a.n_outputs_ == b.n_outputs_
    assert a.out_activation_ == b.out_activation_
    assert len(a.coefs_) == len(b.coefs_)
    for i, (ca, cb) in enumerate(zip(a.coefs_, b.coefs_)):
        assert ca.dtype == cb.dtype
        assert_close(ca, cb, f"coefs_[{i}]")
    for i, (ia, ib) in enumerate(zip(a.intercepts_, b.intercepts_)):
        assert_close(ia, ib, f"intercepts_[{i}]")
    assert_close(a.loss_curve_, b.loss_curve_, "loss_curve_")
    assert_close(a.loss_, b.loss_, "loss_")
    assert_close(a.best_loss_, b.best_loss_, "best_loss_")
    if hasattr(b, "classes_"):
        np.testing.assert_array_equal(a.classes_, b.classes_)
        assert_close(a.predict_proba(X), b.predict_proba(X), "predict_proba")
    np.testing.assert_array_equal(a.predict(X), b.predict(X)) if hasattr(b, "classes_") else \
        assert_close(a.predict(X), b.predict(X), "predict")



def grid_search(X, y, n_jobs=None):
    pipe = make_pipeline(StandardScaler(), fastbp.MLPClassifier(max_iter=15, random_state=0))
    grid = {"mlpclassifier__alpha": [1e-4, 1e-1], "mlpclassifier__hidden_layer_sizes": [(8,), (16,)]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GridSearchCV(pipe, grid, cv=3, n_jobs=n_jobs).fit(X, y)


