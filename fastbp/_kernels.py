"""Numba kernels: forward/backward pairs, losses, optimizers and the fused epoch.

Nothing here validates input: the estimators in ``_mlp.py`` check every shape, dtype and
index before calling a kernel (Numba does not check bounds).

Shape legend
------------
N   rows in the current minibatch (``nb`` in code), at most B = batch_size
F   input features                      units[0]
H   width of a hidden layer             units[l]
K   outputs (classes or targets)        units[L]
L   number of weight layers             len(units) - 1
P   parameters in the flat buffer       see ``_layout.py``

Math (equation numbers are those of docs/backprop.md)
-----------------------------------------------------
(1)  Z_l = A_{l-1} W_l + b_l,   A_l = f_l(Z_l),   A_0 = X          dense_forward
(2)  δ_L = diag(s) (A_L - Y)   (s = sample weights, or 1)         output_delta_and_loss
(3)  δ_{l-1} = (δ_l W_lᵀ) ⊙ f'(Z_{l-1})                            backprop + activation_backward
(4)  ∂J/∂W_l = (A_{l-1}ᵀ δ_l + α W_l) / S,   ∂J/∂b_l = Σ_rows δ_l / S
         the sums: dense_backward;  + α W, / S: finish_gradient (loss_grad, for L-BFGS),
         or inside the update loop (train_epoch: one pass over the buffer, not two)
(5)  SGD / Nesterov / Adam step on the flat buffer                 sgd_update, adam_update

S is the number of rows (or the sum of their sample weights); the stored δ is S·∂J/∂Z,
divided by S once, in (4). f'(Z) is computed from the stored outputs A = f(Z), so Z is
never kept: logistic a(1-a), tanh 1-a², relu 1[a>0], identity 1.

Input X is a dense (n, F) array or a CSR matrix passed as the tuple
``(data, indices, indptr, rows)``: rows ``rows`` of the matrix, in that order (a slice of
the epoch's permutation for a minibatch, or ``arange(n)``). Only the first layer reads X,
through ``batch_rows`` and the products ``dot_xw`` (X W) and ``dot_xtd`` (Xᵀ D), which
every layer uses; each has a dense and a CSR implementation, picked by Numba at compile
time from X's type. Everything else is shared.

Arithmetic mirrors scikit-learn 1.9's operation order (e.g. ``(g + αW) / S``, not
``g/S + αW/S``) so that float64 results agree with it to rounding; ``/ S`` itself is a
multiplication by 1/S (``finish_gradient`` says why). Scalars arrive as
float64 and are cast to the arrays' dtype (``dt(x)``) so float32 kernels compute in float32.
"""

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from . import _vmath as vm
from ._config import JIT

# Activation codes (hidden layers use the first four; output layers all but relu/tanh).
IDENTITY, LOGISTIC, TANH, RELU, SOFTMAX, EXP = 0, 1, 2, 3, 4, 5
ACTIVATION_CODES = {
    "identity": IDENTITY,
    "logistic": LOGISTIC,
    "tanh": TANH,
    "relu": RELU,
    "softmax": SOFTMAX,
    "exp": EXP,
}

# Loss codes, each paired with its canonical output activation.
SQUARED_ERROR, LOG_LOSS, BINARY_LOG_LOSS, POISSON = 0, 1, 2, 3
NO_LOSS = -1  # output_delta_and_loss: the residual and S only
LOSS_CODES = {
    "squared_error": SQUARED_ERROR,  # identity output
    "log_loss": LOG_LOSS,  # softmax output
    "binary_log_loss": BINARY_LOG_LOSS,  # logistic output
    "poisson": POISSON,  # exp output
}

SGD, ADAM = 0, 1


@njit(**JIT)
def layer_view(buf, off, n, m):
    """Rows ``[0, n)`` of an ``(·, m)`` block stored at ``buf[off:]``, as an (n, m) view."""
    return buf[off : off + n * m].reshape((n, m))


# ---------------------------------------------------------------------------------------
# Activations: forward (bias add fused in) and backward (derivative from the output).
# ---------------------------------------------------------------------------------------


