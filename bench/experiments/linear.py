"""Identity hidden layers in rank-K form: a prototype, not product code.

With ``activation='identity'`` the hidden layers are linear, so the net is
``f_out(X V_1 + c)`` with ``V_l = W_l W_{l+1} ... W_L`` (H_{l-1} x K) and every residual is
``δ_l = δ_L V_{l+1}ᵀ``: rank K at most (K outputs). Backpropagation's products then need
not be formed at the batch's width. Per minibatch of B rows, with ``s = 1ᵀ δ_L``:

    forward   V_L = W_L, V_l = W_l V_{l+1};  c = Σ_{l<L} b_l V_{l+1} + b_L;  Z_L = X V_1 + c
    head      δ_L = f_out'(...)-residual of Z_L (squared error: Z_L - Y), the loss
    backward  G_0 = Xᵀ δ_L;  G_l = A_lᵀ δ_L = W_lᵀ G_{l-1} + b_l sᵀ   (H_l x K)
              ∂W_l = A_{l-1}ᵀ δ_l = G_{l-1} V_{l+1}ᵀ;  ∂b_l = s V_{l+1}ᵀ   (V_{L+1} = I_K)

That is O(B·F·K + Σ H_{l-1}·H_l·K) multiply-adds a minibatch instead of backprop's
3·B·Σ H_{l-1}·H_l, and no B x H activation is ever formed; what is left costs about as
much as the update, a pass over the parameters. The gradients are the same sums taken in
another order: the model is scikit-learn's to rounding.

Measured 2026-11-26 on the 2-core project machine, reg-identity-sgd-b256 (10,000 x 50,
hidden (128, 128), K = 1, batch 256, SGD with Nesterov momentum, float64, 5 epochs,
best of 5 fits, ms per epoch; "x" is over the two-thread floor of bench/floor.py; two
runs):

    floor 15.8-15.9 | fastbp 19.3 (1.22x) | this prototype 2.3 (0.145x) | scikit-learn 30.2
    weights after 5 epochs vs fastbp's: max relative difference 4.4e-16; loss curve 5.9e-16

So 8x faster than fastbp's backprop and 13x faster than scikit-learn on this workload,
the same model; and the prototype is not tuned (it allocates ∂W and the gathered rows
every minibatch, and shuffles in Python). In fastbp it would be a second gradient kernel
beside ``_kernels.backprop``, filling the same flat gradient buffer for the same
optimizer step, chosen when the hidden layers are linear (scikit-learn has one activation
for all of them) and K is well below the batch and the widths. It serves only
``activation='identity'``: no other activation makes the hidden layers linear. The floor
of bench/floor.py (the products backprop needs) would then not bound fastbp there.

Run: ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m bench.experiments.linear``
"""

import time
import warnings

import numpy as np
from numba import njit

import fastbp
from bench import peers
from bench.floor import make_floor
from bench.workloads import WORKLOADS, load
from fastbp._config import JIT

JIT = dict(JIT, cache=False)


@njit(**JIT)
def linear_epoch(Ws, bs, vWs, vbs, Vs, Gs, X, Y, idx, batch, lr, mu, alpha, c, delta):
    """One epoch of SGD (Nesterov) on squared error over a net with identity hidden
    layers, in rank-K form; returns Σ over minibatches of (loss x rows), as scikit-learn
    accumulates it. With 0-based layers l < L (Ws[l] : (H_l, H_{l+1}), H_0 = F):
    Vs[l] = Ws[l] ... Ws[L-1] and Gs[l] = A_lᵀ δ_L, both (H_l, K).
    c : (K,), delta : (batch, K): workspace."""
    L = len(Ws)
    n = idx.size
    K = Y.shape[1]
    total = 0.0
    for start in range(0, n, batch):
        stop = min(start + batch, n)
        B = stop - start
        xb = X[idx[start:stop]]
        yb = Y[idx[start:stop]]
        # forward: V_l from the right, the effective bias c, Z_L = X V_1 + c
        Vs[L - 1][:, :] = Ws[L - 1]
        for l in range(L - 2, -1, -1):
            np.dot(Ws[l], Vs[l + 1], Vs[l])
        c[:] = bs[L - 1]
        for l in range(L - 1):
            c += np.dot(bs[l], Vs[l + 1])
        D = delta[:B]
        np.dot(xb, Vs[0], D)
        loss = 0.0
        for i in range(B):
            for k in range(K):
                D[i, k] += c[k] - yb[i, k]
                loss += D[i, k] * D[i, k]
        loss = loss / (B * K) / 2
        sq = 0.0
        for l in range(L):
            w = Ws[l].ravel()
            sq += np.dot(w, w)
        total += (loss + 0.5 * alpha * sq / B) * B
        s = D.sum(axis=0)
        # backward: G_l = A_lᵀ δ_L, then the gradients, then the step, layer by layer
        np.dot(xb.T, D, Gs[0])
        for l in range(1, L):
            G = Gs[l]
            np.dot(Ws[l - 1].T, Gs[l - 1], G)
            G += np.outer(bs[l - 1], s)
        for l in range(L):
            if l < L - 1:
                dW = np.dot(Gs[l], Vs[l + 1].T)
                db = np.dot(s, Vs[l + 1].T)
            else:
                dW = Gs[l].copy()
                db = s.copy()
            W, vW = Ws[l].ravel(), vWs[l].ravel()
            g = dW.ravel()
            for i in range(W.size):
                gi = (g[i] + alpha * W[i]) / B
                vW[i] = mu * vW[i] - lr * gi
                W[i] += mu * vW[i] - lr * gi
            b, vb = bs[l], vbs[l]
            for i in range(b.size):
                gi = db[i] / B
                vb[i] = mu * vb[i] - lr * gi
                b[i] += mu * vb[i] - lr * gi
    return total


