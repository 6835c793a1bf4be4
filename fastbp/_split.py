"""The two-thread epoch: each thread owns half the units of every hidden layer.

``_kernels.train_epoch`` runs its element-wise work (activations, δ, the optimizer step)
on one core while BLAS runs the products on two, and the weights the update rewrites
every minibatch move between the two cores' caches. Here the same minibatches run on two
threads, each with single-threaded BLAS. Thread t owns a block of columns ("own") of
every hidden layer (``cuts``: thread 0 ``[0, cut)``, thread 1 ``[cut, H)``) and, of the
output layer, the rows for its units of the last hidden layer. With A_0 = X:

    forward    A_l[:, own] = f(A_{l-1} W_l[:, own] + b_l[own])     needs all of A_{l-1}
    head       A_L = f_L(A_{L-1} W_L + b_L), δ_L (and the loss: thread 0), on both
               threads rather than one computing while the other waits (N x K: small)
    backward   ∂W_L[own, :] = A_{L-1}[:, own]ᵀ δ_L
               δ_{L-1}[:, own] = (δ_L W_L[own, :]ᵀ) ⊙ f'
               δ_{l-1}[:, own] = (δ_l W_lᵀ)[:, own] ⊙ f'      needs all of δ_l
               ∂W_l[:, own] = A_{l-1}ᵀ δ_l[:, own],  ∂b_l[own] = Σ_rows δ_l[:, own]
    update     what it owns (``_kernels.update_range``: the same arithmetic)

The weights, their gradients and the optimizer's state are held in a split layout
(``split_layout``) during an epoch, so that each thread's share is contiguous and no
cache line is written by both. Products are split by their outputs; the one exception is
δ_{l-1} below a hidden layer, summed over the two blocks of W_l in a fixed order. The
other cross-thread sum, the L2 penalty's ‖W‖², is added in a fixed order too: a run is
bitwise reproducible. It is not bitwise equal to the one-thread epoch (BLAS blocks a
product split by columns differently for some shapes): float64 agreement is about
1e-15 relative, as between BLAS thread counts (tests/test_determinism.py).

The threads meet at spin barriers (``barrier``: release/acquire atomics, about 0.1 µs
when both run; after ``SPINS_BEFORE_YIELD`` spins the waiter yields its core, so a
loaded machine slows a fit down but does not stall it): per minibatch, after each hidden
layer's forward, before each δ below the top hidden layer, and before the update,
2 (L - 1) for L weight layers, and one after the gather: each thread gathers half the
minibatch's rows of X (into a buffer both read; two of them, alternating) and all its
rows of Y and sw (its own), 2L - 1 in all.

``plan`` decides, per fit, whether to use it; ``SplitTrainer`` runs it. Where it pays,
measured: README "Two threads", and the constants below.
"""

import os
import signal
import threading
from contextlib import contextmanager

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from . import _kernels as K
from ._blas import gemm
from ._config import JIT
from ._layout import aligned_empty

# ---------------------------------------------------------------------------------------
# When: the size rule and the environment.
# ---------------------------------------------------------------------------------------

# "auto": by the rules of ``plan``; "never"; "always": whenever the net has a hidden layer
# and X is dense (tests use it to run small nets through this path). FASTBP_SPLIT sets it.
MODE = os.environ.get("FASTBP_SPLIT", "auto")

