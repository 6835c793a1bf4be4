"""Numerical faults: large logits, diverging runs, overflow. fastbp must end as
scikit-learn 1.9 ends (its non-finite-weights ValueError, or NaN scores it reports), and
never return from fit with NaN or inf weights kept silently."""

import warnings

import numpy as np
import pytest
from numba.core.registry import CPUDispatcher
from sklearn import neural_network as sk
from sklearn.datasets import load_digits, make_regression

import fastbp
from fastbp import _kernels

NON_FINITE = "Solver produced non-finite parameter weights"


def kernels():
    return {name: obj for name, obj in vars(_kernels).items() if isinstance(obj, CPUDispatcher)}


def test_no_kernel_assumes_finite_math():
    """fastmath 'nnan'/'ninf' (or fastmath=True, which implies them) would let LLVM fold
    away the NaN/inf a diverging fit produces: every kernel must keep them."""
    assert kernels(), "no compiled kernels found"
    for name, kernel in kernels().items():
        flags = kernel.targetoptions.get("fastmath", False)
        assert flags is not True, name
        assert not {"nnan", "ninf", "fast"} & set(flags or ()), (name, flags)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:300] / 16.0, y[:300]


def fit_quietly(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y)


def losses(est):
    return np.asarray(est.loss_curve_ if est.solver != "lbfgs" else [est.loss_])


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
@pytest.mark.parametrize("n_classes", [2, 10])
@pytest.mark.parametrize("scale", [1e3, 1e6])
def test_large_logits_give_finite_loss_as_scikit_learn(digits, scale, n_classes, solver):
    """Inputs scaled so that the output logits are in the thousands to millions: softmax
    and logistic must not overflow, the log-loss is clipped as scikit-learn clips it, and
    the float64 loss curve is scikit-learn's."""
    X, y = digits
    X = X * scale
    y = y % n_classes
    params = dict(hidden_layer_sizes=(16,), activation="identity", solver=solver,
                  max_iter=5, random_state=0)
    ours = fit_quietly(fastbp.MLPClassifier(**params), X, y)
    theirs = fit_quietly(sk.MLPClassifier(**params), X, y)
    logits = np.abs(X @ ours.coefs_[0] @ ours.coefs_[1]).max()
    assert logits > 710, "exp(710) overflows float64: the scenario needs larger logits"
    assert np.isfinite(losses(ours)).all()
    np.testing.assert_allclose(losses(ours), losses(theirs), rtol=1e-9)
    P = ours.predict_proba(X)
    assert np.isfinite(P).all()
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(P, theirs.predict_proba(X), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("n_classes", [2, 10])
def test_large_logits_float32(digits, n_classes):
    """float32: logits far beyond exp's float32 range (88), loss and probabilities finite."""
    X, y = digits
    X = (X * 1e3).astype(np.float32)
    params = dict(hidden_layer_sizes=(16,), activation="identity", max_iter=5, random_state=0)
    ours = fit_quietly(fastbp.MLPClassifier(**params), X, y % n_classes)
    logits = np.abs(X @ ours.coefs_[0] @ ours.coefs_[1]).max()
    assert logits > 89, "exp(89) overflows float32: the scenario needs larger logits"
    assert np.isfinite(ours.loss_curve_).all()
    P = ours.predict_proba(X)
    assert P.dtype == np.float32 and np.isfinite(P).all()
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-5)


def diverging_task(task):
    if task == "regression":
        X, y = make_regression(200, 5, noise=1.0, random_state=0)
        return X, y, fastbp.MLPRegressor, sk.MLPRegressor
    X, y = load_digits(return_X_y=True)
    return X[:300], y[:300], fastbp.MLPClassifier, sk.MLPClassifier


def run(est, X, y):
    try:
        fit_quietly(est, X, y)
    except ValueError as exc:
        return exc
    return None


