"""python -m bench: fastbp vs the floor vs scikit-learn on bundled data (a first version).

For each workload, in this one process: the results are checked first (fastbp and
scikit-learn fit with the same settings and seed; their test accuracies must agree),
then each trainer is timed over whole fits of a fixed number of epochs, best of
``--repeats``. Reported: seconds per epoch, fastbp as a multiple of the floor (the
epoch's matrix products alone, bench/floor.py), speed-up over scikit-learn, accuracy.

Benchmark with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset in that command only; the
BLAS kernel that ran is printed (threadpoolctl).
"""

import argparse
import os
import platform
import time
import warnings

import numpy as np
from sklearn import neural_network as sk
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

import fastbp
from bench.floor import epoch_flops, make_floor

# name: (hidden_layer_sizes, activation, solver, batch_size)
WORKLOADS = {
    "digits-relu-adam": ((100,), "relu", "adam", 200),
    "digits-tanh-sgd-b32": ((64, 64), "tanh", "sgd", 32),
}


def load():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, test_size=0.25, random_state=0, stratify=y)


def best_time(fn, repeats):
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def blas_info():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return "; ".join(
        f"{i['internal_api']} {i['version']} {i.get('architecture')} x{i['num_threads']}"
        f" ({os.path.basename(i['filepath'])})"
        for i in threadpool_info()
        if i["user_api"] == "blas"
    )


def run(name, data, dtype, epochs, repeats):
    hidden, activation, solver, batch = WORKLOADS[name]
    X_train, X_test, y_train, y_test = (a.astype(dtype) if a.dtype.kind == "f" else a for a in data)
    params = dict(hidden_layer_sizes=hidden, activation=activation, solver=solver,
                  batch_size=batch, max_iter=epochs, n_iter_no_change=epochs + 1,
                  random_state=0)
    if solver == "sgd":
        params["learning_rate_init"] = 0.01

    def fit(cls):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return cls(**params).fit(X_train, y_train)

    ours, theirs = fit(fastbp.MLPClassifier), fit(sk.MLPClassifier)  # also warms the JIT
    acc_ours, acc_theirs = ours.score(X_test, y_test), theirs.score(X_test, y_test)
    agree = abs(acc_ours - acc_theirs) <= 0.02
    units = [X_train.shape[1], *hidden, len(ours.classes_)]
    floor = make_floor(units, batch, dtype)
    floor(len(X_train))
    t_floor = best_time(lambda: floor(len(X_train)), repeats * 3) / 1.0
    t_ours = best_time(lambda: fit(fastbp.MLPClassifier), repeats) / epochs
    t_theirs = best_time(lambda: fit(sk.MLPClassifier), repeats) / epochs
    gflops = epoch_flops(units, len(X_train)) / t_ours / 1e9
    return dict(name=name, dtype=np.dtype(dtype).name, floor=t_floor, fastbp=t_ours,
                sklearn=t_theirs, acc_fastbp=acc_ours, acc_sklearn=acc_theirs, agree=agree,
                gflops=gflops)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--workload", choices=sorted(WORKLOADS), action="append")
    parser.add_argument("--dtype", choices=["float64", "float32"], action="append")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    print(f"fastbp {fastbp.__version__} | {platform.machine()} {platform.processor() or ''}"
          f" | {os.cpu_count()} cpus | python {platform.python_version()}")
    print(f"BLAS: {blas_info()}")
    pinned = [v for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if v in os.environ]
    if pinned:
        print(f"note: {', '.join(pinned)} set: OpenBLAS may be pinned to an old kernel")
    data = load()
    print(f"data: digits, {len(data[0])} train / {len(data[1])} test rows, {args.epochs} epochs,"
          f" best of {args.repeats}\n")
    header = (f"{'workload':<22}{'dtype':<9}{'floor s/ep':>11}{'fastbp s/ep':>12}"
              f"{'sklearn s/ep':>13}{'x floor':>9}{'speed-up':>10}{'GFLOP/s':>9}"
              f"{'acc fastbp':>11}{'acc sklearn':>12}")
    print(header)
    print("-" * len(header))
    ok = True
    for name in args.workload or list(WORKLOADS):
        for dt in args.dtype or ["float64", "float32"]:
            r = run(name, data, np.dtype(dt).type, args.epochs, args.repeats)
            flag = "" if r["agree"] else "  SCORES DISAGREE: not a result"
            ok &= r["agree"]
            print(f"{r['name']:<22}{r['dtype']:<9}{r['floor']:>11.5f}{r['fastbp']:>12.5f}"
                  f"{r['sklearn']:>13.5f}{r['fastbp'] / r['floor']:>9.2f}"
                  f"{r['sklearn'] / r['fastbp']:>9.1f}x{r['gflops']:>9.2f}"
                  f"{r['acc_fastbp']:>11.4f}{r['acc_sklearn']:>12.4f}{flag}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