# When the split pays, measured on the 2-core project machine (README, "Two threads"),
# x floor on one thread -> on two, best of 3 to 5 fits, same process:
# - two single-threaded products run about 15% slower than one two-threaded product of
#   the same work, so the split pays only where the work it shares is a large part of the
#   epoch: the optimizer step, whose cost relative to the products' is about 1/batch, and
#   the activations. At batch 64: 784-128-10 (logistic) 1.53 -> 1.26, 50-256-256-1
#   (relu) 1.36 -> 1.14; at 96-128: 784-256-128-10 1.30 -> 1.20 and 1.35 -> 1.27,
#   784-128-10 1.40 -> 1.27, 100-1024-1024-10 1.22 -> 1.16, 50-512-512-1 (tanh)
#   1.28 -> 1.15, 50-128-128-1 1.22 -> 1.06; at 200: 64-100-10 even; at 256, even; at
#   512, 50-512-512-1 2% faster but 100-1024-1024-10 1.08 -> 1.14.
# - below a few million flops of products per minibatch (6 · batch · weights) the phases
#   between barriers last microseconds and the threads' jitter costs more than the split
#   gains: 64-64-64-10 at batch 32 (1.7 Mflop) even at best, the median 1.25x the best;
#   20-32-32-5 at 32 (0.35 Mflop) 1.27x as long; 30-64-64-1 at 64 (2.3 Mflop) even at
#   best, 2x as long in the median; 30-128-1 at 128 (3.0 Mflop) 1.55 -> 1.65. From about
#   4 Mflop it pays where an epoch has many minibatches (best, median of 7-9 fits):
#   30-64-64-1 at 128 (4.7 Mflop, 157 minibatches) 1.77 -> 1.47 (1.80 -> 1.63),
#   20-64-64-5 at 128 (4.4 Mflop) 1.85 -> 1.55 (1.93 -> 1.71), 784-16-10 at 64
#   (4.9 Mflop) 1.93 -> 1.33, 50-96-96-1 at 64 (5.4 Mflop) 1.66 -> 1.21, 20-128-128-5
#   at 64 (7.5 Mflop) 1.68 -> 1.24 (1.70 -> 1.26); 50-64-64-1 at 128 (5.6 Mflop) even.
# - each kernel call (an epoch) wakes the helper and waits for it at the end: 60-100 us
#   (measured in a 64-100-10 fit), 5-10 % of an epoch of 11 minibatches of 5.7 Mflop,
#   where the split lost (1.43 -> 1.59) or won (64-128-10: 1.51 -> 1.28) by the run. A
#   call of at least MIN_FLOPS_PER_CALL (about 3 ms of products here) keeps that under
#   about 3 %.
MAX_BATCH = 128
MIN_FLOPS_PER_BATCH = 4e6
MIN_FLOPS_PER_CALL = 2.5e8
MIN_WIDTH = 16  # every hidden layer: narrower halves do not pay their barriers

SPINS_BEFORE_YIELD = 1 << 14

# sync (int64) and shared (float64) slots, 64 bytes apart: no false sharing between them
_PHASE0, _PHASE1, _ABORT = 0, 8, 16
_PENALTY0, _PENALTY1 = 0, 8


def column_cut(width):
    """Thread 0's share of a layer of ``width`` units: about half, a multiple of 8 (a
    64-byte line of float64) when that leaves both threads some units."""
    cut = int(round(width / 16.0)) * 8
    if not 0 < cut < width:
        cut = width // 2
    return cut


def plan(X, layout, batch_size):
    """The column cuts (int64, one per weight layer; the last is unused) if this fit should
    run on two threads, else None. Two threads when all of these hold:

    - ``MODE`` is not "never"; X is dense; the net has hidden layers, each >= 2 wide;
    - the fit runs in the main thread: a fit in a thread pool (GridSearchCV with threads,
      Dask) shares the cores with the pool, and BLAS's thread count is process-wide;
    - exactly two threads to use: two cores (or more) and SciPy's BLAS allowed two
      threads. One (``threadpool_limits(1)``, or joblib's process workers, which set it
      to cores / n_jobs) leaves nothing to split; more, and the one-thread epoch's
      products use them all while this design uses two (it was measured on 2 cores);
    - (unless ``MODE`` is "always") batches of at most ``MAX_BATCH`` rows, every hidden
      layer at least ``MIN_WIDTH`` units wide, a minibatch at least
      ``MIN_FLOPS_PER_BATCH`` flops of products and X's rows (an epoch: a kernel call)
      at least ``MIN_FLOPS_PER_CALL``.
    """
    if MODE == "never" or not isinstance(X, np.ndarray) or os.name != "posix":
        return None
    units = [int(u) for u in layout.units]
    hidden = units[1:-1]
    if not hidden or min(hidden) < 2:
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    if MODE != "always":
        flops_per_row = 6.0 * layout.n_coefs
        if (batch_size > MAX_BATCH or min(hidden) < MIN_WIDTH
                or batch_size * flops_per_row < MIN_FLOPS_PER_BATCH
                or X.shape[0] * flops_per_row < MIN_FLOPS_PER_CALL):
            return None
        if min(_cpu_count(), _blas_threads()) != 2:
            return None
    if not _blas_is_ours_to_limit():
        return None
    return np.array([column_cut(u) for u in hidden] + [0], dtype=np.int64)


