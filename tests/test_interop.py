"""Weights in and out: coefs_/intercepts_ set by hand, to_sklearn and from_sklearn, each
against scikit-learn doing the same thing."""

import copy
import warnings

import numpy as np
import pytest
from sklearn import neural_network as sk
from sklearn.exceptions import ConvergenceWarning

import fastbp
from conftest import assert_close, assert_same_model, estimators, make_task

# ---- weights set by hand --------------------------------------------------------------


def set_worked_example(mlp, everything=True):
    """scikit-learn's test_fit (sklearn/neural_network/tests/test_mlp.py) idiom: the
    weights of its worked example, and (``everything``) the attributes it sets beside
    them."""
    mlp.coefs_ = [0] * 2
    mlp.intercepts_ = [0] * 2
    mlp.coefs_[0] = np.array([[0.1, 0.2], [0.3, 0.1], [0.5, 0]])
    mlp.coefs_[1] = np.array([[0.1], [0.2]])
    mlp.intercepts_[0] = np.array([0.1, 0.1])
    mlp.intercepts_[1] = np.array([1.0])
    if everything:
        mlp.n_outputs_ = 1
        mlp.n_features_in_ = 3
        mlp.n_iter_ = 0
        mlp.learning_rate_ = 0.1
        mlp.n_layers_ = 3
        mlp._coef_grads = [0] * (mlp.n_layers_ - 1)
        mlp._intercept_grads = [0] * (mlp.n_layers_ - 1)
        mlp.out_activation_ = "logistic"
        mlp.t_ = 0
        mlp.best_loss_ = np.inf
        mlp.loss_curve_ = []
        mlp._no_improvement_count = 0
        mlp._intercept_velocity = [np.zeros_like(b) for b in mlp.intercepts_]
        mlp._coef_velocity = [np.zeros_like(W) for W in mlp.coefs_]
    return mlp


WORKED = dict(solver="sgd", learning_rate_init=0.1, alpha=0.1, activation="logistic",
              random_state=1, max_iter=1, hidden_layer_sizes=2, momentum=0)


def assert_same_weights(a, b):
    for i, (Wa, Wb) in enumerate(zip(a.coefs_, b.coefs_)):
        assert_close(Wa, Wb, f"coefs_[{i}]")
    for i, (ba, bb) in enumerate(zip(a.intercepts_, b.intercepts_)):
        assert_close(ba, bb, f"intercepts_[{i}]")


@pytest.mark.parametrize("everything", [True, False], ids=["as-sklearn", "weights-only"])
def test_worked_example(everything):
    """scikit-learn's test_fit, run side by side: fastbp's one partial_fit step from the
    hand-set weights is scikit-learn's (it needs every attribute set; fastbp the weights
    alone)."""
    X = np.array([[0.6, 0.8, 0.7]])
    y = np.array([0])
    ref = set_worked_example(sk.MLPClassifier(**WORKED)).partial_fit(X, y, classes=[0, 1])
    got = set_worked_example(fastbp.MLPClassifier(**WORKED), everything)
    got.partial_fit(X, y, classes=[0, 1])
    assert_same_weights(got, ref)
    assert_close(got.predict_proba(X), ref.predict_proba(X), "predict_proba")
    assert got.t_ == ref.t_ and got.n_iter_ == ref.n_iter_
    assert_close(got.loss_curve_, ref.loss_curve_, "loss_curve_")
    assert got.coefs_[0].base is got._flat  # the weights are views again


def hand_set(est, ref_fit, everything):
    """``est`` given copies of ``ref_fit``'s weights by hand, and (``everything``) the
    attributes scikit-learn needs beside them, at their initial values (as its test_fit
    sets them)."""
    est.coefs_ = [W.copy() for W in ref_fit.coefs_]
    est.intercepts_ = [b.copy() for b in ref_fit.intercepts_]
    if everything:
        for name in ("n_outputs_", "n_layers_", "out_activation_"):
            setattr(est, name, copy.deepcopy(getattr(ref_fit, name)))
        est.t_ = est.n_iter_ = est._no_improvement_count = 0
        est.best_loss_ = np.inf
        est.loss_curve_ = []
    return est


