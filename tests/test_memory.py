"""Memory: fit does not copy a C-contiguous float X (nor a CSR matrix), the training
workspace is O(batch x layer widths) and the per-row cost O(1), prediction works in row
blocks, Numba's runtime allocates nothing per minibatch, and repeated fits do not grow
the process.

Measured with tracemalloc, which sees every NumPy allocation (kernels allocate nothing
themselves: checked with Numba's runtime statistics below). Numbers on this machine
(100,000 x 50 X, 40 MB in float64, batch 200):

    fit, hidden (10,), float64     peak 5.6 MB classifier (0.14 X, 56 B/row), 3.4 MB
                                   regressor (0.08 X); float32 X: 5.6 / 3.3 MB
    fit, early_stopping=True       peak 44.8 MB = 1.12 X (the train/validation split
                                   copies X once, as scikit-learn's does: 42.6 MB)
    fit, hidden 8 -> 512 (5 feat.) peak +0.3 MB classifier, +1.75 MB regressor
    peak per extra row             56 B (hidden 8), 41 B (hidden 512)
    fit, CSR 200,000 x 200 at 10%  peak 11.2 MB for 48.8 MB of CSR arrays (0.23)
    predict, hidden (64,)          peak 2.4 MB classifier, 1.3 MB regressor
    predict, Fortran-ordered X     +40 MB: fastbp makes X C-contiguous (one copy; by
                                   design, DESIGN.md section 4); scikit-learn's BLAS
                                   reads it as it is
"""

import gc
import os
import tracemalloc
import warnings

import numpy as np
import pytest
import scipy.sparse
from numba.core.runtime import _nrt_python

import fastbp
from fastbp import _kernels

N, F, BATCH = 100_000, 50, 200  # X is 40 MB in float64


@pytest.fixture(scope="module")
def big():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, F))
    return X, (X[:, 0] > 0).astype(np.int64), X[:, 1].copy()


def model(kind, hidden, **params):
    cls = fastbp.MLPClassifier if kind == "classifier" else fastbp.MLPRegressor
    params = {"batch_size": BATCH, "max_iter": 2, "random_state": 0, **params}
    return cls(hidden_layer_sizes=hidden, **params)


def peak_bytes(call):
    """Peak of traced allocations during call(), above what was allocated before it."""
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            call()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="module", autouse=True)
def warm(big):
    """Compile (or load) every kernel first: the compiler's allocations are not fit's."""
    X, yc, yr = big
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for solver in ("adam", "sgd"):
            for kind, y in (("classifier", yc), ("regressor", yr)):
                for Z in (X[:500], X[:500].astype(np.float32), scipy.sparse.csr_matrix(X[:500])):
                    model(kind, (4,), solver=solver).fit(Z, y[:500]).predict(Z)


def target(kind, big):
    return big[1] if kind == "classifier" else big[2]


@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_fit_does_not_copy_c_contiguous_X(big, kind, dtype, solver):
    """Validation checks X (finiteness, dtype, shape) without copying it, and the kernels
    gather minibatch rows straight from it. What remains is O(n) bookkeeping (the
    epoch's permutation and its shuffled copy, binarized y, unit sample weights: ~56
    bytes a row here, vs 400 / 200 bytes a row of X), so half of X is a bound that
    any copy of X breaks."""
    X = np.ascontiguousarray(big[0], dtype=dtype)
    y = target(kind, big)
    peak = peak_bytes(lambda: model(kind, (10,), solver=solver).fit(X, y))
    assert peak < 0.5 * X.nbytes, f"fit peak {peak / 1e6:.1f} MB, X {X.nbytes / 1e6:.1f} MB"


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_fit_does_not_densify_or_copy_csr_X(kind):
    rng = np.random.default_rng(0)
    n = 200_000
    X = scipy.sparse.random(n, 200, density=0.1, format="csr", random_state=rng)
    nbytes = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    y = (np.asarray(X.sum(axis=1)).ravel() > 10).astype(int) if kind == "classifier" \
        else np.asarray(X.sum(axis=1)).ravel()
    peak = peak_bytes(lambda: model(kind, (10,)).fit(X, y))
    assert peak < 0.5 * nbytes, f"fit peak {peak / 1e6:.1f} MB, CSR X {nbytes / 1e6:.1f} MB"


def test_early_stopping_copies_X_at_most_once(big):
    """The validation split materializes X_train and X_val (1.0 x X, as scikit-learn's
    train_test_split does); nothing beyond that and the O(n) bookkeeping."""
    X, y = big[0], big[1]
    peak = peak_bytes(lambda: model("classifier", (10,), early_stopping=True).fit(X, y))
    assert peak < 1.5 * X.nbytes, f"fit peak {peak / 1e6:.1f} MB, X {X.nbytes / 1e6:.1f} MB"


@pytest.fixture(scope="module")
def narrow_X(big):
    """Few features, many rows: wide hidden layers stay cheap to train."""
    return np.ascontiguousarray(big[0][:, :5]), big[1], big[2]


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_workspace_is_per_batch_not_per_sample(narrow_X, kind):
    """Widening the hidden layer from 8 to 512 units adds O(batch x width + parameters)
    to the peak (activations and residuals of one minibatch; parameters, gradients and
    optimizer state), not O(n_samples x width) (= 410 MB here)."""
    X, y = narrow_X[0], target(kind, narrow_X)
    narrow = peak_bytes(lambda: model(kind, (8,), max_iter=1).fit(X, y))
    wide = peak_bytes(lambda: model(kind, (512,), max_iter=1).fit(X, y))
    n_params = 5 * 512 + 512 + 512 * 2 + 2
    workspace = 8 * (2 * BATCH * (512 + 2) + 8 * n_params)  # bytes
    assert wide - narrow < 4 * workspace, (
        f"peak {narrow / 1e6:.1f} MB at width 8, {wide / 1e6:.1f} MB at width 512; "
        f"one minibatch workspace is {workspace / 1e6:.1f} MB"
    )


