"""The estimators' surface: signature, validation, warnings, verbose lines, Ctrl-C,
dtypes, the flat buffer's views, pickling. Values are checked against scikit-learn."""

import inspect
import re
import pickle
import warnings

import numpy as np
import pytest
from sklearn import neural_network as sk
from sklearn.base import clone
from sklearn.datasets import load_digits, make_regression
from sklearn.exceptions import ConvergenceWarning, NotFittedError

import fastbp
from fastbp import _kernels, _loop, _mlp

PAIRS = [(fastbp.MLPClassifier, sk.MLPClassifier), (fastbp.MLPRegressor, sk.MLPRegressor)]


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:400] / 16.0, y[:400]


@pytest.mark.parametrize("ours,theirs", PAIRS)
def test_signature_is_scikit_learns(ours, theirs):
    """scikit-learn's parameters first, with the same names, order, kinds and defaults;
    fastbp's own options after them, keyword-only (so positional calls keep working)."""
    a = list(inspect.signature(ours.__init__).parameters.values())
    b = list(inspect.signature(theirs.__init__).parameters.values())
    assert [(p.name, p.kind, p.default) for p in a[: len(b)]] == [
        (p.name, p.kind, p.default) for p in b
    ]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in a[len(b):])
    ours_params, theirs_params = ours().get_params(), theirs().get_params()
    assert {k: ours_params[k] for k in theirs_params} == theirs_params


INVALID = [
    dict(hidden_layer_sizes=0),
    dict(hidden_layer_sizes="a"),
    dict(activation="softmax"),
    dict(solver="newton"),
    dict(alpha=-1.0),
    dict(batch_size=0),
    dict(batch_size="big"),
    dict(learning_rate="fast"),
    dict(learning_rate_init=0.0),
    dict(power_t=-0.5),
    dict(max_iter=0),
    dict(shuffle="yes"),
    dict(random_state="seed"),
    dict(tol=-1.0),
    dict(momentum=1.5),
    dict(nesterovs_momentum=1),
    dict(validation_fraction=1.0),
    dict(beta_1=1.0),
    dict(beta_2=-0.1),
    dict(epsilon=0.0),
    dict(n_iter_no_change=0),
    dict(max_fun=0),
]


@pytest.mark.parametrize("ours,theirs", PAIRS)
@pytest.mark.parametrize("params", INVALID, ids=lambda p: "-".join(map(str, p.items())))
def test_invalid_parameters_raise_as_scikit_learn(ours, theirs, params):
    X, y = np.random.default_rng(0).standard_normal((20, 3)), np.arange(20) % 2
    with pytest.raises(Exception) as theirs_err:
        theirs(**params).fit(X, y)
    with pytest.raises(type(theirs_err.value)) as ours_err:
        ours(**params).fit(X, y)
    expected = str(theirs_err.value)
    if "activation" in params:  # fastbp has more: its message lists them all
        names = ", ".join(repr(name) for name in fastbp._activations.HIDDEN)
        expected = re.sub(r"\{[^{}]*\}", "{" + names + "}", expected)
    assert same_text(str(ours_err.value), expected)


def same_text(a, b):
    """Equal messages, up to the order of items inside {...} (set order is hash-dependent)."""

    def norm(msg):
        return re.sub(r"\{([^{}]*)\}", lambda m: "{" + ", ".join(sorted(m.group(1).split(", "))) + "}", msg)

    return norm(a) == norm(b)


@pytest.mark.parametrize("ours,theirs", PAIRS)
def test_nonpositive_layer_size_in_list(ours, theirs):
    X, y = np.ones((4, 2)), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"hidden_layer_sizes must be > 0, got \[3, 0\]"):
        ours(hidden_layer_sizes=[3, 0]).fit(X, y)


def test_regressor_loss_validated():
    with pytest.raises(ValueError, match="'loss' parameter of MLPRegressor must be"):
        fastbp.MLPRegressor(loss="huber").fit(np.ones((3, 2)), np.ones(3))


def test_predict_before_fit():
    with pytest.raises(NotFittedError):
        fastbp.MLPClassifier().predict(np.ones((2, 2)))


