"""``python -m fastbp warmup``: compile and cache, ahead of time, every kernel a fit can
need. See ``python -m fastbp --help``.

The kernels are compiled the way a user's fits compile them: tiny fits and predictions
through the public estimators, for each dtype, solver and kind of X, so that this
command follows the kernels wherever they are defined. The one thing it sets inside
fastbp is the two-thread epoch's switch (``_two_thread_mode``).
"""

import argparse
import importlib
import sys
import time
import warnings

import llvmlite.binding as ll
import numba
import numpy as np
import scipy.sparse as sp
from numba.core import config, event
from sklearn.exceptions import ConvergenceWarning

import fastbp
from fastbp import _config

DTYPES = ("float64", "float32")
SOLVERS = ("sgd", "adam", "lbfgs")
KINDS = ("dense X", "sparse X", "sparse X (int64 indices)")  # (CSC is made CSR)
TWO_THREAD_SOLVERS = ("sgd", "adam")  # (lbfgs has no epochs)

WARMUP_HELP = """\
Compile, and write to Numba's cache, every kernel a fit or a prediction can need:
float32 and float64; solvers sgd, adam and lbfgs; dense X, and sparse X (CSR or CSC)
with 32- and 64-bit indices; predict and predict_proba; the two-thread epoch
(FASTBP_SPLIT); the layers that keep f' (activations gelu, silu, softplus; dropout). Each is a tiny fit or prediction through fastbp.MLPClassifier and
fastbp.MLPRegressor. Later processes load the kernels instead of compiling them
(a fit's first compile takes seconds to tens of seconds). Run it in a container or
machine image build, in a CI image, or before timing anything.

The cache goes where Numba puts it: NUMBA_CACHE_DIR if set, else fastbp/__pycache__
if it can be written, else the user's cache directory (~/.cache/numba). A cache there
that the fits' processes cannot write (fastbp/__pycache__ of a read-only install, a
fit run as another user) is still read by fastbp (Numba alone ignores it). Numba
keys compiled code on the CPU: a machine with another CPU model compiles again
(unless NUMBA_CPU_NAME=generic is set both here and where the fits run: code for any
x86-64, without this CPU's wider vector instructions). Exit status 1 if the kernels
could not be cached (no writable directory, or FASTBP_DISABLE_CACHE=1)."""


class Compiles(event.Listener):
    """The fastbp functions that Numba compiles (a cache miss: loads are not compiles),
    by qualified name, in order; ``count``, how many. Installed as
    ``event.install_listener("numba:compile", Compiles())`` (warmup, and the tests' fresh
    processes)."""

    def __init__(self):
        self.names = []

    @property
    def count(self):
        return len(self.names)

    def on_start(self, event):
        pass

    def on_end(self, event):
        py_func = getattr(event.data.get("dispatcher"), "py_func", None)
        if getattr(py_func, "__module__", "").partition(".")[0] == "fastbp":
            self.names.append(py_func.__qualname__)


def _two_thread_mode(mode):
    """Set the two-thread epoch's switch (what FASTBP_SPLIT sets at import) to ``mode``
    ("always", "never" or "auto"); the previous mode, or None where the switch is not
    found (then the two-thread step is skipped, and says so)."""
    try:
        module = importlib.import_module("fastbp._threads")
    except ImportError:
        return None
    if not hasattr(module, "MODE"):
        return None
    previous, module.MODE = module.MODE, mode
    return previous


