"""Numba kernels: the layers' forward and backward operations, and the entry
points built from them: ``train_epoch`` (minibatches: forward, backward, update),
``loss_grad`` (L-BFGS's loss and gradient) and ``predict_forward`` (with
``predict_checked``, its variant that also checks a dense X for NaN and infinity).

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
T   threads running the epoch (1 or 2)  ``Team``

Math (equation numbers are those of docs/backprop.md)
-----------------------------------------------------
(1)  Z_l = A_{l-1} W_l + b_l,   A_l = f_l(Z_l),   A_0 = X          dense_forward
(2)  δ_L = diag(s) (A_L - Y)   (s = sample weights, or 1)         _losses.output_delta_and_loss
(3)  δ_{l-1} = (δ_l W_lᵀ) ⊙ f'(Z_{l-1})                            backward_hidden
(4)  ∂J/∂W_l = (A_{l-1}ᵀ δ_l + α W_l) / S,   ∂J/∂b_l = Σ_rows δ_l / S
         the sums: backward_output, backward_hidden, backward_first; + α W, / S:
         finish_gradient (loss_grad), or inside the update's loop (train_epoch)
(5)  SGD / Nesterov / Adam step on the flat buffer                 _optim.update_range

S is the number of rows (or the sum of their sample weights); the stored δ is S·∂J/∂Z,
divided by S once, in (4). f'(Z) is computed from the stored outputs A = f(Z), so Z is
never kept (``_activations``), except where A cannot give it (gelu, silu, softplus) or
dropout scales A: those layers keep f'(Z) (times the dropout's factor, ``_dropout``)
from their forward pass, in ``Workspace.fprime`` (``hidden_forward``, ``hidden_backward``).

One copy of the math, on one thread or two
------------------------------------------
Every layer operation is written once, for thread ``tid``'s share of the layer
(``Team``): the columns ``[lo, hi)`` of a hidden layer's units it owns (``own``), its
block of that layer's weights, and the rows of the output layer's weights that multiply
its units of the last hidden layer. On one thread the share is the whole layer and the
barriers (``sync``) return at once; on two (``_threads``), each thread runs the same
kernel with its own ``tid`` and they meet at the barriers. Per minibatch::

    gather     my half of X's rows (all on one thread), all of Y's and sw's  | sync
    forward    A_l[:, own] = f(A_{l-1} W_l[:, own] + b_l[own])   each hidden layer | sync
    head       A_L = f_L(A_{L-1} W_L + b_L), δ_L and the loss: whole, on every thread
    backward   ∂W_L[own, :] = A_{L-1}[:, own]ᵀ δ_L;  δ_{L-1}[:, own] = δ_L W_L[own]ᵀ ⊙ f'
               each hidden layer l > 1: ∂W_l[:, own], ∂b_l[own] | sync |
                   δ_{l-1}[:, own'] = Σ_blocks δ_l[:, blk] W_l[own', blk]ᵀ ⊙ f'
               | sync | the first layer: ∂W_1[:, own] = Xᵀ δ_1[:, own], ∂b_1[own]
    update     the parameters I own (eq. 5)

Products are split by their outputs, so each is one BLAS call on a view (``_blas.gemm``);
the only sums across threads, δ_{l-1} over W_l's two blocks and ‖W‖², are added in a
fixed order: a run is bitwise reproducible.

Input X is a dense (n, F) array or a CSR matrix passed as the tuple
``(data, indices, indptr, rows)``: rows ``rows`` of the matrix, in that order (a slice of
the epoch's permutation for a minibatch, or ``arange(n)``). Only the first layer reads X,
through ``gather_rows`` and the products ``dot_xw`` (X W) and ``dot_xtd`` (Xᵀ D), which
every layer uses; each has a dense and a CSR implementation, picked by Numba at compile
time from X's type. A fit with sparse X runs on one thread (``_threads.plan``).

Arithmetic mirrors scikit-learn 1.9's operation order (e.g. ``(g + αW) / S``, not
``g/S + αW/S``) so that float64 results agree with it to rounding; ``/ S`` itself is a
multiplication by 1/S (``finish_gradient`` says why). Scalars arrive as float64 and are
cast to the arrays' dtype so float32 kernels compute in float32.

Recipes: a new activation, ``_activations``; a new loss, ``_losses``; a new optimizer,
``_optim``. Each is one registry entry, its NumPy reference in ``tests/reference.py`` and
a row in the parametrised tests; the kernels here dispatch on their codes (``Net``).
"""

import numpy as np
from numba import njit, types
from numba.extending import intrinsic, overload

from ._activations import (
    activation_backward_cols,
    activation_forward_cols,
    activation_forward_keep,
    multiply_cols,
)
from ._blas import gemm, retyped
from ._config import JIT
from ._dropout import dropout_cols, layer_key
from ._losses import output_delta_and_loss
from ._optim import step_size, update_range
from ._sync import PENALTY, barrier


