"""The trainers being compared, and how one fit is timed and its memory measured.

Every trainer fits the same workload (bench/workloads.py) on the same arrays:

- ``fastbp``  fastbp.MLPClassifier / MLPRegressor;
- ``sklearn`` scikit-learn's estimators of the same names, same parameters and seed (in
  float64 they train the same model as fastbp; float32 input trains in float32 in both);
- ``torch``   PyTorch on the CPU when importable (never a dependency of fastbp): the same
  layers, activation, loss, optimizer (SGD with scikit-learn's momentum 0.9 and Nesterov,
  or Adam with the same betas, eps and learning rate), batch size, epochs and dtype; the
  initial weights are scikit-learn's draws (Glorot uniform from RandomState(0)), scikit-
  learn's L2 term ``alpha/2·‖W‖²/n_batch`` becomes ``weight_decay = alpha / batch_size``
  on the weights only; rows are reshuffled each epoch by torch's own generator.

A fit returns an object with ``score(X, y)`` (accuracy, or R² for regression, on the
held-out split) and ``loss_`` (the last epoch's mean training loss).
"""

import ctypes
import gc
import re
import time
import warnings

import numpy as np
from sklearn import neural_network as sk
from sklearn.exceptions import ConvergenceWarning

import fastbp

torch = None  # the optional peer, imported by import_torch() (not with --no-torch)


def import_torch():
    """PyTorch if it can be imported here, else None."""
    global torch
    if torch is None:
        try:
            import torch as _torch
        except ImportError:
            return None
        torch = _torch
    return torch


# ---------------------------------------------------------------------------------------
# fastbp and scikit-learn
# ---------------------------------------------------------------------------------------


def _estimator_fit(module, w, data, epochs):
    cls = module.MLPClassifier if data["task"] == "classification" else module.MLPRegressor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return cls(**w.params(epochs)).fit(data["X_train"], data["y_train"])


def fit_fastbp(w, data, epochs):
    return _estimator_fit(fastbp, w, data, epochs)


def fit_sklearn(w, data, epochs):
    return _estimator_fit(sk, w, data, epochs)


# ---------------------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------------------


def sklearn_init(units, activation, seed=0):
    """scikit-learn's initial weights: per layer uniform(±b) for W (fan_in, fan_out) then
    b, ``b = sqrt(6 / (fan_in + fan_out))`` (2 instead of 6 for logistic)."""
    rs = np.random.RandomState(seed)
    factor = 2.0 if activation == "logistic" else 6.0
    out = []
    for fan_in, fan_out in zip(units[:-1], units[1:]):
        bound = np.sqrt(factor / (fan_in + fan_out))
        W = rs.uniform(-bound, bound, (fan_in, fan_out))
        b = rs.uniform(-bound, bound, fan_out)
        out.append((W, b))
    return out


class TorchModel:
    """A fitted torch MLP with scikit-learn's ``score`` and ``loss_``."""

    def __init__(self, net, task, n_outputs, loss):
        self.net, self.task, self.n_outputs, self.loss_ = net, task, n_outputs, loss

    def predict_raw(self, X):
        dtype = next(self.net.parameters()).dtype
        with torch.inference_mode():
            return self.net(torch.from_numpy(np.ascontiguousarray(X)).to(dtype)).numpy()

    def score(self, X, y):
        out = self.predict_raw(X)
        if self.task == "regression":
            from sklearn.metrics import r2_score

            return float(r2_score(y, out.ravel() if out.shape[1] == 1 else out))
        pred = (out[:, 0] > 0).astype(np.int64) if self.n_outputs == 1 else out.argmax(1)
        return float(np.mean(pred == y))


def torch_config(w, data):
    """What the torch peer runs for workload ``w`` (recorded in the JSON)."""
    opt = (dict(optimizer="SGD", lr=w.learning_rate_init, momentum=0.9, nesterov=True)
           if w.solver == "sgd" else
           dict(optimizer="Adam", lr=w.learning_rate_init, betas=(0.9, 0.999), eps=1e-8))
    opt["weight_decay_weights"] = w.alpha / w.batch_size
    return opt


