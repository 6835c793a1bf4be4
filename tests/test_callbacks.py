"""scikit-learn's callbacks (sklearn.callback) on fastbp's fits, and lbfgs's verbose lines.
References: fits stopped after k epochs or iterations (max_iter=k), sklearn.metrics, and the
estimators' own loss_."""

import re
import warnings

import numpy as np
import pytest
from sklearn.callback import ProgressBar, ScoringMonitor
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import fastbp
from fastbp import _callbacks, _threads
from conftest import make_task


class Recorder:
    """A FitCallback that keeps every task's name, id, weights, and asks to stop at
    ``stop_at`` (task name, id)."""

    def __init__(self, stop_at=None):
        self.tasks, self.stop_at = [], stop_at

    def setup(self, estimator, context):
        self.tasks.append("setup")

    def teardown(self, estimator, context):
        self.tasks.append("teardown")

    def on_fit_task_begin(self, estimator, context, *, fitted_estimator=None):
        self.tasks.append(("begin", context.task_name, context.task_id))

    def on_fit_task_end(self, estimator, context, *, X=None, y=None, metadata=None,
                        fitted_estimator=None):
        self.tasks.append(("end", context.task_name, context.task_id))
        if context.task_name in ("epoch", "lbfgs-iter") and fitted_estimator is not None:
            self.weights = getattr(self, "weights", [])
            self.weights.append([c.copy() for c in fitted_estimator.coefs_])
            self.fitted = getattr(self, "fitted", []) + [(fitted_estimator, X, y, metadata)]
        return (context.task_name, context.task_id) == self.stop_at


def quiet_fit(est, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kwargs)


def classifier(**params):
    return fastbp.MLPClassifier(**dict(dict(hidden_layer_sizes=(16, 16), max_iter=6,
                                            random_state=0, batch_size=16), **params))


@pytest.mark.parametrize("mode", ["never", "always"])
def test_each_epochs_fitted_estimator_predicts_with_that_epochs_weights(mode, monkeypatch):
    """In both thread modes: epoch k's fitted_estimator is the model of max_iter=k."""
    monkeypatch.setattr(_threads, "MODE", mode)
    X, y = make_task("multiclass", n=120)
    rec = Recorder()
    est = quiet_fit(classifier().set_callbacks(rec), X, y)
    assert len(rec.fitted) == est.n_iter_ == 6
    for k, (fitted, X_task, y_task, metadata) in enumerate(rec.fitted, start=1):
        ref = quiet_fit(classifier(max_iter=k), X, y)
        np.testing.assert_array_equal(fitted.predict_proba(X), ref.predict_proba(X))
        np.testing.assert_array_equal(y_task, y)
        assert X_task is not None and metadata is None
    # the task tree: the fit, and one task per epoch inside it
    assert rec.tasks == (["setup", ("begin", "fit", 0)]
                         + [(s, "epoch", i) for i in range(6) for s in ("begin", "end")]
                         + [("end", "fit", 0), "teardown"])


def test_scoring_monitor_sees_every_epoch_with_distinct_weights():
    X, y = make_task("multiclass", n=120)
    monitor, rec = ScoringMonitor(scoring="accuracy"), Recorder()
    est = quiet_fit(classifier(max_iter=5).set_callbacks(monitor, rec), X, y)
    rows = [r for r in monitor.get_logs().data if r["task_name"] == "epoch"]
    assert len(rows) == est.n_iter_
    for row, (fitted, *_ ) in zip(rows, rec.fitted):
        assert row["accuracy"] == accuracy_score(y, fitted.predict(X))
    flat = [np.concatenate([c.ravel() for c in w]) for w in rec.weights]
    assert all(not np.array_equal(a, b) for i, a in enumerate(flat) for b in flat[:i])
    np.testing.assert_array_equal(flat[-1], np.concatenate([c.ravel() for c in est.coefs_]))


