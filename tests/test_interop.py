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
