"""Column-split ("tensor-parallel") training on 2 threads: a prototype, not product code.

fastbp's epoch runs its element-wise work on one core and its products on BLAS's threads.
On 2 cores that costs twice: the serial work is not shared, and the weights the update
rewrites every minibatch (and the gradients BLAS's threads wrote) move between the cores'
caches. Here each of two threads owns half the hidden units of a one-hidden-layer net:
its columns of W1 and b1 and their SGD velocities, so the big arrays never leave its
core, and it runs everything for them (products on single-threaded BLAS, logistic, f',
update). The output layer, small, is replicated: both threads compute it and update
identical copies. Per minibatch the threads exchange only the hidden activations
(B x H/2 each), with two spin barriers (release/acquire atomics, about 0.1 us when both
threads are running).

Measured 2026-11-26 on the 2-core project machine (float64, logistic, SGD with Nesterov
momentum, ms per epoch; "x" is over the two-thread floor of bench/floor.py):

    data, units, batch        floor   fastbp    split   fastbp (1 BLAS thread)
    mnist5k 784-128-10, 64     20.2    32.4 (1.60x)  24.7 (1.22x)   43.5
    mnist5k 784-256-10, 128    35.1    46.2 (1.31x)  41.2 (1.17x)   73.3
    clf2 30-64-2, 128           3.5     7.8 (2.26x)   7.8 (2.26x)    7.9
    digits 64-64-10, 32         0.6     1.1 (1.70x)   3.6 (5.7x)     1.1
    clf5 20-32-5, 32            1.0     3.6 (3.6x)   10.3 (10.3x)    3.6

Mid-size nets gain a quarter and come within 1.3x of the floor. The smallest lose twice:
with the barriers made no-ops (wrong results, right costs) clf5 takes 3.4 ms an epoch,
hardly less than fastbp's 3.6 (the replicated output layer and each minibatch's fixed
costs do not split), and the barriers add 2 to 10 us each on average (run to run),
though a barrier between two balanced threads costs 0.1 us here. Counting spins shows
both threads waiting about equally: not one slow thread but jitter, as large as the
phases themselves (a few us of work each). Small nets should keep the one-thread path. A row split (each thread half the batch rows and all of W; tried the
same day) gained nothing: both threads then need all the weights every minibatch.

The product version is fastbp/_threads.py (any depth, the loss and L2 penalty, a fit's
rules for when to use it). On the same machine it trains mnist-logistic-sgd-b64 (this
net) at 1.30x the floor, best of 5: README, "Two threads".

Run: ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m bench.experiments.colsplit
[DATA H BATCH EPOCHS]`` (default ``mnist5k 128 64 5``; DATA as in bench/workloads.py).
"""

import sys
import threading
import warnings

import numpy as np
from numba import njit

from fastbp import _kernels as K
from fastbp import _vmath as vm
from fastbp._config import JIT
from fastbp import _activations, _optim
from fastbp._sync import barrier

JIT = dict(JIT, cache=False)


@njit(**JIT)
def _sgd(p, vel, g, alpha, inv_s, lr, mu, penalised):
    """fastbp's Nesterov step on one block (weights penalised, biases not)."""
    for i in range(p.size):
        gi = _optim.weight_gradient(g[i], p[i], alpha, inv_s) if penalised else g[i] * inv_s
        _optim._sgd_element(p, vel, i, gi, mu, lr, True)


@njit(**JIT)
def worker(tid, flags, X, Y, perm, B, W1c, b1c, vW1c, vb1c, W2, b2, vW2, vb2,
           xb, A1, Z1c, D1c, dW1c, db1c, A2, D2, dW2, db2, lr, mu, alpha):
    n = X.shape[0]
    H2 = W1c.shape[1]
    c0 = tid * H2
    phase = 0
    for start in range(0, n, B):
        stop = min(start + B, n)
        nb = stop - start
        x = K.gather_rows(X, perm, start, stop, xb, 0, stop - start)  # every row, both threads
        Z = Z1c[:nb]
        np.dot(x, W1c, Z)  # my hidden units
        for i in range(nb):
            for j in range(H2):
                A1[i, c0 + j] = vm.logistic(Z[i, j] + b1c[j])
        phase += 1
        barrier(flags, tid, phase)  # A1 complete
        A = A1[:nb]
        np.dot(A, W2, A2[:nb])  # output layer: replicated
        _activations.activation_forward_cols(A2[:nb], 0, A2.shape[1], b2, _activations.SOFTMAX)
        for i in range(nb):
            src = perm[start + i]
            for j in range(Y.shape[1]):
                D2[i, j] = A2[i, j] - Y[src, j]
        np.dot(A.T, D2[:nb], dW2)
        K.column_sums(db2, D2[:nb], 0, D2.shape[1])
        D = D1c[:nb]
        np.dot(D2[:nb], W2[c0:c0 + H2].T, D)  # δ2 W2ᵀ for my units
        for i in range(nb):
            for j in range(H2):
                a = A1[i, c0 + j]
                D[i, j] = (D[i, j] * a) * (1.0 - a)
        phase += 1
        barrier(flags, tid, phase)  # both done reading A1
        np.dot(x.T, D, dW1c)
        K.column_sums(db1c, D, 0, D.shape[1])
        inv_s = 1.0 / nb
        _sgd(W1c.ravel(), vW1c.ravel(), dW1c.ravel(), alpha, inv_s, lr, mu, True)
        _sgd(b1c, vb1c, db1c, alpha, inv_s, lr, mu, False)
        _sgd(W2.ravel(), vW2.ravel(), dW2.ravel(), alpha, inv_s, lr, mu, True)
        _sgd(b2, vb2, db2, alpha, inv_s, lr, mu, False)