@pytest.mark.parametrize("hidden", [(8,), (512,)])
def test_memory_per_sample_is_constant_and_small(narrow_X, hidden):
    """Peak grows with n_samples only by O(1) bytes a row (the index permutation, its
    shuffled copy, y, sample weights), whatever the width: a per-row activation buffer
    would cost 8 x width bytes a row."""
    X, y = narrow_X[0], narrow_X[1]
    fit = lambda n: model("classifier", hidden, max_iter=1).fit(X[:n], y[:n])  # noqa: E731
    small = peak_bytes(lambda: fit(N // 4))
    large = peak_bytes(lambda: fit(N))
    per_row = (large - small) / (N - N // 4)
    assert per_row < 128, f"{per_row:.0f} bytes per extra row"


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_predict_does_not_copy_X_and_works_in_blocks(big, kind):
    X, y = big[0], target(kind, big)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = model(kind, (64,), max_iter=1).fit(X[:2000], y[:2000])
    peak = peak_bytes(lambda: est.predict(X))
    out = N * 8 * 4  # the outputs and the labels derived from them, a few times over
    blocks = 2 * 512 * 64 * 8  # two 512-row blocks of the widest layer
    assert peak < out + 2 * blocks, f"predict peak {peak / 1e6:.1f} MB, X {X.nbytes / 1e6} MB"


# ---- Numba's runtime: no allocation per minibatch, nothing leaked -----------------------


def test_kernels_allocate_nothing_per_minibatch(nrt_stats, monkeypatch):
    """Count Numba runtime allocations in each train_epoch call: they must not depend on
    how many minibatches the call runs (1 to 200 here). What remains is the fixed cost of
    passing the arguments (one meminfo per array argument), balanced by frees."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2000, 20))
    y = (X[:, 0] > 0).astype(int)
    real = _kernels.train_epoch
    per_call = []

    def counting(*args):
        before = nrt_stats()
        out = real(*args)
        first, last, batch = args[7], args[8], args[4].batch_size
        batches = -(-(last - first) // batch)
        per_call.append((batches, *(nrt_stats() - before)))
        return out

    monkeypatch.setattr(_kernels, "train_epoch", counting)
    for batch in (10, 100, 2000):
        for X_in in (X, scipy.sparse.csr_matrix(X)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fastbp.MLPClassifier(hidden_layer_sizes=(16, 8), batch_size=batch,
                                     max_iter=2, random_state=0).fit(X_in, y)
    assert len({b for b, *_ in per_call}) >= 3, per_call
    counts = {tuple(c) for _, *c in per_call}
    assert len({c[0] for c in counts}) <= 2, f"allocations vary with batches: {per_call}"
    for alloc, free, mi_alloc, mi_free in counts:
        assert alloc == free and mi_alloc == mi_free, per_call
    assert max(c[0] for c in counts) <= 40, per_call  # a fixed per-call cost, not per batch


def test_fit_and_predict_leak_no_numba_memory(nrt_stats):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, 10))
    before = nrt_stats()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for solver in ("adam", "sgd", "lbfgs"):
            clf = fastbp.MLPClassifier(hidden_layer_sizes=(8,), solver=solver,
                                       max_iter=3, random_state=0).fit(X, X[:, 0] > 0)
            clf.predict_proba(X)
            reg = fastbp.MLPRegressor(hidden_layer_sizes=(8,), solver=solver, max_iter=3,
                                      random_state=0).fit(scipy.sparse.csr_matrix(X), X[:, 1])
            reg.predict(X)
    alloc, free, mi_alloc, mi_free = nrt_stats() - before
    assert alloc == free and mi_alloc == mi_free


# ---- the process ------------------------------------------------------------------------


def rss_bytes():
    """Resident set size from /proc (psutil is not a dependency)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_rss_flat_over_hundreds_of_fits():
    """300 rounds of fit / predict / partial_fit over every solver, both kinds, dense
    and CSR. Measured: +0.1 MB after 600 rounds. A leak of one X (160 KB) or one
    workspace per fit would add 50+ MB."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1000, 20))
    Xs = scipy.sparse.csr_matrix(np.where(np.abs(X) < 1, 0, X))
    y, Y = (X[:, 0] > 0).astype(int), X[:, :2]

    def round_(i):
        solver = ("adam", "sgd", "lbfgs")[i % 3]
        clf = fastbp.MLPClassifier(hidden_layer_sizes=(16, 8), solver=solver, max_iter=2,
                                   random_state=i,
                                   early_stopping=(i % 2 == 0 and solver != "lbfgs"))
        clf.fit(X if i % 4 else Xs, y).predict_proba(X)
        reg = fastbp.MLPRegressor(hidden_layer_sizes=(16,), solver=solver, max_iter=2,
                                  random_state=i).fit(X.astype(np.float32), Y)
        reg.predict(X)
        if solver != "lbfgs":
            reg.partial_fit(X, Y)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(30):  # allocator arenas, Numba's caches, sklearn's lazy imports
            round_(i)
        gc.collect()
        start = rss_bytes()
        for i in range(300):
            round_(i)
        gc.collect()
    growth = rss_bytes() - start
    assert growth < 8e6, f"RSS grew {growth / 1e6:.1f} MB over 300 rounds"
