"""Where an epoch's time goes: fastbp's own kernels, one kind at a time.

The floor (bench/floor.py) times the epoch's matrix products. This times everything else
fastbp's epoch does, with the workload's shapes, each kind of work alone over an epoch's
worth of minibatches, in one njit loop per kind, calling the same kernels ``train_epoch``
calls:

- gather: the minibatch's rows of X, Y and the sample weights (``gather_share``);
- activations: bias + f for every layer, including softmax/logistic/exp outputs
  (``activation_forward_cols``);
- loss head: the output residual and the loss (``output_delta_and_loss``);
- backward: f' for every hidden layer (``activation_backward_cols``) and the bias
  gradients' column sums (``column_sums``);
- penalty: ‖W‖² (``penalty_share``);
- update: the SGD or Adam step over the flat buffer, gradient finished in the same pass
  (``step_size``, ``update_share``).

All of these run on one core (only the products use BLAS's threads). ``floor + serial``
is what the epoch would cost if nothing else happened; ``(floor + serial) / floor`` is the
best "x floor" fastbp can show on this workload while that work stays serial. The rest of
fastbp's measured time (``other``) is what the parts do not add up to. Measured causes:
the update rewrites, every minibatch, the weights the BLAS threads multiply with and
reads the gradients they wrote, so cache lines move between the cores (the floor never
writes its weights; writing them in its loop adds 2.5 ms an epoch on mnist-logistic, and
``other`` falls to 1-2 ms an epoch with one BLAS thread); also per-epoch Python
(shuffle, stopping rules).

Buffers are reused across batches, so repeated activations drift (tanh of tanh ...);
each kind's cost depends on the shapes, not the values, except that ``exp`` may reach inf
(no slower: the code is branch-free).
"""

import time

import numpy as np
from numba import njit

from fastbp import _kernels as K
from fastbp import _config
from fastbp._activations import (
    LOGISTIC,
    TANH,
    activation_backward_cols,
    activation_forward_cols,
)
from fastbp._config import JIT
from fastbp._layout import Batches, Buffers, make_net, make_workspace, one_thread
from fastbp._losses import output_delta_and_loss
from fastbp._optim import OPTIMIZERS, Hyper, step_size

KINDS = ("gather", "activations", "loss head", "backward", "penalty", "update")


@njit(**JIT)
def _gather(team, data, ws, n):
    for start in range(0, n, data.batch_size):
        K.gather_share(0, team, data, ws, start, min(start + data.batch_size, n), 0)


# These inline fastbp's kernels: bench's Numba cache is keyed on fastbp's sources too.
_config.drop_stale_cache(_gather, _config.sources_digest())


@njit(**JIT)
def _activations(acts, biases, codes, n, batch_size):
    for start in range(0, n, batch_size):
        nb = min(batch_size, n - start)
        for l in range(len(acts)):
            A = acts[l][:nb]
            activation_forward_cols(A, 0, A.shape[1], biases[l], codes[l])


@njit(**JIT)
def _loss_head(D, A, Y, sw, loss_code, n, batch_size):
    total = 0.0
    for start in range(0, n, batch_size):
        nb = min(batch_size, n - start)
        total += output_delta_and_loss(D[:nb], A[:nb], Y[:nb], sw[:nb], loss_code)[0]
    return total


@njit(**JIT)
def _backward(deltas, acts, dbs, hidden, n, batch_size):
    """f' for the hidden layers (deltas[:-1]), column sums for every layer."""
    L = len(deltas)
    for start in range(0, n, batch_size):
        nb = min(batch_size, n - start)
        for l in range(L):
            D = deltas[l][:nb]
            K.column_sums(dbs[l], D, 0, D.shape[1])
            if l < L - 1:
                activation_backward_cols(D, acts[l][:nb], 0, D.shape[1], hidden)


@njit(**JIT)
def _penalty(net, team, params, n, batch_size):
    s = 0.0
    for start in range(0, n, batch_size):
        s += K.penalty_share(net, team, params, 0)
    return s


@njit(**JIT)
def _update(team, bufs, net, hyper, n, batch_size):
    t = 0
    for _ in range(0, n, batch_size):
        step, t = step_size(hyper, t)
        K.update_share(0, team, bufs, net, hyper, float(batch_size), step)


def _best(f, repeats):
    f()  # compile (or load), and warm the caches
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def targets(model, y):
    """y as the (n, K) array fastbp trains on: binarized labels, or the targets."""
    if hasattr(model, "_label_binarizer"):
        return model._label_binarizer.transform(y)
    return np.asarray(y).reshape(len(y), -1)


def measure(model, X, Y, batch_size, repeats=3, seed=0):
    """Seconds per epoch of each kind of serial work, for fitted ``model`` (its layout,
    activations, loss and solver) on training data X (n, F) and targets Y (``targets``)."""
    rng = np.random.default_rng(seed)
    dt = model._flat.dtype
    layout = model._layout
    units = [int(u) for u in layout.units]
    net = model._net()
    hidden, out_act, loss_code = net.hidden, net.output, net.loss
    n, B, L = X.shape[0], batch_size, len(units) - 1
    X = np.ascontiguousarray(X, dtype=dt)
    Y = np.ascontiguousarray(Y, dtype=dt).reshape(n, -1)
    sw = np.ones(n, dtype=dt)
    perm = rng.permutation(n).astype(np.int64)
    team = one_thread(layout)
    ws = make_workspace(layout, B, 1, X.shape[1], dt)
    data = Batches(X, Y, sw, perm, B)

    def normal(*shape):
        return rng.standard_normal(shape).astype(dt)

    acts = tuple(normal(B, u) for u in units[1:])
    deltas = tuple(normal(B, u) for u in units[1:])
    # backward's stored outputs: a where f'(a) is -1 (or 1), so that δ, multiplied by it
    # batch after batch, neither underflows into (slow) subnormals nor overflows
    a_unit = {LOGISTIC: (1 + 5**0.5) / 2, TANH: 2**0.5}.get(hidden, 1.0)
    acts_back = tuple(np.full((B, u), a_unit, dt) for u in units[1:])
    biases = tuple(normal(u) * dt.type(0.1) for u in units[1:])
    dbs = tuple(np.empty(u, dt) for u in units[1:])
    codes = np.array([hidden] * (L - 1) + [out_act], dtype=np.int64)
    A_out = np.abs(normal(B, units[-1])) / dt.type(units[-1] + 1)  # in (0, 1): every loss
    P = layout.size
    params, grads = normal(P) * dt.type(0.05), normal(P)
    bufs = Buffers(params, grads, np.zeros(P, dt), np.zeros(P, dt))
    hyper = Hyper(OPTIMIZERS[model.solver].code, 1e-4, 1e-3, 0.9, True, 0.9, 0.999, 1e-8)
    ybuf, swbuf = ws.ybuf[0], ws.swbuf[0]

    out = {
        "gather": _best(lambda: _gather(team, data, ws, n), repeats),
        "activations": _best(lambda: _activations(acts, biases, codes, n, B), repeats),
        "loss head": _best(lambda: _loss_head(deltas[-1], A_out, ybuf, swbuf, loss_code, n, B),
                           repeats),
        "backward": _best(lambda: _backward(deltas, acts_back, dbs, hidden, n, B), repeats),
        "penalty": _best(lambda: _penalty(net, team, params, n, B), repeats),
        "update": _best(lambda: _update(team, bufs, net, hyper, n, B), repeats),
    }
    return out