@njit(**JIT)
def activation_forward(Z, b, code):
    """Eq. (1), second half: ``Z <- f(Z + b)`` in place (exp, tanh, logistic: ``_vmath``).

    Z : (N, H) pre-activation without bias, overwritten with the activation.
    b : (H,) bias.
    code : activation code (IDENTITY ... EXP).
    """
    activation_forward_cols(Z, 0, Z.shape[1], b, code)


@njit(**JIT)
def activation_forward_cols(Z, lo, hi, b, code):
    """``activation_forward`` on columns ``[lo, hi)`` of a C-ordered Z (b : (hi - lo,)):
    all of them for ``dense_forward``, a thread's own for the two-thread epoch
    (``_split.py``). Row by row, through views that start at column 0: loops
    from 0 vectorise, while Numba's indexing ``Z[i, j]`` for j from a runtime ``lo`` (or
    on a 2-D block view) keeps a negative-index check per element that stops it
    (logistic 5x slower)."""
    n = Z.shape[0]
    dt = Z.dtype.type
    zero = dt(0.0)
    m = hi - lo
    if code == IDENTITY:
        for i in range(n):
            z = Z[i, lo:hi]
            for j in range(m):
                z[j] += b[j]
    elif code == LOGISTIC:
        for i in range(n):
            z = Z[i, lo:hi]
            for j in range(m):
                z[j] = vm.logistic(z[j] + b[j])
    elif code == TANH:
        for i in range(n):
            z = Z[i, lo:hi]
            for j in range(m):
                z[j] = vm.tanh(z[j] + b[j])
    elif code == RELU:
        for i in range(n):
            z = Z[i, lo:hi]
            for j in range(m):
                v = z[j] + b[j]
                # `v < 0` keeps NaN as NaN (a diverging fit must not turn silent)
                z[j] = zero if v < zero else v
    elif code == EXP:
        for i in range(n):
            z = Z[i, lo:hi]
            for j in range(m):
                z[j] = vm.exp(z[j] + b[j])
    elif code == SOFTMAX:  # exp(z - max z) / Σ exp(z - max z), row by row
        for i in range(n):
            z = Z[i, lo:hi]
            for j in range(m):
                z[j] += b[j]
            zmax = z[0]
            for j in range(1, m):
                if z[j] > zmax:
                    zmax = z[j]
            for j in range(m):
                z[j] -= zmax
        if lo == 0 and hi == Z.shape[1]:
            flat = Z.reshape(-1)  # rows are short (K classes): exp as one long SIMD loop
            for k in range(flat.size):
                flat[k] = vm.exp(flat[k])
        else:
            for i in range(n):
                z = Z[i, lo:hi]
                for j in range(m):
                    z[j] = vm.exp(z[j])
        for i in range(n):
            z = Z[i, lo:hi]
            s = zero
            for j in range(m):
                s += z[j]
            for j in range(m):
                z[j] /= s


@njit(**JIT)
def activation_backward(D, A, code):
    """Eq. (3), second half: ``D <- D ⊙ f'(Z)``, with f' written in terms of A = f(Z).

    D : (N, H) gradient with respect to A on entry, with respect to Z on exit.
    A : (N, H) the layer's stored output.
    """
    activation_backward_cols(D, A, 0, D.shape[1], code)


@njit(**JIT)
def activation_backward_cols(D, A, lo, hi, code):
    """``activation_backward`` on columns ``[lo, hi)`` of D and A (C-ordered, row views
    as in ``activation_forward_cols``)."""
    n = D.shape[0]
    dt = D.dtype.type
    zero = dt(0.0)
    one = dt(1.0)
    m = hi - lo
    if code == LOGISTIC:  # f' = a (1 - a)
        for i in range(n):
            d = D[i, lo:hi]
            a = A[i, lo:hi]
            for j in range(m):
                d[j] = (d[j] * a[j]) * (one - a[j])
    elif code == TANH:  # f' = 1 - a²
        for i in range(n):
            d = D[i, lo:hi]
            a = A[i, lo:hi]
            for j in range(m):
                d[j] *= one - a[j] * a[j]
    elif code == RELU:  # f' = 1[a > 0]
        for i in range(n):
            d = D[i, lo:hi]
            a = A[i, lo:hi]
            for j in range(m):
                if a[j] == zero:
                    d[j] = zero
    # IDENTITY: f' = 1, nothing to do


