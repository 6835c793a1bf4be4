"""Bad input: the exception scikit-learn 1.9 raises, at fit, partial_fit and predict.

Every case is run through scikit-learn first; fastbp must raise the same exception type
and, where scikit-learn's message comes from its own validation, the same message.
Outcomes that are not exceptions must be matched too: where scikit-learn accepts the
input, fastbp must accept it (and at predict return the same shape).

test_estimator.py already covers: invalid constructor parameters, MLPClassifier.predict
before fit, and MLPClassifier.predict with the wrong number of features.
"""

import warnings

import numpy as np
import pytest
import scipy.sparse
from sklearn import neural_network as sk
from sklearn.exceptions import ConvergenceWarning, NotFittedError

import fastbp

PAIRS = {
    "classifier": (fastbp.MLPClassifier, sk.MLPClassifier),
    "regressor": (fastbp.MLPRegressor, sk.MLPRegressor),
}
PARAMS = dict(hidden_layer_sizes=(4,), max_iter=3, random_state=0)
N, F = 20, 3


def data(kind):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, F))
    y = np.arange(N) % 3 if kind == "classifier" else rng.standard_normal(N)
    return X, y


def public_type(exc):
    """The first builtin or scikit-learn class in the exception's MRO.

    numpy raises private subclasses (e.g. ``_UFuncNoLoopError``, a ``TypeError``) from deep
    inside scikit-learn's code; what a user can catch is the public base."""
    for cls in type(exc).__mro__:
        if cls.__module__ == "builtins" or cls.__module__.startswith("sklearn"):
            return cls
    return type(exc)  # pragma: no cover