def _cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


_BLAS = None


def _blas_controller():
    """threadpoolctl's controller of the BLAS that Numba's products call: SciPy's
    (``scipy.linalg.cython_blas``). A wheel install bundles it under ``scipy.libs``
    beside NumPy's own copy; elsewhere (conda, system BLAS) all BLAS libraries."""
    global _BLAS
    if _BLAS is None:
        import scipy.linalg.cython_blas  # noqa: F401  (loaded, so threadpoolctl sees it)
        from threadpoolctl import ThreadpoolController

        blas = ThreadpoolController().select(user_api="blas")
        scipys = [lc.filepath for lc in blas.lib_controllers
                  if any("scipy" in part.lower()
                         for part in os.path.dirname(lc.filepath).split(os.sep))]
        _BLAS = blas.select(filepath=scipys) if scipys else blas
    return _BLAS


def _blas_controllers():
    return _blas_controller().lib_controllers


def _blas_threads():
    libs = _blas_controllers()
    return min(lc.num_threads for lc in libs) if libs else 1


def _one_blas_thread():
    """SciPy's BLAS on one thread for the duration of the ``with`` (process-wide: other
    threads' SciPy products run on one thread meanwhile). threadpoolctl's limiter: since
    threadpoolctl 3.8 one Python thread at a time controls OpenBLAS's pool, and the
    limiter gives the control back at its end (setting the count directly kept it for
    the life of the process: every other thread's ``threadpool_limits`` then did
    nothing)."""
    return _blas_controller().limit(limits=1)


def _blas_is_ours_to_limit():
    """Whether this thread can hold SciPy's BLAS at one thread for both of a split fit's
    threads: an OpenBLAS on its own (pthreads) pool, whose count is process-wide (an
    OpenMP or MKL count is per thread, so the helper's products would still use many),
    and not controlled by another thread (threadpoolctl >= 3.8 ignores the setting then;
    both threads' products would run on two, 80x slower on 2 cores). Tried, then undone."""
    libs = _blas_controllers()
    if not libs or any(lc.internal_api != "openblas"
                       or getattr(lc, "threading_layer", "pthreads") != "pthreads"
                       for lc in libs):
        return False
    with _one_blas_thread():
        return _blas_threads() == 1


# ---------------------------------------------------------------------------------------
# Synchronisation: atomics, a yield, a two-thread barrier.
# ---------------------------------------------------------------------------------------


@intrinsic
def _load_acquire(typingctx, arr, idx):
    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, sig.args[0], ary, [args[1]])
        return builder.load_atomic(ptr, "acquire", 8)

    return types.int64(arr, idx), codegen


@intrinsic
def _store_release(typingctx, arr, idx, val):
    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, sig.args[0], ary, [args[1]])
        builder.store_atomic(args[2], ptr, "release", 8)
        return context.get_dummy_value()

    return types.void(arr, idx, val), codegen


@intrinsic
def _sched_yield(typingctx):
    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.IntType(32), []), "sched_yield")
        builder.call(fn, [])
        return context.get_dummy_value()

    return types.void(), codegen


@njit(**JIT)
def barrier(sync, tid, phase):
    """Publish that thread ``tid`` reached ``phase``; wait until the other thread has.
    Everything either thread wrote before its call is visible to both after it. Returns
    False, at once, if the run was aborted (the other thread failed)."""
    _store_release(sync, _PHASE0 if tid == 0 else _PHASE1, phase)
    other = _PHASE1 if tid == 0 else _PHASE0
    spins = 0
    while _load_acquire(sync, other) < phase:
        if _load_acquire(sync, _ABORT) != 0:
            return False
        spins += 1
        if spins >= SPINS_BEFORE_YIELD:
            _sched_yield()
    return True


# ---------------------------------------------------------------------------------------
# The epoch, as run by each of the two threads.
# ---------------------------------------------------------------------------------------


