"""Persistence: pickle and joblib round trips, across processes, give identical models
and predictions, for both estimators, both dtypes and every solver; a round trip in the
middle of training changes nothing; models and data that joblib memory-maps read-only
work without new kernel compilations."""

import pickle
import warnings

import joblib
import numba
import numpy as np
import pytest
import scipy.sparse
from sklearn import neural_network as sk
from subproc import run_python

import fastbp
from fastbp import _kernels

KINDS = ["classifier", "regressor"]
DTYPES = {"float64": np.float64, "float32": np.float32}
SOLVERS = ["adam", "sgd", "lbfgs"]
CONFIGS = [(k, d, s) for k in KINDS for d in DTYPES for s in SOLVERS]
FORMATS = ["pickle", "joblib", "joblib-compressed"]


def make_data(kind, dtype):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 8)).astype(dtype)
    if kind == "classifier":
        return X, np.array(["a", "b", "c"])[np.digitize(X[:, 0] + X[:, 1], [-1.0, 1.0])]
    return X, X[:, :2] @ np.array([[1.0, 2.0], [0.5, -1.0]])


def fit_model(kind, dtype, solver):
    X, y = make_data(kind, DTYPES[dtype])
    cls = fastbp.MLPClassifier if kind == "classifier" else fastbp.MLPRegressor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls(hidden_layer_sizes=(12, 6), solver=solver, max_iter=5,
                   random_state=0).fit(X, y)


def outputs(model, kind, dtype):
    """Predictions on fixed data, as arrays keyed by method."""
    X, _ = make_data(kind, DTYPES[dtype])
    out = {"predict": np.asarray(model.predict(X)).astype(str if kind == "classifier" else None),
           "flat": model._flat}
    if kind == "classifier":
        out["predict_proba"] = model.predict_proba(X)
    return out


def dump(model, path, fmt):
    if fmt == "pickle":
        with open(path, "wb") as f:
            pickle.dump(model, f, protocol=pickle.HIGHEST_PROTOCOL)
    else:
        joblib.dump(model, path, compress=3 if fmt == "joblib-compressed" else 0)


def load(path, fmt):
    if fmt == "pickle":
        with open(path, "rb") as f:
            return pickle.load(f)
    return joblib.load(path)


def name(kind, dtype, solver, fmt):
    return f"{kind}-{dtype}-{solver}-{fmt}"


def assert_same(got, want, what):
    for key in want:
        assert got[key].dtype == want[key].dtype, (what, key)
        assert got[key].tobytes() == want[key].tobytes(), (what, key)


LOAD_AND_PREDICT = """
import sys, numpy as np
import test_persistence as tp
out = {}
for kind, dtype, solver in tp.CONFIGS:
    for fmt in tp.FORMATS:
        key = tp.name(kind, dtype, solver, fmt)
        model = tp.load(f"{sys.argv[1]}/{key}", fmt)
        for k, v in tp.outputs(model, kind, dtype).items():
            out[f"{key}/{k}"] = v
np.savez(f"{sys.argv[1]}/outputs.npz", **out)
"""

FIT_AND_DUMP = """
import sys, numpy as np
import test_persistence as tp
out = {}
for kind, dtype, solver in tp.CONFIGS:
    model = tp.fit_model(kind, dtype, solver)
    for fmt in tp.FORMATS:
        key = tp.name(kind, dtype, solver, fmt)
        tp.dump(model, f"{sys.argv[1]}/{key}", fmt)
        for k, v in tp.outputs(model, kind, dtype).items():
            out[f"{key}/{k}"] = v
np.savez(f"{sys.argv[1]}/outputs.npz", **out)
"""


def test_written_here_loaded_in_another_process(tmp_path):
    want = {}
    for kind, dtype, solver in CONFIGS:
        model = fit_model(kind, dtype, solver)
        for fmt in FORMATS:
            key = name(kind, dtype, solver, fmt)
            dump(model, tmp_path / key, fmt)
            want[key] = outputs(model, kind, dtype)
    run_python(LOAD_AND_PREDICT, tmp_path)
    got = np.load(tmp_path / "outputs.npz")
    for key, arrays in want.items():
        assert_same({k: got[f"{key}/{k}"] for k in arrays}, arrays, key)


def test_written_in_another_process_loaded_here(tmp_path):
    run_python(FIT_AND_DUMP, tmp_path)
    theirs = np.load(tmp_path / "outputs.npz")
    for kind, dtype, solver in CONFIGS:
        fresh = outputs(fit_model(kind, dtype, solver), kind, dtype)  # same fit, this process
        for fmt in FORMATS:
            key = name(kind, dtype, solver, fmt)
            model = load(tmp_path / key, fmt)
            got = outputs(model, kind, dtype)
            assert_same(got, {k: theirs[f"{key}/{k}"] for k in got}, key)
            assert_same(got, fresh, key + " vs a fit in this process")
            for a in model.coefs_ + model.intercepts_:
                assert np.shares_memory(a, model._flat)
                assert a.dtype == DTYPES[dtype]


@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_in_the_middle_of_training_changes_nothing(kind, solver):
    """The optimizer's state (Adam moments, SGD velocity, step count, learning rate)
    survives pickling: partial_fit or a warm-started fit continue bit for bit."""
    X, y = make_data(kind, np.float64)
    cls = fastbp.MLPClassifier if kind == "classifier" else fastbp.MLPRegressor
    kw = dict(classes=np.unique(y)) if kind == "classifier" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = cls(hidden_layer_sizes=(12,), solver=solver, random_state=0,
                    learning_rate="invscaling", max_iter=3)
        model.partial_fit(X[:150], y[:150], **kw)
        model.partial_fit(X[150:], y[150:], **kw)
        copy = pickle.loads(pickle.dumps(model))
        for est in (model, copy):
            est.partial_fit(X, y, **kw)
            est.set_params(warm_start=True).fit(X, y)
    assert copy._flat.tobytes() == model._flat.tobytes()
    assert copy.loss_curve_ == model.loss_curve_
    assert copy.t_ == model.t_ and copy.n_iter_ == model.n_iter_


