"""Same model as scikit-learn 1.9: float64, same random_state, to 1e-9 relative.

Grid: every activation x {adam, sgd+Nesterov, sgd} x {binary, multiclass, regression
with 1 and 3 outputs, Poisson regression} x every learning_rate schedule, with alpha > 0,
a batch size that leaves a short last batch (90 rows in batches of 40: 40, 40, 10), and
tol / n_iter_no_change set so that the stopping rule (and the adaptive schedule's
division by 5) fires within max_iter in many of the cases.
"""

import warnings

import pytest
from conftest import ACTIVATIONS, SCHEDULES, SOLVERS, TASKS, assert_same_model, estimators, make_task
from sklearn import neural_network as sk

import fastbp

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