# ---------------------------------------------------------------------------------------
# The input X, dense or CSR: the only ops that read it. Each public name is a plain
# Python function (what runs under NUMBA_DISABLE_JIT) that Numba replaces, inside kernels,
# by the dense or CSR implementation matching X's type (the @overload's below).
# ---------------------------------------------------------------------------------------


def _n_rows_dense(X):
    return X.shape[0]


def _n_rows_csr(X):
    return X[3].shape[0]


def _row_block_dense(X, r0, r1):
    return X[r0:r1]


def _row_block_csr(X, r0, r1):
    return (X[0], X[1], X[2], X[3][r0:r1])


def _batch_rows_dense(X, perm, start, stop, xbuf):
    nb = stop - start
    xb = xbuf[:nb]
    for r in range(nb):
        src = perm[start + r]
        for j in range(X.shape[1]):
            xb[r, j] = X[src, j]
    return xb


def _batch_rows_csr(X, perm, start, stop, xbuf):
    return (X[0], X[1], X[2], perm[start:stop])


def _dot_xw_dense(Z, X, W):
    np.dot(X, W, Z)


def _dot_xw_csr(Z, X, W):
    data, indices, indptr, rows = X
    m = Z.shape[1]
    Z[:] = 0
    for r in range(rows.shape[0]):
        row = rows[r]
        for k in range(indptr[row], indptr[row + 1]):
            v = data[k]
            c = indices[k]
            for j in range(m):
                Z[r, j] += v * W[c, j]


def _dot_xtd_dense(dW, X, D):
    np.dot(X.T, D, dW)


def _dot_xtd_csr(dW, X, D):
    data, indices, indptr, rows = X
    m = dW.shape[1]
    dW[:] = 0
    for r in range(rows.shape[0]):
        row = rows[r]
        for k in range(indptr[row], indptr[row + 1]):
            v = data[k]
            c = indices[k]
            for j in range(m):
                dW[c, j] += v * D[r, j]


def _dense(X):
    """In compiled code: is X's Numba type an array (else a CSR tuple)? In Python: ndarray?"""
    return isinstance(X, (types.Array, np.ndarray))


def n_rows(X):
    """Number of rows of X."""
    return (_n_rows_dense if _dense(X) else _n_rows_csr)(X)


def row_block(X, r0, r1):
    """Rows [r0, r1) of X, of the same kind as X."""
    return (_row_block_dense if _dense(X) else _row_block_csr)(X, r0, r1)


def batch_rows(X, perm, start, stop, xbuf):
    """The minibatch ``perm[start:stop]`` of X. Dense rows are gathered into ``xbuf``
    (contiguous, for BLAS); CSR rows are only selected: the products read them in place."""
    return (_batch_rows_dense if _dense(X) else _batch_rows_csr)(X, perm, start, stop, xbuf)


def dot_xw(Z, X, W):
    """``Z = X W``, the product of eq. (1) (X: a layer's input, dense or CSR). CSR: row r of Z sums ``v W[c, :]`` over
    the stored entries (c, v) of its row, in storage order (as scipy's product does)."""
    (_dot_xw_dense if _dense(X) else _dot_xw_csr)(Z, X, W)


def dot_xtd(dW, X, D):
    """``dW = Xᵀ D``, the product of eq. (4a) (X: a layer's input, dense or CSR). CSR: ``dW[c, :] +=
    v D[r, :]`` over rows r in order and their stored entries (c, v)."""
    (_dot_xtd_dense if _dense(X) else _dot_xtd_csr)(dW, X, D)


# In kernels, Numba resolves each of the five at typing time from X's type.
@overload(n_rows, jit_options=JIT)
def _ov_n_rows(X):
    return _n_rows_dense if _dense(X) else _n_rows_csr


@overload(row_block, jit_options=JIT)
def _ov_row_block(X, r0, r1):
    return _row_block_dense if _dense(X) else _row_block_csr


@overload(batch_rows, jit_options=JIT)
def _ov_batch_rows(X, perm, start, stop, xbuf):
    return _batch_rows_dense if _dense(X) else _batch_rows_csr


@overload(dot_xw, jit_options=JIT)
def _ov_dot_xw(Z, X, W):
    return _dot_xw_dense if _dense(X) else _dot_xw_csr


