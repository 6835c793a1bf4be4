"""Randomized differential test against scikit-learn 1.9 (slow; CI runs ``pytest -m slow``).

Each configuration is drawn from ``numpy.random.default_rng([SEED, index])``, so any one of
them can be replayed alone: the failure message names the seed and the index, e.g.

    FASTBP_DIFF_SEED=20261126 FASTBP_DIFF_ONLY=137 pytest -m slow tests/test_differential.py

A configuration is a small problem (8-60 rows, 1-5 features, 1-3 hidden layers of 1-8
units) and a sequence of calls on a fastbp estimator and on scikit-learn's, with the same
parameters: ``fit``; ``fit`` twice (``warm_start`` or not, the second time perhaps with
another ``max_iter`` / ``tol`` or on a subset of the rows); or ``partial_fit`` several times
(``classes=`` on the first call for the classifier), perhaps after a ``fit``. It draws over
every parameter of scikit-learn's MLPs (solver, learning_rate schedule, momentum, Nesterov,
alpha, batch_size 'auto' and ints up to past n, learning_rate_init, power_t, max_iter,
shuffle, tol, n_iter_no_change, early_stopping / validation_fraction, beta_1, beta_2,
epsilon, max_fun, verbose, random_state as an int or a RandomState), sample_weight (None,
positive, some zeros), every activation, classifier targets (int, str, bool labels; binary,
multiclass, multilabel indicator), regression with one or several outputs, ``loss='poisson'``,
float64 and float32, dense / CSR / CSC X, and fastbp's one- and two-thread epochs
(``thread_mode``).

After each call: the same exception type if either raises (then the sequence stops), the
same warnings (category and text, UserWarning and its subclasses: ConvergenceWarning, the
batch-size clip, DataConversionWarning), the same ``verbose`` output (numbers to what their
printed digits hold). At the end of the sequence:

- float64: ``coefs_``, ``intercepts_``, ``loss_curve_``, ``loss_``, ``best_loss_``,
  ``validation_scores_``, ``best_validation_score_``, ``predict_proba`` / ``predict`` to
  rtol 1e-9 (atol 1e-9 times the array's largest magnitude), classifier ``predict``
  equal; ``n_iter_``, ``t_``, ``classes_`` (and dtype), ``n_outputs_``, ``n_layers_``,
  ``out_activation_``, ``n_features_in_`` equal. lbfgs: short runs (``max_iter`` <= 15,
  shared by a warm-started pair of fits) to rtol 1e-6 (L-BFGS amplifies rounding; README),
  the weights with atol 1e-6 times the largest parameter of the whole network.
- float32: scikit-learn mixes dtypes there (float32 activations meet float64 targets,
  sample weights and losses), so models agree only to float32 rounding amplified by
  training: compared are ``loss_curve_``, ``loss_`` and the predictions (``predict_proba``,
  or the regressor's ``predict``) to rtol 1e-3 (losses with atol 1e-6), the discrete
  attributes as in float64, and fastbp's weights must be float32 and finite; not the
  weights themselves. float32 lbfgs has no reference (fastbp's stays float32, README;
  scikit-learn's computes in float64): there ``loss_`` must be scikit-learn's loss
  function at fastbp's float32 weights, and no higher than at the call's start.

A configuration that differs by more than that is run on scikit-learn a second time with
its rounding moved by an ulp (``perturbed_sklearn``; see ``check``): if scikit-learn then
does not reproduce itself either, the problem amplifies rounding and the difference is
excused (a dead ReLU layer under lbfgs, a diverging fit, a stopping rule decided by a
near tie), as is a float32 fit that diverges (``float32_diverged``); at most 5 % of the
configurations may be excused, and the printed summary counts them.

Left out of the draws, as README's "Differences from scikit-learn, on purpose" says:
``partial_fit`` with lbfgs or with early_stopping, a second call in another dtype than the
first, and changing ``hidden_layer_sizes`` between calls (different errors).

Environment:

- ``FASTBP_DIFF_SEED``: the seed (default 20261126).
- ``FASTBP_DIFF_ONLY``: comma-separated configuration indices to run (and nothing else;
  the minimum count is then not asserted).
- ``FASTBP_DIFF_BUDGET``: seconds to keep drawing configurations (default 100; the
  kernels are compiled or loaded before the clock starts).
- ``FASTBP_DIFF_MIN``: configurations that must have been checked (default 500).
- ``FASTBP_DIFF_MAX``: stop after this many configurations (default: no limit).
- ``FASTBP_DIFF_BLAS_THREADS``: BLAS threads during the draws (default 1; 0 leaves them).
"""

import collections
import contextlib
import copy
import io
import os
import re
import time
import warnings

import numpy as np
import pytest
import scipy.sparse
from sklearn import neural_network as sk
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

import fastbp

