"""The fast predict path (``_BaseMLP._forward_plain``): for a C-contiguous float ndarray
of the right width it skips validate_data and check_is_fitted and does their checks
itself. It must give exactly the general path's outputs, and every other input (or a
plain one that fails a check) must get the general path's, i.e. scikit-learn's, errors
and warnings. Its kernel arguments are kept between calls: they must follow every
change of the weights.

"The general path" here is what the estimators did before the fast path existed:
``check_is_fitted`` then ``_forward_pass_fast`` (validate_data, then the kernel).
"""

import copy
import pickle
import threading
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse
from sklearn import config_context
from sklearn import neural_network as sk
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

import fastbp
from fastbp import _kernels, _mlp, _threads

import reference as ref

DTYPES = [np.float64, np.float32]
N, F = 40, 5
KINDS = ["multiclass", "binary", "multilabel", "regressor", "regressor2", "poisson"]


def make_data(kind, dtype=np.float64, n=N, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, F)).astype(dtype)
    if kind == "multiclass":
        y = np.arange(n) % 3
    elif kind == "binary":
        y = np.arange(n) % 2
    elif kind == "multilabel":
        y = (rng.uniform(size=(n, 3)) < 0.5).astype(int)
    elif kind == "regressor2":
        y = rng.standard_normal((n, 2))
    elif kind == "poisson":
        y = rng.poisson(1.0, n).astype(float)
    else:
        y = rng.standard_normal(n)
    return X, y


def estimator(kind, module=fastbp, **params):
    params = dict(dict(hidden_layer_sizes=(7, 4), max_iter=5, random_state=0), **params)
    if kind in ("multiclass", "binary", "multilabel"):
        return module.MLPClassifier(**params)
    if kind == "poisson":
        return module.MLPRegressor(loss="poisson", **params)
    return module.MLPRegressor(**params)


