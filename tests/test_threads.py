"""Threads: one model predicting from many threads, many models fitting at once, and
kernels that release the GIL (so threads run in parallel). No timing is asserted."""

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import scipy.sparse
from numba.core.registry import CPUDispatcher

import fastbp
from fastbp import _kernels

N_THREADS = 8


def test_every_kernel_releases_the_gil():
    kernels = {n: k for n, k in vars(_kernels).items() if isinstance(k, CPUDispatcher)}
    # the entry points called from Python must be among them
    assert {"train_epoch", "predict_forward", "predict_checked", "loss_grad"} <= set(kernels)
    for name, kernel in kernels.items():
        assert kernel.targetoptions.get("nogil") is True, name
        # nopython: an object-mode fallback would hold the GIL whatever nogil says
        assert kernel.targetoptions.get("nopython", True) is True, name
        assert not kernel.targetoptions.get("forceobj", False), name


def test_compiled_entry_points_are_nopython():
    """Every compiled signature of the entry points is nopython code (an object-mode
    function would hold the GIL whatever ``nogil`` says), also after a cache load."""
    X = np.random.default_rng(0).standard_normal((50, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fastbp.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2).fit(X, X[:, 0] > 0).predict(X)
        fastbp.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, solver="lbfgs").fit(
            X, X[:, 0] > 0)
    for kernel in (_kernels.train_epoch, _kernels.predict_forward, _kernels.predict_checked,
                   _kernels.loss_grad):
        assert kernel.overloads, kernel
        for cres in kernel.overloads.values():
            assert not cres.objectmode, kernel
            assert not cres.lifted, kernel


def data(dtype=np.float64, n=3000, features=30):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, features)).astype(dtype)
    return X, (X[:, 0] > 0).astype(int) + (X[:, 1] > 0), X[:, :2] @ [1.0, 2.0]


def quietly(fn):
    def wrapped(*args):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args)
    return wrapped


# warnings.catch_warnings is not thread-safe: code run in threads is filtered by marks


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_many_threads_predicting_with_one_model(dtype, sparse):
    X, y, yr = data(dtype)
    clf = quietly(fastbp.MLPClassifier(hidden_layer_sizes=(64, 32), max_iter=3,
                                       random_state=0).fit)(X, y)
    reg = quietly(fastbp.MLPRegressor(hidden_layer_sizes=(64,), max_iter=3,
                                      random_state=0).fit)(X, yr)
    if sparse:
        X = scipy.sparse.csr_matrix(np.where(np.abs(X) < 1, 0, X))
    chunks = [X[i::N_THREADS * 2] for i in range(N_THREADS * 2)]
    calls = [
        lambda Z: clf.predict_proba(Z),
        lambda Z: clf.predict(Z),
        lambda Z: reg.predict(Z),
    ]
    jobs = [(call, Z) for call in calls for Z in chunks] * 2
    serial = [call(Z) for call, Z in jobs]
    with ThreadPoolExecutor(N_THREADS) as pool:
        threaded = list(pool.map(lambda job: job[0](job[1]), jobs))
    for want, got in zip(serial, threaded):
        assert got.dtype == want.dtype
        assert got.tobytes() == want.tobytes()


def fit_job(i):
    """Eight different estimators: both kinds, both dtypes, every solver, partial_fit."""
    dtype = np.float32 if i % 2 else np.float64
    X, y, yr = data(dtype, n=1000)
    solver = ["adam", "sgd", "lbfgs"][i % 3]
    kind = "classifier" if i % 4 < 2 else "regressor"
    cls = fastbp.MLPClassifier if kind == "classifier" else fastbp.MLPRegressor
    target = y if kind == "classifier" else yr
    model = cls(hidden_layer_sizes=(64, 32), solver=solver, max_iter=4, random_state=i,
                early_stopping=(i % 5 == 0 and solver != "lbfgs"))
    model.fit(X, target)
    if solver != "lbfgs" and not model.early_stopping:
        model.partial_fit(X[:500], target[:500])
    out = model.predict_proba(X) if kind == "classifier" else model.predict(X)
    return model._flat.copy(), out


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_different_estimators_fitting_at_once_match_serial():
    jobs = list(range(N_THREADS))
    serial = [fit_job(i) for i in jobs]
    with ThreadPoolExecutor(N_THREADS) as pool:
        threaded = list(pool.map(fit_job, jobs))
    for i, ((w_s, p_s), (w_t, p_t)) in enumerate(zip(serial, threaded)):
        assert w_t.tobytes() == w_s.tobytes(), f"job {i}: weights differ"
        assert p_t.tobytes() == p_s.tobytes(), f"job {i}: predictions differ"