@overload(dot_xtd, jit_options=JIT)
def _ov_dot_xtd(dW, X, D):
    return _dot_xtd_dense if _dense(X) else _dot_xtd_csr


# ---------------------------------------------------------------------------------------
# Dense layer: forward/backward pair.
# ---------------------------------------------------------------------------------------


@njit(**JIT)
def dense_forward(A, A_prev, W, b, code):
    """Eq. (1): ``A = f(A_prev W + b)``.

    A : (N, H_out) output, A_prev : (N, H_in) (or X, dense or CSR), W : (H_in, H_out),
    b : (H_out,).
    """
    dot_xw(A, A_prev, W)  # A_prev W: np.dot, or the CSR loop for sparse X
    # (activation_forward's body, called directly: each level of njit calls costs
    # compile time in every kernel that inlines it)
    activation_forward_cols(A, 0, A.shape[1], b, code)


@njit(**JIT)
def dense_backward(dW, db, D, A_prev):
    """Eq. (4) before the penalty and the scale: the sums the gradients are made of.

    dW : (H_in, H_out)  <- A_prevᵀ D
    db : (H_out,)       <- Σ_rows D
    D : (N, H_out) the layer's residual δ;  A_prev : (N, H_in) or the input X (dense or
    CSR, first layer).
    ``finish_gradient`` (or the optimizer step, which does the same on the fly) turns
    them into ``(dW + alpha W) / S`` and ``db / S``. The residual passed down, D Wᵀ
    (first half of eq. 3), is one product: see ``backprop``.
    """
    dot_xtd(dW, A_prev, D)  # A_prevᵀ D: np.dot, or the CSR loop for sparse X
    column_sums_cols(db, D, 0, D.shape[1])


@njit(**JIT)
def column_sums(out, D):
    """``out[j] = Σ_i D[i, j]``, rows in order (as NumPy's ``D.sum(axis=0)`` for C order)."""
    column_sums_cols(out, D, 0, D.shape[1])


@njit(**JIT)
def column_sums_cols(out, D, lo, hi):
    """``column_sums`` of columns ``[lo, hi)`` of D into ``out`` (hi - lo,)."""
    dt = out.dtype.type
    m = hi - lo
    for j in range(m):
        out[j] = dt(0.0)
    for i in range(D.shape[0]):
        d = D[i, lo:hi]  # a view from column 0: see activation_forward_cols
        for j in range(m):
            out[j] += d[j]


@njit(**JIT)  # LLVM inlines it (Numba-level inline="always" measured 3% slower on clf-tiny)
def _weight_gradient(total, w, alpha, inv_s):
    """One weight's gradient from its raw sum: ``(sum + alpha w) * (1/S)``."""
    return (total + alpha * w) * inv_s


@njit(**JIT)
def finish_gradient(grads, params, n_coefs, alpha, scale):
    """Eq. (4), completed: ``g <- (g + alpha θ) / S`` for the weights (``[:n_coefs]``),
    ``g <- g / S`` for the biases, in scikit-learn's order of operations but for one
    thing: ``/ S`` is ``* (1/S)``, 1/S computed once in float64. The two differ by at
    most one unit in the last place (not at all for S a power of two), and a division
    per parameter was a third of the Adam step's time (float64: 1.25 against 0.92 ns a
    parameter)."""
    dt = grads.dtype.type
    a = dt(alpha)
    inv_s = dt(1.0 / scale)
    for i in range(n_coefs):
        grads[i] = _weight_gradient(grads[i], params[i], a, inv_s)
    for i in range(n_coefs, grads.size):
        grads[i] *= inv_s


# ---------------------------------------------------------------------------------------
# Loss head: the loss of a batch and its output residual, fused.
# ---------------------------------------------------------------------------------------