def fit(X, Y, H, B, epochs, lr, seed=0):
    """Train; returns each thread's arrays (``W1c``, ``b1c``, ``W2``, ``b2``, ...)."""
    rng = np.random.default_rng(seed)
    F, n_out = X.shape[1], Y.shape[1]
    W1 = rng.uniform(-0.1, 0.1, (F, H))
    W2 = rng.uniform(-0.1, 0.1, (H, n_out))
    H2 = H // 2
    own = [dict(W1c=np.ascontiguousarray(W1[:, t * H2:(t + 1) * H2]), b1c=np.zeros(H2),
                vW1c=np.zeros((F, H2)), vb1c=np.zeros(H2), W2=W2.copy(), b2=np.zeros(n_out),
                vW2=np.zeros((H, n_out)), vb2=np.zeros(n_out), xb=np.empty((B, F)),
                Z1c=np.empty((B, H2)), D1c=np.empty((B, H2)), dW1c=np.empty((F, H2)),
                db1c=np.empty(H2), A2=np.empty((B, n_out)), D2=np.empty((B, n_out)),
                dW2=np.empty((H, n_out)), db2=np.empty(n_out)) for t in range(2)]
    A1 = np.empty((B, H))
    keys = ("W1c", "b1c", "vW1c", "vb1c", "W2", "b2", "vW2", "vb2", "xb")
    rest = ("Z1c", "D1c", "dW1c", "db1c", "A2", "D2", "dW2", "db2")
    for _ in range(epochs):
        perm = rng.permutation(X.shape[0]).astype(np.int64)
        flags = np.zeros(24, np.int64)  # fastbp._sync's barrier: phases at 0, 8; abort 16

        def work(t):
            o = own[t]
            worker(t, flags, X, Y, perm, B, *(o[k] for k in keys), A1, *(o[k] for k in rest),
                   lr, 0.9, 1e-4)

        th = threading.Thread(target=work, args=(1,))
        th.start()
        work(0)
        th.join()
    return own


def main(argv):
    import fastbp
    from threadpoolctl import threadpool_limits

    from bench.floor import make_floor
    from bench.peers import timed as settled_timed
    from bench.workloads import load

    warnings.simplefilter("ignore")
    data, H, B, epochs = (argv + ["mnist5k", "128", "64", "5"][len(argv):])[:4]
    H, B, epochs = int(H), int(B), int(epochs)
    d = load(data, "float64")
    X, y = d["X_train"], d["y_train"]
    classes = np.unique(y)
    Y = (y[:, None] == classes[None, :]).astype(np.float64)
    units = [X.shape[1], H, len(classes)]
    floor = make_floor(units, B, np.float64)
    floor(len(X))
    params = dict(hidden_layer_sizes=(H,), activation="logistic", solver="sgd", batch_size=B,
                  learning_rate_init=0.05, max_iter=epochs, n_iter_no_change=epochs + 1,
                  random_state=0)
    fit(X, Y, H, B, 1, 0.05)  # compile
    times = {"floor": [], "fastbp": [], "split (1 BLAS thread each)": [],
             "fastbp, 1 BLAS thread": []}

    def timed(key, f, per=1):  # after a quiet pause, as every bench timing
        times[key].append(settled_timed(f)[0] / per)

    for _ in range(5):
        timed("floor", lambda: floor(len(X)))
        timed("fastbp", lambda: fastbp.MLPClassifier(**params).fit(X, y), epochs)
        with threadpool_limits(1):
            timed("split (1 BLAS thread each)", lambda: fit(X, Y, H, B, epochs, 0.05), epochs)
            timed("fastbp, 1 BLAS thread", lambda: fastbp.MLPClassifier(**params).fit(X, y),
                  epochs)
    fl = min(times["floor"])
    print(f"{data} {'-'.join(map(str, units))}, batch {B}, ms per epoch (x floor):")
    for k, v in times.items():
        print(f"  {k:28s} {min(v) * 1e3:8.2f}  ({min(v) / fl:.2f}x)")
    own = fit(X, Y, H, B, epochs, 0.05)
    W1 = np.hstack([own[0]["W1c"], own[1]["W1c"]])
    b1 = np.concatenate([own[0]["b1c"], own[1]["b1c"]])
    A = 1 / (1 + np.exp(-(d["X_test"] @ W1 + b1)))
    acc = ((A @ own[0]["W2"] + own[0]["b2"]).argmax(1) == np.searchsorted(classes, d["y_test"])).mean()
    print(f"  split's held-out accuracy {acc:.3f} (fastbp: "
          f"{fastbp.MLPClassifier(**params).fit(X, y).score(d['X_test'], d['y_test']):.3f}); "
          f"replicas equal: {np.array_equal(own[0]['W2'], own[1]['W2'])}")


if __name__ == "__main__":
    main(sys.argv[1:])
