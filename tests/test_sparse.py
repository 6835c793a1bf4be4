"""Sparse X (CSR and CSC): same model as dense input, and as scikit-learn with sparse X."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn import neural_network as sk
from conftest import assert_same_model, estimators

import fastbp


def sparse_task(task, n=90, f=12, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, f))
    X[rng.uniform(size=(n, f)) < 0.7] = 0.0
    z = X @ rng.standard_normal(f)
    y = (z > 0).astype(int) + (z > 1) if task == "multiclass" else z
    return X, y


@pytest.mark.parametrize("fmt", [sp.csr_matrix, sp.csc_matrix, sp.csr_array])
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
@pytest.mark.parametrize("task", ["multiclass", "regression-1"])
def test_sparse_equals_dense_and_scikit_learn(task, solver, fmt):
    X, y = sparse_task(task)
    params = dict(solver=solver, hidden_layer_sizes=(6,), batch_size=40, alpha=1e-3,
                  max_iter=8, random_state=0)
    dense, theirs = estimators(task, **params)
    sparse = type(dense)(**params) if task == "multiclass" else fastbp.MLPRegressor(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dense.fit(X, y)
        sparse.fit(fmt(X), y)
        theirs.fit(fmt(X), y)
    for a, b in zip(sparse.coefs_ + sparse.intercepts_, dense.coefs_ + dense.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9 * np.abs(b).max())
    np.testing.assert_allclose(sparse.predict(fmt(X)), dense.predict(X), rtol=1e-9)
    if solver != "lbfgs":
        assert_same_model(sparse, theirs, fmt(X))


def test_sparse_early_stopping_matches_scikit_learn():
    X, y = sparse_task("multiclass", n=200)
    a = fastbp.MLPClassifier(early_stopping=True, hidden_layer_sizes=(5,), max_iter=10, random_state=0)
    b = sk.MLPClassifier(early_stopping=True, hidden_layer_sizes=(5,), max_iter=10, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a.fit(sp.csr_matrix(X), y)
        b.fit(sp.csr_matrix(X), y)
    np.testing.assert_allclose(a.validation_scores_, b.validation_scores_, rtol=1e-9)
    np.testing.assert_allclose(a.coefs_[0], b.coefs_[0], rtol=1e-9, atol=1e-12)


def test_corrupt_csr_is_refused_not_read():
    """An out-of-range column index would be an out-of-bounds read in the kernel."""
    X, y = sparse_task("multiclass")
    clf = fastbp.MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(sp.csr_matrix(X), y)
    bad = sp.csr_matrix(X)
    bad.indices[3] = 10_000
    with pytest.raises(ValueError):
        clf.predict(bad)
    with pytest.raises(ValueError):
        fastbp.MLPClassifier(max_iter=1).fit(bad, y)
