"""ONNX export (the ``onnx`` extra): onnxruntime runs the exported model and agrees with
fastbp's predict_proba / predict, for every activation, output head and dtype; the same
through skl2onnx once fastbp is registered with it."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import fastbp
import reference
from conftest import make_task
from fastbp._activations import ACTIVATIONS, HIDDEN
from subproc import run_python

try:
    import onnx
    import onnxruntime
    import skl2onnx
except ImportError as e:  # the onnx extra is in the test extra; a bare install lacks it
    pytest.skip(reason=f"the onnx extra is not installed ({e}): pip install -e '.[onnx]'",
                allow_module_level=True)

TOL = {np.float64: 1e-12, np.float32: 1e-5}
DTYPES = [np.float64, np.float32]
HEADS = {  # task -> output activation
    "binary": "logistic", "multiclass": "softmax", "multilabel": "logistic",
    "regression-1": "identity", "regression-3": "identity", "poisson": "exp",
}


def task_data(task):
    if task == "multilabel":
        X, y = make_task("regression-3")
        return X, (y > 0).astype(int)
    return make_task(task)


def fitted(task, activation, dtype, **params):
    X, y = task_data(task)
    X = X.astype(dtype)
    params = dict(hidden_layer_sizes=(7, 5), activation=activation, max_iter=20,
                  random_state=0, learning_rate_init=0.01, **params)
    if task in ("binary", "multiclass", "multilabel"):
        est = fastbp.MLPClassifier(**params)
    else:
        est = fastbp.MLPRegressor(loss="poisson" if task == "poisson" else "squared_error",
                                  **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    assert est.out_activation_ == HEADS[task]
    return est, X


def run(model, X):
    session = onnxruntime.InferenceSession(model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: X})


def assert_agree(est, X, outputs, dtype):
    tol = TOL[dtype]
    if isinstance(est, fastbp.MLPClassifier):
        label, proba = outputs
        want = est.predict_proba(X)
        assert proba.dtype == dtype
        np.testing.assert_allclose(proba, want, rtol=tol, atol=tol)
        # labels compared where no probability is within rounding of a tie
        if est.out_activation_ == "logistic":  # thresholded at 0.5
            p = want[:, 1:] if est.n_outputs_ == 1 else want
            sure = (np.abs(p - 0.5) > 10 * tol).all(axis=1)
        else:  # argmax
            top = np.sort(want, axis=1)
            sure = top[:, -1] - top[:, -2] > 10 * tol
        assert sure.mean() > 0.9
        np.testing.assert_array_equal(label[sure], est.predict(X)[sure])
    else:
        (pred,) = outputs
        want = est.predict(X).reshape(len(X), -1)
        assert pred.dtype == dtype
        scale = np.abs(want).max()
        np.testing.assert_allclose(pred, want, rtol=tol, atol=tol * scale)


def test_every_activation_has_an_onnx_form(dtype):
    """Each registry entry's ONNX form, alone in a graph, computes the entry's NumPy
    reference (a new activation needs one: ``fastbp._activations``' recipe)."""
    from onnx import helper

    Z = np.random.default_rng(0).standard_normal((5, 4)).astype(dtype) * 3
    Z[0] = [-40.0, -8.0, 0.0, 40.0]  # the tails (gelu's series, softplus, elu)
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    for name, entry in ACTIVATIONS.items():
        assert callable(entry.onnx), f"{name} has no ONNX form"
        g = fastbp._onnx._Graph(reserved=("Z", "A"))
        g.dtype = dtype
        g.node("Identity", [entry.onnx(g, "Z")], out="A")
        graph = helper.make_graph(g.nodes, name, [helper.make_tensor_value_info("Z", elem, [5, 4])],
                                  [helper.make_tensor_value_info("A", elem, [5, 4])],
                                  g.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)],
                                  ir_version=fastbp._onnx.IR_VERSION)
        (A,) = run(model, Z)
        np.testing.assert_allclose(A, reference.activation(name, Z.astype(np.float64)),
                                   rtol=TOL[dtype], atol=TOL[dtype], err_msg=name)


@pytest.mark.parametrize("task", list(HEADS))
@pytest.mark.parametrize("activation", HIDDEN)  # every hidden activation fastbp has
def test_onnxruntime_agrees_with_predict(task, activation, dtype):
    est, X = fitted(task, activation, dtype)
    model = est.to_onnx(dtype)
    (x,) = model.graph.input
    dims = x.type.tensor_type.shape.dim
    assert x.name == "X" and not dims[0].HasField("dim_value") and dims[1].dim_value == 6
    names = [o.name for o in model.graph.output]
    assert names == (["label", "probabilities"] if task in ("binary", "multiclass",
                                                            "multilabel") else ["variable"])
    assert_agree(est, X, run(model, X), dtype)


@pytest.mark.parametrize("task", ["binary", "poisson"])
def test_float64_model_as_float32_onnx(task):
    est, X = fitted(task, "tanh", np.float64)
    model = est.to_onnx(np.float32)
    outputs = run(model, X.astype(np.float32))
    assert_agree(est, X, outputs, np.float32)


@pytest.mark.parametrize("task", list(HEADS))
def test_skl2onnx_converts_after_registration(task, dtype):
    fastbp.register_skl2onnx()
    est, X = fitted(task, "relu", dtype)
    options = {"zipmap": False} if isinstance(est, fastbp.MLPClassifier) else None
    model = skl2onnx.to_onnx(est, X[:1], options=options)
    assert_agree(est, X, run(model, X), dtype)


def test_skl2onnx_zipmap_and_pipeline():
    """skl2onnx's default for classifiers (probabilities as maps) and a pipeline."""
    fastbp.register_skl2onnx()
    est, X = fitted("multiclass", "tanh", np.float32)
    label, maps = run(skl2onnx.to_onnx(est, X[:1]), X)
    proba = np.array([[m[c] for c in est.classes_] for m in maps])
    np.testing.assert_allclose(proba, est.predict_proba(X), rtol=1e-5, atol=1e-5)
    X64, y = task_data("multiclass")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipe = make_pipeline(StandardScaler(), fastbp.MLPClassifier((6,), max_iter=20,
                                                                     random_state=0))
        pipe.fit(X64, y)
    model = skl2onnx.to_onnx(pipe, X64[:1], options={"zipmap": False})
    label, proba = run(model, X64)
    np.testing.assert_allclose(proba, pipe.predict_proba(X64), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(label, pipe.predict(X64))


def test_hand_set_weights_export():
    """Weights assigned to a fitted model are the ones exported."""
    est, X = fitted("regression-1", "relu", np.float64)
    est.coefs_ = [2 * W for W in est.coefs_]
    assert_agree(est, X, run(est.to_onnx(np.float64), X), np.float64)


def test_errors():
    with pytest.raises(NotFittedError):
        fastbp.MLPClassifier().to_onnx()
    est, _ = fitted("binary", "relu", np.float64)
    with pytest.raises(ValueError, match="dtype"):
        est.to_onnx(np.int64)
    with pytest.raises(ValueError, match="target_opset"):
        est.to_onnx(target_opset=12)


def test_import_fastbp_does_not_import_onnx():
    out = run_python("import sys, fastbp\n"
                     "print(sorted(m for m in ('onnx', 'onnxruntime', 'skl2onnx') "
                     "if m in sys.modules))")
    assert out.strip() == "[]"