# ---- read-only memory: joblib's mmap_mode and joblib.Parallel's memmapped arguments ------


@pytest.fixture
def kernel_types(monkeypatch):
    """Records the Numba types each kernel entry point is called with: a type not seen
    with writable arrays is a new specialisation to compile (whether or not this
    process happens to have compiled it already)."""
    calls = []
    for name in ("train_epoch", "predict_forward", "predict_checked", "loss_grad"):
        def recording(*args, _real=getattr(_kernels, name), _name=name):
            calls.append((_name, tuple(numba.typeof(a) for a in args)))
            return _real(*args)
        monkeypatch.setattr(_kernels, name, recording)

    def take():
        out = set(calls)
        calls.clear()
        return out

    return take


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("kind", KINDS)
def test_memory_mapped_model_predicts_without_new_kernels(tmp_path, kind, dtype, kernel_types):
    """joblib.load(..., mmap_mode='r') gives read-only parameter arrays. Prediction must
    equal the original's and reuse the compiled kernels: a read-only array is a new type
    to Numba, i.e. a new specialisation compiled (seconds) in every process that lacks
    it in its cache (DESIGN.md section 8: at most two specialisations)."""
    model = fit_model(kind, dtype, "adam")
    kernel_types()
    want = outputs(model, kind, dtype)
    want_types = kernel_types()
    joblib.dump(model, tmp_path / "model")
    loaded = joblib.load(tmp_path / "model", mmap_mode="r")
    assert not loaded._flat.flags.writeable  # the scenario is the one intended
    got = outputs(loaded, kind, dtype)
    assert_same(got, want, "mmap")
    assert kernel_types() <= want_types, "prediction needs new kernel specialisations"


@pytest.mark.parametrize("how", ["partial_fit", "warm_start"])
def test_memory_mapped_model_continues_training_or_raises_like_scikit_learn(tmp_path, how):
    """scikit-learn raises ValueError ("output array is read-only") when a read-only
    model is trained further. fastbp may do better (train on private copies) or the
    same; it must not fail with an internal Numba error."""
    X, y = make_data("classifier", np.float64)

    def train_more(model):
        if how == "partial_fit":
            model.partial_fit(X, y)
        else:
            model.set_params(warm_start=True).fit(X, y)

    results = {}
    for mod in (sk, fastbp):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = mod.MLPClassifier(hidden_layer_sizes=(12,), max_iter=3,
                                      random_state=0).fit(X, y)
            path = tmp_path / mod.__name__
            joblib.dump(model, path)
            loaded = joblib.load(path, mmap_mode="r")
            try:
                train_more(loaded)
                results[mod.__name__] = None
            except Exception as exc:  # noqa: BLE001 - the exception is the result
                results[mod.__name__] = exc
            if mod is fastbp and results["fastbp"] is None:
                train_more(model)  # the same training on the model in memory
                assert loaded._flat.tobytes() == model._flat.tobytes()
    theirs, ours = results["sklearn.neural_network"], results["fastbp"]
    assert isinstance(theirs, ValueError)  # the scenario is the one intended
    assert ours is None or isinstance(ours, ValueError), repr(ours)[:400]


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("solver", SOLVERS)
def test_read_only_X_needs_no_new_kernels(solver, sparse, kernel_types):
    """joblib.Parallel (hence GridSearchCV(n_jobs=...)) hands workers large arrays as
    read-only memory maps. Fitting and predicting on read-only X must give the same model
    and reuse the kernels compiled for writable X."""
    X, y = make_data("regressor", np.float64)
    if sparse:
        X = scipy.sparse.csr_matrix(np.where(np.abs(X) < 0.5, 0, X))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        params = dict(hidden_layer_sizes=(12,), solver=solver, max_iter=3, random_state=0)
        want = fastbp.MLPRegressor(**params).fit(X, y)
        want_pred = want.predict(X)
        want_types = kernel_types()
        Xr = X.copy()
        for a in ((Xr.data, Xr.indices, Xr.indptr) if sparse else (Xr,)):
            a.flags.writeable = False
        yr = y.copy()
        yr.flags.writeable = False
        got = fastbp.MLPRegressor(**params).fit(Xr, yr)
        got_pred = got.predict(Xr)
    assert got._flat.tobytes() == want._flat.tobytes()
    assert got_pred.tobytes() == want_pred.tobytes()
    new = kernel_types() - want_types
    assert not new, f"read-only input needs new kernel specialisations: {sorted(n for n, _ in new)}"


def test_a_model_pickled_before_fastbps_own_options_predicts(tmp_path):
    """A pickle made before dropout, dtype, scoring, loss and class_weight existed (their
    attributes absent from its state) loads and predicts as it did."""
    import pickle

    import numpy as np

    import fastbp

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 3)), np.arange(40) % 3
    est = fastbp.MLPClassifier((5,), max_iter=3, random_state=0).fit(X, y)
    want = est.predict_proba(X)
    state = est.__getstate__()
    for name in ("dropout", "dtype", "scoring", "loss", "class_weight"):
        del state[name]
    old = fastbp.MLPClassifier.__new__(fastbp.MLPClassifier)
    old.__setstate__(pickle.loads(pickle.dumps(state)))
    np.testing.assert_array_equal(old.predict_proba(X), want)
    np.testing.assert_array_equal(old.predict(X), est.predict(X))
