"""What watching a fit costs: the validation rows (fit's X_val, a tenth of the training
rows' count) and scikit-learn's ProgressBar callback, per epoch, against the same fit
without them.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m bench.experiments.monitoring \
        [--workload NAME ...] [--repeats 5]

For each workload (bench/workloads.py), in this process: the three fits (plain, X_val,
ProgressBar) alternate, ``--repeats`` rounds, each fit after a quarter second of quiet;
reported: best s/epoch of each and the ratios to the plain fit's, and the validation
loss's own pass (forward and loss kernels over X_val, best of 20) over the plain epoch. The models are checked
first: the X_val fit's weights must equal the plain fit's (the validation rows only
watch).
"""

import argparse
import contextlib
import io
import time
import warnings

import numpy as np

DEFAULT = ["digits-relu-adam", "mnist-relu-adam", "clf-binary-logistic-adam",
           "reg-relu-adam-b64"]


def _fit(est, data, **kwargs):
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        return est.fit(data["X_train"], data["y_train"], **kwargs)


def measure(name, repeats):
    import fastbp
    from bench.workloads import WORKLOADS, load
    from sklearn.callback import ProgressBar

    w = WORKLOADS[name]
    data = load(w.data, w.dtype)
    n_val = len(data["y_train"]) // 10
    val = dict(X_val=data["X_test"][:n_val], y_val=data["y_test"][:n_val])
    make = fastbp.MLPClassifier if data["task"] == "classification" else fastbp.MLPRegressor
    kinds = {
        "plain": lambda: (make(**w.params()), {}),
        "X_val": lambda: (make(**w.params()), val),
        "ProgressBar": lambda: (make(**w.params()).set_callbacks(ProgressBar()), {}),
    }
    plain, watched = _fit(make(**w.params()), data), _fit(make(**w.params()), data, **val)
    for a, b in zip(plain.coefs_, watched.coefs_):
        np.testing.assert_array_equal(a, b)
    # the validation loss's own pass (forward + data loss kernels), on the fitted model
    from fastbp._validation import ValidationSet

    rows = watched._validation_rows(val["X_val"], val["y_val"], None, watched._flat.dtype)
    valset = ValidationSet(watched, *rows, None)
    loss_pass = np.inf
    for _ in range(20):
        started = time.perf_counter()
        valset._loss(watched, watched._forward_pass_fast(rows[0], check_input=False))
        loss_pass = min(loss_pass, time.perf_counter() - started)
    best = {k: np.inf for k in kinds}
    for _ in range(repeats):
        for kind, new in kinds.items():
            est, kwargs = new()
            time.sleep(0.25)
            started = time.perf_counter()
            _fit(est, data, **kwargs)
            best[kind] = min(best[kind], (time.perf_counter() - started) / est.n_iter_)
    return n_val, best, loss_pass


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.experiments.monitoring")
    p.add_argument("--workload", action="append")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    print(f"{'workload':<28} {'n_val':>6} {'plain s/ep':>11} {'X_val':>8} {'loss pass':>10} "
          f"{'ProgressBar':>12}")
    for name in args.workload or DEFAULT:
        n_val, best, loss_pass = measure(name, args.repeats)
        plain = best["plain"]
        print(f"{name:<28} {n_val:>6} {plain:>11.4g} {best['X_val'] / plain:>7.3f}x "
              f"{loss_pass / plain:>9.3f}x {best['ProgressBar'] / plain:>11.3f}x")


if __name__ == "__main__":
    main()