def _data(dtype, kind):
    """Tiny data: X (64 x 6, of ``kind``), 3 classes and a regression target."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 6)).astype(dtype)
    classes = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)
    target = X @ np.arange(1.0, 7.0)
    if kind != "dense X":
        X[X < 0] = 0.0
        X = sp.csr_matrix(X)
        if kind == "sparse X (int64 indices)":
            X.indices = X.indices.astype(np.int64)
            X.indptr = X.indptr.astype(np.int64)
    return X, classes, target


def _fit_and_predict(dtype, kind, solver, **params):
    X, classes, target = _data(dtype, kind)
    params = dict(dict(hidden_layer_sizes=(8,), max_iter=2, random_state=0, solver=solver),
                  **params)
    clf = fastbp.MLPClassifier(**params).fit(X, classes)
    clf.predict(X)
    clf.predict_proba(X)
    if not sp.issparse(X):  # (a C-ordered ndarray takes the fast path: predict_checked;
        clf.predict_proba(np.asfortranarray(X))  # anything else predict_forward)
    fastbp.MLPRegressor(**params).fit(X, target).predict(X)


def steps(dtypes=DTYPES, common=False):
    """(label, what it runs): the warm-up, in order, for ``dtypes``; ``common``: only the
    kernels of the common fits (dense X, one thread, no kept f': what ``pip install``
    compiles, ``build_backend.py``)."""
    out = []
    kinds = KINDS[:1] if common else KINDS
    for dtype in dtypes:
        for kind in kinds:
            for solver in SOLVERS:
                out.append(("%s %s, %s: fit, predict" % (dtype, kind, solver),
                            lambda d=dtype, k=kind, s=solver: _fit_and_predict(d, k, s)))
    for dtype in dtypes:  # the validation rows' loss kernel (early stopping, X_val)
        out.append(("%s dense X: early stopping" % dtype,
                    lambda d=dtype: _fit_and_predict(d, "dense X", "adam",
                                                     early_stopping=True)))
    if common:
        return out
    for dtype in dtypes:
        for solver in TWO_THREAD_SOLVERS:
            out.append(("%s dense X, %s: two-thread epoch" % (dtype, solver),
                        lambda d=dtype, s=solver: _fit_and_predict(
                            d, "dense X", s, hidden_layer_sizes=(16, 16), batch_size=16)))
    # layers that keep f' (gelu, silu, softplus, or dropout): other kernels (the solvers
    # sgd and adam share one)
    for dtype in dtypes:
        for kind in KINDS:
            for solver in ("adam", "lbfgs"):
                out.append(("%s %s, %s: kept f' (gelu)" % (dtype, kind, solver),
                            lambda d=dtype, k=kind, s=solver: _fit_and_predict(
                                d, k, s, activation="gelu")))
        out.append(("%s dense X, adam: two-thread epoch, kept f'" % dtype,
                    lambda d=dtype: _fit_and_predict(
                        d, "dense X", "adam", hidden_layer_sizes=(16, 16), batch_size=16,
                        activation="gelu")))
    return out


def _cpu():
    return config.CPU_NAME or ll.get_host_cpu_name()


def warmup(dtypes=DTYPES, common=False):
    """Run the steps (``steps``), reporting each; the exit status (0 if the kernels were
    cached)."""
    def say(line):
        print(line, flush=True)

    say("fastbp %s warmup: Numba %s, CPU %s"
        % (fastbp.__version__, numba.__version__, _cpu()))
    compiles = Compiles()
    start = time.perf_counter()
    previous = _two_thread_mode("never")  # one thread, whatever FASTBP_SPLIT says
    try:
        with warnings.catch_warnings(), event.install_listener("numba:compile", compiles):
            warnings.simplefilter("ignore", ConvergenceWarning)
            todo = steps(dtypes, common)
            width = max(len(label) for label, _ in todo)
            for label, run in todo:
                two_thread = "two-thread" in label
                if two_thread and previous is None:
                    say("  %-*s  skipped: the two-thread switch was not found"
                        % (width, label))
                    continue
                # (set for each step: a one-thread step may follow a two-thread one)
                _two_thread_mode("always" if two_thread else "never")
                n_compiled, n_loaded = compiles.count, _config.LOADED[0]
                t = time.perf_counter()
                run()
                say("  %-*s %6.1f s  compiled %3d, loaded %3d" % (
                    width, label, time.perf_counter() - t, compiles.count - n_compiled,
                    _config.LOADED[0] - n_loaded))
    finally:
        if previous is not None:
            _two_thread_mode(previous)
    say("total %.1f s: compiled %d functions (kernels and what they call), "
        "loaded %d kernels from the cache" % (
        time.perf_counter() - start, compiles.count, _config.LOADED[0]))
    if _config.CACHE_DIRS:
        say("cached in %s" % ", ".join(sorted(_config.CACHE_DIRS)))
    if _config.CACHE_DIRS and not _config.IN_MEMORY:
        return 0
    if not _config.JIT["cache"]:
        say("not cached: FASTBP_DISABLE_CACHE=1")
        return 1
    if compiles.count == 0:  # (all of it read from a cache Numba cannot write)
        say("nothing to write: every kernel was in a cache this process cannot write")
        return 0
    say("not cached: no directory Numba can write (set NUMBA_CACHE_DIR to one); "
        "each process compiles in memory")
    return 1


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m fastbp",
        description="fastbp: multilayer perceptrons trained by Numba kernels.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    command = commands.add_parser(
        "warmup", help="compile and cache every kernel a fit can need, ahead of time "
        "(container and CI image builds, before timing)",
        description=WARMUP_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    command.add_argument("--dtype", choices=DTYPES, action="append",
                         help="this dtype only (repeatable; default: both)")
    command.add_argument("--common", action="store_true",
                         help="only the kernels of the common fits: dense X, one thread, "
                         "no kept f' (what pip install compiles)")
    args = parser.parse_args(argv)
    if args.command == "warmup":
        return warmup(tuple(args.dtype or DTYPES), args.common)
    return 2  # pragma: no cover - argparse rejects other commands


if __name__ == "__main__":
    sys.exit(main())