@pytest.mark.parametrize("task", ["multiclass", "regression-3", "poisson"])
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_warm_start_from_hand_set_weights(task, solver):
    """A warm-start fit from weights set by hand trains as scikit-learn's from the same."""
    X, y = make_task(task)
    params = dict(hidden_layer_sizes=(5, 4), max_iter=8, random_state=3, solver=solver,
                  warm_start=True, learning_rate_init=0.01)
    donor = estimators(task, **{**params, "warm_start": False, "random_state": 7})[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        donor.fit(X, y)
        got, ref = estimators(task, **params)
        hand_set(got, donor, everything=False)
        hand_set(ref, donor, everything=True)
        got.fit(X, y)
        ref.fit(X, y)
    assert_same_weights(got, ref)
    if solver != "lbfgs":
        assert_same_model(got, ref, X)
    else:
        assert_close(got.predict(X), ref.predict(X), "predict")


def test_hand_set_float32_weights_train_in_float32():
    X, y = make_task("regression-1")
    est = fastbp.MLPRegressor(hidden_layer_sizes=(4,), solver="sgd", random_state=0)
    est.coefs_ = [np.ones((6, 4), np.float32), np.ones((4, 1), np.float32)]
    est.intercepts_ = [np.zeros(4, np.float32), np.zeros(1, np.float32)]
    est.partial_fit(X, y)
    assert est._flat.dtype == np.float32
    assert est.predict(X.astype(np.float32)).dtype == np.float32


def test_predict_from_hand_set_weights():
    """Weights set by hand, with the attributes scikit-learn's predict needs: the same
    predictions as scikit-learn's, before any fit."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 3))
    got = set_worked_example(fastbp.MLPRegressor(hidden_layer_sizes=2))
    ref = set_worked_example(sk.MLPRegressor(hidden_layer_sizes=2))
    for est in (got, ref):
        est.out_activation_ = "identity"
    assert_close(got.predict(X), ref.predict(X), "predict")


BAD_WEIGHTS = {
    "second layer's rows": ([np.ones((3, 2)), np.ones((3, 1))], [np.ones(2), np.ones(1)]),
    "intercept's length": ([np.ones((3, 2)), np.ones((2, 1))], [np.ones(3), np.ones(1)]),
    "intercept's dims": ([np.ones((3, 2)), np.ones((2, 1))], [np.ones((1, 2)), np.ones(1)]),
    "one intercept short": ([np.ones((3, 2)), np.ones((2, 1))], [np.ones(2)]),
    "not lists": (np.ones((3, 2)), np.ones(2)),
    "a scalar": ([0, 0], [0, 0]),
    "strings": ([np.full((3, 2), "a"), np.ones((2, 1))], [np.ones(2), np.ones(1)]),
    "input width": ([np.ones((4, 2)), np.ones((2, 1))], [np.ones(2), np.ones(1)]),
    "hidden width": ([np.ones((3, 3)), np.ones((3, 1))], [np.ones(3), np.ones(1)]),
}


@pytest.mark.parametrize("case", list(BAD_WEIGHTS))
def test_wrong_shapes_are_a_value_error(case):
    coefs, intercepts = BAD_WEIGHTS[case]
    X = np.array([[0.6, 0.8, 0.7], [0.1, 0.2, 0.3]])
    est = fastbp.MLPClassifier(**WORKED)
    est.coefs_, est.intercepts_ = coefs, intercepts
    with pytest.raises(ValueError, match="coefs_|intercepts_|layer sizes"):
        est.partial_fit(X, [0, 1], classes=[0, 1])


def test_wrong_out_activation_is_a_value_error():
    X = np.array([[0.6, 0.8, 0.7], [0.1, 0.2, 0.3]])
    est = set_worked_example(fastbp.MLPClassifier(**WORKED))
    est.out_activation_ = "softmax"  # a binary problem's output is logistic
    with pytest.raises(ValueError, match="out_activation_"):
        est.partial_fit(X, [0, 1], classes=[0, 1])


# ---- to_sklearn and from_sklearn --------------------------------------------------------

TASKS = ["binary", "multiclass", "multilabel", "regression-1", "regression-3", "poisson"]
SOLVERS = {
    "adam": dict(solver="adam", learning_rate_init=0.01),
    "sgd": dict(solver="sgd", learning_rate_init=0.05),
    "lbfgs": dict(solver="lbfgs"),
    "early-stopping": dict(solver="adam", learning_rate_init=0.01, early_stopping=True,
                           n_iter_no_change=2),
}


def task_data(task):
    if task == "multilabel":
        X, y = make_task("regression-3")
        return X, (y > 0).astype(int)
    return make_task(task)


def pair(task, solver, dtype=np.float64):
    """A fitted (fastbp, scikit-learn) pair of the same parameters, and the data."""
    X, y = task_data(task)
    params = dict(hidden_layer_sizes=(6, 4), max_iter=15, random_state=0,
                  **SOLVERS[solver])
    fb, sk_est = estimators("binary" if task == "multilabel" else task, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fb.fit(X.astype(dtype), y)
        sk_est.fit(X.astype(dtype), y)
    return fb, sk_est, X.astype(dtype), y


def assert_same_predictions(a, b, X, tol=1e-12):
    if hasattr(b, "predict_proba"):
        np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=tol,
                                   atol=tol)
        np.testing.assert_array_equal(a.predict(X), b.predict(X))
    else:
        want = b.predict(X)
        np.testing.assert_allclose(a.predict(X), want, rtol=tol,
                                   atol=tol * np.abs(want).max())


def assert_copies(a, b):
    for x, y in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)
        assert not np.shares_memory(x, y)


def warm_refit(est, X, y):
    """A warm-start fit of a copy of ``est``."""
    est = copy.deepcopy(est).set_params(warm_start=True, max_iter=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


def fresh_optimizer_step(est, X, y):
    """One partial_fit with a new optimizer (what a converted model's next partial_fit
    does: the optimizer's state is not carried over)."""
    est = copy.deepcopy(est)
    est.__dict__.pop("_optimizer", None)
    kwargs = {"classes": est.classes_} if hasattr(est, "classes_") else {}
    return est.partial_fit(X, y, **kwargs)


@pytest.mark.parametrize("solver", list(SOLVERS))
@pytest.mark.parametrize("task", TASKS)
def test_to_sklearn(task, solver):
    fb, _, X, y = pair(task, solver)
    out = fb.to_sklearn()
    assert type(out) is (sk.MLPClassifier if hasattr(fb, "classes_") else sk.MLPRegressor)
    assert out.get_params() == {k: v for k, v in fb.get_params().items()
                                if k in out.get_params()}
    assert_copies(out, fb)
    assert_same_predictions(out, fb, X)
    if solver != "lbfgs":
        assert_same_model(warm_refit(out, X, y), warm_refit(fb, X, y), X)
    else:
        assert_same_predictions(warm_refit(out, X, y), warm_refit(fb, X, y),
                                X, tol=1e-6)
    if solver in ("adam", "sgd"):
        assert_same_model(fresh_optimizer_step(out, X, y), fresh_optimizer_step(fb, X, y), X)


@pytest.mark.parametrize("solver", list(SOLVERS))
@pytest.mark.parametrize("task", TASKS)
def test_from_sklearn(task, solver):
    _, sk_est, X, y = pair(task, solver)
    cls = fastbp.MLPClassifier if hasattr(sk_est, "classes_") else fastbp.MLPRegressor
    fb = cls.from_sklearn(sk_est)
    assert type(fb) is cls
    assert {k: v for k, v in fb.get_params().items() if k in sk_est.get_params()} == \
        sk_est.get_params()
    assert_copies(fb, sk_est)
    assert fb.coefs_[0].base is fb._flat
    assert_same_predictions(fb, sk_est, X)
    back = fb.to_sklearn()
    assert_same_predictions(back, sk_est, X)
    if solver != "lbfgs":
        assert_same_model(warm_refit(fb, X, y), warm_refit(sk_est, X, y), X)
    if solver in ("adam", "sgd"):
        assert_same_model(fresh_optimizer_step(fb, X, y),
                          fresh_optimizer_step(sk_est, X, y), X)


def test_float32_round_trip():
    fb, sk_est, X, y = pair("multiclass", "adam", np.float32)
    out = fb.to_sklearn()
    assert out.coefs_[0].dtype == np.float32
    assert_same_predictions(out, fb, X, tol=1e-5)
    back = fastbp.MLPClassifier.from_sklearn(sk_est)
    assert back._flat.dtype == np.float32
    assert_same_predictions(back, sk_est, X, tol=1e-5)


def test_to_sklearn_refuses_what_sklearn_lacks(monkeypatch):
    fb, _, X, y = pair("regression-1", "adam")
    from fastbp import _export

    entry = _export.ACTIVATIONS["relu"]
    monkeypatch.setitem(_export.ACTIVATIONS, "relu", entry._replace(sklearn=False))
    with pytest.raises(ValueError, match="activation='relu'"):
        fb.to_sklearn()


class WithOwnOption(fastbp.MLPRegressor):
    """An estimator with an option of fastbp's own (scikit-learn has no ``noise``)."""

    def __init__(self, hidden_layer_sizes=(100,), *, max_iter=200, random_state=None,
                 noise=0.0):
        super().__init__(hidden_layer_sizes=hidden_layer_sizes, max_iter=max_iter,
                         random_state=random_state)
        self.noise = noise


def test_to_sklearn_refuses_own_options_away_from_default():
    X, y = make_task("regression-1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = WithOwnOption((4,), max_iter=3, random_state=0, noise=0.5).fit(X, y)
    with pytest.raises(ValueError, match="noise=0.5"):
        est.to_sklearn()
    est.set_params(noise=0.0)
    assert_same_predictions(est.to_sklearn(), est, X)


def test_from_sklearn_errors():
    from sklearn.exceptions import NotFittedError

    _, sk_reg, _, _ = pair("regression-1", "adam")
    with pytest.raises(TypeError, match="MLPClassifier"):
        fastbp.MLPClassifier.from_sklearn(sk_reg)
    with pytest.raises(NotFittedError):
        fastbp.MLPRegressor.from_sklearn(sk.MLPRegressor())
    with pytest.raises(NotFittedError):
        fastbp.MLPRegressor().to_sklearn()