# relu and identity hidden layers only: with no exp/tanh in the hidden layers, fastbp's
# float64 arithmetic is scikit-learn's to the last bit often enough that a run that
# diverges over many epochs ends identically (with tanh, last-bit differences in libm's
# tanh are amplified by the divergence itself and runs end differently, as rounding).
DIVERGING = [
    (task, activation, solver, lr, es)
    for task in ("regression", "digits")
    for activation in ("relu", "identity")
    for solver in ("sgd", "adam")
    for lr in (1.0, 10.0)
    for es in (False, True)
]


@pytest.mark.parametrize("task,activation,solver,lr,early_stopping", DIVERGING)
def test_diverging_run_ends_as_scikit_learn(task, activation, solver, lr, early_stopping):
    X, y, ours_cls, theirs_cls = diverging_task(task)
    params = dict(hidden_layer_sizes=(8,), activation=activation, solver=solver,
                  learning_rate_init=lr, max_iter=30, random_state=0,
                  early_stopping=early_stopping)
    ours, theirs = ours_cls(**params), theirs_cls(**params)
    err_theirs, err_ours = run(theirs, X, y), run(ours, X, y)
    if err_theirs is not None:
        assert err_ours is not None, "scikit-learn raises; fastbp returned"
        assert str(err_ours) == str(err_theirs)
        assert NON_FINITE in str(err_ours)
        return
    assert err_ours is None, f"fastbp raises {err_ours!r}; scikit-learn returned"
    # never NaN weights kept silently
    assert all(np.isfinite(w).all() for w in ours.coefs_ + ours.intercepts_)
    assert ours.n_iter_ == theirs.n_iter_
    np.testing.assert_array_equal(np.isnan(ours.loss_curve_), np.isnan(theirs.loss_curve_))
    if early_stopping:
        np.testing.assert_array_equal(np.isnan(ours.validation_scores_),
                                      np.isnan(theirs.validation_scores_))
        assert np.isnan(ours.best_validation_score_) == np.isnan(theirs.best_validation_score_)


def test_nan_validation_scores_are_reported_and_best_weights_kept():
    """The early-stopping case scikit-learn survives: the loss and validation score turn
    NaN, the weights of the best epoch are restored, and they are finite."""
    X, y, ours_cls, theirs_cls = diverging_task("regression")
    params = dict(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=1.0,
                  max_iter=30, random_state=0, early_stopping=True)
    ours = fit_quietly(ours_cls(**params), X, y)
    theirs = fit_quietly(theirs_cls(**params), X, y)
    assert np.isnan(theirs.validation_scores_[-1])  # the scenario is the one intended
    assert np.isnan(ours.validation_scores_[-1]) and np.isnan(ours.loss_curve_[-1])
    assert np.isfinite(ours.predict(X)).all()
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kind", ["regression", "digits"])
def test_diverging_partial_fit_raises_on_the_same_call_as_scikit_learn(kind):
    X, y, ours_cls, theirs_cls = diverging_task(kind)
    params = dict(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=10.0,
                  random_state=0)
    kw = dict(classes=np.unique(y)) if kind == "digits" else {}

    def calls_until_error(est):
        for i in range(30):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    est.partial_fit(X, y, **kw)
            except ValueError as exc:
                assert NON_FINITE in str(exc)
                return i
        return None

    want = calls_until_error(theirs_cls(**params))
    assert calls_until_error(ours_cls(**params)) == want


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
@pytest.mark.parametrize("kind", ["regression", "digits"])
@pytest.mark.parametrize("scale", [1e10, 1e19, 1e30])
def test_float32_overflow_is_never_silent(kind, scale, solver):
    """float32 overflows near 3.4e38: scikit-learn's regressor silently mixes in float64
    there (its y is float64), so the outcome is not compared with it; fastbp trains in
    float32 and must either raise the non-finite-weights ValueError or return finite
    weights."""
    X, y, ours_cls, _ = diverging_task(kind)
    X = (X / np.abs(X).max() * scale).astype(np.float32)
    est = ours_cls(hidden_layer_sizes=(8,), solver=solver, max_iter=10, random_state=0)
    err = run(est, X, y)
    if err is not None:
        assert NON_FINITE in str(err)
    else:
        assert all(w.dtype == np.float32 for w in est.coefs_)
        assert all(np.isfinite(w).all() for w in est.coefs_ + est.intercepts_)