# The per-minibatch steps are inlined by Numba into the kernels that call them
# (train_epoch, loss_grad): compiled as functions of their own, each level of calls made
# LLVM optimise the code below it once more (cold compile about 10 % longer). The small
# helpers called from many places (own, sync, ...) are not: inlining each call site cost
# more than it saved. ``dense_forward`` is inlined too: a function of its own, each of
# its signatures (training's, prediction's read-only parameters) was one more library in
# which LLVM optimised and compiled the product and the activations it calls once more
# (bench/compile_time.py measures it).
STEP = dict(inline="always", **JIT)


@njit(**JIT)
def _zero():
    """0 as a run-time int64: a literal 0 passed as a column bound would make Numba
    compile the callee once more, for that constant."""
    return np.int64(0)


@intrinsic
def as_writable(typingctx, arr):
    """The read-only 1-D array ``arr`` retyped as writable (``_blas.retyped``), for
    prediction's parameters (``forward_block``), which it only reads. The layer
    operations then see training's types and compile once per dtype for both, where
    prediction's read-only weights and biases made a second version of each (the
    activations alone about 3 s of cold compile a dtype)."""
    if not (isinstance(arr, types.Array) and arr.ndim == 1):
        return None
    return retyped(arr, arr.copy(readonly=False))


@njit(**JIT)
def layer_view(buf, off, n, m):
    """Rows ``[0, n)`` of an ``(·, m)`` block stored at ``buf[off:]``, as an (n, m) view."""
    return buf[off : off + n * m].reshape((n, m))


# ---------------------------------------------------------------------------------------
# The team: one thread or two, told apart at compile time. Each of these is a plain
# Python function (what runs under NUMBA_DISABLE_JIT) that Numba replaces, inside
# kernels, by the implementation for the Team's type (the @overload's below): the
# one-thread Team (``_layout.one_thread``) has an empty 2-D ``sync``, another type, so
# that a one-thread fit compiles neither the barriers nor the shares' arithmetic. The
# two-thread implementations are those that served both before (they still work for a
# 1-D ``sync`` Team of one thread).
# ---------------------------------------------------------------------------------------


def _solo(team):
    """In compiled code: is the Team type the one-thread one (``sync`` 2-D)? In Python:
    the same, on the value."""
    if isinstance(team, types.BaseTuple):
        return dict(zip(team.fields, team.types))["sync"].ndim == 2
    return team.sync.ndim == 2


def _own_solo(net, team, j, tid):
    return np.int64(0), net.units[j]


def _own_split(net, team, j, tid):
    cut = team.cuts[j]
    return (0, cut) if tid == 0 else (cut, net.units[j])


def _sync_solo(team, tid, phase):
    return phase + 1


def _sync_split(team, tid, phase):
    phase += 1
    if team.threads == 1:
        return phase
    return phase if barrier(team.sync, tid, phase) else -1


def _row_share_solo(team, tid, nb):
    return np.int64(0), nb