def test_wrong_number_of_features_at_predict(digits):
    X, y = digits
    clf = fastbp.MLPClassifier(max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    with pytest.raises(ValueError, match="expecting 64 features"):
        clf.predict(X[:, :10])


@pytest.mark.parametrize("early_stopping", [False, True])
@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("ours,theirs", PAIRS)
def test_verbose_prints_scikit_learns_lines(ours, theirs, solver, early_stopping, capsys):
    X, y = load_digits(return_X_y=True)
    X, y = X[:200] / 16, y[:200]
    params = dict(hidden_layer_sizes=(8,), solver=solver, max_iter=30, tol=0.05,
                  n_iter_no_change=2, verbose=True, random_state=0, learning_rate="adaptive",
                  early_stopping=early_stopping)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs(**params).fit(X, y)
        want = capsys.readouterr().out
        ours(**params).fit(X, y)
        got = capsys.readouterr().out
    assert "Iteration 1, loss = " in want
    assert ("Validation score: " in want) == early_stopping
    assert got == want


def test_keyboard_interrupt_stops_with_warning(digits, monkeypatch):
    """Ctrl-C during training: scikit-learn's warning, and a model that predicts."""
    X, y = digits
    calls = []
    real = _kernels.train_epoch

    def interrupted_on_third_call(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(_kernels, "train_epoch", interrupted_on_third_call)
    clf = fastbp.MLPClassifier(hidden_layer_sizes=(10,), max_iter=50, random_state=0)
    with pytest.warns(UserWarning, match="Training interrupted by user."):
        clf.fit(X, y)
    assert clf.n_iter_ == 2
    assert len(clf.loss_curve_) == 2
    assert clf.predict(X).shape == (400,)


def test_chunked_epochs_give_the_same_model(digits, monkeypatch):
    """Splitting an epoch into several kernel calls (for Ctrl-C) changes nothing."""
    X, y = digits
    params = dict(hidden_layer_sizes=(10,), batch_size=32, max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        whole = fastbp.MLPClassifier(**params).fit(X, y)
        monkeypatch.setattr(_loop, "FLOPS_PER_CALL", 1.0)  # one minibatch per call
        chunked = fastbp.MLPClassifier(**params).fit(X, y)
    np.testing.assert_array_equal(whole._flat, chunked._flat)
    assert whole.loss_curve_ == chunked.loss_curve_


@pytest.mark.parametrize("ours,theirs", PAIRS)
def test_diverging_fit_raises_as_scikit_learn(ours, theirs):
    X, y = make_regression(100, 5, random_state=0)
    X *= 1e100
    if ours is fastbp.MLPClassifier:
        y = y > 0
    params = dict(solver="sgd", learning_rate_init=10.0, max_iter=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="Solver produced non-finite parameter weights"):
            theirs(**params).fit(X, y)
        with pytest.raises(ValueError, match="Solver produced non-finite parameter weights"):
            ours(**params).fit(X, y)


def test_float32_trains_in_float32_and_agrees_like_scikit_learn(digits):
    """float32 predictions stay as close to the float64 model's as scikit-learn's do."""
    X, y = digits
    params = dict(hidden_layer_sizes=(32,), max_iter=10, random_state=0)
    probs = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name, cls in (("ours", fastbp.MLPClassifier), ("theirs", sk.MLPClassifier)):
            for dt in (np.float32, np.float64):
                model = cls(**params).fit(X.astype(dt), y)
                assert all(c.dtype == dt for c in model.coefs_ + model.intercepts_)
                probs[name, dt] = model.predict_proba(X.astype(dt))
    assert probs["ours", np.float32].dtype == np.float32
    ours = np.abs(probs["ours", np.float32] - probs["ours", np.float64]).max()
    theirs = np.abs(probs["theirs", np.float32] - probs["theirs", np.float64]).max()
    assert ours <= 2 * theirs + 10 * np.finfo(np.float32).eps, (ours, theirs)


def test_float32_regression_agrees_like_scikit_learn():
    X, y = make_regression(300, 8, n_targets=2, noise=1.0, random_state=0)
    y = y / 100
    params = dict(hidden_layer_sizes=(16,), max_iter=10, random_state=0)
    preds = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name, cls in (("ours", fastbp.MLPRegressor), ("theirs", sk.MLPRegressor)):
            for dt in (np.float32, np.float64):
                preds[name, dt] = cls(**params).fit(X.astype(dt), y).predict(X.astype(dt))
    scale = np.abs(preds["theirs", np.float64]).max()
    ours = np.abs(preds["ours", np.float32] - preds["ours", np.float64]).max()
    theirs = np.abs(preds["theirs", np.float32] - preds["theirs", np.float64]).max()
    assert ours <= 2 * theirs + 10 * np.finfo(np.float32).eps * scale, (ours, theirs)


def test_integer_input_trains_in_float64():
    X = np.arange(40).reshape(20, 2)
    y = np.arange(20) % 2
    clf = fastbp.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    assert clf.coefs_[0].dtype == np.float64


def test_coefs_are_views_of_the_flat_buffer(digits):
    X, y = digits
    clf = fastbp.MLPClassifier(hidden_layer_sizes=(7, 5), max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    assert [c.shape for c in clf.coefs_] == [(64, 7), (7, 5), (5, 10)]
    assert [b.shape for b in clf.intercepts_] == [(7,), (5,), (10,)]
    for a in clf.coefs_ + clf.intercepts_:
        assert np.shares_memory(a, clf._flat)
    # writing into a view changes the model; assigning a new array is honoured too
    before = clf.predict_proba(X[:5])
    clf.intercepts_[-1][:] += 100.0 * np.arange(10)
    assert (clf.predict(X[:5]) == 9).all()
    clf.intercepts_[-1] = np.zeros(10)
    clf.coefs_[-1] = np.zeros((5, 10))
    np.testing.assert_allclose(clf.predict_proba(X[:5]), 0.1)
    assert not np.allclose(before, 0.1)


@pytest.mark.parametrize("ours,theirs", PAIRS)
def test_pickle_and_clone(ours, theirs, digits):
    X, y = digits
    model = ours(hidden_layer_sizes=(6,), max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict(X), model.predict(X))
    for a in again.coefs_ + again.intercepts_:
        assert np.shares_memory(a, again._flat)
    assert hasattr(model, "coefs_")  # pickling did not strip the live model
    fresh = clone(model)
    assert fresh.get_params() == model.get_params()
    assert not hasattr(fresh, "coefs_")


def test_predict_log_proba_and_binary_proba(digits):
    X, y = digits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = fastbp.MLPClassifier(hidden_layer_sizes=(6,), max_iter=3, random_state=0)
        clf.fit(X, y == 3)
    P = clf.predict_proba(X)
    assert P.shape == (400, 2)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(P))
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[P.argmax(axis=1)])


def test_score_uses_accuracy_and_r2(digits):
    X, y = digits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = fastbp.MLPClassifier(max_iter=20, random_state=0).fit(X, y)
        ref = sk.MLPClassifier(max_iter=20, random_state=0).fit(X, y)
    assert clf.score(X, y) == ref.score(X, y)
    Xr, yr = make_regression(200, 4, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg = fastbp.MLPRegressor(max_iter=20, random_state=0).fit(Xr, yr)
        ref = sk.MLPRegressor(max_iter=20, random_state=0).fit(Xr, yr)
    np.testing.assert_allclose(reg.score(Xr, yr), ref.score(Xr, yr), rtol=1e-9)


_LABELS = {
    "binary-int": (np.array([3, 7, 7, 3, 7]), None),
    "binary-bool": (np.array([True, False, False, True]), None),
    "multiclass-int": (np.array([2, 0, 1, 2, 2, 1, 0]), None),
    "multiclass-str": (np.array(["b", "a", "c", "a", "b"]), None),
    "multiclass-float": (np.array([1.0, -1.0, 2.0, 1.0]), None),
    "subset-of-classes": (np.array([1, 1, 3]), np.array([0, 1, 2, 3])),
    "one-class": (np.array([4, 4, 4]), None),
    "multilabel": (np.array([[1, 0, 1], [0, 1, 1]]), None),
}


@pytest.mark.parametrize("case", list(_LABELS))
def test_binarize_is_label_binarizers_transform(case):
    """The classifier's fast target encoding gives LabelBinarizer's array, for every kind
    of target (those it does not handle go to LabelBinarizer itself)."""
    from sklearn.preprocessing import LabelBinarizer

    y, classes = _LABELS[case]
    lb = LabelBinarizer().fit(y if classes is None else classes)
    expected = lb.transform(y).astype(bool)
    got = _mlp._binarize(lb, y)
    assert got.dtype == bool and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_binarize_unknown_labels_as_label_binarizer():
    """Labels outside ``classes_`` (partial_fit refuses them before, but the encoding must
    not guess): LabelBinarizer's result, or its error."""
    from sklearn.preprocessing import LabelBinarizer

    lb = LabelBinarizer().fit(np.array([0, 1, 2]))
    for y in (np.array([0, 5, 1]), np.array([-1, 0, 2]), np.array(["a", "b", "a"])):
        try:
            expected = lb.transform(y).astype(bool)
        except ValueError as e:
            with pytest.raises(ValueError, match=re.escape(str(e))):
                _mlp._binarize(lb, y)
        else:
            np.testing.assert_array_equal(_mlp._binarize(lb, y), expected)