def fit_linear(X, Y, hidden, batch, lr, alpha, epochs, mu=0.9, seed=0):
    """scikit-learn's draws (Glorot uniform, then each epoch's shuffle) and its SGD epochs
    in rank-K form; returns (coefs, intercepts, loss curve)."""
    units = [X.shape[1], *hidden, Y.shape[1]]
    rs = np.random.RandomState(seed)
    Ws, bs = [], []
    for fan_in, fan_out in zip(units[:-1], units[1:]):
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        Ws.append(rs.uniform(-bound, bound, (fan_in, fan_out)))
        bs.append(rs.uniform(-bound, bound, fan_out))
    Ws, bs = tuple(Ws), tuple(bs)
    vWs = tuple(np.zeros_like(W) for W in Ws)
    vbs = tuple(np.zeros_like(b) for b in bs)
    K = Y.shape[1]
    Vs = tuple(np.empty((u, K)) for u in units[:-1])
    Gs = tuple(np.empty((u, K)) for u in units[:-1])
    c, delta = np.empty(K), np.empty((batch, K))
    idx = np.arange(X.shape[0])
    curve = []
    for _ in range(epochs):
        order = np.arange(X.shape[0])
        rs.shuffle(order)
        idx = idx[order]
        curve.append(linear_epoch(Ws, bs, vWs, vbs, Vs, Gs, X, Y, idx, batch, lr, mu,
                                  alpha, c, delta) / X.shape[0])
    return Ws, bs, curve


def main(name="reg-identity-sgd-b256", repeats=5):
    w = WORKLOADS[name]
    d = load(w.data, w.dtype)
    X, y = d["X_train"], d["y_train"]
    Y = y.reshape(len(y), -1).astype(np.float64)
    params = w.params(w.epochs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = fastbp.MLPRegressor(**params).fit(X, y)
    ours = fit_linear(X, Y, w.hidden, w.batch_size, params["learning_rate_init"],
                      params["alpha"], w.epochs)
    rel = max(np.max(np.abs(a - b)) / np.max(np.abs(b))
              for a, b in zip(ours[0] + ours[1], ref.coefs_ + ref.intercepts_))
    rel_loss = np.max(np.abs(np.array(ours[2]) - ref.loss_curve_) / np.array(ref.loss_curve_))
    floor = make_floor([X.shape[1], *w.hidden, 1], w.batch_size, np.float64)
    floor(X.shape[0])  # (compiles or loads)
    t = {"floor": [], "fastbp": [], "prototype": [], "scikit-learn": []}
    for _ in range(repeats):
        for _ in range(3):  # as bench/runner.py: three floor epochs a round
            t0 = time.perf_counter()
            floor(X.shape[0])
            t["floor"].append(time.perf_counter() - t0)
        t["fastbp"].append(peers.timed(lambda: peers.fit_fastbp(w, d, w.epochs))[0] / w.epochs)
        t0 = time.perf_counter()
        fit_linear(X, Y, w.hidden, w.batch_size, params["learning_rate_init"],
                   params["alpha"], w.epochs)
        t["prototype"].append((time.perf_counter() - t0) / w.epochs)
        t["scikit-learn"].append(
            peers.timed(lambda: peers.fit_sklearn(w, d, w.epochs))[0] / w.epochs)
    f = min(t["floor"])
    print(" | ".join(f"{k} {1e3 * min(v):.3g} ms ({min(v) / f:.3g}x)" for k, v in t.items()))
    print(f"weights after {w.epochs} epochs vs fastbp's: max relative difference {rel:.1e};"
          f" loss curve {rel_loss:.1e}")


if __name__ == "__main__":
    main()
