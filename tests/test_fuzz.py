"""Property tests on tiny problems: 1-6 samples, 1-4 features, one or two hidden layers
of 1-3 units, every batch size from 1 to n+1, both dtypes, every solver and activation,
int / str / bool / float labels, one or two regression targets, dense or CSR X.

Properties: fit raises nothing but ValueError (and then scikit-learn raises one too), and
warns nothing but ConvergenceWarning / UserWarning; when it succeeds the weights are
finite, the predictions finite (where scikit-learn's are: a diverged float32 model can
have finite weights and overflow at predict, in both), of scikit-learn's shape, the
labels among classes_, and (float64) the probabilities / predictions are scikit-learn's. Tiny shapes
are where off-by-one errors in batching, buffers and the kernels' unchecked indexing
show (see also test_fuzz_under_boundscheck).
"""

import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import pytest
import scipy.sparse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.extra.numpy import arrays
from sklearn import neural_network as sk
from sklearn.exceptions import ConvergenceWarning
from subproc import ROOT, child_env

import fastbp

# Hypothesis keeps caches under .hypothesis/ in the working directory: not in the checkout
if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    set_hypothesis_home_dir(tempfile.mkdtemp(prefix="fastbp-hypothesis-"))

SETTINGS = dict(
    max_examples=int(os.environ.get("FASTBP_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=os.environ.get("FASTBP_FUZZ_RANDOM", "0") != "1",
    database=None,  # no .hypothesis/ directory in the checkout
)

LABELS = {
    "int": [3, -1, 7],
    "str": ["b", "a", "c"],
    "bool": [True, False],
    "float": [0.5, -2.0, 1.0],
}


@st.composite
def problems(draw, kind):
    n = draw(st.integers(1, 6))
    features = draw(st.integers(1, 4))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    X = draw(arrays(dtype, (n, features), elements=st.one_of(
        st.just(0.0), st.floats(-10, 10, allow_nan=False, width=32))))
    if draw(st.booleans()):  # CSR, often with empty rows or no stored entry at all
        X = scipy.sparse.csr_matrix(X)
    if kind == "classifier":
        labels = LABELS[draw(st.sampled_from(sorted(LABELS)))]
        y = np.array(draw(st.lists(st.sampled_from(labels), min_size=n, max_size=n)))
    else:
        targets = draw(st.sampled_from([1, 2]))
        shape = (n,) if targets == 1 else (n, 2)
        y = draw(arrays(np.float64, shape, elements=st.floats(-5, 5, allow_nan=False)))
    solver = draw(st.sampled_from(["sgd", "adam", "lbfgs"]))
    params = dict(
        hidden_layer_sizes=tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=2))),
        activation=draw(st.sampled_from(["identity", "logistic", "tanh", "relu"])),
        solver=solver,
        batch_size=draw(st.integers(1, n + 1)),
        alpha=draw(st.sampled_from([0.0, 1e-4, 1.0])),
        learning_rate_init=draw(st.sampled_from([1e-3, 0.1])),
        max_iter=draw(st.integers(1, 4)),
        shuffle=draw(st.booleans()),
        random_state=draw(st.integers(0, 3)),
        momentum=draw(st.sampled_from([0.0, 0.9])),
    )
    if solver != "lbfgs":
        params["early_stopping"] = draw(st.booleans())
    if kind == "regressor" and draw(st.booleans()):
        params["loss"] = "poisson"
        y = np.abs(y)
    return X, y, params