def test_a_stop_request_ends_the_fit_after_that_epoch():
    X, y = make_task("multiclass", n=120)
    rec = Recorder(stop_at=("epoch", 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # a requested stop: no warning
        est = classifier(max_iter=50).set_callbacks(rec).fit(X, y)
    assert est.n_iter_ == 3
    ref = quiet_fit(classifier(max_iter=3), X, y)
    np.testing.assert_array_equal(est.predict_proba(X), ref.predict_proba(X))


def test_lbfgs_reports_one_task_per_iteration_and_stops_on_request():
    X, y = make_task("multiclass", n=120)
    params = dict(solver="lbfgs", hidden_layer_sizes=(5,), random_state=0)
    rec = Recorder()
    est = quiet_fit(fastbp.MLPClassifier(max_iter=8, **params).set_callbacks(rec), X, y)
    iters = [t for t in rec.tasks if t[0:2] == ("end", "lbfgs-iter")]
    assert len(rec.fitted) == est.n_iter_ == 8
    assert len(iters) == est.n_iter_ + 1  # as LogisticRegression: a last, empty task
    ref = quiet_fit(fastbp.MLPClassifier(max_iter=8, **params), X, y)
    np.testing.assert_array_equal(rec.fitted[-1][0].predict_proba(X), ref.predict_proba(X))

    rec = Recorder(stop_at=("lbfgs-iter", 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est = fastbp.MLPClassifier(max_iter=50, **params).set_callbacks(rec).fit(X, y)
    assert est.n_iter_ == 4
    np.testing.assert_array_equal(est.coefs_[0], rec.weights[-1][0])


def test_partial_fit_reports_one_task():
    X, y = make_task("binary", n=60)
    rec = Recorder()
    est = classifier().set_callbacks(rec)
    est.partial_fit(X, y, classes=np.unique(y))
    assert [t for t in rec.tasks if t[1:2] == ("epoch",)] == [("begin", "epoch", 0),
                                                               ("end", "epoch", 0)]


def test_without_callbacks_no_epoch_task_is_made(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("an epoch task without callbacks")

    monkeypatch.setattr(_callbacks, "EpochTasks", refuse)
    monkeypatch.setattr(_callbacks, "LbfgsIterations", refuse)
    X, y = make_task("binary", n=60)
    quiet_fit(classifier(), X, y)
    quiet_fit(classifier(solver="lbfgs"), X, y)


def test_progress_bar_of_one_fit(capsys):
    X, y = make_task("binary", n=60)
    est = quiet_fit(classifier().set_callbacks(ProgressBar()), X, y)
    ref = quiet_fit(classifier(), X, y)
    np.testing.assert_array_equal(est.predict_proba(X), ref.predict_proba(X))
    assert "MLPClassifier - fit" in capsys.readouterr().out


def test_progress_bar_under_a_grid_search_in_processes(capsys):
    """ProgressBar over GridSearchCV(n_jobs=2) of a Pipeline: it runs, and the search
    finds what it finds without it."""
    X, y = make_task("multiclass", n=120)
    pipe = make_pipeline(StandardScaler(), classifier(max_iter=4, hidden_layer_sizes=(6,)))
    grid = {"mlpclassifier__alpha": [1e-4, 1.0]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = GridSearchCV(pipe, grid, cv=2, n_jobs=2).set_callbacks(
            ProgressBar(max_propagation_depth=None)).fit(X, y)
        b = GridSearchCV(pipe, grid, cv=2, n_jobs=2).fit(X, y)
    assert a.best_params_ == b.best_params_
    np.testing.assert_array_equal(a.cv_results_["mean_test_score"],
                                  b.cv_results_["mean_test_score"])
    assert "MLPClassifier - fit" in capsys.readouterr().out


def test_lbfgs_verbose_prints_the_loss_of_each_iteration(capsys):
    X, y = make_task("multiclass", n=120)
    est = quiet_fit(fastbp.MLPClassifier(solver="lbfgs", hidden_layer_sizes=(5,), max_iter=9,
                                         random_state=0, verbose=True), X, y)
    lines = re.findall(r"Iteration (\d+), loss = ([0-9.]+)", capsys.readouterr().out)
    assert [int(k) for k, _ in lines] == list(range(1, est.n_iter_ + 1))
    assert float(lines[-1][1]) == pytest.approx(est.loss_, abs=1e-8)