SEED = int(os.environ.get("FASTBP_DIFF_SEED", "20261126"))
ONLY = [int(i) for i in os.environ.get("FASTBP_DIFF_ONLY", "").replace(",", " ").split()]
BUDGET = float(os.environ.get("FASTBP_DIFF_BUDGET", "100"))
MIN_CONFIGS = int(os.environ.get("FASTBP_DIFF_MIN", "500"))
MAX_CONFIGS = int(os.environ.get("FASTBP_DIFF_MAX", "0")) or None
# BLAS threads for the draws ("0": leave them as they are). One by default: OpenBLAS waking
# its second thread for these tiny products doubles the test's time, and the products'
# results do not change (the two-thread epoch sets BLAS to one thread itself anyway).
BLAS_THREADS = int(os.environ.get("FASTBP_DIFF_BLAS_THREADS", "1")) or None
MAX_FAILURES = 10  # then stop drawing: the report is long enough

RTOL = {"float64": 1e-9, "lbfgs64": 1e-6, "float32": 1e-3}


# ---------------------------------------------------------------------------------------
# fastbp's thread modes: the one place that knows where the switch lives.
# ---------------------------------------------------------------------------------------

@contextlib.contextmanager
def thread_mode(mode):
    """fastbp's epochs on one thread ("never"), two ("always": any net with hidden layers
    at least 2 wide on a dense X) or by its size rule ("auto"), for the ``with``; yields a
    list that gets one bool per stochastic fit: whether it ran on two threads."""
    from fastbp import _threads as split

    was_mode, was_plan = split.MODE, split.plan
    used = []

    def plan(*args, **kwargs):
        cuts = was_plan(*args, **kwargs)
        used.append(cuts is not None)
        return cuts

    split.MODE, split.plan = mode, plan
    try:
        yield used
    finally:
        split.MODE, split.plan = was_mode, was_plan


THREAD_MODES = ["never", "always", "auto"]


# ---------------------------------------------------------------------------------------
# Drawing a configuration
# ---------------------------------------------------------------------------------------

def _log_uniform(rng, lo, hi):
    return float(10 ** rng.uniform(np.log10(lo), np.log10(hi)))


def _pick(rng, options, p=None):
    return options[int(rng.choice(len(options), p=p))]


def draw_targets(rng, kind, target, X):
    n = X.shape[0]
    w = rng.standard_normal((X.shape[1], 4))
    Z = X @ w + 0.3 * rng.standard_normal((n, 4))
    if kind == "regressor":
        outputs = int(rng.integers(1, 4))
        if target == "poisson":
            y = rng.poisson(np.exp(np.clip(0.4 * Z[:, :outputs], -3, 3))).astype(float)
        else:
            y = Z[:, :outputs] * rng.uniform(0.5, 3) + rng.normal(0, 2)
        if outputs == 1 and rng.random() < 0.85:
            y = y[:, 0]  # else a column (n, 1): DataConversionWarning in both
        return y, None
    if target == "multilabel":
        labels = int(rng.integers(2, 4))
        y = (Z[:, :labels] > rng.normal(0, 0.5, labels)).astype(int)
        return y, np.arange(labels)
    if target == "bool":  # bool, or bool-ish 0/1 as ints or floats
        classes = _pick(rng, [np.array([False, True]), np.array([0, 1]), np.array([0.0, 1.0])])
    else:
        k = 2 if target.endswith("binary") else int(rng.integers(3, 5))
        pool = (np.array([7, -1, 3, 0]) if target.startswith("int")
                else np.array(["b", "a", "dog", "c"]))
        classes = pool[:k]
    codes = np.argmax(Z[:, : max(2, len(classes))] + rng.gumbel(size=(n, max(2, len(classes)))),
                      axis=1) % len(classes)
    y = classes[codes]
    return y, np.unique(classes)


