"""Scale-out on Dask: grid search on a distributed.LocalCluster started here, and
streaming training with partial_fit over a dask array's chunks (dask-ml's Incremental).

Needs the optional extra ``pip install -e ".[dask]"`` (CI installs it).
"""

import os
import warnings

import joblib
import numpy as np
import pytest

distributed = pytest.importorskip(
    "distributed", reason="the optional 'dask' extra (dask[distributed], dask-ml) is not installed"
)
dask_ml_wrappers = pytest.importorskip(
    "dask_ml.wrappers", reason="the optional 'dask' extra (dask[distributed], dask-ml) is not installed"
)
import dask.array as da  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from conftest import grid_search  # noqa: E402

import fastbp  # noqa: E402


@pytest.fixture(scope="module")
def client():
    saved = dict(os.environ)  # distributed's Nanny sets *_NUM_THREADS=1 in os.environ
    try:
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster:
            with distributed.Client(cluster) as c:
                yield c
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:500] / 16.0, y[:500]


def test_grid_search_on_a_dask_cluster_matches_serial(client, digits):
    X, y = digits
    serial = grid_search(X, y).cv_results_["mean_test_score"]
    with joblib.parallel_backend("dask"):
        on_dask = grid_search(X, y, n_jobs=-1).cv_results_["mean_test_score"]
    np.testing.assert_array_equal(on_dask, serial)


def test_incremental_over_dask_chunks_equals_partial_fit_loop(client, digits):
    X, y = digits
    classes = np.unique(y)
    Xd, yd = da.from_array(X, chunks=(100, 64)), da.from_array(y, chunks=100)
    inc = dask_ml_wrappers.Incremental(
        fastbp.MLPClassifier(hidden_layer_sizes=(20,), learning_rate_init=0.01, random_state=0),
        shuffle_blocks=False,
    )
    for _ in range(3):  # three passes over the stream
        inc.partial_fit(Xd, yd, classes=classes)
    serial = fastbp.MLPClassifier(hidden_layer_sizes=(20,), learning_rate_init=0.01, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(3):
            for start in range(0, len(y), 100):
                serial.partial_fit(X[start:start + 100], y[start:start + 100], classes=classes)
    np.testing.assert_array_equal(inc.estimator_._flat, serial._flat)
    assert inc.estimator_.score(X, y) > 0.5
