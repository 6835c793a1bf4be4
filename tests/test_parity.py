"""Same model as scikit-learn 1.9: float64, same random_state, to 1e-9 relative.

Grid: every activation x {adam, sgd+Nesterov, sgd} x {binary, multiclass, regression
with 1 and 3 outputs, Poisson regression} x every learning_rate schedule, with alpha > 0,
a batch size that leaves a short last batch (90 rows in batches of 40: 40, 40, 10), and
tol / n_iter_no_change set so that the stopping rule (and the adaptive schedule's
division by 5) fires within max_iter in many of the cases.
"""

import warnings

import numpy as np
import pytest
from sklearn import neural_network as sk

import fastbp

RTOL = 1e-9
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
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * scale, err_msg=what)


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


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("solver", list(SOLVERS))
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_same_model_as_scikit_learn(activation, solver, task, schedule):
    X, y = make_task(task)
    params = dict(
        hidden_layer_sizes=(7, 5),
        activation=activation,
        alpha=1e-3,
        batch_size=40,
        learning_rate=schedule,
        max_iter=12,
        tol=1e-3,
        n_iter_no_change=2,
        random_state=0,
        **SOLVERS[solver],
    )
    if task == "poisson":
        params["learning_rate_init"] /= 10
    a, b = estimators(task, **params)
    with warnings.catch_warnings(record=True) as wa:
        warnings.simplefilter("always")
        a.fit(X, y)
    with warnings.catch_warnings(record=True) as wb:
        warnings.simplefilter("always")
        b.fit(X, y)
    assert [str(w.message) for w in wa] == [str(w.message) for w in wb]
    assert [w.category for w in wa] == [w.category for w in wb]
    assert_same_model(a, b, X)


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("batch_size", ["auto", 1, 500])
def test_batching_and_shuffle_match(shuffle, batch_size):
    """batch_size 'auto' (min(200, n)), 1, and larger than n (clipped, with the warning)."""
    X, y = make_task("multiclass", n=250)
    params = dict(hidden_layer_sizes=(6,), batch_size=batch_size, shuffle=shuffle,
                  max_iter=3, random_state=3)
    a, b = estimators("multiclass", **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a.fit(X, y)
        b.fit(X, y)
    assert_same_model(a, b, X)


def test_default_parameters_on_digits():
    """scikit-learn's defaults (relu, adam, (100,), batch 200) on real data."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X[:600] / 16.0
    y = y[:600]
    a, b = fastbp.MLPClassifier(max_iter=5, random_state=0), sk.MLPClassifier(max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a.fit(X, y)
        b.fit(X, y)
    assert_same_model(a, b, X)