@njit(**JIT)
def output_delta_and_loss(D, A, Y, sw, loss_code):
    """Eq. (2): ``D = (A - Y) ⊙ sw`` and the batch's data loss, weighted by ``sw``.

    Every supported (output activation, loss) pair is canonical, so δ_L = A - Y for all.
    Squared error is reported as ½·mean over the K outputs but δ = A - Y is the gradient of
    ½·Σ over outputs (scikit-learn does the same; docs/backprop.md section 2). The log
    losses clip a for the loss only; δ is not clipped.
    Losses as in scikit-learn (``S = Σ sw``, probabilities clipped to [eps, 1 - eps]):

    squared_error    ½ Σ_ik sw_i (y - a)² / (S K)
    log_loss         -Σ_ik sw_i y log a / S                        (softmax output)
    binary_log_loss  -Σ_ik sw_i [y log a + (1-y) log(1-a)] / S      (logistic output)
    poisson          Σ_ik sw_i [y log(y/a) - y + a] / S             (exp output)

    D, A, Y : (N, K);  sw : (N,) sample weights (ones when the fit has none).
    Returns (data loss, S) in float64; the loss is 0 for ``loss_code`` NO_LOSS. Raises
    ZeroDivisionError, as scikit-learn, when the batch's weights sum to zero.
    """
    n, k = A.shape
    eps = np.finfo(A.dtype).eps
    total = 0.0
    S = 0.0
    for i in range(n):
        w = sw[i]
        S += w
        row = 0.0
        for j in range(k):
            a = A[i, j]
            y = Y[i, j]
            D[i, j] = (a - y) * w
            if loss_code == SQUARED_ERROR:
                row += (y - a) * (y - a)
            elif loss_code == LOG_LOSS:
                if y != 0:
                    row -= y * math.log(min(max(a, eps), 1 - eps))
            elif loss_code == BINARY_LOG_LOSS:
                p = min(max(a, eps), 1 - eps)
                if y != 0:
                    row -= y * math.log(p)
                if y != 1:
                    row -= (1 - y) * math.log(1 - p)
            elif loss_code == POISSON:
                if y != 0:
                    row += y * math.log(y / a)
                elif a == 0:  # scikit-learn's xlogy(0, 0 / 0): nan (exp underflowed)
                    row += math.nan
                row += a - y
            # NO_LOSS: the residual only
        total += w * row
    if S == 0.0:  # as scikit-learn's np.average, before the batch updates anything
        raise ZeroDivisionError("Weights sum to zero, can't be normalized")
    if loss_code == SQUARED_ERROR:
        return 0.5 * total / (S * k), S
    return total / S, S


@njit(**JIT)
def squared_norm(x):
    """Σ x² (the L2 penalty's ‖W‖², over ``flat[:n_coefs]``): one BLAS dot, as
    scikit-learn's ``np.dot(s, s)`` (a scalar loop cannot vectorise this sum without
    reassociation, and would cost a pass over every weight per minibatch)."""
    return float(np.dot(x, x))


# ---------------------------------------------------------------------------------------
# One batch: forward, loss, backward. Fills the gradient buffer.
# ---------------------------------------------------------------------------------------


@njit(**JIT)
def forward(acts, params, X, units, w_off, b_off, a_off, hidden, out_act):
    """Eq. (1) for every layer; layer l's output is ``layer_view(acts, a_off[l-1], N, H_l)``."""
    n = n_rows(X)
    L = units.size - 1
    A_prev = layer_view(acts, a_off[0], n, units[1])
    dense_forward(A_prev, X, layer_view(params, w_off[0], units[0], units[1]),
                  params[b_off[0] : b_off[0] + units[1]], hidden if L > 1 else out_act)
    for l in range(1, L):
        W = layer_view(params, w_off[l], units[l], units[l + 1])
        b = params[b_off[l] : b_off[l] + units[l + 1]]
        A = layer_view(acts, a_off[l], n, units[l + 1])
        dense_forward(A, A_prev, W, b, hidden if l < L - 1 else out_act)
        A_prev = A


