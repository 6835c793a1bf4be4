"""LossCurveDisplay: the lines drawn are the estimator's curves (matplotlib, Agg)."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import fastbp
from conftest import make_task

import matplotlib  # (the test extra installs fastbp[plot])

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def fitted(**params):
    X, y = make_task("multiclass", n=150)
    est = fastbp.MLPClassifier(hidden_layer_sizes=(6,), max_iter=8, random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X[:100], y[:100], X_val=X[100:], y_val=y[100:])


def test_it_draws_the_three_curves_against_epochs():
    est = fitted()
    display = fastbp.LossCurveDisplay.from_estimator(est)
    for key, curve in [("loss", est.loss_curve_), ("validation_loss", est.validation_loss_curve_),
                       ("validation_score", est.validation_scores_)]:
        x, y = display.lines_[key].get_data()
        np.testing.assert_array_equal(x, np.arange(1, est.n_iter_ + 1))
        np.testing.assert_array_equal(y, curve)
    assert display.ax_.get_title() == "MLPClassifier"
    assert display.figure_ is display.ax_.figure
    plt.close(display.figure_)


def test_it_draws_on_a_given_axes_and_without_validation_rows():
    X, y = make_task("regression-1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = fastbp.MLPRegressor(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(X, y)
    fig, ax = plt.subplots()
    display = fastbp.LossCurveDisplay.from_estimator(est, ax=ax, name="mine")
    assert display.ax_ is ax and set(display.lines_) == {"loss"} and display.score_ax_ is None
    assert ax.get_title() == "mine"
    plt.close(fig)


def test_lbfgs_has_no_curve_to_draw():
    X, y = make_task("binary")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = fastbp.MLPClassifier(solver="lbfgs", hidden_layer_sizes=(3,), max_iter=3).fit(X, y)
    with pytest.raises(ValueError, match="no loss_curve_"):
        fastbp.LossCurveDisplay.from_estimator(est)