def fitted(kind, dtype=np.float64, module=fastbp, **params):
    X, y = make_data(kind, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return estimator(kind, module, **params).fit(X, y)


def methods(est):
    names = ["predict"]
    if hasattr(est, "predict_proba"):
        names += ["predict_proba", "predict_log_proba"]
    return names


@pytest.fixture
def fast_calls(monkeypatch):
    """Counts the calls of the fast path's kernel (the general path never calls it)."""
    calls = []
    real = _kernels.predict_checked

    def counting(*args):
        calls.append(args[1].shape)
        return real(*args)

    monkeypatch.setattr(_kernels, "predict_checked", counting)
    return calls


def general(est, method, X):
    """``est.method(X)`` as the general path computes it (validate_data, the kernel)."""
    check_is_fitted(est)
    y_pred = est._forward_pass_fast(X)
    if method == "predict":
        return est._predict_output(y_pred)
    if est.n_outputs_ == 1:
        y_pred = y_pred.ravel()
    if y_pred.ndim == 1:
        y_pred = np.vstack([1 - y_pred, y_pred]).T
    return np.log(y_pred) if method == "predict_log_proba" else y_pred


def outcome(call):
    """('ok', result) or ('raise', (type, message)), with the warnings it gave as
    (category, message) pairs."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = ("ok", call())
        except Exception as exc:  # noqa: BLE001 - the exception is the result
            result = ("raise", (type(exc), str(exc)))
    return result, [(w.category, str(w.message)) for w in caught]


def assert_same(got, want):
    (g_kind, g), g_warn = got
    (w_kind, w), w_warn = want
    assert g_kind == w_kind, (g, w)
    assert g_warn == w_warn
    if g_kind == "raise":
        assert g == w
    else:
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g, w)


# ---- same outputs ---------------------------------------------------------------------


@pytest.mark.parametrize("model_dtype", DTYPES, ids=["model64", "model32"])
@pytest.mark.parametrize("x_dtype", DTYPES, ids=["X64", "X32"])
@pytest.mark.parametrize("kind", KINDS)
def test_fast_path_equals_general_path(kind, model_dtype, x_dtype, fast_calls):
    est = fitted(kind, model_dtype)
    X = make_data(kind, x_dtype, n=23, seed=1)[0]
    for rows in (X[:1].copy(), X):
        for method in methods(est):
            fast_calls.clear()
            got = getattr(est, method)(rows)
            assert fast_calls, "the fast path was not taken"
            want = general(est, method, rows)
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)
    # and both are the network's forward pass
    out = est._forward_pass_fast(X)
    hidden = est.activation
    want = ref.forward([c.astype(out.dtype) for c in est.coefs_],
                       [b.astype(out.dtype) for b in est.intercepts_], X.astype(out.dtype),
                       hidden, est.out_activation_)[-1]
    np.testing.assert_allclose(out, want, rtol=1e-5 if out.dtype == np.float32 else 1e-12,
                               atol=1e-6 if out.dtype == np.float32 else 1e-14)


def test_fast_path_agrees_with_scikit_learn(fast_calls):
    """float64, same random_state: the same model, so the same probabilities to rounding
    (the differential tests cover the general path in depth)."""
    ours, theirs = fitted("multiclass"), fitted("multiclass", module=sk)
    X = make_data("multiclass", n=9, seed=3)[0]
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-9)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    assert fast_calls


@pytest.mark.parametrize("kind", ["multiclass", "regressor"])
def test_two_threads_equal_general_path(kind, monkeypatch, fast_calls):
    """A large dense X is cut into chunks of rows that two threads take in turn (forced
    here for a small one, in blocks of 16 rows): the same products on both paths; a NaN
    in the first chunk or the last still raises."""
    est = fitted(kind)
    X = make_data(kind, n=301, seed=2)[0]
    chunked = []
    real = _threads.run_chunks
    monkeypatch.setattr(_mlp, "_PREDICT_BLOCK_ROWS", 16)
    monkeypatch.setattr(_threads, "run_chunks",
                        lambda fn, n, chunk: chunked.append((n, chunk)) or real(fn, n, chunk))
    monkeypatch.setattr(_threads, "predict_on_two", lambda n, n_coefs: n >= 16)
    method = "predict_proba" if kind == "multiclass" else "predict"
    got = getattr(est, method)(X)
    assert chunked == [(301, 32)] and len(fast_calls) == 10, "the chunks did not run"
    np.testing.assert_array_equal(got, general(est, method, X))
    monkeypatch.setattr(_threads, "predict_on_two", lambda n, n_coefs: False)
    np.testing.assert_allclose(general(est, method, X), got, rtol=1e-12, atol=1e-15)
    monkeypatch.setattr(_threads, "predict_on_two", lambda n, n_coefs: n >= 16)
    for row in (3, 300):
        bad = X.copy()
        bad[row, 1] = np.nan
        assert_same(outcome(lambda: getattr(est, method)(bad)),
                    outcome(lambda: general(est, method, bad)))


def test_run_chunks_runs_each_chunk_once_and_stops_after_false():
    seen = []
    lock = threading.Lock()

    def fn(r0, r1):
        with lock:
            seen.append((r0, r1))
        return r0 != 40

    results = _threads.run_chunks(fn, 101, 10)
    assert sorted(seen) == sorted(set(seen))  # none twice
    assert (40, 50) in seen and results[4] is False
    ran = {r0 // 10 for r0, _ in seen}
    assert all((results[k] is not None) == (k in ran) for k in range(11))
    seen.clear()
    assert _threads.run_chunks(fn, 35, 10) == [True, True, True, True]
    assert sorted(seen) == [(0, 10), (10, 20), (20, 30), (30, 35)]


def test_two_threads_only_where_they_may_run():
    """Not with BLAS limited to one thread, not outside the main thread, not for small X."""
    if not (_threads._cpu_count() >= 2 and _threads._blas_threads() >= 2
            and _threads._blas_is_ours_to_limit() and _threads.MODE != "never"):
        pytest.skip(reason="needs two cores and a BLAS this thread can limit (see _threads)")
    assert _threads.predict_on_two(100_000, 10_000)
    assert not _threads.predict_on_two(10, 10_000)
    with threadpool_limits(1):
        assert not _threads.predict_on_two(100_000, 10_000)
    seen = []
    worker = threading.Thread(target=lambda: seen.append(
        _threads.predict_on_two(100_000, 10_000)))
    worker.start()
    worker.join()
    assert seen == [False]


# ---- same errors and warnings -----------------------------------------------------------


class _Subclass(np.ndarray):
    pass


def bad_inputs(X, dtype):
    """(name, X) for inputs of every kind the general path takes or refuses."""
    nan, inf = X.copy(), X.copy()
    nan[2, 1] = np.nan
    inf[1, 0] = np.inf
    ninf = X.copy()
    ninf[0, 3] = -np.inf
    ro = X.copy()
    ro.flags.writeable = False
    big = X.copy()
    big[0, 0] = np.finfo(dtype).max  # finite, but X.sum() overflows
    big[0, 1] = np.finfo(dtype).max
    return [
        ("plain", X),
        ("one row", X[:1].copy()),
        ("read-only", ro),
        ("huge but finite", big),
        ("too narrow", np.ascontiguousarray(X[:, :-1])),
        ("too wide", np.hstack([X, X[:, :1]])),
        ("nan", nan),
        ("inf", inf),
        ("-inf", ninf),
        ("nan one row", nan[2:3].copy()),
        ("zero rows", X[:0]),
        ("1-D", X[0].copy()),
        ("3-D", X[None]),
        ("scalar", np.asarray(X[0, 0])),
        ("F-ordered", np.asfortranarray(X)),
        ("strided", X[::2]),
        ("column slice", np.hstack([X, X])[:, :F]),
        ("int", np.round(X * 3).astype(np.int64)),
        ("bool", X > 0),
        ("float16", X.astype(np.float16)),
        ("longdouble", X.astype(np.longdouble)),
        ("byte-swapped", X.astype(X.dtype.newbyteorder(">"))),
        ("complex", X.astype(np.complex128)),
        ("object", X.astype(object)),
        ("strings", X.astype(str)),
        ("list", X.tolist()),
        ("matrix", np.asmatrix(X)),
        ("csr", scipy.sparse.csr_matrix(np.where(np.abs(X) < 0.5, 0, X))),
        ("csc", scipy.sparse.csc_matrix(X)),
        ("coo", scipy.sparse.coo_matrix(X)),
        ("csr nan", scipy.sparse.csr_matrix(nan)),
        ("DataFrame", pd.DataFrame(X, columns=[f"f{i}" for i in range(F)])),
        ("DataFrame, int names", pd.DataFrame(X)),
        ("DataFrame, other names", pd.DataFrame(X, columns=[f"g{i}" for i in range(F)])),
        ("ndarray subclass", X.view(_Subclass)),
    ]


@pytest.mark.parametrize("with_names", [False, True], ids=["no names", "feature names"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("kind", ["multiclass", "binary", "regressor"])
def test_same_errors_and_warnings_as_general_path_and_scikit_learn(kind, dtype, with_names):
    X, y = make_data(kind, dtype)
    fit_X = pd.DataFrame(X, columns=[f"f{i}" for i in range(F)]) if with_names else X
    models = []
    for module in (fastbp, sk):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            models.append(estimator(kind, module).fit(fit_X, y))
    ours, theirs = models
    for name, bad in bad_inputs(X, dtype):
        for method in methods(ours):
            got = outcome(lambda: getattr(ours, method)(bad))
            assert_same(got, outcome(lambda: general(ours, method, bad)))
            # scikit-learn: the same exception and message, the same warnings; where it
            # predicts, the same shape (its float32 model computes in float32 too)
            (g_kind, g), g_warn = got
            (s_kind, s), s_warn = outcome(lambda: getattr(theirs, method)(bad))
            # (NumPy's RuntimeWarnings, e.g. overflow in scikit-learn's matmul or log(0)
            # of a probability that underflowed in one and not the other, come from the
            # numbers, not the validation: left out of this comparison)
            s_warn = [w for w in s_warn if w[0] is not RuntimeWarning]
            g_warn = [w for w in g_warn if w[0] is not RuntimeWarning]
            assert g_kind == s_kind, (name, method, g, s)
            assert g_warn == s_warn, (name, method)
            if g_kind == "raise":
                assert g == s, (name, method)
            else:
                assert np.shape(g) == np.shape(s), (name, method)


@pytest.mark.parametrize("kind", ["multiclass", "regressor"])
def test_not_fitted_same_error(kind):
    X = make_data(kind)[0]
    for method in methods(estimator(kind)):
        got = outcome(lambda: getattr(estimator(kind), method)(X))
        want = outcome(lambda: getattr(estimator(kind, sk), method)(X))
        assert got[0][0] == "raise"
        assert got == want


def test_assume_finite_computes_with_nan_as_the_general_path(fast_calls):
    """With scikit-learn's assume_finite, NaN is not checked: the fast path hands such an
    X to the general path, which computes with it, as scikit-learn does."""
    est = fitted("regressor")
    X = make_data("regressor", n=9)[0]
    X[4, 2] = np.nan
    with config_context(assume_finite=True):
        got = est.predict(X)
        want = general(est, "predict", X)
        theirs = fitted("regressor", module=sk).predict(X)
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got[4]) and np.isnan(theirs[4])
    np.testing.assert_allclose(np.delete(got, 4), np.delete(theirs, 4), rtol=1e-9)


def test_plain_ndarray_with_feature_names_warns_every_time():
    """Fitted with names: an ndarray gets scikit-learn's warning (general path) on every
    call, also after calls that did not warn."""
    X, y = make_data("multiclass")
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(F)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = estimator("multiclass").fit(df, y)
    for _ in range(2):
        with pytest.warns(UserWarning, match="does not have valid feature names"):
            a = est.predict_proba(X)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            b = est.predict_proba(df)
        np.testing.assert_array_equal(a, b)


# ---- the kept kernel arguments follow every change of the weights ------------------------


def changes():
    """(name, change(est, X, y)) that alter the model's outputs."""

    def replace_entry(est, X, y):
        est.coefs_[0] = est.coefs_[0] * 1.5

    def replace_list(est, X, y):
        est.intercepts_ = [b + 0.25 for b in est.intercepts_]

    def in_place(est, X, y):
        est.coefs_[1][...] = -est.coefs_[1]

    def in_place_flat(est, X, y):
        est.intercepts_[-1][:1] += 1.0  # (all of them: a softmax would not change)

    def partial_fit(est, X, y):
        est.partial_fit(X, y)

    def refit(est, X, y):
        est.set_params(random_state=5).fit(X, y)

    def warm_start(est, X, y):
        est.set_params(warm_start=True, max_iter=3).fit(X, y)

    def lbfgs(est, X, y):
        est.set_params(solver="lbfgs", max_iter=5).fit(X, y)

    def early_stopping(est, X, y):
        est.set_params(early_stopping=True, max_iter=20, n_iter_no_change=2).fit(X, y)

    def activation(est, X, y):
        est.set_params(activation="tanh")

    def wider(est, X, y):
        est.set_params(hidden_layer_sizes=(9,)).fit(X, y)

    return [replace_entry, replace_list, in_place, in_place_flat, partial_fit, refit,
            warm_start, lbfgs, early_stopping, activation, wider]


@pytest.mark.parametrize("change", changes(), ids=lambda f: f.__name__)
@pytest.mark.parametrize("kind", ["multiclass", "regressor"])
def test_kept_arguments_follow_the_weights(kind, change, fast_calls):
    X, y = make_data(kind)
    est = fitted(kind)
    method = "predict_proba" if kind == "multiclass" else "predict"
    before = getattr(est, method)(X)  # keeps the kernel arguments
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        change(est, X, y)
    fast_calls.clear()
    after = getattr(est, method)(X)
    assert fast_calls, "the fast path was not taken"
    want = general(est, method, X)
    np.testing.assert_array_equal(after, want)
    assert not np.allclose(after, before), "the change did not change the model"
    # the weights the user sees are the ones used
    out = ref.forward(est.coefs_, est.intercepts_, X, est.activation, est.out_activation_)
    np.testing.assert_allclose(est._forward_pass_fast(X), out[-1], rtol=1e-12, atol=1e-14)


def test_mismatched_hand_set_weights_raise_as_the_general_path():
    est = fitted("multiclass")
    X = make_data("multiclass")[0]
    est.predict(X)
    est.coefs_[0] = est.coefs_[0][:, :3]
    got = outcome(lambda: est.predict(X))
    assert got[0][0] == "raise"
    assert got == outcome(lambda: general(est, "predict", X))


@pytest.mark.parametrize("how", ["pickle", "deepcopy", "copy"])
def test_copies_predict_the_same(how, fast_calls):
    est = fitted("multiclass")
    X = make_data("multiclass")[0]
    want = est.predict_proba(X)
    assert est in _mlp._READY
    if how == "pickle":
        other = pickle.loads(pickle.dumps(est))
    elif how == "deepcopy":
        other = copy.deepcopy(est)
    else:
        other = copy.copy(est)
    assert other not in _mlp._READY  # a copy builds its own
    np.testing.assert_array_equal(other.predict_proba(X), want)
    # a copy's later training does not leak into the original, nor the reverse
    if how != "copy":  # a shallow copy shares the weights, as any estimator's
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            other.partial_fit(X, make_data("multiclass")[1])
        np.testing.assert_array_equal(est.predict_proba(X), want)
        assert not np.allclose(other.predict_proba(X), want)


def test_a_bad_setting_fails_in_the_general_paths_order():
    """A model whose kernel arguments cannot be made (an unknown activation set after
    fit) raises what the general path raises, in its order: X's errors first."""
    ours, theirs = fitted("multiclass"), fitted("multiclass", module=sk)
    X = make_data("multiclass")[0]
    ours.predict(X)
    ours.activation = theirs.activation = "bogus"
    bad = X.copy()
    bad[0, 0] = np.nan
    got = outcome(lambda: ours.predict(bad))
    assert got[0][0] == "raise"
    assert got == outcome(lambda: general(ours, "predict", bad))
    assert got == outcome(lambda: theirs.predict(bad))
    assert outcome(lambda: ours.predict(X)) == outcome(lambda: general(ours, "predict", X))


def test_predict_leaves_the_estimator_as_it_was():
    """The kept arguments live outside the estimator (scikit-learn's check_dict_unchanged
    asks predict not to change ``__dict__``) and go with it."""
    import gc

    est = fitted("multiclass")
    X = make_data("multiclass")[0]
    before = dict(est.__dict__)
    est.predict_proba(X)
    assert est.__dict__ == before and est in _mlp._READY
    n = len(_mlp._READY)
    del est
    gc.collect()
    assert len(_mlp._READY) == n - 1


def test_an_unhashable_subclass_still_predicts(fast_calls):
    class Unhashable(fastbp.MLPRegressor):
        __hash__ = None

    X, y = make_data("regressor")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = Unhashable(hidden_layer_sizes=(7, 4), max_iter=5, random_state=0).fit(X, y)
    got = est.predict(X)
    assert fast_calls
    np.testing.assert_array_equal(got, general(est, "predict", X))