@njit(**JIT)
def backprop(grads, acts, deltas, params, X, Y, sw, units, w_off, b_off, a_off,
             n_coefs, hidden, out_act, loss_code, alpha):
    """Forward (1), output residual and loss (2), backward (3) and the sums of (4).

    grads : (P,) output, same layout as params: ``A_{l-1}ᵀ δ_l`` and ``Σ_rows δ_l``, not
    yet penalised nor scaled (``finish_gradient`` or the optimizer step does that).
    acts, deltas : workspace vectors laid out by ``a_off`` (at least N rows a layer).
    X : (N, F) dense or CSR rows, Y : (N, K), sw : (N,).
    Returns (batch loss, S): the loss as scikit-learn's ``_backprop`` (data loss
    + ½ α ‖W‖² / S) and S, the batch's rows or the sum of their sample weights.
    """
    n = n_rows(X)
    L = units.size - 1
    forward(acts, params, X, units, w_off, b_off, a_off, hidden, out_act)
    A_L = layer_view(acts, a_off[L - 1], n, units[L])
    D = layer_view(deltas, a_off[L - 1], n, units[L])
    loss, S = output_delta_and_loss(D, A_L, Y, sw, loss_code)
    loss += (0.5 * alpha) * squared_norm(params[:n_coefs]) / S
    for l in range(L - 1, -1, -1):
        W = layer_view(params, w_off[l], units[l], units[l + 1])
        dW = layer_view(grads, w_off[l], units[l], units[l + 1])
        db = grads[b_off[l] : b_off[l] + units[l + 1]]
        D = layer_view(deltas, a_off[l], n, units[l + 1])
        if l > 0:
            A_prev = layer_view(acts, a_off[l - 1], n, units[l])
            dense_backward(dW, db, D, A_prev)
            D_prev = layer_view(deltas, a_off[l - 1], n, units[l])
            np.dot(D, W.T, D_prev)  # eq. (3): δ_{l-1} = (δ_l W_lᵀ) ⊙ f'(A_{l-1})
            activation_backward_cols(D_prev, A_prev, 0, D_prev.shape[1], hidden)
        else:
            dense_backward(dW, db, D, X)
    return loss, S


@njit(**JIT)
def loss_grad(grads, acts, deltas, params, X, Y, sw, units, w_off, b_off, a_off,
              n_coefs, hidden, out_act, loss_code, alpha):
    """Loss of one batch and its gradient with respect to every parameter (eq. 1-4), for
    L-BFGS and the tests; arguments as ``backprop``. Returns the batch loss."""
    loss, S = backprop(grads, acts, deltas, params, X, Y, sw, units, w_off, b_off, a_off,
                       n_coefs, hidden, out_act, loss_code, alpha)
    finish_gradient(grads, params, n_coefs, alpha, S)
    return loss


# ---------------------------------------------------------------------------------------
# Optimizers: one loop over the flat buffer each (scikit-learn's _stochastic_optimizers).
# ---------------------------------------------------------------------------------------


# Each takes the raw sums left by ``backprop`` and finishes the gradient element by
# element inside its loop, ``g = (sum + alpha θ) / S`` (weights) or ``sum / S`` (biases),
# exactly as ``finish_gradient`` would: one pass over the buffer instead of two.


@njit(**JIT)
def _sgd_element(params, velocity, i, g, mu, eta, nesterov):
    v = mu * velocity[i] - eta * g
    velocity[i] = v
    if nesterov:
        params[i] += mu * v - eta * g
    else:
        params[i] += v


@njit(**JIT)
def sgd_update(params, velocity, grads, lo, mid, hi, alpha, scale, lr, momentum, nesterov):
    """Eq. (5a) on ``params[lo:hi]``: ``v <- μ v - η g``; ``θ <- θ + (μ v - η g)``
    (Nesterov) or ``θ + v``, with g finished from the raw sums in ``grads`` as in
    ``finish_gradient``: ``[lo, mid)`` are weights (+ αθ), ``[mid, hi)`` biases. Ranges,
    so that the two-thread epoch (``_split.py``) updates what each thread owns with this
    arithmetic. (Bounds, not a flag: Numba compiles a function once per literal
    argument, and each compile of the fused epoch costs about a quarter second.)
    """
    dt = params.dtype.type
    a = dt(alpha)
    inv_s = dt(1.0 / scale)
    mu = dt(momentum)
    eta = dt(lr)
    # views, indexed from 0: a loop from a runtime lo would keep Numba's negative-index
    # check per element and not vectorise (3x slower)
    p, v, g = params[lo:mid], velocity[lo:mid], grads[lo:mid]
    for i in range(p.size):
        _sgd_element(p, v, i, _weight_gradient(g[i], p[i], a, inv_s), mu, eta, nesterov)
    p, v, g = params[mid:hi], velocity[mid:hi], grads[mid:hi]
    for i in range(p.size):
        _sgd_element(p, v, i, g[i] * inv_s, mu, eta, nesterov)


