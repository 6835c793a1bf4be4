"""Validation rows: fit's X_val / y_val / sample_weight_val, validation_loss_curve_ and the
early-stopping ``scoring``. References: NumPy's loss (reference.data_loss) on the final
model's outputs, sklearn.metrics' scores, and fits without the option."""

import warnings

import numpy as np
import pytest
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import balanced_accuracy_score, mean_absolute_error
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

import fastbp
from fastbp import _threads
from conftest import TASKS, make_task
from reference import data_loss

LOSS = {"binary": "binary_log_loss", "multiclass": "log_loss", "regression-1": "squared_error",
        "regression-3": "squared_error", "poisson": "poisson"}


def model(task, **params):
    params = dict(dict(hidden_layer_sizes=(7,), max_iter=12, random_state=0,
                       learning_rate_init=0.01), **params)
    if task in ("binary", "multiclass"):
        return fastbp.MLPClassifier(**params)
    loss = "poisson" if task == "poisson" else "squared_error"
    return fastbp.MLPRegressor(loss=loss, **params)


def split(task, n=150, n_val=50):
    X, y = make_task(task, n=n + n_val)
    return X[:n], y[:n], X[n:], y[n:]


def fit(est, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kwargs)


def outputs_and_targets(est, X, y):
    """The output layer's activations and the targets as the loss takes them (NumPy)."""
    if hasattr(est, "classes_"):
        P = est.predict_proba(X)
        Y = (np.asarray(y)[:, None] == est.classes_[None, :]).astype(float)
        return (P[:, 1:], Y[:, 1:]) if len(est.classes_) == 2 else (P, Y)
    A = est.predict(X)
    return A.reshape(len(X), -1), np.asarray(y, dtype=float).reshape(len(X), -1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("task", TASKS)
def test_last_validation_loss_is_the_final_models(task, weighted, dtype):
    X, y, X_val, y_val = split(task)
    sw_val = np.random.default_rng(1).uniform(0.2, 2, len(y_val)) if weighted else None
    est = fit(model(task, alpha=0.5), X.astype(dtype), y, X_val=X_val.astype(dtype),
              y_val=y_val, sample_weight_val=sw_val)
    assert len(est.validation_loss_curve_) == est.n_iter_ == len(est.loss_curve_)
    A, Y = outputs_and_targets(est, X_val.astype(dtype), y_val)
    want = data_loss(LOSS[task], A, Y.astype(A.dtype), np.ones(len(Y)) if sw_val is None
                     else sw_val)
    np.testing.assert_allclose(est.validation_loss_curve_[-1], want,
                               rtol=1e-12 if dtype == np.float64 else 1e-5)
    # (no L2 term: alpha=0.5 would show in it)
    assert len(est.validation_scores_) == est.n_iter_
    np.testing.assert_allclose(est.validation_scores_[-1],
                               est.score(X_val.astype(dtype), y_val, sw_val), rtol=1e-12)
    assert est.best_validation_score_ is None  # (early stopping's alone)


@pytest.mark.parametrize("mode", ["never", "always"])
def test_sparse_validation_rows_and_both_thread_modes_give_the_same_curves(mode, monkeypatch):
    import scipy.sparse as sp

    monkeypatch.setattr(_threads, "MODE", mode)
    X, y, X_val, y_val = split("multiclass")
    X_val[np.abs(X_val) < 0.5] = 0.0
    params = dict(hidden_layer_sizes=(16, 16), batch_size=16)
    dense = fit(model("multiclass", **params), X, y, X_val=X_val, y_val=y_val)
    csc = fit(model("multiclass", **params), X, y, X_val=sp.csc_matrix(X_val), y_val=y_val)
    np.testing.assert_allclose(csc.validation_loss_curve_, dense.validation_loss_curve_,
                               rtol=1e-13)
    A, Y = outputs_and_targets(dense, X_val, y_val)
    np.testing.assert_allclose(dense.validation_loss_curve_[-1],
                               data_loss("log_loss", A, Y, np.ones(len(Y))), rtol=1e-12)


def test_the_validation_rows_do_not_change_the_model():
    X, y, X_val, y_val = split("multiclass")
    a = fit(model("multiclass"), X, y, X_val=X_val, y_val=y_val)
    b = fit(model("multiclass"), X, y)
    for ca, cb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_array_equal(ca, cb)
    assert b.validation_loss_curve_ is None and b.validation_scores_ is None


@pytest.mark.parametrize("task", ["multiclass", "regression-1"])
def test_early_stopping_on_X_val_trains_on_every_row_and_keeps_the_best_epoch(task):
    X, y, X_val, y_val = split(task)
    params = dict(early_stopping=True, max_iter=60, n_iter_no_change=3, tol=1e-3,
                  learning_rate_init=0.1)
    est = fit(model(task, **params), X, y, X_val=X_val, y_val=y_val)
    assert est.t_ == est.n_iter_ * len(X)  # no split: every epoch trains on all of X
    best = int(np.argmax(est.validation_scores_))
    assert est.n_iter_ < 60 and best < est.n_iter_ - 1
    assert est.best_validation_score_ == est.validation_scores_[best]
    assert est.score(X_val, y_val) == pytest.approx(est.best_validation_score_, rel=1e-12)
    # the restored weights are those of a fit stopped after the best epoch
    ref = fit(model(task, **dict(params, early_stopping=False, max_iter=best + 1)), X, y)
    for a, b in zip(est.coefs_ + est.intercepts_, ref.coefs_ + ref.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


def test_scoring_loss_restores_the_lowest_validation_loss():
    X, y, X_val, y_val = split("multiclass")
    est = fit(model("multiclass", early_stopping=True, scoring="loss", max_iter=80,
                    n_iter_no_change=3, learning_rate_init=0.1), X, y, X_val=X_val, y_val=y_val)
    np.testing.assert_array_equal(est.validation_scores_, -np.array(est.validation_loss_curve_))
    lowest = min(est.validation_loss_curve_)
    assert np.argmin(est.validation_loss_curve_) < est.n_iter_ - 1  # it did turn back up
    assert est.best_validation_score_ == -lowest
    A, Y = outputs_and_targets(est, X_val, y_val)
    np.testing.assert_allclose(data_loss("log_loss", A, Y, np.ones(len(Y))), lowest,
                               rtol=1e-12)


@pytest.mark.parametrize("task,scoring,metric", [
    ("multiclass", "balanced_accuracy", balanced_accuracy_score),
    ("regression-1", "neg_mean_absolute_error", lambda *a, **k: -mean_absolute_error(*a, **k)),
])
@pytest.mark.parametrize("early_stopping", [False, True])
def test_a_scorer_name_scores_as_sklearn_metrics(task, scoring, metric, early_stopping):
    X, y, X_val, y_val = split(task)
    sw_val = np.random.default_rng(2).uniform(0.5, 2, len(y_val))
    est = fit(model(task, scoring=scoring, early_stopping=early_stopping, max_iter=15),
              X, y, X_val=X_val, y_val=y_val, sample_weight_val=sw_val)
    final = est.best_validation_score_ if early_stopping else est.validation_scores_[-1]
    np.testing.assert_allclose(final, metric(y_val, est.predict(X_val), sample_weight=sw_val),
                               rtol=1e-12)


def test_early_stopping_split_records_the_validation_loss_and_keeps_sklearns_scores():
    from sklearn.neural_network import MLPClassifier

    X, y = make_task("multiclass", n=200)
    params = dict(hidden_layer_sizes=(7,), max_iter=20, random_state=0, early_stopping=True)
    a = fit(fastbp.MLPClassifier(**params), X, y)
    b = fit(MLPClassifier(**params), X, y)
    np.testing.assert_array_equal(a.validation_scores_, b.validation_scores_)
    assert len(a.validation_loss_curve_) == a.n_iter_


def test_warm_start_continues_the_validation_curves():
    X, y, X_val, y_val = split("multiclass")
    est = fit(model("multiclass", warm_start=True, max_iter=4), X, y, X_val=X_val, y_val=y_val)
    fit(est, X, y, X_val=X_val, y_val=y_val)
    assert len(est.validation_loss_curve_) == len(est.validation_scores_) == 8


def test_metadata_routing_passes_the_validation_rows_through_a_pipeline():
    X, y, X_val, y_val = split("multiclass")
    with sklearn.config_context(enable_metadata_routing=True):
        est = model("multiclass").set_fit_request(X_val=True, y_val=True)
        pipe = make_pipeline(StandardScaler(), est, transform_input=["X_val"])
        fit(pipe, X, y, X_val=X_val, y_val=y_val)
    scaler = StandardScaler().fit(X)
    ref = fit(model("multiclass"), scaler.transform(X), y, X_val=scaler.transform(X_val),
              y_val=y_val)
    np.testing.assert_allclose(pipe[-1].validation_loss_curve_, ref.validation_loss_curve_,
                               rtol=1e-13)


BAD = [
    (dict(X_val=True), "X_val is provided, but y_val"),
    (dict(y_val=True), "y_val is provided, but X_val"),
    (dict(sample_weight_val=True), "sample_weight_val is provided, but X_val"),
    (dict(X_val=True, y_val="unknown"), "y_val has classes not in"),
    (dict(X_val="few features", y_val=True), "features"),
    (dict(X_val=True, y_val="short"), "inconsistent numbers of samples"),
    (dict(X_val=True, y_val=True, sample_weight_val="short"), "sample_weight"),
    (dict(X_val=True, y_val=True, solver="lbfgs"), "solver='lbfgs' has no epochs"),
]


@pytest.mark.parametrize("bad,message", BAD, ids=[m for _, m in BAD])
def test_bad_validation_rows_get_a_clear_error(bad, message):
    X, y, X_val, y_val = split("multiclass")
    values = {"X_val": X_val[:, :3] if bad.get("X_val") == "few features" else X_val,
              "y_val": {"unknown": np.where(y_val == y_val[0], 99, y_val),
                        "short": y_val[:-1]}.get(bad.get("y_val"), y_val),
              "sample_weight_val": np.ones(len(y_val) - 1)}
    kwargs = {k: values[k] for k in ("X_val", "y_val", "sample_weight_val") if k in bad}
    est = model("multiclass", solver=bad.get("solver", "adam"))
    with pytest.raises(ValueError, match=message):
        fit(est, X, y, **kwargs)


def test_regressor_y_val_must_have_the_models_outputs():
    X, y, X_val, y_val = split("regression-3")
    with pytest.raises(ValueError, match="y_val has 2 outputs; the model has 3"):
        fit(model("regression-3"), X, y, X_val=X_val, y_val=y_val[:, :2])


@pytest.mark.parametrize("scoring", ["nonsense", 3])
def test_scoring_is_validated(scoring):
    X, y = make_task("binary")
    with pytest.raises(InvalidParameterError, match="scoring"):
        model("binary", scoring=scoring).fit(X, y)


def test_one_class_early_stopping_scores_as_scikit_learn():
    """A fit that sees one class predicts it whatever its output: accuracy 1, as
    scikit-learn's. A score read from the output's 0.5 threshold gave 0 where the output
    stays above it (found by the differential test, configuration 7762 of seed
    20261126); a seed whose network outputs more than 0.5 everywhere is searched for."""
    from sklearn import neural_network as sk

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((10, 5)), np.full(10, -1)
    for seed in range(50):
        params = dict(hidden_layer_sizes=(4, 5), solver="sgd", batch_size=4, max_iter=2,
                      learning_rate_init=1e-6, early_stopping=True,
                      validation_fraction=0.3, n_iter_no_change=2, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            ours = fastbp.MLPClassifier(**params).fit(X, y)
            theirs = sk.MLPClassifier(**params).fit(X, y)
        if (ours._forward_pass_fast(X) > 0.5).all():
            break
    else:
        raise AssertionError("no seed gives outputs above 0.5")
    assert ours.validation_scores_ == theirs.validation_scores_ == [1.0, 1.0]
    assert ours.best_validation_score_ == theirs.best_validation_score_