def outcome(call):
    """('raise', exception) or ('ok', result), warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return "ok", call()
        except Exception as exc:  # noqa: BLE001 - the exception is the result
            return "raise", exc


def assert_same_outcome(ours_call, theirs_call, same_message=True):
    theirs = outcome(theirs_call)
    ours = outcome(ours_call)
    if theirs[0] == "raise":
        want = public_type(theirs[1])
        assert ours[0] == "raise", (
            f"scikit-learn raises {want.__name__}({theirs[1]}); fastbp returned {ours[1]!r}"
        )
        assert isinstance(ours[1], want), (
            f"scikit-learn raises {want.__name__}({theirs[1]}); "
            f"fastbp raises {type(ours[1]).__name__}({ours[1]})"
        )
        if same_message:
            assert str(ours[1]) == str(theirs[1])
        return ours[1]
    assert ours[0] == "ok", f"scikit-learn accepts this input; fastbp raises {ours[1]!r}"
    return ours[1]


def fit_call(cls, kind, X, y, method, **params):
    """A zero-argument call of fit or partial_fit (with classes= for the classifier)."""
    est = cls(**{**PARAMS, **params})
    if method == "fit":
        return lambda: est.fit(X, y)
    if kind == "classifier":
        return lambda: est.partial_fit(X, y, classes=np.arange(3))
    return lambda: est.partial_fit(X, y)


def with_value(a, index, value):
    a = np.array(a, dtype=float)
    a[index] = value
    return a


# (name, builder(X, y) -> (X, y), compare messages)
FIT_CASES = [
    ("nan-in-X", lambda X, y: (with_value(X, (3, 1), np.nan), y), True),
    ("inf-in-X", lambda X, y: (with_value(X, (3, 1), np.inf), y), True),
    ("-inf-in-X", lambda X, y: (with_value(X, (0, 0), -np.inf), y), True),
    ("nan-in-y", lambda X, y: (X, with_value(y, 2, np.nan)), True),
    ("inf-in-y", lambda X, y: (X, with_value(y, 2, np.inf)), True),
    ("no-samples", lambda X, y: (X[:0], y[:0]), True),
    ("no-features", lambda X, y: (X[:, :0], y), True),
    ("1d-X", lambda X, y: (X[:, 0], y), True),
    ("3d-X", lambda X, y: (X[:, :, None], y), True),
    ("letters-in-X", lambda X, y: (np.full(X.shape, "a"), y), True),
    ("objects-in-X", lambda X, y: (np.array([[object()] * F] * N, dtype=object), y), True),
    ("None-in-X", lambda X, y: (with_none(X), y), True),
    ("complex-X", lambda X, y: (X + 1j, y), True),
    ("X-longer-than-y", lambda X, y: (X, y[:-1]), True),
    ("y-longer-than-X", lambda X, y: (X[:-2], y), True),
    ("y-without-columns", lambda X, y: (X, np.asarray(y).reshape(-1, 1)[:, :0]), True),
]


def with_none(X):
    Z = X.astype(object)
    Z[1, 1] = None
    return Z


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
@pytest.mark.parametrize("kind", list(PAIRS))
@pytest.mark.parametrize("case", FIT_CASES, ids=[c[0] for c in FIT_CASES])
def test_bad_training_data_raises_as_scikit_learn(case, kind, method):
    _, build, same_message = case
    ours, theirs = PAIRS[kind]
    X, y = build(*data(kind))
    assert_same_outcome(
        fit_call(ours, kind, X, y, method),
        fit_call(theirs, kind, X, y, method),
        same_message,
    )


def overflow_outcome(ours, theirs, kind, X, y, method, solver):
    """The same outcome as scikit-learn's (assert_same_outcome); an error must be the
    non-finite-weights one, a fitted model must have finite weights. Returns it."""
    got = assert_same_outcome(
        fit_call(ours, kind, X, y, method, solver=solver),
        fit_call(theirs, kind, X, y, method, solver=solver),
    )
    if isinstance(got, Exception):
        assert "non-finite parameter weights" in str(got)
    else:
        assert all(np.isfinite(w).all() for w in got.coefs_ + got.intercepts_)
    return got


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
@pytest.mark.parametrize("kind", list(PAIRS))
@pytest.mark.parametrize("where", ["X", "y"])
def test_huge_values_overflow_as_in_scikit_learn(where, kind, solver):
    """1e154 squared is 1e308: the forward pass, loss or gradients overflow. scikit-learn
    either raises its non-finite-weights ValueError or ends with finite weights; fastbp
    must do the same, and never keep NaN weights."""
    if where == "y" and kind == "classifier":
        pytest.skip(reason="class labels cannot overflow: covered by where='X'")
    ours, theirs = PAIRS[kind]
    X, y = data(kind)
    if where == "X":
        X = X * 1e154
    else:
        y = y * 1e154
    got = overflow_outcome(ours, theirs, kind, X, y, "fit", solver)
    if not isinstance(got, Exception):
        assert got.predict(X).shape == (N,)


@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("kind", list(PAIRS))
def test_huge_values_overflow_in_partial_fit_as_in_scikit_learn(kind, solver):
    ours, theirs = PAIRS[kind]
    X, y = data(kind)
    X = X * 1e154
    overflow_outcome(ours, theirs, kind, X, y, "partial_fit", solver)


def test_regressor_with_string_targets():
    """scikit-learn 1.9 does not validate a string y for regression: numpy's
    ``_UFuncNoLoopError`` (a TypeError) escapes from its backprop, for letters and for
    numeric strings alike. fastbp must raise a TypeError too (a user's ``except TypeError``
    keeps working); its message should say what is wrong."""
    X, _ = data("regressor")
    for y in (np.array(["a", "b"] * (N // 2)), np.array(["1.5", "2"] * (N // 2))):
        for method in ("fit", "partial_fit"):
            assert_same_outcome(
                fit_call(fastbp.MLPRegressor, "regressor", X, y, method),
                fit_call(sk.MLPRegressor, "regressor", X, y, method),
                same_message=False,
            )


@pytest.mark.parametrize("solver,early_stopping", [("adam", False), ("sgd", False),
                                                   ("lbfgs", False), ("adam", True),
                                                   ("sgd", True)])
@pytest.mark.parametrize("kind", list(PAIRS))
def test_weights_summing_to_zero_raise_as_scikit_learn(kind, solver, early_stopping):
    """A minibatch whose sample weights sum to zero (lbfgs: all the rows, weights of both
    signs): scikit-learn's np.average raises ZeroDivisionError in the loss, mid-fit.
    fastbp's kernels raise it at the same batch; they used to divide by zero, ending in
    the non-finite-weights error or, under early stopping, a silent NaN loss curve."""
    ours, theirs = PAIRS[kind]
    X, y = data(kind)
    if solver == "lbfgs":
        sw = np.where(np.arange(N) % 2 == 0, 1.0, -1.0)
    else:
        sw = np.where(np.arange(N) % 5 == 0, 1.0, 0.0)
    params = dict(PARAMS, solver=solver, batch_size=2, shuffle=False,
                  early_stopping=early_stopping, validation_fraction=0.2)
    assert_same_outcome(lambda: ours(**params).fit(X, y, sample_weight=sw),
                        lambda: theirs(**params).fit(X, y, sample_weight=sw))
    assert isinstance(outcome(lambda: ours(**params).fit(X, y, sample_weight=sw))[1],
                      ZeroDivisionError)


SPARSE_CASES = [
    ("csr-nan", lambda X: scipy.sparse.csr_matrix(with_value(X, (3, 1), np.nan))),
    ("csc-inf", lambda X: scipy.sparse.csc_matrix(with_value(X, (3, 1), np.inf))),
    ("coo", scipy.sparse.coo_matrix),  # accepted by scikit-learn (converted to CSR)
    ("csr-1-row-0-cols", lambda X: scipy.sparse.csr_matrix((1, 0))),
    ("csr-huge", lambda X: scipy.sparse.csr_matrix(X * 1e154)),
]


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
@pytest.mark.parametrize("kind", list(PAIRS))
@pytest.mark.parametrize("case", SPARSE_CASES, ids=[c[0] for c in SPARSE_CASES])
def test_bad_sparse_training_data_raises_as_scikit_learn(case, kind, method):
    _, build = case
    ours, theirs = PAIRS[kind]
    X, y = data(kind)
    Xs = build(X)
    y = y[: Xs.shape[0]]
    assert_same_outcome(
        fit_call(ours, kind, Xs, y, method, solver="sgd"),
        fit_call(theirs, kind, Xs, y, method, solver="sgd"),
    )


# ---- labels ------------------------------------------------------------------------------


def classifier_pair(**params):
    return fastbp.MLPClassifier(**{**PARAMS, **params}), sk.MLPClassifier(**{**PARAMS, **params})


LABEL_CASES = {
    "first-call-without-classes": lambda est, X, y: est.partial_fit(X, y),
    "unseen-label-on-second-call": lambda est, X, y: est.partial_fit(
        X, y, classes=[0, 1, 2]
    ).partial_fit(X, y + 1),
    "y-outside-classes-on-first-call": lambda est, X, y: est.partial_fit(X, y, classes=[0, 1]),
    "classes-changed-between-calls": lambda est, X, y: est.partial_fit(
        X, y, classes=[0, 1, 2]
    ).partial_fit(X, y, classes=[0, 1, 2, 3]),
    "unseen-label-after-fit": lambda est, X, y: est.fit(X, y).partial_fit(X, y + 1),
    "unseen-label-with-warm-start": lambda est, X, y: est.set_params(warm_start=True)
    .fit(X, y)
    .fit(X, y + 1),
    "continuous-labels": lambda est, X, y: est.fit(X, y + 0.5),
    "multioutput-continuous": lambda est, X, y: est.fit(X, np.c_[y + 0.5, y]),
    "None-among-string-labels": lambda est, X, y: est.fit(
        X, np.array(["a", None] * (N // 2), dtype=object)
    ),
}


@pytest.mark.parametrize("case", list(LABEL_CASES))
def test_bad_labels_raise_as_scikit_learn(case):
    X, y = data("classifier")
    ours, theirs = classifier_pair()
    assert_same_outcome(lambda: LABEL_CASES[case](ours, X, y),
                        lambda: LABEL_CASES[case](theirs, X, y))


@pytest.mark.parametrize("kind", list(PAIRS))
@pytest.mark.parametrize("params", [dict(solver="lbfgs"), dict(early_stopping=True)],
                         ids=["lbfgs", "early_stopping"])
def test_partial_fit_not_offered_raises_as_scikit_learn(kind, params):
    """fastbp hides partial_fit where it cannot run, on purpose with its own message
    (fastbp/_mlp.py, ``_OfferedIf``): the exception must still be caught by the same
    ``except`` as scikit-learn's. (scikit-learn's regressor offers it with lbfgs: the
    README lists that difference.)"""
    ours, theirs = PAIRS[kind]
    X, y = data(kind)
    kw = dict(classes=np.arange(3)) if kind == "classifier" else {}
    if kind == "regressor" and params.get("solver") == "lbfgs":
        with pytest.raises(AttributeError, match="partial_fit"):
            ours(**PARAMS, **params).partial_fit(X, y)
        return
    assert_same_outcome(lambda: ours(**PARAMS, **params).partial_fit(X, y, **kw),
                        lambda: theirs(**PARAMS, **params).partial_fit(X, y, **kw),
                        same_message=False)


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
@pytest.mark.parametrize("labels", [[0] * N, ["only"] * N, [True] * N], ids=["int", "str", "bool"])
def test_single_class_is_allowed_as_in_scikit_learn(labels, solver):
    """scikit-learn 1.9 fits a y with one class and then always predicts it."""
    X, _ = data("classifier")
    y = np.array(labels)
    ours, theirs = classifier_pair(solver=solver)
    assert_same_outcome(lambda: ours.fit(X, y), lambda: theirs.fit(X, y))
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    assert ours.predict_proba(X).shape == theirs.predict_proba(X).shape


def test_single_class_in_partial_fit_as_in_scikit_learn():
    X, _ = data("classifier")
    y = np.zeros(N, dtype=int)
    for classes in ([0], [0, 1]):
        ours, theirs = classifier_pair()
        assert_same_outcome(lambda: ours.partial_fit(X, y, classes=classes),
                            lambda: theirs.partial_fit(X, y, classes=classes))
        np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))


def test_class_with_one_member_under_early_stopping_raises_as_scikit_learn():
    """The stratified validation split needs two members per class: scikit-learn's
    ValueError, with the same message (it names the classes as the split saw them)."""
    X, _ = data("classifier")
    y = np.r_[0, np.ones(N - 1, dtype=int)]
    ours, theirs = classifier_pair(early_stopping=True)
    assert_same_outcome(lambda: ours.fit(X, y), lambda: theirs.fit(X, y))


@pytest.mark.parametrize("kind", list(PAIRS))
def test_validation_set_too_small_raises_as_scikit_learn(kind):
    ours, theirs = PAIRS[kind]
    X, y = data(kind)
    X, y = X[:6], y[:6]
    assert_same_outcome(
        fit_call(ours, kind, X, y, "fit", early_stopping=True),
        fit_call(theirs, kind, X, y, "fit", early_stopping=True),
    )


# ---- sample weights ----------------------------------------------------------------------

SW_CASES = {
    "wrong-length": np.ones(N - 5),
    "nan": with_value(np.ones(N), 0, np.nan),
    "inf": with_value(np.ones(N), 0, np.inf),
    "all-zero": np.zeros(N),
    "2d": np.ones((N, 2)),
}


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
@pytest.mark.parametrize("kind", list(PAIRS))
@pytest.mark.parametrize("case", list(SW_CASES))
def test_bad_sample_weight_raises_as_scikit_learn(case, kind, method):
    ours, theirs = PAIRS[kind]
    X, y = data(kind)
    sw = SW_CASES[case]

    def call(cls):
        est = cls(**PARAMS)
        if method == "fit":
            return lambda: est.fit(X, y, sample_weight=sw)
        if kind == "classifier":
            return lambda: est.partial_fit(X, y, sample_weight=sw, classes=np.arange(3))
        return lambda: est.partial_fit(X, y, sample_weight=sw)

    assert_same_outcome(call(ours), call(theirs))


# ---- predict -----------------------------------------------------------------------------

PREDICT_METHODS = {
    "classifier": ["predict", "predict_proba", "predict_log_proba", "score"],
    "regressor": ["predict", "score"],
}


def call_method(est, method, X, y):
    if method == "score":
        return lambda: est.score(X, y)
    return lambda: getattr(est, method)(X)


@pytest.mark.parametrize(
    "kind,method",
    [(k, m) for k, ms in PREDICT_METHODS.items() for m in ms
     if (k, m) != ("classifier", "predict")],  # in test_estimator.py
)
def test_methods_before_fit_raise_not_fitted(kind, method):
    ours, theirs = PAIRS[kind]
    X, y = data(kind)
    err = assert_same_outcome(call_method(ours(**PARAMS), method, X, y),
                              call_method(theirs(**PARAMS), method, X, y))
    assert isinstance(err, NotFittedError)


PREDICT_CASES = [
    ("nan-in-X", lambda X: with_value(X, (3, 1), np.nan)),
    ("inf-in-X", lambda X: with_value(X, (3, 1), np.inf)),
    ("no-samples", lambda X: X[:0]),
    ("1d-X", lambda X: X[0]),
    ("3d-X", lambda X: X[:, :, None]),
    ("fewer-features", lambda X: X[:, :2]),
    ("more-features", lambda X: np.c_[X, X]),
    ("letters-in-X", lambda X: np.full(X.shape, "a")),
    ("numeric-strings-in-X", lambda X: X.astype(str)),
    ("objects-in-X", lambda X: np.array([[object()] * F] * N, dtype=object)),
    ("None-in-X", with_none),
    ("complex-X", lambda X: X + 1j),
    ("huge-X", lambda X: X * 1e154),
    ("csr-nan", lambda X: scipy.sparse.csr_matrix(with_value(X, (3, 1), np.nan))),
    ("csr-fewer-features", lambda X: scipy.sparse.csr_matrix(X[:, :2])),
    ("coo", scipy.sparse.coo_matrix),
]


@pytest.fixture(scope="module")
def fitted():
    """One fitted (fastbp, scikit-learn) pair per kind, on the same data."""
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for kind, (ours, theirs) in PAIRS.items():
            X, y = data(kind)
            out[kind] = ours(**PARAMS).fit(X, y), theirs(**PARAMS).fit(X, y)
    return out


@pytest.mark.parametrize(
    "kind,method", [(k, m) for k, ms in PREDICT_METHODS.items() for m in ms]
)
@pytest.mark.parametrize("case", PREDICT_CASES, ids=[c[0] for c in PREDICT_CASES])
def test_bad_input_at_predict_raises_as_scikit_learn(fitted, case, kind, method):
    name, build = case
    if (kind, method, name) == ("classifier", "predict", "fewer-features"):
        pytest.skip(reason="covered by test_estimator.py::test_wrong_number_of_features_at_predict")
    ours, theirs = fitted[kind]
    X, y = data(kind)
    Xb = build(X)
    got = assert_same_outcome(call_method(ours, method, Xb, y),
                              call_method(theirs, method, Xb, y))
    if not isinstance(got, Exception) and method != "score":
        _, want = outcome(call_method(theirs, method, Xb, y))
        assert np.shape(got) == np.shape(want)


def test_layer_size_mismatch_message_is_clear():
    """partial_fit with another number of targets: scikit-learn fails inside numpy's
    matmul; fastbp's own ValueError must name the layer sizes as plain integers."""
    X, y = data("regressor")
    reg = fastbp.MLPRegressor(**PARAMS).partial_fit(X, y)
    with pytest.raises(ValueError) as err:
        reg.partial_fit(X, np.c_[y, y])
    assert "[3, 4, 1]" in str(err.value) and "[3, 4, 2]" in str(err.value), str(err.value)
