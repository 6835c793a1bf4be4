"""``python -m fastbp warmup``: after it, a fresh process's fits compile nothing."""

import json
import subprocess
import sys

import pytest

import fastbp
from fastbp import __main__ as cli
from subproc import ROOT, child_env, run_python


def test_help(capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(["--help"])
    assert exit.value.code == 0
    assert "warmup" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["warmup", "--help"])
    text = capsys.readouterr().out
    for word in ("float32", "lbfgs", "sparse", "two-thread", "NUMBA_CACHE_DIR", "CPU"):
        assert word in text


def test_every_dtype_solver_and_kind_of_X_is_a_step():
    labels = [label for label, _ in cli.steps()]
    for dtype in ("float32", "float64"):
        for solver in ("sgd", "adam", "lbfgs"):
            for kind in ("dense X", "sparse X", "sparse X (int64 indices)"):
                assert "%s %s, %s: fit, predict" % (dtype, kind, solver) in labels
        for solver in ("sgd", "adam"):
            assert "%s dense X, %s: two-thread epoch" % (dtype, solver) in labels
        for kind in ("dense X", "sparse X", "sparse X (int64 indices)"):
            for solver in ("adam", "lbfgs"):
                assert "%s %s, %s: kept f' (gelu)" % (dtype, kind, solver) in labels
        assert "%s dense X, adam: two-thread epoch, kept f'" % dtype in labels


def test_the_two_thread_switch_is_found():
    """The one place warmup reaches inside fastbp: a rename of the two-thread module
    (or of its MODE) fails here, not only in the slow test."""
    from fastbp import _threads

    previous = cli._two_thread_mode("always")
    try:
        assert previous is not None and _threads.MODE == "always"
    finally:
        cli._two_thread_mode(previous)
    assert _threads.MODE == previous


# Fits unlike warmup's: other shapes, CSC, early stopping, partial_fit, score.
AFTER = """
import json, sys, warnings
import numpy as np, scipy.sparse as sp
from numba.core import event
import fastbp
from fastbp.__main__ import Compiles

compiles = Compiles()
rng = np.random.default_rng(1)
with event.install_listener("numba:compile", compiles), warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for dtype in (np.float32, np.float64):
        X = rng.standard_normal((150, 5)).astype(dtype)
        y, t = (X[:, 0] > 0).astype(int), X.sum(axis=1)
        csc = sp.csc_matrix(np.where(X > 0, X, 0))
        csr64 = sp.csr_matrix(np.where(X > 0, X, 0))
        csr64.indices = csr64.indices.astype(np.int64)
        csr64.indptr = csr64.indptr.astype(np.int64)
        for data in ((X,) if sys.argv[1] == "two-thread" else (X, csc, csr64)):
            for solver in ("sgd", "adam", "lbfgs"):
                params = dict(solver=solver, max_iter=3, batch_size=32, random_state=0)
                m = fastbp.MLPClassifier(hidden_layer_sizes=(20, 20), **params,
                                         early_stopping=solver != "lbfgs")
                m.fit(data, y).predict_proba(data)
                m.score(data, y)
                r = fastbp.MLPRegressor(hidden_layer_sizes=(20,), **params).fit(data, t)
                r.predict(data)
            fastbp.MLPClassifier(hidden_layer_sizes=(16,), max_iter=2).partial_fit(
                data, y, classes=[0, 1])
            fastbp.MLPClassifier(hidden_layer_sizes=(20, 20), activation="silu",
                                 dropout=0.1, max_iter=2, batch_size=32).fit(data, y)
            fastbp.MLPRegressor(hidden_layer_sizes=(20,), activation="softplus",
                                solver="lbfgs", max_iter=3).fit(data, t)
print(json.dumps(compiles.names))
"""


@pytest.mark.slow
def test_warmup_then_fits_compile_nothing(tmp_path):
    """Compiles every kernel (2.5 minutes on the shared 2-core machine)."""
    env = dict(child_env(), NUMBA_CACHE_DIR=str(tmp_path), FASTBP_DISABLE_CACHE="0")
    env.pop("FASTBP_SPLIT", None)

    def warmup():
        proc = subprocess.run([sys.executable, "-m", "fastbp", "warmup"], cwd=str(ROOT),
                              env=env, capture_output=True, text=True, timeout=1200)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    out = warmup()
    assert "fastbp %s warmup" % fastbp.__version__ in out
    assert "cached in %s" % tmp_path in out
    lines = [line for line in out.splitlines() if "compiled" in line and ":" in line]
    assert len(lines) == len(cli.steps()) + 1, out
    assert "two-thread epoch" in out and "skipped" not in out
    two_thread = [line for line in lines if "sgd: two-thread epoch" in line]
    assert all(" compiled   0," not in line for line in two_thread), out  # split kernels
    for mode in ("one-thread", "two-thread"):
        split = {"FASTBP_SPLIT": "always" if mode == "two-thread" else "auto"}
        compiled = json.loads(run_python(AFTER, mode, env=dict(
            NUMBA_CACHE_DIR=str(tmp_path), FASTBP_DISABLE_CACHE="0", **split)))
        assert compiled == [], (mode, compiled)
    again = warmup()
    assert "compiled 0 functions" in again, again