def fit_torch(w, data, epochs):
    X, y = data["X_train"], data["y_train"]
    dtype = torch.float64 if X.dtype == np.float64 else torch.float32
    n, n_features = X.shape
    task = data["task"]
    if task == "classification":
        n_classes = int(y.max()) + 1
        n_outputs = 1 if n_classes == 2 else n_classes
    else:
        n_outputs = 1 if y.ndim == 1 else y.shape[1]
    units = [n_features, *w.hidden, n_outputs]
    act = {"identity": torch.nn.Identity, "logistic": torch.nn.Sigmoid,
           "tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[w.activation]
    layers = []
    for l, (W, b) in enumerate(sklearn_init(units, w.activation)):
        lin = torch.nn.Linear(W.shape[0], W.shape[1], dtype=dtype)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W.T.copy()))
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        if l < len(units) - 2:
            layers.append(act())
    net = torch.nn.Sequential(*layers)

    Xt = torch.from_numpy(X)
    if task == "regression":
        Yt = torch.from_numpy(np.ascontiguousarray(y.reshape(n, -1)))
        def loss_fn(out, yb):  # scikit-learn's ½·Σ_outputs, mean over rows
            return 0.5 * ((out - yb) ** 2).sum(1).mean()
    elif n_outputs == 1:
        Yt = torch.from_numpy(y.astype(X.dtype).reshape(n, 1))
        loss_fn = torch.nn.BCEWithLogitsLoss()
    else:
        Yt = torch.from_numpy(y.astype(np.int64))
        loss_fn = torch.nn.CrossEntropyLoss()

    weights = [p for name, p in net.named_parameters() if name.endswith("weight")]
    biases = [p for name, p in net.named_parameters() if name.endswith("bias")]
    groups = [dict(params=weights, weight_decay=w.alpha / w.batch_size),
              dict(params=biases, weight_decay=0.0)]
    if w.solver == "sgd":
        opt = torch.optim.SGD(groups, lr=w.learning_rate_init, momentum=0.9, nesterov=True)
    else:
        opt = torch.optim.Adam(groups, lr=w.learning_rate_init, betas=(0.9, 0.999), eps=1e-8)

    gen = torch.Generator().manual_seed(0)
    B = w.batch_size
    epoch_loss = float("nan")
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for start in range(0, n, B):
            idx = perm[start:start + B]
            xb, yb = Xt.index_select(0, idx), Yt.index_select(0, idx)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        epoch_loss = total / n
    return TorchModel(net, task, n_outputs, epoch_loss)


def trainers(use_torch=True):
    """name -> fit(workload, data, epochs), in the order they are run."""
    out = {"fastbp": fit_fastbp, "sklearn": fit_sklearn}
    if use_torch and import_torch() is not None:
        out["torch"] = fit_torch
    return out


def versions():
    import numba
    import scipy
    import sklearn
    import threadpoolctl

    v = dict(fastbp=fastbp.__version__, numpy=np.__version__, scipy=scipy.__version__,
             numba=numba.__version__, scikit_learn=sklearn.__version__,
             threadpoolctl=threadpoolctl.__version__,
             torch=None if torch is None else torch.__version__)
    for mod in ("llvmlite", "matplotlib", "mlxtend", "psutil"):
        try:
            v[mod] = __import__(mod).__version__
        except ImportError:
            v[mod] = None
    return v


# ---------------------------------------------------------------------------------------
# Measuring one call: wall time, traced allocations, resident memory
# ---------------------------------------------------------------------------------------


# Before every timed call, wait this long (untimed) for the other trainers' thread pools
# to go idle. NumPy's and SciPy's wheels each bundle their own OpenBLAS (scikit-learn uses
# the first, Numba's np.dot hence fastbp and the floor the second) and torch has its own
# OpenMP pool. After a call, a pool's threads spin waiting for more work: measured here,
# NumPy's OpenBLAS spins 50-100 ms, and while it does, products on SciPy's OpenBLAS take
# 1.9x as long on 2 cores (torch's pool: 1.4x, under 50 ms). Without the pause, whichever
# trainer runs right after another pays for the other's threads.
SETTLE_S = 0.25


def timed(fn):
    """(seconds, result) of ``fn()``, started after ``SETTLE_S`` of quiet."""
    time.sleep(SETTLE_S)
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


_libc = None


def _status_kb(field):
    m = re.search(rf"^{field}:\s+(\d+) kB", open("/proc/self/status").read(), re.M)
    return int(m.group(1)) if m else None


def rss_peak(fn):
    """Growth of the resident set during ``fn()``: peak RSS (VmHWM, reset through
    /proc/self/clear_refs) minus the RSS before, after freeing what the allocator holds
    (malloc_trim). Counts every allocator (torch's too). Returns (bytes or None, result)."""
    global _libc
    gc.collect()
    try:
        if _libc is None:
            _libc = ctypes.CDLL("libc.so.6")
        _libc.malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak-RSS watermark to the current RSS
        before = _status_kb("VmRSS")
    except OSError:
        return None, fn()
    result = fn()
    peak = _status_kb("VmHWM")
    if before is None or peak is None:
        return None, result
    return (peak - before) * 1024, result