@njit(**JIT)
def adam_step_size(lr, beta1, beta2, t):
    """Eq. (5b): ``η_t = η sqrt(1 - β2^t) / (1 - β1^t)`` in float64, for step t >= 1."""
    return lr * np.sqrt(1.0 - beta2 ** float(t)) / (1.0 - beta1 ** float(t))


@njit(**JIT)
def _adam_element(params, m, v, i, g, b1, c1, b2, c2, step, eps):
    mi = b1 * m[i] + c1 * g
    vi = b2 * v[i] + c2 * (g * g)
    m[i] = mi
    v[i] = vi
    params[i] += step * mi / (np.sqrt(vi) + eps)


@njit(**JIT)
def adam_update(params, m, v, grads, lo, mid, hi, alpha, scale, lr_t, beta1, beta2, epsilon):
    """Eq. (5b) on ``params[lo:hi]``: ``m <- β1 m + (1-β1) g``; ``v <- β2 v + (1-β2) g²``;
    ``θ <- θ - η_t m / (sqrt(v) + ε)`` (Kingma & Ba 2014, as scikit-learn's
    AdamOptimizer), g finished as in ``sgd_update`` (weights ``[lo, mid)``)."""
    dt = params.dtype.type
    a = dt(alpha)
    inv_s = dt(1.0 / scale)
    b1 = dt(beta1)
    c1 = dt(1.0 - beta1)
    b2 = dt(beta2)
    c2 = dt(1.0 - beta2)
    step = dt(-lr_t)
    eps = dt(epsilon)
    p, mm, vv, g = params[lo:mid], m[lo:mid], v[lo:mid], grads[lo:mid]  # (see sgd_update)
    for i in range(p.size):
        _adam_element(p, mm, vv, i, _weight_gradient(g[i], p[i], a, inv_s),
                      b1, c1, b2, c2, step, eps)
    p, mm, vv, g = params[mid:hi], m[mid:hi], v[mid:hi], grads[mid:hi]
    for i in range(p.size):
        _adam_element(p, mm, vv, i, g[i] * inv_s, b1, c1, b2, c2, step, eps)


@njit(**JIT)
def update_range(params, state1, state2, grads, lo, mid, hi, solver, alpha, scale, lr,
                 momentum, nesterov, beta1, beta2, epsilon):
    """``sgd_update`` (state1 = velocity, lr = η) or ``adam_update`` (state1, state2 = m, v;
    lr = the step's η_t): weights ``[lo, mid)``, biases ``[mid, hi)``."""
    if solver == SGD:
        sgd_update(params, state1, grads, lo, mid, hi, alpha, scale, lr, momentum, nesterov)
    else:
        adam_update(params, state1, state2, grads, lo, mid, hi, alpha, scale, lr, beta1,
                   beta2, epsilon)


@njit(**JIT)
def step_size(solver, lr, beta1, beta2, t):
    """The step's rate and the Adam step count after it: SGD (lr, t), Adam
    (η_{t+1}, t + 1) (``adam_step_size``)."""
    if solver == SGD:
        return lr, t
    return adam_step_size(lr, beta1, beta2, t + 1), t + 1


@njit(**JIT)
def optimizer_step(params, state1, state2, grads, n_coefs, alpha, scale, solver, lr,
                   momentum, nesterov, beta1, beta2, epsilon, t):
    """Eq. (5) for one minibatch from the raw sums in ``grads``: SGD (state1 = velocity)
    or Adam (state1, state2 = m, v; step t + 1). Returns the Adam step count after it."""
    step, t = step_size(solver, lr, beta1, beta2, t)
    update_range(params, state1, state2, grads, 0, n_coefs, params.size, solver, alpha,
                 scale, step, momentum, nesterov, beta1, beta2, epsilon)
    return t


# ---------------------------------------------------------------------------------------
# The fused epoch: every minibatch of rows [first, last) of the epoch's permutation.
# ---------------------------------------------------------------------------------------


@njit(**JIT)
def gather_targets(Y, sw, perm, start, stop, ybuf, swbuf):
    """Rows ``perm[start:stop]`` of Y and sw: returns (yb, wb), views of the buffers."""
    nb = stop - start
    yb = ybuf[:nb]
    wb = swbuf[:nb]
    for r in range(nb):
        src = perm[start + r]
        for j in range(Y.shape[1]):
            yb[r, j] = Y[src, j]
        wb[r] = sw[src]
    return yb, wb


