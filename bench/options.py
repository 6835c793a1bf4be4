"""python -m bench.options: the cost of fastbp's options beyond scikit-learn, as ratios.

Each variant (an activation, a dropout rate) trains a workload of bench/workloads.py with
only that option changed; the variants' fits alternate in this process, and each one's
best s/epoch of ``--repeats`` fits is divided by the baseline's (the workload as it is).
Then, on digits, the effect of dropout: training loss and held-out accuracy with and
without it. Run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset in that command only::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m bench.options
"""

import argparse
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

import fastbp
from bench.workloads import WORKLOADS, load

ACTIVATIONS = ["relu", "leaky_relu", "elu", "gelu", "silu", "softplus", "tanh"]


def _fit_seconds(workload, data, **options):
    params = {**workload.params(), **options}
    est = (fastbp.MLPClassifier if data["task"] != "regression" else fastbp.MLPRegressor)(
        **params)
    started = time.perf_counter()
    est.fit(data["X_train"], data["y_train"])
    return (time.perf_counter() - started) / est.n_iter_, est


def costs(workload, variants, repeats):
    """{variant: best s/epoch} for ``variants`` (name -> options), fits alternating."""
    data = load(workload.data, workload.dtype)
    best = {}
    for name, options in variants.items():  # compile (and check) first, untimed
        _fit_seconds(workload, data, **options)
    for _ in range(repeats):
        for name, options in variants.items():
            s, _ = _fit_seconds(workload, data, **options)
            best[name] = min(best.get(name, np.inf), s)
    return best


def dropout_effect(rates, epochs):
    """Digits, (256,) relu adam: (rate, final training loss, held-out accuracy)."""
    data = load("digits", "float64")
    rows = []
    for rate in rates:
        est = fastbp.MLPClassifier((256,), dropout=rate, max_iter=epochs, random_state=0,
                                   n_iter_no_change=epochs + 1)
        est.fit(data["X_train"], data["y_train"])
        rows.append((rate, est.loss_curve_[-1], est.score(data["X_test"], data["y_test"])))
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.options", description=__doc__)
    p.add_argument("--workload", default="mnist-relu-adam", choices=sorted(WORKLOADS))
    p.add_argument("--threads", type=int, help="BLAS threads (threadpoolctl)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--epochs", type=int, default=100, help="for the dropout effect")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore", ConvergenceWarning)
    w = WORKLOADS[args.workload]
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    variants = {a: dict(activation=a) for a in ACTIVATIONS}
    variants.update({f"relu, dropout {r}": dict(dropout=r) for r in (0.1, 0.5)})
    variants["relu, again (noise)"] = dict(activation="relu")
    best = costs(w, variants, args.repeats)
    base = best["relu"]
    print(f"{w.name} ({w.describe()}): best of {args.repeats} fits, s/epoch and x relu's")
    for name, s in best.items():
        print(f"  {name:<22} {s:10.5f}  {s / base:5.2f}x")
    print(f"\ndigits, hidden (256,), relu, adam, {args.epochs} epochs:")
    print("  dropout  training loss  held-out accuracy")
    for rate, loss, acc in dropout_effect((0.0, 0.2, 0.5), args.epochs):
        print(f"  {rate:7.1f}  {loss:13.4f}  {acc:17.4f}")


if __name__ == "__main__":
    main()