def fit(est, X, y):
    """(exception or None, [warning categories])."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            est.fit(X, y)
            err = None
        except Exception as exc:  # noqa: BLE001 - the exception is the result
            err = exc
    return err, [w.category for w in caught]


def check(ours, theirs, X, y):
    err, categories = fit(ours, X, y)
    for category in categories:
        assert issubclass(category, (ConvergenceWarning, UserWarning)), category
    err_theirs, _ = fit(theirs, X, y)
    if err is not None:
        assert isinstance(err, ValueError), repr(err)
        assert isinstance(err_theirs, ValueError), (
            f"fastbp raises {err!r}; scikit-learn raises {err_theirs!r}"
        )
        return
    assert err_theirs is None, f"scikit-learn raises {err_theirs!r}; fastbp fits"
    assert all(np.isfinite(w).all() for w in ours.coefs_ + ours.intercepts_)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = theirs.predict(X)
        want_finite = hasattr(ours, "classes_") or np.isfinite(want).all()
    with warnings.catch_warnings():
        # no RuntimeWarning from prediction either, unless scikit-learn's overflows too
        # (a diverged float32 model: finite weights, infinite outputs)
        warnings.simplefilter("error" if want_finite else "ignore")
        pred = ours.predict(X)
    assert pred.shape == want.shape
    if hasattr(ours, "classes_"):
        assert pred.dtype == want.dtype
        np.testing.assert_array_equal(ours.classes_, theirs.classes_)
        assert set(pred.tolist()) <= set(ours.classes_.tolist())
        P = ours.predict_proba(X)
        assert P.shape == theirs.predict_proba(X).shape
        assert np.isfinite(P).all() and ((P >= 0) & (P <= 1)).all()
        np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-5)
        if X.dtype == np.float64:
            np.testing.assert_allclose(P, theirs.predict_proba(X), rtol=1e-7, atol=1e-9)
    else:
        # a float32 model predicts in float32 (scikit-learn's float32 lbfgs returns
        # float64: a difference listed in the README)
        assert pred.dtype == X.dtype
        np.testing.assert_array_equal(np.isfinite(pred), np.isfinite(want))
        if X.dtype == np.float64 and want_finite:
            scale = max(1.0, np.abs(want).max())
            np.testing.assert_allclose(pred, want, rtol=1e-7, atol=1e-9 * scale)


@settings(**SETTINGS)
@given(problems("classifier"))
def test_classifier_on_tiny_problems(problem):
    X, y, params = problem
    check(fastbp.MLPClassifier(**params), sk.MLPClassifier(**params), X, y)


@settings(**SETTINGS)
@given(problems("regressor"))
def test_regressor_on_tiny_problems(problem):
    X, y, params = problem
    check(fastbp.MLPRegressor(**params), sk.MLPRegressor(**params), X, y)


@settings(**SETTINGS)
@given(problems("classifier"), st.integers(1, 3))
def test_partial_fit_on_tiny_problems(problem, calls):
    """Several partial_fit calls on slices (some a single row), then predict."""
    X, y, params = problem
    if params["solver"] == "lbfgs" or params.get("early_stopping"):
        params = {**params, "solver": "adam", "early_stopping": False}
    classes = np.unique(y)
    ours = fastbp.MLPClassifier(**params)
    theirs = sk.MLPClassifier(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)
        for i in range(calls):
            rows = np.arange(i % len(y), len(y))
            try:
                theirs.partial_fit(X[rows], y[rows], classes=classes)
            except ValueError:  # e.g. float labels 0.5: 'continuous', not classes
                with pytest.raises(ValueError):
                    ours.partial_fit(X[rows], y[rows], classes=classes)
                return
            ours.partial_fit(X[rows], y[rows], classes=classes)
    assert all(np.isfinite(w).all() for w in ours.coefs_ + ours.intercepts_)
    assert set(ours.predict(X).tolist()) <= set(classes.tolist())
    if X.dtype == np.float64:
        np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X),
                                   rtol=1e-7, atol=1e-9)


@pytest.mark.slow
def test_fuzz_under_boundscheck(tmp_path):
    """The same properties with NUMBA_BOUNDSCHECK=1, in a process with a Numba cache of
    its own (so no unchecked build is reused): an out-of-bounds index in a kernel is an
    IndexError there instead of a silent read. Compiles every kernel: slow."""
    code = (
        "import sys, pytest; sys.exit(pytest.main(['-q', '-x', '-p', 'no:cacheprovider', "
        "sys.argv[1], '-k', 'tiny_problems']))"
    )
    env = child_env()
    env.update(NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=str(tmp_path), FASTBP_FUZZ_EXAMPLES="40")
    proc = subprocess.run([sys.executable, "-c", code, __file__], cwd=str(ROOT), env=env,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
