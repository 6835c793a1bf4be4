"""fastbp's options beyond scikit-learn's (issue: training beyond scikit-learn): the five
activations, dropout, class_weight, dtype and the classifier's squared-error loss. Each
default is scikit-learn's model (the parity grid and the differential test); here each
option is checked against an independent computation."""

import warnings

import numpy as np
import pytest
import reference as ref
from conftest import PARITY_RTOL
from sklearn.datasets import load_digits, make_multilabel_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.class_weight import compute_sample_weight

import fastbp
from fastbp import _dropout, _threads

NEW = ["leaky_relu", "elu", "gelu", "silu", "softplus"]


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:300] / 16.0, y[:300]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def numpy_forward(est, X, hidden):
    out = "softmax" if est.out_activation_ == "softmax" else est.out_activation_
    return ref.forward(est.coefs_, est.intercepts_, X, hidden, out)[-1]


@pytest.mark.parametrize("activation", NEW)
def test_new_activation_predicts_as_numpy(activation, digits):
    X, y = digits
    est = fastbp.MLPClassifier((16, 8), activation=activation, max_iter=5,
                               random_state=0).fit(X, y)
    P = numpy_forward(est, X, activation)
    np.testing.assert_allclose(est.predict_proba(X), P, rtol=1e-12, atol=1e-15)
    reg = fastbp.MLPRegressor(hidden_layer_sizes=(8,), activation=activation, max_iter=5, random_state=0)
    reg.fit(X, y.astype(float))
    np.testing.assert_allclose(reg.predict(X), numpy_forward(reg, X, activation).ravel(),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("activation", NEW)
@pytest.mark.parametrize("threads", ["never", "always"])
def test_new_activation_trains_the_same_on_one_thread_and_two(activation, threads, digits,
                                                               monkeypatch):
    """The kept f' is each thread's own columns: one thread and two agree to rounding."""
    X, y = digits
    kw = dict(hidden_layer_sizes=(32, 16), activation=activation, max_iter=3,
              random_state=1, batch_size=64)
    monkeypatch.setattr(_threads, "MODE", "never")
    one = fastbp.MLPClassifier(**kw).fit(X, y)
    monkeypatch.setattr(_threads, "MODE", threads)
    other = fastbp.MLPClassifier(**kw).fit(X, y)
    np.testing.assert_allclose(other._flat, one._flat, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(other.loss_curve_, one.loss_curve_, rtol=1e-9)


# ---- dropout --------------------------------------------------------------------------

def test_dropout_masks_are_the_counter_based_draws():
    """The kernel's masks are ``_dropout.masks``' (NumPy), and drop a fraction p."""
    rng = np.random.default_rng(0)
    A = rng.uniform(0.5, 1.5, (300, 40))
    G = rng.uniform(0.5, 1.5, (300, 40))
    A0, G0 = A.copy(), G.copy()
    key = _dropout.layer_key(123, 7, 1)
    _dropout.dropout_cols(A, G, 10, 30, key, 0.3)
    keep = _dropout.masks(123, 7, 1, 300, 40, 0.3)[:, 10:30]
    np.testing.assert_array_equal(A[:, 10:30], np.where(keep, A0[:, 10:30] * (1 / 0.7), 0))
    np.testing.assert_array_equal(G[:, 10:30], np.where(keep, G0[:, 10:30] * (1 / 0.7), 0))
    np.testing.assert_array_equal(A[:, :10], A0[:, :10])
    np.testing.assert_array_equal(G[:, 30:], G0[:, 30:])
    assert abs((~keep).mean() - 0.3) < 0.02
    other = _dropout.masks(123, 8, 1, 300, 40, 0.3)  # the next step: other masks
    assert (other != _dropout.masks(123, 7, 1, 300, 40, 0.3)).mean() > 0.3


def test_dropout_is_reproducible_and_thread_independent(digits, monkeypatch):
    X, y = digits
    kw = dict(hidden_layer_sizes=(32, 16), dropout=(0.2, 0.1), max_iter=4,
              random_state=3, batch_size=50)
    monkeypatch.setattr(_threads, "MODE", "never")
    a = fastbp.MLPClassifier(**kw).fit(X, y)
    b = fastbp.MLPClassifier(**kw).fit(X, y)
    np.testing.assert_array_equal(a._flat, b._flat)  # bit for bit, run to run
    monkeypatch.setattr(_threads, "MODE", "always")
    used = []
    plan = _threads.plan
    monkeypatch.setattr(_threads, "plan", lambda *s: used.append(plan(*s)) or used[-1])
    c = fastbp.MLPClassifier(**kw).fit(X, y)
    assert used and used[-1] is not None  # it did run on two threads
    np.testing.assert_allclose(c._flat, a._flat, rtol=1e-9, atol=1e-12)
    # predict is deterministic and drops nothing
    np.testing.assert_array_equal(a.predict_proba(X), a.predict_proba(X))
    np.testing.assert_allclose(a.predict_proba(X), numpy_forward(a, X, "relu"), rtol=1e-12)


def test_dropout_does_not_depend_on_how_epochs_are_cut(digits, monkeypatch):
    """Kernel calls of one minibatch each against whole epochs: the same model."""
    from fastbp import _loop

    X, y = digits
    kw = dict(hidden_layer_sizes=(16,), dropout=0.3, max_iter=3, random_state=0,
              batch_size=40, solver="sgd")
    whole = fastbp.MLPClassifier(**kw).fit(X, y)
    monkeypatch.setattr(_loop, "FIRST_CALL_BATCHES", 1)
    monkeypatch.setattr(_loop, "SECONDS_PER_CALL", 0.0)
    cut = fastbp.MLPClassifier(**kw).fit(X, y)
    np.testing.assert_array_equal(cut._flat, whole._flat)


def test_dropout_changes_the_model_and_partial_fit_continues(digits):
    X, y = digits
    plain = fastbp.MLPClassifier((16,), max_iter=3, random_state=0).fit(X, y)
    dropped = fastbp.MLPClassifier((16,), dropout=0.5, max_iter=3, random_state=0).fit(X, y)
    assert not np.allclose(plain._flat, dropped._flat)
    est = fastbp.MLPClassifier((16,), dropout=0.5, random_state=0)
    est.partial_fit(X, y, classes=np.unique(y))
    first = est._flat.copy()
    est.partial_fit(X, y)
    assert est._optimizer.t == 2 * -(-X.shape[0] // 200) and not np.allclose(first, est._flat)


@pytest.mark.parametrize("dropout", [1.0, -0.1, (0.1,), (0.1, 0.2, 0.3), "a", np.nan])
def test_bad_dropout_is_refused(dropout, digits):
    X, y = digits
    with pytest.raises(ValueError, match="dropout"):
        fastbp.MLPClassifier((8, 4), dropout=dropout, max_iter=1).fit(X, y)


def test_dropout_with_lbfgs_is_refused(digits):
    X, y = digits
    with pytest.raises(ValueError, match="deterministic"):
        fastbp.MLPClassifier((8,), solver="lbfgs", dropout=0.1).fit(X, y)


# ---- class_weight ---------------------------------------------------------------------

@pytest.mark.parametrize("class_weight", ["balanced", {0: 3.0, 1: 0.5, 5: 2.0}])
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_class_weight_is_the_equivalent_sample_weight(class_weight, solver, digits):
    X, y = digits
    cw = {c: 1.0 for c in np.unique(y)} if isinstance(class_weight, dict) else None
    if cw is not None:
        cw.update(class_weight)
    sw = compute_sample_weight(class_weight if cw is None else cw, y)
    kw = dict(hidden_layer_sizes=(8,), solver=solver, max_iter=4, random_state=0)
    a = fastbp.MLPClassifier(class_weight=class_weight, **kw).fit(X, y)
    b = fastbp.MLPClassifier(**kw).fit(X, y, sample_weight=sw)
    np.testing.assert_allclose(a._flat, b._flat, rtol=1e-12, atol=1e-15)
    # multiplied into given sample weights
    w = np.random.default_rng(0).uniform(0.5, 2, y.size)
    c = fastbp.MLPClassifier(class_weight=class_weight, **kw).fit(X, y, sample_weight=w)
    d = fastbp.MLPClassifier(**kw).fit(X, y, sample_weight=w * sw)
    np.testing.assert_allclose(c._flat, d._flat, rtol=1e-12, atol=1e-15)


def test_class_weight_with_early_stopping_and_partial_fit(digits):
    X, y = digits
    sw = compute_sample_weight("balanced", y)
    kw = dict(hidden_layer_sizes=(8,), max_iter=6, random_state=0, early_stopping=True)
    a = fastbp.MLPClassifier(class_weight="balanced", **kw).fit(X, y)
    b = fastbp.MLPClassifier(**kw).fit(X, y, sample_weight=sw)
    np.testing.assert_allclose(a._flat, b._flat, rtol=1e-12, atol=1e-15)
    assert a.validation_scores_ == b.validation_scores_
    weights = {c: 1.0 + c for c in range(10)}
    p = fastbp.MLPClassifier((8,), class_weight=weights, random_state=0)
    q = fastbp.MLPClassifier((8,), random_state=0)
    for _ in range(2):
        p.partial_fit(X, y, classes=np.arange(10))
        q.partial_fit(X, y, classes=np.arange(10), sample_weight=1.0 + y)
    np.testing.assert_allclose(p._flat, q._flat, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="not supported for partial_fit"):
        fastbp.MLPClassifier(class_weight="balanced").partial_fit(X, y, classes=np.arange(10))


def test_class_weight_multilabel():
    """Multilabel y: 'balanced' per label, or one dict per label (scikit-learn's
    multi-output rule); a single dict is refused with scikit-learn's message."""
    X, Y = make_multilabel_classification(60, 5, n_classes=3, random_state=0)
    kw = dict(hidden_layer_sizes=(6,), max_iter=3, random_state=0)
    a = fastbp.MLPClassifier(class_weight="balanced", **kw).fit(X, Y)
    b = fastbp.MLPClassifier(**kw).fit(X, Y, sample_weight=compute_sample_weight("balanced", Y))
    np.testing.assert_allclose(a._flat, b._flat, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="list of dicts"):
        fastbp.MLPClassifier(class_weight={0: 1.0, 1: 2.0}, **kw).fit(X, Y)


# ---- dtype ----------------------------------------------------------------------------

@pytest.mark.parametrize("Est", [fastbp.MLPClassifier, fastbp.MLPRegressor])
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_dtype_float32_is_the_model_of_float32_input(Est, solver, digits):
    X, y = digits
    kw = dict(hidden_layer_sizes=(8,), solver=solver, max_iter=4, random_state=0)
    y = y if Est is fastbp.MLPClassifier else y.astype(np.float64)
    a = Est(dtype=np.float32, **kw).fit(X, y)
    b = Est(**kw).fit(X.astype(np.float32), y)
    assert a._flat.dtype == np.float32
    np.testing.assert_array_equal(a._flat, b._flat)
    out = a.predict_proba(X) if hasattr(a, "predict_proba") else a.predict(X)
    want = b.predict_proba(X.astype(np.float32)) if hasattr(b, "predict_proba") else (
        b.predict(X.astype(np.float32)))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, want)
    c = Est(dtype="float64", **kw).fit(X.astype(np.float32), y)
    assert c._flat.dtype == np.float64


@pytest.mark.parametrize("dtype", [np.int32, "float16", "x", np.complex128])
def test_bad_dtype_is_refused(dtype, digits):
    X, y = digits
    with pytest.raises(ValueError, match="dtype must be"):
        fastbp.MLPClassifier((4,), dtype=dtype, max_iter=1).fit(X, y)


# ---- the classifier's squared error ---------------------------------------------------

def seed_objective(est, X, Y, sw, alpha):
    A = numpy_forward(est, X, est.activation)
    S = sw.sum()
    return (0.5 * (sw[:, None] * (Y - A) ** 2).sum() + 0.5 * alpha *
            sum((W**2).sum() for W in est.coefs_)) / S


@pytest.mark.parametrize("multiclass", [True, False])
def test_squared_error_loss_is_the_seeds_J(multiclass, digits):
    """loss_ is J = Σ s ½‖y - a‖² / S + α/(2S) Σ‖W‖² at the final weights (L-BFGS), and
    its minimum: the gradient is J's (L-BFGS converges on it)."""
    X, y = digits
    y = y if multiclass else (y > 4).astype(int)
    sw = np.random.default_rng(0).uniform(0.5, 2.0, y.size)
    est = fastbp.MLPClassifier((8,), solver="lbfgs", loss="squared_error", alpha=1e-3,
                               max_iter=30, random_state=0).fit(X, y, sample_weight=sw)
    Y = np.eye(10)[y] if multiclass else y[:, None].astype(float)
    np.testing.assert_allclose(est.loss_, seed_objective(est, X, Y, sw, 1e-3), rtol=1e-12)
    log = fastbp.MLPClassifier((8,), solver="lbfgs", alpha=1e-3, max_iter=30,
                               random_state=0).fit(X, y, sample_weight=sw)
    assert not np.isclose(log.loss_, est.loss_)
    # stochastic: an epoch's loss is its minibatches' mean J, each at the weights before
    # its step; one minibatch, at a rate too small to move them: J at the final weights
    sgd = fastbp.MLPClassifier((8,), solver="sgd", loss="squared_error", alpha=1e-3,
                               batch_size=X.shape[0], learning_rate_init=1e-300,
                               max_iter=1, random_state=0).fit(X, y, sample_weight=sw)
    np.testing.assert_allclose(sgd.loss_curve_[0], seed_objective(sgd, X, Y, sw, 1e-3),
                               rtol=1e-12)