@njit(**JIT)
def _own(cut, width, tid):
    """Thread ``tid``'s columns ``[lo, hi)`` of a layer."""
    return (0, cut) if tid == 0 else (cut, width)


@njit(**JIT)
def sumsq(x):
    """Σ x² over a contiguous vector, in float64, in a fixed order (eight running sums,
    element i into sum i mod 8, then a fixed tree): it vectorises without reordering."""
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


@njit(**JIT)
def split_epoch(tid, sync, shared, cuts, ws_off, heads, params, grads, state1, state2,
                acts, deltas, xbuf, ybuf, swbuf, X, Y, sw, perm, units, w_off, b_off, a_off,
                n_coefs, first, last, batch_size, hidden, out_act, loss_code, solver,
                alpha, lr, momentum, nesterov, beta1, beta2, epsilon, t):
    """Thread ``tid``'s half of ``_kernels.train_epoch``: the same arguments, but

    - ``sync`` : int64 (24,) zeros and ``shared`` : float64 (24,), shared by the threads;
    - ``cuts`` (``plan``) and ``ws_off`` (``split_layout``): params, grads, state1 and
      state2 are in the split layout;
    - ``heads`` : (2, 2, B, K): thread t's output A_L and δ_L at ``heads[t]``;
    - xbuf : (2, B, F): the minibatches' rows of X, shared, minibatch i at ``[i % 2]``;
      ybuf, swbuf : (2, B, ·): thread t's gather buffers of Y and sw at ``[t]``;
    - X dense; at least one hidden layer.

    Returns (Σ batch_loss · rows, t): the loss sum on thread 0 (0 on thread 1).
    """
    L = units.size - 1
    K_out = units[L]
    last_cut = cuts[L - 2]
    phase = 0
    loss_sum = 0.0
    start = first
    n_batches = 0
    while start < last:
        stop = min(start + batch_size, last)
        nb = stop - start
        # the minibatch's rows of X: each thread gathers half of them into the buffer of
        # this minibatch's parity (the other thread may still read the other buffer, for
        # the last minibatch's ∂W_1); Y and sw, small, each thread all of them, privately
        xb = xbuf[n_batches & 1, :nb]
        n_batches += 1
        r0, r1 = (0, nb // 2) if tid == 0 else (nb // 2, nb)
        K.batch_rows(X, perm, start + r0, start + r1, xb[r0:])
        yb, wb = K.gather_targets(Y, sw, perm, start, stop, ybuf[tid], swbuf[tid])
        phase += 1
        if not barrier(sync, tid, phase):
            return loss_sum, t

        # forward, hidden layers: my columns of each, then wait for the other's
        A_prev = xb
        for l in range(L - 1):
            lo, hi = _own(cuts[l], units[l + 1], tid)
            A = K.layer_view(acts, a_off[l], nb, units[l + 1])
            gemm(A[:, lo:hi], A_prev, K.layer_view(params, ws_off[l, tid], units[l], hi - lo),
                 False, False, 0.0)
            K.activation_forward_cols(A, lo, hi, params[b_off[l] + lo : b_off[l] + hi],
                                      hidden)
            phase += 1
            if not barrier(sync, tid, phase):
                return loss_sum, t
            A_prev = A

        # my share of ‖W‖²: the weights I own, before this minibatch's update (written
        # after a barrier, so thread 0 has read the last one)
        penalty = 0.0
        for l in range(L - 1):
            lo, hi = _own(cuts[l], units[l + 1], tid)
            penalty += sumsq(params[ws_off[l, tid] : ws_off[l, tid] + units[l] * (hi - lo)])
        lo, hi = _own(last_cut, units[L - 1], tid)
        penalty += sumsq(params[w_off[L - 1] + lo * K_out : w_off[L - 1] + hi * K_out])
        shared[_PENALTY0 if tid == 0 else _PENALTY1] = penalty

        # output layer and loss head, eq. (1) and (2), on both threads
        W_L = K.layer_view(params, w_off[L - 1], units[L - 1], K_out)
        A_L = heads[tid, 0, :nb]
        D = heads[tid, 1, :nb]
        K.dense_forward(A_L, A_prev, W_L, params[b_off[L - 1] : b_off[L - 1] + K_out],
                        out_act)
        # (the loss on thread 0 only: its logarithms are the head's main cost)
        loss, S = K.output_delta_and_loss(D, A_L, yb, wb,
                                          loss_code if tid == 0 else K.NO_LOSS)

        # backward, eq. (3) and (4): the output layer's rows for my units of layer L-1
        lo, hi = _own(last_cut, units[L - 1], tid)
        A_prev = K.layer_view(acts, a_off[L - 2], nb, units[L - 1])
        dW = K.layer_view(grads, w_off[L - 1], units[L - 1], K_out)
        gemm(dW[lo:hi], A_prev[:, lo:hi], D, True, False, 0.0)
        if tid == 0:
            K.column_sums(grads[b_off[L - 1] : b_off[L - 1] + K_out], D)
        D_prev = K.layer_view(deltas, a_off[L - 2], nb, units[L - 1])
        gemm(D_prev[:, lo:hi], D, W_L[lo:hi], False, True, 0.0)
        K.activation_backward_cols(D_prev, A_prev, lo, hi, hidden)
        for l in range(L - 2, 0, -1):  # hidden layers above the first, top down
            lo, hi = _own(cuts[l], units[l + 1], tid)
            D = K.layer_view(deltas, a_off[l], nb, units[l + 1])
            A_in = K.layer_view(acts, a_off[l - 1], nb, units[l])
            gemm(K.layer_view(grads, ws_off[l, tid], units[l], hi - lo), A_in, D[:, lo:hi],
                 True, False, 0.0)
            K.column_sums_cols(grads[b_off[l] + lo : b_off[l] + hi], D, lo, hi)
            phase += 1  # all of δ_l, both threads' columns
            if not barrier(sync, tid, phase):
                return loss_sum, t
            # δ_{l-1}[:, mine] = δ_l W_lᵀ: W_l's rows for my units of layer l-1, from
            # both threads' blocks, block 0's product first
            lo2, hi2 = _own(cuts[l - 1], units[l], tid)
            D_prev = K.layer_view(deltas, a_off[l - 1], nb, units[l])
            for b in range(2):
                blo, bhi = _own(cuts[l], units[l + 1], b)
                Wb = K.layer_view(params, ws_off[l, b], units[l], bhi - blo)
                gemm(D_prev[:, lo2:hi2], D[:, blo:bhi], Wb[lo2:hi2], False, True, float(b))
            K.activation_backward_cols(D_prev, A_in, lo2, hi2, hidden)

        phase += 1  # both threads are done with what the other writes next: the weights
        if not barrier(sync, tid, phase):  # and the activations
            return loss_sum, t
        if tid == 0:
            loss += (0.5 * alpha) * (shared[_PENALTY0] + shared[_PENALTY1]) / S
            loss_sum += loss * nb

        # the first layer's gradient: my columns of δ_1 only
        lo, hi = _own(cuts[0], units[1], tid)
        D = K.layer_view(deltas, a_off[0], nb, units[1])
        gemm(K.layer_view(grads, ws_off[0, tid], units[0], hi - lo), xb, D[:, lo:hi],
             True, False, 0.0)
        K.column_sums_cols(grads[b_off[0] + lo : b_off[0] + hi], D, lo, hi)

        # update, eq. (5): the parameters I own, each a contiguous range
        step, t = K.step_size(solver, lr, beta1, beta2, t)
        for l in range(L):  # weights [w0, w1), then biases [b0, b1) of each layer
            if l < L - 1:
                lo, hi = _own(cuts[l], units[l + 1], tid)
                w0 = ws_off[l, tid]
                w1 = w0 + units[l] * (hi - lo)
                b0, b1 = b_off[l] + lo, b_off[l] + hi
            else:  # the output layer: my rows; its biases on thread 0
                lo, hi = _own(last_cut, units[L - 1], tid)
                w0, w1 = w_off[L - 1] + lo * K_out, w_off[L - 1] + hi * K_out
                b0 = b_off[L - 1]
                b1 = b0 + K_out if tid == 0 else b0
            K.update_range(params, state1, state2, grads, w0, w1, w1, solver, alpha, S,
                           step, momentum, nesterov, beta1, beta2, epsilon)
            K.update_range(params, state1, state2, grads, b0, b0, b1, solver, alpha, S,
                           step, momentum, nesterov, beta1, beta2, epsilon)
        start = stop
    return loss_sum, t


# ---------------------------------------------------------------------------------------
# The split layout, and the driver.
# ---------------------------------------------------------------------------------------


def split_layout(layout, cuts):
    """``ws_off`` (int64, (L, 2)): in the split layout, hidden layer l's weights are two
    C-ordered blocks, columns ``[0, cut)`` at ``ws_off[l, 0]`` then ``[cut, H)`` at
    ``ws_off[l, 1]``, in W_l's place; the output layer and the biases are where they are
    in ``_layout`` (each thread's share of them is already a contiguous range). A thread
    then updates one contiguous range per block, and no cache line of the weights, their
    gradients or the optimizer's state is written by both threads."""
    u = layout.units
    ws_off = np.zeros((len(u) - 1, 2), dtype=np.int64)
    for l in range(len(u) - 2):
        ws_off[l, 0] = layout.w_off[l]
        ws_off[l, 1] = layout.w_off[l] + u[l] * cuts[l]
    ws_off[-1] = layout.w_off[-1]
    return ws_off


@njit(**JIT)
def relayout(dst, src, units, w_off, ws_off, cuts, to_split):
    """Copy a flat buffer into the split layout (``to_split``) or back."""
    L = units.size - 1
    for l in range(L - 1):
        n_in, n = units[l], units[l + 1]
        for b in range(2):
            lo, hi = _own(cuts[l], n, b)
            w = hi - lo
            for r in range(n_in):
                i, j = w_off[l] + r * n + lo, ws_off[l, b] + r * w
                if to_split:
                    dst[j : j + w] = src[i : i + w]
                else:
                    dst[i : i + w] = src[j : j + w]
    dst[w_off[L - 1]:] = src[w_off[L - 1]:]


class SplitTrainer:
    """``_kernels.train_epoch`` on two threads for one fit, with the column ``cuts`` of
    ``plan``. Use::

        try:
            with trainer.session(params, state1, state2):
                for epoch in ...:
                    trainer(params, grads, state1, state2, ...)  # train_epoch's arguments
                    ...
                    trainer.publish()  # before reading params (early stopping)
        finally:
            trainer.close()

    ``grads``, ``acts`` and ``deltas`` serve as its workspace (in the split layout; the
    two must start on a cache line, ``aligned_empty``); ``xbuf``, ``ybuf`` and ``swbuf``
    are not used: it gathers into its own (X's shared, Y's and sw's one set per thread).
    ``session`` copies the parameters and the optimizer's state into the split layout
    and back at its end, once a fit (once an epoch cost mnist-logistic 0.8 % of its
    time); ``publish`` copies the parameters back without ending it. SciPy's BLAS runs on
    one thread inside a session.
    The helper thread lives from the first call to the session's end (or ``close``),
    asleep between calls: a thread started for each call cost 10 % of mnist-logistic's
    epoch (4 calls an epoch; a new thread starts on its parent's core and waits there to
    be moved).
    A failure in either thread stops both and is raised. A Ctrl-C's handler (Python's
    raises KeyboardInterrupt) runs at the end of the call it came in (at most one kernel
    call, about 0.1 s), so that no thread writes to the model after a call returns, and a
    second Ctrl-C does not cut the session's clean-up short (``_HeldCtrlC``)."""

    def __init__(self, layout, cuts, dtype, batch_size, n_features):
        self.cuts = cuts
        self.units, self.w_off = layout.units, layout.w_off
        self.ws_off = split_layout(layout, cuts)
        # every buffer starts on a cache line (aligned_empty): with widths and cuts
        # multiples of 8, no line of a row is then written by both threads
        n_out = int(layout.units[-1])
        self.heads = aligned_empty((2, 2, batch_size, n_out), dtype)
        self.gather = (aligned_empty((2, batch_size, n_features), dtype),
                       aligned_empty((2, batch_size, n_out), dtype),
                       aligned_empty((2, batch_size), dtype))
        self._state = self._params = None  # (during a session)
        self._thread = None
        self._job = None  # the helper's arguments for the current call; None: stop
        self._go = threading.Semaphore(0)
        self._done = threading.Semaphore(0)
        self._errors = []

    @contextmanager
    def session(self, params, state1, state2):
        """The parameters and the optimizer's state in the split layout from entry to exit,
        where they are copied back (also on an exception) and the helper thread is
        stopped. Calls go in between. Ctrl-C is held for the session (``_HeldCtrlC``)."""
        # (SGD's state2 is empty: it stays as it is)
        pairs = [(a, aligned_empty(a.size, a.dtype)) for a in (params, state1, state2)
                 if a.size]
        with _HeldCtrlC() as self._ctrl_c:
            for ours, split in pairs:
                relayout(split, ours, self.units, self.w_off, self.ws_off, self.cuts, True)
            self._state = [split for _, split in pairs] + [state2] * (3 - len(pairs))
            self._params = params
            try:
                with _one_blas_thread():
                    yield
            finally:
                self.close()
                self._state = self._params = None
                for ours, split in pairs:
                    relayout(ours, split, self.units, self.w_off, self.ws_off, self.cuts,
                             False)
        self._ctrl_c.deliver()  # (one after the last call, or during the clean-up)

    def publish(self):
        """Copy the parameters back into the session's ``params`` (in ``_layout``'s order),
        for code that reads the model during a session (early stopping's scoring)."""
        relayout(self._params, self._state[0], self.units, self.w_off, self.ws_off,
                 self.cuts, False)

    def __call__(self, params, grads, state1, state2, acts, deltas, xbuf, ybuf, swbuf,
                 *rest):
        params, state1, state2 = self._state  # (the arguments' split-layout copies)
        sync = aligned_empty(24, np.int64)
        sync[:] = 0
        shared = aligned_empty(24, np.float64)
        job = (sync, shared, self.cuts, self.ws_off, self.heads, params, grads, state1,
               state2, acts, deltas, *self.gather, *rest)
        if self._thread is None:
            thread = threading.Thread(target=self._helper, name="fastbp-split", daemon=True)
            thread.start()
            self._thread = thread  # (started: close joins it)
        self._job = job
        self._go.release()
        try:
            result = split_epoch(0, *job)
        except BaseException:
            sync[_ABORT] = 1  # the helper leaves at its next barrier
            raise
        finally:
            self._done.acquire()  # (Ctrl-C held: not cut short)
        if self._errors:
            raise self._errors.pop()
        self._ctrl_c.deliver()  # (during this call: neither thread is writing now)
        return result

    def _helper(self):
        while True:
            self._go.acquire()
            job = self._job
            if job is None:
                return
            try:
                split_epoch(1, *job)
            except BaseException as exc:  # noqa: BLE001  (re-raised by the caller)
                self._errors.append(exc)
                job[0][_ABORT] = 1
            finally:
                self._done.release()

    def close(self):
        """Stop the helper thread (if it started); the session's end does."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._job = None
            self._go.release()
            thread.join()


class _HeldCtrlC:
    """Ctrl-C (SIGINT) noted, not acted on, while a session lasts: ``SplitTrainer`` runs
    the handler (Python's raises KeyboardInterrupt) at the end of the kernel call it came
    in, when neither thread writes the model, or at the session's end. Run at once, it
    could cut short what must finish: the wait for the helper, the copy back of the model
    and optimizer state, the return of BLAS's thread count, the helper's stop; a second
    Ctrl-C used to (torn Adam moments, BLAS left on one thread, a helper left blocked).
    For a handler set from Python, in the main thread (where a split fit runs)."""

    def __init__(self):
        self.pressed = False
        self._handler = None

    def _note(self, signum, frame):
        self.pressed = True

    def deliver(self):
        """Run the handler for a Ctrl-C noted so far."""
        if self.pressed:
            self.pressed = False
            self._handler(signal.SIGINT, None)

    def __enter__(self):
        handler = signal.getsignal(signal.SIGINT)
        if threading.current_thread() is threading.main_thread() and callable(handler):
            self._handler = handler
            signal.signal(signal.SIGINT, self._note)
        return self

    def __exit__(self, *exc):
        if self._handler is not None:
            signal.signal(signal.SIGINT, self._handler)
        return False