def _row_share_split(team, tid, nb):
    return (0, nb) if team.threads == 1 else ((0, nb // 2) if tid == 0 else (nb // 2, nb))


def own(net, team, j, tid):
    """Thread ``tid``'s units ``[lo, hi)`` of layer j (of ``units[j]``): all of them on
    one thread."""
    return (_own_solo if _solo(team) else _own_split)(net, team, j, tid)


def sync(team, tid, phase):
    """The next barrier (``_sync.barrier``): returns its phase, or -1 if the other thread
    failed (the caller then returns at once). On one thread there is nothing to wait for."""
    return (_sync_solo if _solo(team) else _sync_split)(team, tid, phase)


def row_share(team, tid, nb):
    """Thread ``tid``'s rows ``[r0, r1)`` of a minibatch of ``nb`` rows, for the gather
    of X: its half on two threads, all of them on one."""
    return (_row_share_solo if _solo(team) else _row_share_split)(team, tid, nb)


@overload(own, jit_options=JIT)
def _ov_own(net, team, j, tid):
    return _own_solo if _solo(team) else _own_split


@overload(sync, jit_options=JIT)
def _ov_sync(team, tid, phase):
    return _sync_solo if _solo(team) else _sync_split


@overload(row_share, jit_options=JIT)
def _ov_row_share(team, tid, nb):
    return _row_share_solo if _solo(team) else _row_share_split


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


def _gather_rows_dense(X, perm, start, stop, xbuf, r0, r1):
    xb = xbuf[: stop - start]
    for r in range(r0, r1):
        src = perm[start + r]
        for j in range(X.shape[1]):
            xb[r, j] = X[src, j]
    return xb


def _gather_rows_csr(X, perm, start, stop, xbuf, r0, r1):
    return (X[0], X[1], X[2], perm[start:stop])


def _dot_xw_dense(A, lo, hi, X, W):
    gemm(A[:, lo:hi], X, W, False, False, 0.0)


def _dot_xw_csr(A, lo, hi, X, W):
    data, indices, indptr, rows = X
    m = hi - lo
    for r in range(rows.shape[0]):
        z = A[r, lo:hi]  # a view from column 0 (see _activations.activation_forward_cols)
        for j in range(m):
            z[j] = 0
        row = rows[r]
        for k in range(indptr[row], indptr[row + 1]):
            v = data[k]
            w = W[indices[k]]
            for j in range(m):
                z[j] += v * w[j]


def _dot_xtd_dense(dW, X, D, lo, hi):
    gemm(dW, X, D[:, lo:hi], True, False, 0.0)


def _dot_xtd_csr(dW, X, D, lo, hi):
    data, indices, indptr, rows = X
    m = hi - lo
    dW[:] = 0
    for r in range(rows.shape[0]):
        row = rows[r]
        d = D[r, lo:hi]
        for k in range(indptr[row], indptr[row + 1]):
            v = data[k]
            g = dW[indices[k]]
            for j in range(m):
                g[j] += v * d[j]


def _dense(X):
    """In compiled code: is X's Numba type an array (else a CSR tuple)? In Python: ndarray?"""
    return isinstance(X, (types.Array, np.ndarray))


def n_rows(X):
    """Number of rows of X."""
    return (_n_rows_dense if _dense(X) else _n_rows_csr)(X)


def row_block(X, r0, r1):
    """Rows [r0, r1) of X, of the same kind as X."""
    return (_row_block_dense if _dense(X) else _row_block_csr)(X, r0, r1)


def gather_rows(X, perm, start, stop, xbuf, r0, r1):
    """The minibatch ``perm[start:stop]`` of X. Dense: its rows ``[r0, r1)`` are copied
    into ``xbuf`` (contiguous, for BLAS; a thread gathers its share) and the minibatch's
    block of ``xbuf`` returned; CSR: the rows are only selected, the products read them
    in place."""
    return (_gather_rows_dense if _dense(X) else _gather_rows_csr)(X, perm, start, stop,
                                                                    xbuf, r0, r1)


def dot_xw(A, lo, hi, X, W):
    """``A[:, lo:hi] = X W``, the product of eq. (1) (X: a layer's input, dense or CSR;
    W: (F, hi - lo)). CSR: row r sums ``v W[c, :]`` over the stored entries (c, v) of its
    row, in storage order (as scipy's product does)."""
    (_dot_xw_dense if _dense(X) else _dot_xw_csr)(A, lo, hi, X, W)


def dot_xtd(dW, X, D, lo, hi):
    """``dW = Xᵀ D[:, lo:hi]``, the product of eq. (4a) (X: a layer's input, dense or CSR).
    CSR: ``dW[c, :] += v D[r, lo:hi]`` over rows r in order and their stored entries."""
    (_dot_xtd_dense if _dense(X) else _dot_xtd_csr)(dW, X, D, lo, hi)


# In kernels, Numba resolves each of the five at typing time from X's type.
@overload(n_rows, jit_options=JIT)
def _ov_n_rows(X):
    return _n_rows_dense if _dense(X) else _n_rows_csr


@overload(row_block, jit_options=JIT)
def _ov_row_block(X, r0, r1):
    return _row_block_dense if _dense(X) else _row_block_csr


@overload(gather_rows, jit_options=JIT)
def _ov_gather_rows(X, perm, start, stop, xbuf, r0, r1):
    return _gather_rows_dense if _dense(X) else _gather_rows_csr


@overload(dot_xw, jit_options=JIT)
def _ov_dot_xw(A, lo, hi, X, W):
    return _dot_xw_dense if _dense(X) else _dot_xw_csr


@overload(dot_xtd, jit_options=JIT)
def _ov_dot_xtd(dW, X, D, lo, hi):
    return _dot_xtd_dense if _dense(X) else _dot_xtd_csr


# ---------------------------------------------------------------------------------------
# Layer operations, on a thread's share.
# ---------------------------------------------------------------------------------------


@njit(**STEP)
def dense_forward(A, lo, hi, A_prev, W, b, code):
    """Eq. (1) on columns ``[lo, hi)``: ``A[:, lo:hi] = f(A_prev W + b)``.

    A : (N, H_out) C-ordered output, A_prev : (N, H_in) (or X, dense or CSR),
    W : (H_in, hi - lo) the weights of those columns, b : (hi - lo,), code : f's.
    """
    dot_xw(A, lo, hi, A_prev, W)
    activation_forward_cols(A, lo, hi, b, code)


@njit(**JIT)
def column_sums(out, D, lo, hi):
    """``out[j] = Σ_i D[i, lo + j]``, rows in order (as NumPy's ``D.sum(axis=0)``): the
    bias gradient's sum of eq. (4) for columns ``[lo, hi)``."""
    m = hi - lo
    for j in range(m):
        out[j] = 0
    for i in range(D.shape[0]):
        d = D[i, lo:hi]  # a view from column 0: see activation_forward_cols
        for j in range(m):
            out[j] += d[j]


@njit(**JIT)
def sumsq(x):
    """Σ x² over a contiguous vector, in float64, in a fixed order (eight running sums,
    element i into sum i mod 8, then a fixed tree): it vectorises without reordering, so
    it is the same on one thread and two."""
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    n8 = x.size - x.size % 8
    for i in range(0, n8, 8):
        s0 += np.float64(x[i]) ** 2
        s1 += np.float64(x[i + 1]) ** 2
        s2 += np.float64(x[i + 2]) ** 2
        s3 += np.float64(x[i + 3]) ** 2
        s4 += np.float64(x[i + 4]) ** 2
        s5 += np.float64(x[i + 5]) ** 2
        s6 += np.float64(x[i + 6]) ** 2
        s7 += np.float64(x[i + 7]) ** 2
    for i in range(n8, x.size):
        s0 += np.float64(x[i]) ** 2
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


def _owned_weights_solo(net, team, l, tid):
    w0 = net.w_off[l]
    return w0, w0 + net.units[l] * net.units[l + 1]


def _owned_weights_split(net, team, l, tid):
    L = net.units.size - 1
    if l < L - 1:
        lo, hi = own(net, team, l + 1, tid)
        w0 = team.ws_off[l, tid]
        return w0, w0 + net.units[l] * (hi - lo)
    lo, hi = own(net, team, L - 1, tid)
    K = net.units[L]
    return net.w_off[L - 1] + lo * K, net.w_off[L - 1] + hi * K


def _owned_biases_solo(net, team, l, tid):
    b0 = net.b_off[l]
    return b0, b0 + net.units[l + 1]


def _owned_biases_split(net, team, l, tid):
    L = net.units.size - 1
    b0 = net.b_off[l]
    if l < L - 1:
        lo, hi = own(net, team, l + 1, tid)
        return b0 + lo, b0 + hi
    return b0, b0 + (net.units[L] if tid == 0 else 0)


def _penalty_solo(net, team, params, tid):
    w = params[: net.n_coefs]
    return float(np.dot(w, w))


def _penalty_split(net, team, params, tid):
    if team.threads == 1:
        w = params[: net.n_coefs]
        return float(np.dot(w, w))
    total = 0.0
    for l in range(net.units.size - 1):
        w0, w1 = owned_weights(net, team, l, tid)
        total += sumsq(params[w0:w1])
    return total


def owned_weights(net, team, l, tid):
    """Thread ``tid``'s weights of layer l + 1 as a range ``[w0, w1)`` of the flat buffer:
    its block of a hidden layer (in the team's layout), its rows of the output layer;
    the whole layer's on one thread."""
    return (_owned_weights_solo if _solo(team) else _owned_weights_split)(net, team, l, tid)


def owned_biases(net, team, l, tid):
    """Thread ``tid``'s biases of layer l + 1, ``[b0, b1)``: its units' of a hidden
    layer; the output layer's on thread 0; the whole layer's on one thread."""
    return (_owned_biases_solo if _solo(team) else _owned_biases_split)(net, team, l, tid)


def penalty_share(net, team, params, tid):
    """Thread ``tid``'s part of ‖W‖² (the weights it owns), in float64. On one thread, one
    BLAS dot over every weight, as scikit-learn's ``np.dot(s, s)`` (``sumsq``, which the
    two threads need for a fixed order, cost a small net's epoch up to 15 % more)."""
    return (_penalty_solo if _solo(team) else _penalty_split)(net, team, params, tid)


@overload(owned_weights, jit_options=JIT)
def _ov_owned_weights(net, team, l, tid):
    return _owned_weights_solo if _solo(team) else _owned_weights_split


@overload(owned_biases, jit_options=JIT)
def _ov_owned_biases(net, team, l, tid):
    return _owned_biases_solo if _solo(team) else _owned_biases_split


@overload(penalty_share, jit_options=JIT, inline="always")
def _ov_penalty_share(net, team, params, tid):
    return _penalty_solo if _solo(team) else _penalty_split


@njit(**JIT)
def weight_block(net, team, params, l, b):
    """Thread b's block of hidden layer l + 1's weights, (units[l], its units)."""
    lo, hi = own(net, team, l + 1, b)
    return layer_view(params, team.ws_off[l, b], net.units[l], hi - lo)


# ---------------------------------------------------------------------------------------
# One minibatch: forward, head, backward, on thread tid's share.
# ---------------------------------------------------------------------------------------


def _forward_plain(A, lo, hi, A_in, W, b, net, ws, hyper, l, t):
    dense_forward(A, lo, hi, A_in, W, b, net.hidden)


def _forward_keep(A, lo, hi, A_in, W, b, net, ws, hyper, l, t):
    G = layer_view(ws.fprime, ws.a_off[l], A.shape[0], A.shape[1])
    dot_xw(A, lo, hi, A_in, W)
    activation_forward_keep(A, G, lo, hi, b, net.hidden)
    if hyper.dropout.size > 0 and hyper.dropout[l] > 0:
        dropout_cols(A, G, lo, hi, layer_key(hyper.seed, t, l), hyper.dropout[l])


def _backward_plain(D, A, ws, l, lo, hi, net):
    activation_backward_cols(D, A, lo, hi, net.hidden)


def _backward_keep(D, A, ws, l, lo, hi, net):
    multiply_cols(D, layer_view(ws.fprime, ws.a_off[l], D.shape[0], D.shape[1]), lo, hi)


def _keeps(ws):
    """In compiled code: does the Workspace type keep f' (``fprime`` 1-D; a network that
    does not keep it has a 2-D empty one)? Decided at compile time, so a fit without
    kept derivatives compiles none of their code. In Python: the same, on the value."""
    if isinstance(ws, types.BaseTuple):
        return dict(zip(ws.fields, ws.types))["fprime"].ndim == 1
    return ws.fprime.ndim == 1


def hidden_forward(A, lo, hi, A_in, W, b, net, ws, hyper, l, t):
    """Eq. (1) for columns ``[lo, hi)`` of hidden layer l + 1 in training: as
    ``dense_forward``; where the layers keep f' (``ws.fprime``), f'(Z) kept too, then the
    layer's dropout (``_dropout``) applied to both."""
    (_forward_keep if _keeps(ws) else _forward_plain)(A, lo, hi, A_in, W, b, net, ws,
                                                       hyper, l, t)


def hidden_backward(D, A, ws, l, lo, hi, net):
    """Eq. (3), second half, on columns ``[lo, hi)`` of hidden layer l + 1:
    ``D <- D ⊙ f'``, f' from its output A or, where kept, ``ws.fprime``'s."""
    (_backward_keep if _keeps(ws) else _backward_plain)(D, A, ws, l, lo, hi, net)


@overload(hidden_forward, jit_options=JIT)
def _ov_hidden_forward(A, lo, hi, A_in, W, b, net, ws, hyper, l, t):
    return _forward_keep if _keeps(ws) else _forward_plain


@overload(hidden_backward, jit_options=JIT)
def _ov_hidden_backward(D, A, ws, l, lo, hi, net):
    return _backward_keep if _keeps(ws) else _backward_plain


@njit(**STEP)
def forward_hidden(tid, team, params, ws, xb, net, nb, hyper, t, phase):
    """Eq. (1) for the hidden layers: my columns of each, then wait for the other's.
    Returns the phase (-1: aborted)."""
    L = net.units.size - 1
    for l in range(L - 1):
        lo, hi = own(net, team, l + 1, tid)
        A = layer_view(ws.acts, ws.a_off[l], nb, net.units[l + 1])
        b = params[net.b_off[l] + lo : net.b_off[l] + hi]
        W = weight_block(net, team, params, l, tid)
        if l == 0:
            hidden_forward(A, lo, hi, xb, W, b, net, ws, hyper, l, t)
        else:
            A_prev = layer_view(ws.acts, ws.a_off[l - 1], nb, net.units[l])
            hidden_forward(A, lo, hi, A_prev, W, b, net, ws, hyper, l, t)
        phase = sync(team, tid, phase)
        if phase < 0:
            break
    return phase


@njit(**STEP)
def output_head(tid, params, ws, xb, yb, wb, net, nb):
    """Eq. (1) for the output layer and eq. (2), whole, on every thread (N x K: small);
    the loss on thread 0 only (its logarithms are the head's main cost).
    Returns (data loss, S)."""
    L = net.units.size - 1
    K = net.units[L]
    A_L = ws.heads[tid, 0, :nb]
    D = ws.heads[tid, 1, :nb]
    W = layer_view(params, net.w_off[L - 1], net.units[L - 1], K)
    b = params[net.b_off[L - 1] : net.b_off[L - 1] + K]
    lo = _zero()
    if L == 1:
        dense_forward(A_L, lo, K, xb, W, b, net.output)
    else:
        A_prev = layer_view(ws.acts, ws.a_off[L - 2], nb, net.units[L - 1])
        dense_forward(A_L, lo, K, A_prev, W, b, net.output)
    return output_delta_and_loss(D, A_L, yb, wb, net.loss, tid == 0)


@njit(**STEP)
def backward_output(tid, team, bufs, ws, xb, net, nb):
    """Eq. (4) for the output layer, my rows of ∂W_L (the biases' sums on thread 0), and
    eq. (3) below it: my columns of δ_{L-1} = δ_L W_Lᵀ ⊙ f'."""
    L = net.units.size - 1
    K = net.units[L]
    D = ws.heads[tid, 1, :nb]
    lo, hi = own(net, team, L - 1, tid)
    dW = layer_view(bufs.grads, net.w_off[L - 1], net.units[L - 1], K)
    b0, b1 = owned_biases(net, team, L - 1, tid)
    column_sums(bufs.grads[b0:b1], D, _zero(), b1 - b0)
    if L == 1:  # the input: dense or CSR (one thread)
        dot_xtd(dW, xb, D, _zero(), K)
        return
    A_prev = layer_view(ws.acts, ws.a_off[L - 2], nb, net.units[L - 1])
    gemm(dW[lo:hi], A_prev[:, lo:hi], D, True, False, 0.0)
    W = layer_view(bufs.params, net.w_off[L - 1], net.units[L - 1], K)
    D_prev = layer_view(ws.deltas, ws.a_off[L - 2], nb, net.units[L - 1])
    gemm(D_prev[:, lo:hi], D, W[lo:hi], False, True, 0.0)
    hidden_backward(D_prev, A_prev, ws, L - 2, lo, hi, net)


@njit(**STEP)
def backward_hidden(tid, team, bufs, ws, net, nb, phase):
    """Eq. (4) and (3) for the hidden layers above the first, top down: my block of ∂W_l
    and ∂b_l; then (all of δ_l needed) my columns of δ_{l-1}, summed over W_l's blocks in
    a fixed order. Returns the phase (-1: aborted)."""
    L = net.units.size - 1
    for l in range(L - 2, 0, -1):
        lo, hi = own(net, team, l + 1, tid)
        D = layer_view(ws.deltas, ws.a_off[l], nb, net.units[l + 1])
        A_in = layer_view(ws.acts, ws.a_off[l - 1], nb, net.units[l])
        dW = layer_view(bufs.grads, team.ws_off[l, tid], net.units[l], hi - lo)
        gemm(dW, A_in, D[:, lo:hi], True, False, 0.0)
        column_sums(bufs.grads[net.b_off[l] + lo : net.b_off[l] + hi], D, lo, hi)
        phase = sync(team, tid, phase)  # all of δ_l, both threads' columns
        if phase < 0:
            return phase
        lo2, hi2 = own(net, team, l, tid)
        D_prev = layer_view(ws.deltas, ws.a_off[l - 1], nb, net.units[l])
        for b in range(team.threads):
            blo, bhi = own(net, team, l + 1, b)
            Wb = weight_block(net, team, bufs.params, l, b)
            gemm(D_prev[:, lo2:hi2], D[:, blo:bhi], Wb[lo2:hi2], False, True, float(b))
        hidden_backward(D_prev, A_in, ws, l - 1, lo2, hi2, net)
    return phase


@njit(**STEP)
def backward_first(tid, team, bufs, ws, xb, net, nb):
    """Eq. (4) for the first layer (a hidden one): my columns of δ_1 against the input."""
    lo, hi = own(net, team, 1, tid)
    D = layer_view(ws.deltas, ws.a_off[0], nb, net.units[1])
    dW = layer_view(bufs.grads, team.ws_off[0, tid], net.units[0], hi - lo)
    dot_xtd(dW, xb, D, lo, hi)
    column_sums(bufs.grads[net.b_off[0] + lo : net.b_off[0] + hi], D, lo, hi)


@njit(**STEP)
def loss_and_sums(tid, team, bufs, ws, xb, yb, wb, net, hyper, t, phase):
    """Forward (1), residual and loss (2), backward (3) and the sums of (4) for one
    minibatch (xb, yb, wb: its rows of X, Y, sw), on thread tid's share, at optimizer
    step t (``hyper``: the penalty α and the dropout's rates); ``bufs.grads``
    gets ``A_{l-1}ᵀ δ_l`` and ``Σ_rows δ_l``, not yet penalised nor scaled.
    Returns (loss, S, phase): the loss (thread 0; 0 on thread 1) as scikit-learn's
    ``_backprop`` reports it, data loss + ½ α ‖W‖² / S; S the rows or weight sum;
    phase -1 if aborted."""
    L = net.units.size - 1
    nb = yb.shape[0]
    phase = forward_hidden(tid, team, bufs.params, ws, xb, net, nb, hyper, t, phase)
    if phase < 0:
        return 0.0, 1.0, phase
    # my share of ‖W‖², before this minibatch's update (read after a barrier below)
    team.shared[PENALTY[tid]] = penalty_share(net, team, bufs.params, tid)
    loss, S = output_head(tid, bufs.params, ws, xb, yb, wb, net, nb)
    backward_output(tid, team, bufs, ws, xb, net, nb)
    phase = backward_hidden(tid, team, bufs, ws, net, nb, phase)
    if phase < 0:
        return loss, S, phase
    phase = sync(team, tid, phase)  # both are done with what the other writes next: the
    if phase < 0:  # weights and the activations
        return loss, S, phase
    if tid == 0:
        loss += (0.5 * hyper.alpha) * (team.shared[PENALTY[0]] + team.shared[PENALTY[1]]) / S
    if L > 1:
        backward_first(tid, team, bufs, ws, xb, net, nb)
    return loss, S, phase


# ---------------------------------------------------------------------------------------
# The entry points.
# ---------------------------------------------------------------------------------------


def _update_solo(tid, team, bufs, net, hyper, S, step):
    update_range(bufs, _zero(), net.n_coefs, bufs.params.size, hyper, S, step)


def _update_split(tid, team, bufs, net, hyper, S, step):
    for l in range(net.units.size - 1):
        w0, w1 = owned_weights(net, team, l, tid)
        update_range(bufs, w0, w1, w1, hyper, S, step)
        b0, b1 = owned_biases(net, team, l, tid)
        update_range(bufs, b0, b0, b1, hyper, S, step)


def update_share(tid, team, bufs, net, hyper, S, step):
    """Eq. (5) on the parameters thread ``tid`` owns, each a contiguous range. On one
    thread, one pass over the whole buffer (all weights, then all biases: the layout),
    not two per layer (a small net's minibatch is a few µs: 2L short loops cost it
    3-4 %); element for element the same arithmetic."""
    return (_update_solo if _solo(team) else _update_split)(tid, team, bufs, net, hyper,
                                                            S, step)


@overload(update_share, jit_options=JIT, inline="always")
def _ov_update_share(tid, team, bufs, net, hyper, S, step):
    return _update_solo if _solo(team) else _update_split


@njit(**STEP)
def gather_share(tid, team, data, ws, start, stop, k):
    """Rows ``perm[start:stop]``: thread tid's half of X's (all of them on one thread) into
    gather buffer k, all of Y's and sw's into its own. Returns (xb, yb, wb)."""
    nb = stop - start
    r0, r1 = row_share(team, tid, nb)
    xb = gather_rows(data.X, data.perm, start, stop, ws.xbuf[k], r0, r1)
    yb = ws.ybuf[tid, :nb]
    wb = ws.swbuf[tid, :nb]
    for r in range(nb):
        src = data.perm[start + r]
        for j in range(data.Y.shape[1]):
            yb[r, j] = data.Y[src, j]
        wb[r] = data.sw[src]
    return xb, yb, wb


@njit(**JIT)
def train_epoch(tid, team, bufs, ws, data, net, hyper, first, last, t):
    """Train on minibatches ``data.perm[first:last]`` in order, updating ``bufs`` in place:
    per minibatch gather -> forward (1) -> δ and loss (2) -> backward (3, 4) -> update
    (5), which finishes the gradient (penalty, scale) in its own pass. Thread ``tid`` of
    ``team`` does its share (the module docstring); no allocation.

    first, last : row range; ``first`` is a multiple of ``data.batch_size`` from the
    epoch's start.  t : optimizer steps taken before this call.
    Returns (Σ batch_loss · rows, t after this call); the loss sum on thread 0 (0 on
    thread 1).
    """
    loss_sum = 0.0
    phase = 0
    start = first
    k = 0
    while start < last:
        stop = min(start + data.batch_size, last)
        xb, yb, wb = gather_share(tid, team, data, ws, start, stop, k)
        k = (k + 1) % ws.xbuf.shape[0]
        phase = sync(team, tid, phase)
        if phase < 0:
            break
        loss, S, phase = loss_and_sums(tid, team, bufs, ws, xb, yb, wb, net, hyper, t,
                                       phase)
        if phase < 0:
            break
        loss_sum += loss * (stop - start)
        step, t = step_size(hyper, t)
        update_share(tid, team, bufs, net, hyper, S, step)
        start = stop
    return loss_sum, t


@njit(**JIT)
def finish_gradient(grads, params, n_coefs, alpha, S):
    """Eq. (4), completed: ``g <- (g + alpha θ) / S`` for the weights (``[:n_coefs]``),
    ``g <- g / S`` for the biases, in scikit-learn's order of operations but for one
    thing: ``/ S`` is ``* (1/S)``, 1/S computed once in float64. The two differ by at
    most one unit in the last place (not at all for S a power of two), and a division
    per parameter was a third of the Adam step's time."""
    dt = grads.dtype.type
    a = dt(alpha)
    inv_s = dt(1.0 / S)
    for i in range(n_coefs):
        grads[i] = (grads[i] + a * params[i]) * inv_s
    for i in range(n_coefs, grads.size):
        grads[i] *= inv_s


@njit(**JIT)
def loss_grad(team, bufs, ws, X, Y, sw, net, hyper):
    """Loss of the rows X, Y, sw (all of them, one thread: ``team``) and its gradient with
    respect to every parameter (eq. 1-4) in ``bufs.grads``, for L-BFGS and the tests;
    ``ws`` holds ``n_rows(X)`` rows; ``hyper`` gives α (and no dropout: L-BFGS's
    objective is deterministic). Returns the loss."""
    loss, S, _ = loss_and_sums(0, team, bufs, ws, X, Y, sw, net, hyper, 0, 0)
    finish_gradient(bufs.grads, bufs.params, net.n_coefs, hyper.alpha, S)
    return loss


@njit(**JIT)
def forward_block(out, X, params, net, buf_a, buf_b):
    """Eq. (1) through every layer for one block of rows: ``out = f_L(... f_1(X W_1 +
    b_1) ...)``.

    out : (R, K) output.  X : (R, F) dense or CSR, R at most the block rows.
    buf_a, buf_b : (>= R * H_max,) scratch, the hidden layers' outputs in turn.
    """
    u = net.units
    L = u.size - 1
    nb = n_rows(X)
    lo = _zero()
    params = as_writable(params)
    W1 = layer_view(params, net.w_off[0], u[0], u[1])
    b1 = params[net.b_off[0] : net.b_off[0] + u[1]]
    if L == 1:
        dense_forward(out, lo, u[1], X, W1, b1, net.output)
        return
    A_prev = layer_view(buf_a, 0, nb, u[1])
    dense_forward(A_prev, lo, u[1], X, W1, b1, net.hidden)
    for l in range(1, L):
        W = layer_view(params, net.w_off[l], u[l], u[l + 1])
        b = params[net.b_off[l] : net.b_off[l] + u[l + 1]]
        if l == L - 1:
            dense_forward(out, lo, u[l + 1], A_prev, W, b, net.output)
        else:
            A = layer_view(buf_a if l % 2 == 0 else buf_b, 0, nb, u[l + 1])
            dense_forward(A, lo, u[l + 1], A_prev, W, b, net.hidden)
            A_prev = A


@njit(**JIT)
def _block_rows(net, buf_a):
    """Rows per block: ``buf_a.size // H_max`` (H_max the widest hidden layer, or 1)."""
    u = net.units
    h_max = 1
    for l in range(1, u.size - 1):
        h_max = max(h_max, u[l])
    return max(1, buf_a.size // h_max)


@njit(**JIT)
def predict_forward(out, X, params, net, buf_a, buf_b):
    """Eq. (1) for all rows of X, block by block: ``out = f_L(... f_1(X W_1 + b_1) ...)``.

    out : (n, K) output.  X : (n, F) dense or CSR.
    buf_a, buf_b : (R * H_max,) scratch; R = block rows = ``buf_a.size // H_max``.
    """
    n = n_rows(X)
    block = _block_rows(net, buf_a)
    for r0 in range(0, n, block):
        r1 = min(r0 + block, n)
        forward_block(out[r0:r1], row_block(X, r0, r1), params, net, buf_a, buf_b)


@njit(**JIT)
def all_finite(X):
    """Whether no entry of the C-contiguous array X is NaN or infinite: ``x - x`` is 0
    exactly for finite x, NaN otherwise (a boolean OR over the elements vectorises)."""
    flat = X.reshape(-1)
    bad = False
    for k in range(flat.size):
        v = flat[k]
        bad |= v - v != 0
    return not bad


@njit(**JIT)
def predict_checked(out, X, params, net, buf_a, buf_b):
    """``predict_forward`` for a dense, C-contiguous X that checks each block of X for
    NaN and infinite entries just before using it (while it is in cache). Returns True,
    or False at the first block with one (``out`` is then incomplete: the caller
    discards it and raises scikit-learn's error)."""
    n = X.shape[0]
    block = _block_rows(net, buf_a)
    for r0 in range(0, n, block):
        r1 = min(r0 + block, n)
        X_block = X[r0:r1]
        if not all_finite(X_block):
            return False
        forward_block(out[r0:r1], X_block, params, net, buf_a, buf_b)
    return True