def draw_config(index):
    """The configuration ``index`` of seed ``SEED``: a dict of plain values (data included)."""
    rng = np.random.default_rng([SEED, index])
    kind = _pick(rng, ["classifier", "regressor"])
    if kind == "classifier":
        target = _pick(rng, ["int-binary", "int-multiclass", "str-binary", "str-multiclass",
                             "bool", "multilabel"])
    else:
        target = _pick(rng, ["squared_error", "poisson"], p=[0.7, 0.3])
    n = int(rng.integers(8, 61))
    d = int(rng.integers(1, 6))
    X = rng.standard_normal((n, d)) * rng.uniform(0.3, 3) + rng.normal(0, 0.5, d)
    fmt = _pick(rng, ["dense", "csr", "csc"], p=[0.6, 0.2, 0.2])
    if fmt != "dense":
        X[rng.random((n, d)) < rng.uniform(0.2, 0.8)] = 0.0
    dtype = _pick(rng, ["float64", "float32"], p=[0.75, 0.25])
    y, classes = draw_targets(rng, kind, target, X)

    solver = _pick(rng, ["sgd", "adam", "lbfgs"], p=[0.4, 0.4, 0.2])
    widths = [int(rng.integers(1, 9)) for _ in range(int(rng.integers(1, 4)))]
    hidden = widths[0] if len(widths) == 1 and rng.random() < 0.2 else tuple(widths)
    params = dict(
        hidden_layer_sizes=hidden,
        activation=_pick(rng, ["identity", "logistic", "tanh", "relu"]),
        solver=solver,
        alpha=0.0 if rng.random() < 0.15 else _log_uniform(rng, 1e-6, 1.0),
        batch_size="auto" if rng.random() < 0.3 else int(rng.integers(1, n + 6)),
        learning_rate=_pick(rng, ["constant", "invscaling", "adaptive"]),
        learning_rate_init=_log_uniform(rng, 1e-4, 0.2),
        power_t=float(rng.uniform(0.05, 1.0)),
        max_iter=int(rng.integers(1, 16)),
        shuffle=bool(rng.random() < 0.7),
        tol=_pick(rng, [0.0, 1e-6, 1e-4, 1e-3, 1e-2, 0.1, 0.5]),
        verbose=bool(rng.random() < 0.1),
        momentum=_pick(rng, [0.0, 0.5, 0.9, 1.0, float(rng.uniform(0, 1))]),
        nesterovs_momentum=bool(rng.random() < 0.5),
        early_stopping=bool(rng.random() < 0.3),
        validation_fraction=float(rng.uniform(0.1, 0.5)) if rng.random() < 0.95 else 0.0,
        beta_1=0.9 if rng.random() < 0.7 else float(rng.uniform(0, 0.99)),
        beta_2=0.999 if rng.random() < 0.7 else float(rng.uniform(0.9, 0.9999)),
        epsilon=1e-8 if rng.random() < 0.7 else _log_uniform(rng, 1e-9, 1e-4),
        n_iter_no_change=(np.inf if rng.random() < 0.05 else
                          _pick(rng, [1, 2, 3, 5, 10])),
        max_fun=15000 if rng.random() < 0.8 else int(rng.integers(2, 40)),
    )
    if target == "poisson":
        params["loss"] = "poisson"
    # random_state: an int, or a RandomState (one per estimator, the same seed: consumed
    # across calls, so a second fit starts from another state)
    state = int(rng.integers(0, 2**31 - 1))
    state_kind = "RandomState" if rng.random() < 0.2 else "int"

    sample_weight_kind = _pick(rng, ["none", "positive", "zeros"], p=[0.5, 0.3, 0.2])
    sw = None
    if sample_weight_kind != "none":
        sw = rng.uniform(0.1, 3.0, n)
        if sample_weight_kind == "zeros":
            zeros = rng.random(n) < 0.3
            sw[zeros] = 0.0

    stochastic = solver != "lbfgs"
    sequences = ["fit", "fit-fit"]
    if stochastic and not params["early_stopping"]:
        sequences += ["partial", "fit-partial"]
    sequence = _pick(rng, sequences)
    calls = []
    if sequence.startswith("fit"):
        calls.append(("fit", np.arange(n), {}))
    if sequence == "fit-fit":
        params["warm_start"] = bool(rng.random() < 0.75)
        change = {}
        if rng.random() < 0.5:
            change["max_iter"] = int(rng.integers(1, 16))
        if rng.random() < 0.2:
            change["tol"] = _pick(rng, [0.0, 1e-4, 0.1])
        rows = np.arange(n) if rng.random() < 0.6 else np.sort(
            rng.choice(n, int(rng.integers(max(2, n // 2), n + 1)), replace=False))
        calls.append(("fit", rows, change))
    else:
        params["warm_start"] = bool(rng.random() < 0.2)
    if sequence.endswith("partial"):
        for j in range(int(rng.integers(2, 5))):
            size = int(rng.integers(1, n + 1))
            rows = np.sort(rng.choice(n, size, replace=False))
            extra = {}
            if kind == "classifier":
                if j == 0 and sequence == "partial":
                    if rng.random() < 0.95:  # else: no classes on the first call, an error
                        extra["classes"] = classes
                elif rng.random() < 0.2:
                    extra["classes"] = classes
            calls.append(("partial_fit", rows, extra))
    if not stochastic:
        # short runs: L-BFGS amplifies rounding (README), and a warm start continues the
        # same run, so its two calls share the 15 iterations (2 x 13 warm-started
        # iterations of a tanh classifier, before this cap, ended 7 % apart when a
        # line-search decision flipped after 26 evaluations equal to 1e-12)
        cap = 7 if sequence == "fit-fit" and params["warm_start"] else 15
        params["max_iter"] = min(params["max_iter"], cap)
        for _, _, extra in calls:
            if "max_iter" in extra:
                extra["max_iter"] = min(extra["max_iter"], cap)

    return dict(
        index=index, kind=kind, target=target, n=n, d=d, fmt=fmt, dtype=dtype,
        X=X, y=y, sample_weight=sw, sample_weight_kind=sample_weight_kind,
        params=params, state=state, state_kind=state_kind, sequence=sequence, calls=calls,
        thread_mode=_pick(rng, THREAD_MODES, p=[0.45, 0.45, 0.1]),
    )


def describe(cfg):
    calls = [(name, f"{len(rows)} rows", extra) for name, rows, extra in cfg["calls"]]
    return (
        f"{cfg['kind']} target={cfg['target']} n={cfg['n']} d={cfg['d']} X={cfg['fmt']} "
        f"{cfg['dtype']} sample_weight={cfg['sample_weight_kind']} "
        f"random_state={cfg['state_kind']}({cfg['state']}) threads={cfg['thread_mode']}\n"
        f"  params={cfg['params']}\n  calls={calls}"
    )


# ---------------------------------------------------------------------------------------
# Running one side
# ---------------------------------------------------------------------------------------

def make_estimator(module, cfg):
    params = dict(cfg["params"])
    params["random_state"] = (np.random.RandomState(cfg["state"])
                              if cfg["state_kind"] == "RandomState" else cfg["state"])
    cls = module.MLPClassifier if cfg["kind"] == "classifier" else module.MLPRegressor
    return cls(**params)


def nudge(a, seed):
    """``a`` with each nonzero entry moved one ulp up or down (in its dtype), at random."""
    a = np.asarray(a)
    if a.dtype.kind != "f":
        return a
    up = np.random.default_rng(seed).random(a.shape) < 0.5
    moved = np.where(up, np.nextafter(a, np.inf), np.nextafter(a, -np.inf)).astype(a.dtype)
    return np.where(a == 0, a, moved)


def data(cfg):
    """X in its dtype and format, y, sample_weight; with ``cfg["nudged"]``, every nonzero
    float among them moved by one ulp (``check``'s probe)."""
    X, y, sw = cfg["X"].astype(cfg["dtype"]), cfg["y"], cfg["sample_weight"]
    if cfg.get("nudged"):
        X, sw = nudge(X, 1), None if sw is None else nudge(sw, 2)
        y = nudge(y, 3) if cfg["kind"] == "regressor" else y
    if cfg["fmt"] == "csr":
        X = scipy.sparse.csr_matrix(X)
    elif cfg["fmt"] == "csc":
        X = scipy.sparse.csc_matrix(X)
    return X, y, sw


def call_data(cfg, X, y, sw, rows):
    """X, y and the fit's keyword arguments for a call on ``rows``."""
    kwargs = {} if sw is None else {"sample_weight": sw[rows]}
    if len(rows) == X.shape[0]:
        return X, y, kwargs
    return X[rows], y[rows], kwargs


def run(module, cfg):
    """Run cfg's calls. Returns a list of (exception or None, [(category, text)], stdout)
    per call made, the estimator, and its weights before each call (None if unfitted)."""
    est = make_estimator(module, cfg)
    X, y, sw = data(cfg)
    outcomes, starts = [], []
    for name, rows, extra in cfg["calls"]:
        starts.append([w.copy() for w in est.coefs_ + est.intercepts_]
                      if hasattr(est, "coefs_") else None)
        Xr, yr, kwargs = call_data(cfg, X, y, sw, rows)
        kwargs.update((k, v) for k, v in extra.items() if k == "classes")
        change = {k: v for k, v in extra.items() if k != "classes"}
        if change:
            est.set_params(**change)
        out = io.StringIO()
        err = None
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(out):
            warnings.simplefilter("always")
            try:
                getattr(est, name)(Xr, yr, **kwargs)
            except Exception as exc:  # noqa: BLE001 - compared with the other side's
                err = exc
        caught = [(w.category, str(w.message)) for w in caught
                  if issubclass(w.category, UserWarning)]
        text = out.getvalue()
        if est.solver == "lbfgs" and type(est).__module__.startswith("fastbp"):
            # fastbp's own lbfgs lines (scikit-learn prints none with scipy >= 1.15)
            text = _LBFGS_LINE.sub("", text)
        outcomes.append((err, caught, text))
        if err is not None:
            break
    return outcomes, est, starts


def sklearn_loss(cfg, b, weights):
    """scikit-learn's training loss (its ``_backprop``, penalty included) on the last
    call's data, at ``weights`` (coefs_ + intercepts_) in b's network."""
    est = copy.deepcopy(b)
    k = len(est.coefs_)
    est.coefs_ = [np.array(w) for w in weights[:k]]  # (in their dtype: float32 stays)
    est.intercepts_ = [np.array(w) for w in weights[k:]]
    X, y, sw = data(cfg)
    X, y, kwargs = call_data(cfg, X, y, sw, cfg["calls"][-1][1])
    if hasattr(est, "classes_"):
        y = est._label_binarizer.transform(y).astype(bool)
    y = np.asarray(y, dtype=float).reshape(X.shape[0], -1)
    acts = [X] + [None] * k
    grads = [np.empty_like(w) for w in est.coefs_ + est.intercepts_]
    loss, _, _ = est._backprop(X, y, kwargs.get("sample_weight"), acts, [None] * k,
                               grads[:k], grads[k:])
    return float(loss)


# ---------------------------------------------------------------------------------------
# Comparing: every difference as a distance, <= rtol where np.testing.assert_allclose(got,
# want, rtol, atol=rtol * max|want|) would pass; inf where a discrete thing differs.
# ---------------------------------------------------------------------------------------

_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|[-+]?inf|nan")


F32_MAX = float(np.finfo(np.float32).max)


def array_distance(got, want, float32=False, floor=0.0):
    """max |got - want| / (scale + |want|), scale = max(max |want|, floor): <= rtol where
    assert_allclose(got, want, rtol, atol=rtol * scale) passes. Non-finite entries must be
    equal; with ``float32``, a value past float32's range counts as equal to any other
    (fastbp's float32 loss overflows where scikit-learn's, in float64, does not yet)."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return np.inf
    with np.errstate(invalid="ignore"):
        if float32:
            out_g = ~(np.abs(got) <= F32_MAX)
            out_w = ~(np.abs(want) <= F32_MAX)
            if not np.array_equal(out_g, out_w):
                return np.inf
            finite = ~out_w
        else:
            finite = np.isfinite(want)
            if not np.array_equal(np.isfinite(got), finite) or not np.array_equal(
                    got[~finite], want[~finite], equal_nan=True):
                return np.inf
    if not finite.any():
        return 0.0
    scale = max(float(np.max(np.abs(want[finite]))), floor, 1e-300)
    return float(np.max(np.abs(got[finite] - want[finite]) / (scale + np.abs(want[finite]))))


def text_distance(got, want, rtol, float32=False):
    """Equal text, numbers within rtol or one unit of their last printed digit (with
    ``float32``, numbers past float32's range equal to any other)."""
    if _NUMBER.split(got) != _NUMBER.split(want):
        return np.inf
    worst = 0.0
    for a, b in zip(_NUMBER.findall(got), _NUMBER.findall(want)):
        if a == b or (float32 and not abs(float(a)) <= F32_MAX
                      and not abs(float(b)) <= F32_MAX):
            continue
        digits = len(b.split(".")[1]) if "." in b and "e" not in b.lower() else 0
        allowed = rtol * abs(float(b)) + 1.01 * 10.0 ** -digits
        diff = abs(float(a) - float(b))
        if np.isnan(diff):
            return np.inf
        worst = max(worst, rtol * diff / allowed)
    return worst


class Differences(dict):
    """what -> (distance, detail)."""

    def add(self, what, distance, got=None, want=None):
        self[what] = (distance, "" if got is None else f"fastbp {got!r}, scikit-learn {want!r}")

    def array(self, what, got, want, **options):
        self.add(what, array_distance(got, want, **options), *_summary(got, want))

    def equal(self, what, got, want):
        self.add(what, 0.0 if got == want else np.inf, got, want)

    def worst(self):
        return max([d for d, _ in self.values()], default=0.0)

    def report(self, rtol):
        return "\n".join(f"  {what}: distance {d:.3g} > {rtol:g}; {detail}"
                         for what, (d, detail) in self.items() if not d <= rtol)


def _summary(got, want):
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    if got.shape != want.shape or got.size <= 4:
        return got, want
    with np.errstate(invalid="ignore"):
        gap = np.nan_to_num(np.abs(got - want), nan=-1.0)
    i = np.unravel_index(np.argmax(gap), got.shape) if got.size else ()
    return f"{got[i]!r} at {i} (shape {got.shape})", want[i]


def tolerance(cfg):
    if cfg["dtype"] == "float32":
        return RTOL["float32"]
    return RTOL["lbfgs64" if cfg["params"]["solver"] == "lbfgs" else "float64"]


_LBFGS_LINE = re.compile(r"^Iteration \d+, loss = \S+\n", re.MULTILINE)


def float32_lbfgs(cfg):
    """fastbp's float32 lbfgs trains in float32 where scikit-learn's returns float64
    (README): its line search and stopping see float32 losses, so where it stops (n_iter_,
    the ConvergenceWarning) is not compared, only the model it ends with."""
    return cfg["dtype"] == "float32" and cfg["params"]["solver"] == "lbfgs"


def start_of_last_call(cfg, b, starts):
    """The weights the last call started from: the previous call's (a warm start or a
    partial_fit), or scikit-learn's initial draw for the random_state (fastbp draws the
    same); None where that draw is not known (a RandomState consumed by an earlier fit)."""
    k = len(cfg["calls"]) - 1
    if cfg["calls"][k][0] == "partial_fit" or (k > 0 and cfg["params"]["warm_start"]):
        return starts[k]
    if k > 0 and cfg["state_kind"] != "int":
        return None
    est = copy.deepcopy(b)
    est._random_state = np.random.RandomState(cfg["state"])
    units = [w.shape[0] for w in b.coefs_] + [b.coefs_[-1].shape[1]]
    drawn = [est._init_coef(i, o, np.dtype(cfg["dtype"])) for i, o in zip(units, units[1:])]
    return [c for c, _ in drawn] + [i for _, i in drawn]


def differences(cfg, ours, a, theirs, b, starts=None, probe=False):
    """The calls' outcomes and, when they all succeeded, the models: a (fastbp's, or with
    ``probe`` a second scikit-learn run) against b (scikit-learn's); ``starts``: a's
    weights before each call (``run``)."""
    rtol = tolerance(cfg)
    float32 = cfg["dtype"] == "float32"
    diff = Differences()
    diff.equal("calls made", len(ours), len(theirs))
    abnormal = False
    for i, ((e1, w1, o1), (e2, w2, o2)) in enumerate(zip(ours, theirs)):
        diff.equal(f"call {i}: raises", None if e1 is None else type(e1).__name__,
                   None if e2 is None else type(e2).__name__)
        if float32_lbfgs(cfg):
            w1 = [w for w in w1 if w[0] is not ConvergenceWarning]
            w2 = [w for w in w2 if w[0] is not ConvergenceWarning]
        diff.equal(f"call {i}: warnings", [c.__name__ for c, _ in w1], [c.__name__ for c, _ in w2])
        # An L-BFGS line search that fails ("ABNORMAL") has been comparing losses that
        # differ in their last bits; where it gives up (n_iter_, scipy's status text) is
        # then rounding's choice (seen: every evaluation equal to 7e-15, one side stops
        # at "ABNORMAL", the other an iteration later at max_fun).
        abnormal = any("ABNORMAL" in m for _, m in w1 + w2)
        for j, ((_, m1), (_, m2)) in enumerate(zip(w1, w2)):
            if not abnormal:
                diff.add(f"call {i}: warning {j} text", text_distance(m1, m2, rtol), m1, m2)
        diff.add(f"call {i}: verbose output", text_distance(o1, o2, rtol, float32),
                 o1[-300:], o2[-300:])
    if not all(e is None for e, _, _ in ours + theirs) or len(ours) != len(theirs):
        return diff

    X, _, _ = data(cfg)
    for name in ("t_", "n_outputs_", "n_layers_", "out_activation_", "n_features_in_"):
        diff.equal(name, getattr(a, name), getattr(b, name))
    if not float32_lbfgs(cfg) and not abnormal:
        diff.equal("n_iter_", a.n_iter_, b.n_iter_)
    if hasattr(b, "classes_"):
        diff.equal("classes_", (a.classes_.tolist(), a.classes_.dtype),
                   (b.classes_.tolist(), b.classes_.dtype))
    diff.equal("layer shapes", [w.shape for w in a.coefs_ + a.intercepts_],
               [w.shape for w in b.coefs_ + b.intercepts_])
    if not float32:
        # lbfgs: to the scale of the whole parameter vector, the one L-BFGS works on and
        # rounds in (a dead ReLU layer's weights, 1e-5 where the biases are 5, move by
        # 1e-10 as the line search's last bits do)
        floor = 0.0 if cfg["params"]["solver"] != "lbfgs" else max(
            float(np.max(np.abs(w))) for w in b.coefs_ + b.intercepts_)
        for i, (wa, wb) in enumerate(zip(a.coefs_, b.coefs_)):
            diff.array(f"coefs_[{i}]", wa, wb, floor=floor)
        for i, (wa, wb) in enumerate(zip(a.intercepts_, b.intercepts_)):
            diff.array(f"intercepts_[{i}]", wa, wb, floor=floor)
    for name in ("loss_curve_", "loss_", "best_loss_", "validation_scores_",
                 "best_validation_score_"):
        va, vb = getattr(a, name, "missing"), getattr(b, name, "missing")
        if isinstance(vb, str) or isinstance(va, str) or va is None or vb is None:
            diff.equal(name, va, vb)
        elif not float32 or name == "loss_curve_" or (name == "loss_" and not float32_lbfgs(cfg)):
            # (float32 losses: to 1e-3 of at least 1e-3, float32's rounding of a sum of
            # per-sample losses of order 1)
            diff.array(name, va, vb, float32=float32, floor=1e-3 if float32 else 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if float32_lbfgs(cfg):
            # No reference: scikit-learn's float32 lbfgs computes in float64, and its loss
            # differs from a float32 one where probabilities saturate (clipped at float32's
            # eps, not float64's), so the line searches part ways (seen:
            # same iterate to 1e-7, trial losses 1.71 and 1.80, final losses 7 % apart).
            # Checked instead: loss_ is scikit-learn's loss function at fastbp's float32
            # weights (in float32), and no higher than at the call's start (L-BFGS
            # descends).
            loss_a = sklearn_loss(cfg, b, a.coefs_ + a.intercepts_)
            diff.array("loss_ (scikit-learn's loss at fastbp's weights)", a.loss_, loss_a,
                       floor=1e-3)
            start = None if probe else start_of_last_call(cfg, b, starts)
            if start is not None:
                loss_0 = sklearn_loss(cfg, b, start)
                diff.add("loss_ no higher than at the start",
                         max(0.0, loss_a - loss_0) / (abs(loss_0) + max(abs(loss_0), 1e-3)),
                         loss_a, loss_0)
        elif hasattr(b, "classes_"):
            diff.array("predict_proba", a.predict_proba(X), b.predict_proba(X))
            if not float32:
                pa, pb = a.predict(X), b.predict(X)
                diff.add("predict", 0.0 if np.array_equal(pa, pb) else np.inf,
                         *_summary((pa != pb).sum(), 0))
        else:
            diff.array("predict", a.predict(X), b.predict(X))
    return diff


@contextlib.contextmanager
def perturbed_sklearn():
    """scikit-learn rounding otherwise: its initial weights and the results of its exp,
    tanh, logistic and softmax each moved by one ulp, up or down at random (fastbp's own
    exp and tanh are within 1-2 ulp of NumPy's, README). How much its model moves then
    says how much the problem amplifies rounding. (Moving the start alone misses where
    it matters most: 1 - tanh^2 at a saturated unit turns the last bit of tanh into a
    1e-4 relative change of the gradient, as in a diverged tanh net.)"""
    from sklearn.neural_network import _base, _multilayer_perceptron as mlp

    rng = np.random.default_rng(0)
    real_init = mlp.BaseMultilayerPerceptron._init_coef
    real = {name: _base.ACTIVATIONS[name] for name in ("exp", "tanh", "logistic", "softmax")}

    def init_coef(self, fan_in, fan_out, dtype):
        coef, intercept = real_init(self, fan_in, fan_out, dtype)
        return nudge(coef, rng), nudge(intercept, rng)

    def nudged(f):
        def activation(X):
            f(X)
            exact = (X == 0) | (np.abs(X) == 1)  # (saturated: fastbp's are exact too)
            X[...] = np.where(exact, X, nudge(X, rng))
            return X
        return activation

    mlp.BaseMultilayerPerceptron._init_coef = init_coef
    _base.ACTIVATIONS.update((name, nudged(f)) for name, f in real.items())
    try:
        yield
    finally:
        mlp.BaseMultilayerPerceptron._init_coef = real_init
        _base.ACTIVATIONS.update(real)


# When fastbp is off by more than the tolerance, scikit-learn is run again with its
# rounding moved (``perturbed_sklearn``, and X, y, sample_weight each moved by one ulp). If
# that moves scikit-learn's own model by less than tolerance / STABLE, the problem is well
# conditioned and the difference is fastbp's: a failure. Otherwise the configuration is
# ill-conditioned (a dead ReLU layer under lbfgs, whose weights only the L2 term pulls
# on; a diverging fit; a stopping rule decided by a near tie) and fastbp passes if it is
# within AMPLIFIED times scikit-learn's own spread, or anything (but the checks that
# always hold) where that spread exceeds the tolerance itself: scikit-learn does not
# reproduce itself there. At most MAX_ILL of the configurations may be so excused.
STABLE = 100
AMPLIFIED = 100
MAX_ILL = 0.05


def float32_diverged(cfg, outcomes, est):
    """Whether scikit-learn's float32 fit diverged: its loss past float32's range (1e30) or
    not finite, or rising to 100 times its minimum. scikit-learn's float32 fit is partly
    float64 (its output deltas, losses); a diverging fit amplifies that difference from
    fastbp's float32 one (seen: 1e-7 at the loss minimum, 1e-3 at 1e6, 6e-3 at 1e28), and
    past float32's range one model overflows where the other does not."""
    if cfg["dtype"] != "float32":
        return False
    if any(e is not None and "non-finite" in str(e) for e, _, _ in outcomes):
        return True
    curve = np.asarray(getattr(est, "loss_curve_", None) or [0.0], dtype=float)
    if not np.all(np.abs(curve) <= 1e30):
        return True
    low = int(np.argmin(curve))
    return bool(np.max(curve[low:]) > 100 * max(curve[low], 1e-12))


def check(cfg):
    """Run one configuration on both sides and compare. Returns (ran on two threads, why
    a difference was excused or None); raises AssertionError on a mismatch."""
    with thread_mode(cfg["thread_mode"]) as used:
        ours, a, starts = run(fastbp, cfg)
    theirs, b, _ = run(sk, cfg)
    # what holds however a problem is conditioned
    for err, _, _ in ours:
        assert err is None or any(isinstance(err, type(e)) for e, _, _ in theirs
                                  if e is not None) or isinstance(err, ValueError), (
            f"fastbp raises {err!r}; scikit-learn raises {[e for e, _, _ in theirs]}")
    if ours[-1][0] is None:
        for w in a.coefs_ + a.intercepts_:
            assert w.dtype == np.dtype(cfg["dtype"]), f"fastbp's weights are {w.dtype}"
            assert np.isfinite(w).all(), "fastbp's weights are not finite"
    rtol = tolerance(cfg)
    diff = differences(cfg, ours, a, theirs, b, starts)
    if diff.worst() <= rtol:
        return any(used), None
    if float32_diverged(cfg, theirs, b):
        return any(used), "float32 divergence"
    with perturbed_sklearn():
        theirs2, c, _ = run(sk, {**cfg, "nudged": True})
    spread = differences(cfg, theirs2, c, theirs, b, probe=True).worst()
    if spread > rtol / STABLE and (diff.worst() <= AMPLIFIED * spread or spread > rtol):
        return any(used), "ill-conditioned"
    raise AssertionError(
        f"fastbp differs from scikit-learn:\n{diff.report(rtol)}\n"
        f"  (scikit-learn with its rounding moved moves by {spread:.3g})"
    )


def indices():
    if ONLY:
        yield from ONLY
        return
    i = 0
    while MAX_CONFIGS is None or i < MAX_CONFIGS:
        yield i
        i += 1


def warm_up():
    """Compile (or load) the kernels the draws use, before the clock starts: float64 and
    float32, dense and CSR, stochastic (one and two threads) and lbfgs, predict."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 3))
    y = (X[:, 0] > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for dtype in (np.float64, np.float32):
            for Xd in (X.astype(dtype), scipy.sparse.csr_matrix(X.astype(dtype))):
                for solver in ("sgd", "adam", "lbfgs"):
                    for mode in ("never", "always"):
                        with thread_mode(mode):
                            clf = fastbp.MLPClassifier((3, 2), solver=solver, max_iter=2)
                            clf.fit(Xd, y).predict_proba(Xd)
                            reg = fastbp.MLPRegressor(hidden_layer_sizes=(3,), solver=solver,
                                                      max_iter=2)
                            reg.fit(Xd, X[:, 0]).predict(Xd)


def features(cfg, two_threads):
    """What a configuration exercised, for the coverage check."""
    p = cfg["params"]
    return {
        ("kind", cfg["kind"]), ("target", cfg["target"]), ("X", cfg["fmt"]),
        ("dtype", cfg["dtype"]), ("solver", p["solver"]), ("activation", p["activation"]),
        ("layers", len(np.atleast_1d(p["hidden_layer_sizes"]))), ("calls", cfg["sequence"]),
        ("sample_weight", cfg["sample_weight_kind"]), ("random_state", cfg["state_kind"]),
        ("fastbp threads", 2 if two_threads else 1),
        ("warm_start", p["warm_start"]),
        ("early_stopping", p["early_stopping"] and p["solver"] != "lbfgs"),
        ("batch_size > n", p["batch_size"] != "auto" and p["batch_size"] > cfg["n"]),
        ("schedule", (p["solver"], p["learning_rate"]) if p["solver"] == "sgd" else None),
        ("nesterov", p["nesterovs_momentum"] if p["solver"] == "sgd" else None),
    }


MUST_COVER = {
    "kind": 2, "target": 8, "X": 3, "dtype": 2, "solver": 3, "activation": 4, "layers": 3,
    "calls": 4, "sample_weight": 3, "random_state": 2, "fastbp threads": 2,
    "warm_start": 2, "early_stopping": 2, "batch_size > n": 2, "schedule": 3, "nesterov": 2,
}


@pytest.mark.slow
def test_differential_against_scikit_learn():
    """fastbp and scikit-learn on randomly drawn configurations (module docstring)."""
    compile_started = time.perf_counter()
    warm_up()
    started = time.perf_counter()
    failures = []
    checked = two_threads = 0
    excused = collections.Counter()
    covered = set()
    with threadpool_limits(BLAS_THREADS, user_api="blas"):
        for index in indices():
            if not ONLY and time.perf_counter() - started > BUDGET:
                break
            cfg = draw_config(index)
            try:
                used, why = check(cfg)
                two_threads += used
                excused[why] += why is not None
                covered |= features(cfg, used)
            except AssertionError as exc:
                failures.append(
                    f"--- configuration {index}; replay with FASTBP_DIFF_SEED={SEED} "
                    f"FASTBP_DIFF_ONLY={index} pytest -m slow {__file__}\n{describe(cfg)}\n"
                    f"{exc}"
                )
                if len(failures) >= MAX_FAILURES:
                    break
            checked += 1
    elapsed = time.perf_counter() - started
    print(f"\ndifferential: seed {SEED}, {checked} configurations in {elapsed:.1f} s "
          f"({checked / max(elapsed, 1e-9):.1f}/s; kernels loaded in "
          f"{started - compile_started:.1f} s before), {two_threads} on fastbp's two "
          f"threads, excused: {excused['ill-conditioned']} ill-conditioned, "
          f"{excused['float32 divergence']} float32 divergence; {len(failures)} failed")
    assert not failures, "\n".join(failures)
    assert excused.total() <= max(3, MAX_ILL * checked), (
        f"{excused.total()} of {checked} configurations excused ({dict(excused)})")
    if not ONLY:
        assert checked >= MIN_CONFIGS, (
            f"only {checked} configurations in the {BUDGET} s budget (FASTBP_DIFF_BUDGET), "
            f"fewer than FASTBP_DIFF_MIN={MIN_CONFIGS}"
        )
        seen = {key: {v for k, v in covered if k == key} - {None} for key in MUST_COVER}
        missing = {key: sorted(map(str, v)) for key, v in seen.items()
                   if len(v) < MUST_COVER[key]}
        assert not missing, f"the draws did not cover every value of: {missing}"