@njit(**JIT)
def gather_batch(X, Y, sw, perm, start, stop, xbuf, ybuf, swbuf):
    """Rows ``perm[start:stop]`` of X, Y and sw: returns (xb, yb, wb), views of the
    buffers (for CSR X, xb is the matrix with those rows, not a copy)."""
    yb, wb = gather_targets(Y, sw, perm, start, stop, ybuf, swbuf)
    return batch_rows(X, perm, start, stop, xbuf), yb, wb


@njit(**JIT)
def train_epoch(params, grads, state1, state2, acts, deltas, xbuf, ybuf, swbuf,
                X, Y, sw, perm, units, w_off, b_off, a_off, n_coefs,
                first, last, batch_size, hidden, out_act, loss_code, solver,
                alpha, lr, momentum, nesterov, beta1, beta2, epsilon, t):
    """Train on minibatches ``perm[first:last]`` in order, updating params in place.

    Per batch: gather rows -> forward (1) -> δ and loss (2) -> backward (3, 4) ->
    update (5), which finishes the gradient (penalty, scale) in its own pass.
    No allocation: all buffers are preallocated by the caller.

    params, grads : (P,).  state1, state2 : (P,) SGD velocity (state2 unused) or Adam m, v.
    acts, deltas : workspace laid out by ``a_off`` for ``batch_size`` rows.
    xbuf : (B, F) gather buffer for dense X (unused, may be empty, for CSR X);
    ybuf : (B, K), swbuf : (B,) gather buffers.
    X : (n, F) dense or CSR, Y : (n, K), sw : (n,), perm : (n,) int64 row order of this epoch.
    first, last : row range; ``first`` is a multiple of ``batch_size`` from the epoch start.
    t : Adam steps taken before this call.
    Returns (Σ batch_loss · rows, t after this call).
    """
    loss_sum = 0.0
    start = first
    while start < last:
        stop = min(start + batch_size, last)
        xb, yb, wb = gather_batch(X, Y, sw, perm, start, stop, xbuf, ybuf, swbuf)
        batch_loss, S = backprop(grads, acts, deltas, params, xb, yb, wb, units, w_off,
                                 b_off, a_off, n_coefs, hidden, out_act, loss_code, alpha)
        loss_sum += batch_loss * (stop - start)
        t = optimizer_step(params, state1, state2, grads, n_coefs, alpha, S, solver, lr,
                           momentum, nesterov, beta1, beta2, epsilon, t)
        start = stop
    return loss_sum, t


# ---------------------------------------------------------------------------------------
# Prediction: a lean forward pass over row blocks with two ping-pong buffers.
# ---------------------------------------------------------------------------------------


@njit(**JIT)
def predict_forward(out, X, params, units, w_off, b_off, hidden, out_act, buf_a, buf_b):
    """Eq. (1) for all rows of X, block by block: ``out = f_L(... f_1(X W_1 + b_1) ...)``.

    out : (n, K) output.  X : (n, F) dense or CSR.
    buf_a, buf_b : (R * H_max,) scratch; R = block rows = ``buf_a.size // H_max``.
    """
    n = n_rows(X)
    L = units.size - 1
    h_max = 1
    for l in range(1, L):
        h_max = max(h_max, units[l])
    block = buf_a.size // h_max
    W1 = layer_view(params, w_off[0], units[0], units[1])
    b1 = params[b_off[0] : b_off[0] + units[1]]
    for r0 in range(0, n, block):
        r1 = min(r0 + block, n)
        X_block = row_block(X, r0, r1)
        if L == 1:
            dense_forward(out[r0:r1], X_block, W1, b1, out_act)
            continue
        A_prev = layer_view(buf_a, 0, r1 - r0, units[1])
        dense_forward(A_prev, X_block, W1, b1, hidden)
        for l in range(1, L):
            W = layer_view(params, w_off[l], units[l], units[l + 1])
            b = params[b_off[l] : b_off[l] + units[l + 1]]
            if l == L - 1:
                dense_forward(out[r0:r1], A_prev, W, b, out_act)
            else:
                A = layer_view(buf_a if l % 2 == 0 else buf_b, 0, r1 - r0, units[l + 1])
                dense_forward(A, A_prev, W, b, hidden)
                A_prev = A
