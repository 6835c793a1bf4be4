"""Two threads for one fit: each owns half the units of every hidden layer.

``_kernels.train_epoch`` on one thread runs its element-wise work (activations, δ, the
optimizer step) on one core while BLAS runs the products on two, and the weights the
update rewrites every minibatch move between the two cores' caches. Here two threads run
that same kernel, each with single-threaded BLAS, each on its share (``Team``): thread t
owns a block of columns of every hidden layer (``cuts``: thread 0 ``[0, cut)``, thread 1
``[cut, H)``) and, of the output layer, the rows for its units of the last hidden layer.
``_kernels``' docstring shows what each does per minibatch and where they meet.

The weights, their gradients and the optimizer's state are held in a split layout
(``split_layout``) for the whole fit, so that each thread's share is contiguous and no
cache line is written by both. A run is bitwise reproducible. It is not bitwise equal to
the one-thread epoch (BLAS blocks a product split by columns differently for some
shapes): float64 agreement is about 1e-15 relative, as between BLAS thread counts
(tests/test_determinism.py).

The threads meet at spin barriers (``_sync.barrier``) 2L - 1 times a minibatch for L
weight layers: after the gather (each thread gathers half the minibatch's rows of X into
a buffer both read; two of them, alternating), after each hidden layer's forward, before
each δ below the top hidden layer, and before the update.

``plan`` decides, per fit, whether to use them; ``SplitTrainer`` runs them, and
``OneThread`` is the one-thread epoch behind the same interface. Where the split pays,
measured: README "Two threads", and the constants below.
"""

import itertools
import os
import signal
import threading
from contextlib import contextmanager

import numpy as np
from numba import njit

from . import _kernels
from ._config import JIT
from ._layout import Team, aligned_empty, make_workspace, one_thread
from ._sync import ABORT

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


def column_cut(width):
    """Thread 0's share of a layer of ``width`` units: about half, a multiple of 8 (a
    64-byte line of float64) when that leaves both threads some units."""
    cut = int(round(width / 16.0)) * 8
    if not 0 < cut < width:
        cut = width // 2
    return cut


def plan(X, layout, batch_size):
    """The column cuts (``Team.cuts``: int64, thread 0's share of each layer's units) if
    this fit should run on two threads, else None. Two threads when all of these hold:

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
    return np.array([units[0]] + [column_cut(u) for u in hidden] + [units[-1]],
                    dtype=np.int64)


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
# The split layout, and the driver.
# ---------------------------------------------------------------------------------------


def split_layout(layout, cuts):
    """``Team.ws_off`` (int64, (L, 2)): in the split layout, hidden layer l + 1's weights
    are two C-ordered blocks, columns ``[0, cut)`` at ``ws_off[l, 0]`` then ``[cut, H)``
    at ``ws_off[l, 1]``, in W's place; the output layer and the biases are where they are
    in ``_layout`` (each thread's share of them is already a contiguous range). A thread
    then updates one contiguous range per block, and no cache line of the weights, their
    gradients or the optimizer's state is written by both threads."""
    u = layout.units
    ws_off = np.zeros((len(u) - 1, 2), dtype=np.int64)
    for l in range(len(u) - 2):
        ws_off[l, 0] = layout.w_off[l]
        ws_off[l, 1] = layout.w_off[l] + u[l] * cuts[l + 1]
    ws_off[-1] = layout.w_off[-1]
    return ws_off


@njit(**JIT)
def relayout(dst, src, units, w_off, ws_off, cuts, to_split):
    """Copy a flat buffer into the split layout (``to_split``) or back."""
    L = units.size - 1
    for l in range(L - 1):
        n_in, n = units[l], units[l + 1]
        for b in range(2):
            lo, hi = (0, cuts[l + 1]) if b == 0 else (cuts[l + 1], n)
            w = hi - lo
            for r in range(n_in):
                i, j = w_off[l] + r * n + lo, ws_off[l, b] + r * w
                if to_split:
                    dst[j : j + w] = src[i : i + w]
                else:
                    dst[i : i + w] = src[j : j + w]
    dst[w_off[L - 1]:] = src[w_off[L - 1]:]


def trainer(X, layout, batch_size, dtype, keep=False):
    """The epoch runner for this fit: ``SplitTrainer`` where ``plan`` says two threads,
    else ``OneThread``; ``keep``: the hidden layers keep f' (``_layout.Workspace``)."""
    cuts = plan(X, layout, batch_size)
    n_features = X.shape[1] if isinstance(X, np.ndarray) else 0
    if cuts is None:
        return OneThread(layout, batch_size, dtype, n_features, keep)
    return SplitTrainer(layout, cuts, batch_size, dtype, n_features, keep)


class OneThread:
    """``_kernels.train_epoch`` on one thread (the products on all of BLAS's), behind the
    interface of ``SplitTrainer``, whose session, publish and close have nothing to do::

        try:
            with trainer.session(bufs):
                for epoch in ...:
                    loss_sum, t = trainer(bufs, data, net, hyper, first, last, t)
                    ...
                    trainer.publish()  # before reading the parameters (early stopping)
        finally:
            trainer.close()
    """

    threads = 1

    def __init__(self, layout, batch_size, dtype, n_features, keep=False):
        self.team = one_thread(layout)
        self.ws = make_workspace(layout, batch_size, 1, n_features, dtype, keep)

    def __call__(self, bufs, data, net, hyper, first, last, t):
        return _kernels.train_epoch(0, self.team, bufs, self.ws, data, net, hyper, first,
                                    last, t)  # (looked up per call: tests wrap it)

    @contextmanager
    def session(self, bufs):
        yield

    def publish(self):
        pass

    def close(self):
        pass


class SplitTrainer:
    """``_kernels.train_epoch`` on two threads for one fit, with the column ``cuts`` of
    ``plan``; used as ``OneThread``.

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

    threads = 2

    def __init__(self, layout, cuts, batch_size, dtype, n_features, keep=False):
        self.cuts = cuts
        self.units, self.w_off = layout.units, layout.w_off
        self.ws_off = split_layout(layout, cuts)
        self.ws = make_workspace(layout, batch_size, 2, n_features, dtype, keep)
        self._split = self._bufs = None  # (during a session)
        self._thread = None
        self._job = None  # the helper's arguments for the current call; None: stop
        self._go = threading.Semaphore(0)
        self._done = threading.Semaphore(0)
        self._errors = []

    def _relayout(self, dst, src, to_split):
        relayout(dst, src, self.units, self.w_off, self.ws_off, self.cuts, to_split)

    @contextmanager
    def session(self, bufs):
        """The parameters and the optimizer's state (``bufs``) in the split layout from
        entry to exit, where they are copied back (also on an exception) and the helper
        thread is stopped. Calls go in between. Ctrl-C is held for the session."""
        # an optimizer's unused (empty) state stays as it is
        kept = [bufs.params, bufs.moment1, bufs.moment2]
        split = [aligned_empty(a.size, a.dtype) if a.size else a for a in kept]
        with _HeldCtrlC() as self._ctrl_c:
            for ours, theirs in zip(kept, split):
                if ours.size:
                    self._relayout(theirs, ours, True)
            # (the gradients are a workspace: bufs.grads serves, aligned by the caller)
            self._split = bufs._replace(params=split[0], moment1=split[1], moment2=split[2])
            self._bufs = bufs
            try:
                with _one_blas_thread():
                    yield
            finally:
                self.close()
                self._split = self._bufs = None
                for ours, theirs in zip(kept, split):
                    if ours.size:
                        self._relayout(ours, theirs, False)
        self._ctrl_c.deliver()  # (one after the last call, or during the clean-up)

    def publish(self):
        """Copy the parameters back into the session's ``bufs.params`` (in ``_layout``'s
        order), for code that reads the model during a session (early stopping)."""
        self._relayout(self._bufs.params, self._split.params, False)

    def __call__(self, bufs, data, net, hyper, first, last, t):
        sync = aligned_empty(24, np.int64)
        sync[:] = 0
        shared = aligned_empty(24, np.float64)
        shared[:] = 0.0
        team = Team(2, self.cuts, self.ws_off, sync, shared)
        job = (team, self._split, self.ws, data, net, hyper, first, last, t)
        if self._thread is None:
            thread = threading.Thread(target=self._helper, name="fastbp-split", daemon=True)
            thread.start()
            self._thread = thread  # (started: close joins it)
        self._job = job
        self._go.release()
        try:
            result = _kernels.train_epoch(0, *job)
        except BaseException:
            sync[ABORT] = 1  # the helper leaves at its next barrier
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
                _kernels.train_epoch(1, *job)
            except BaseException as exc:  # noqa: BLE001  (re-raised by the caller)
                self._errors.append(exc)
                job[0].sync[ABORT] = 1
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


# ---------------------------------------------------------------------------------------
# Prediction: rows are independent, so a large prediction of dense X is cut into chunks of
# rows that two threads take in turn, each running the same kernel with single-threaded
# BLAS: the activations and the softmax then run on both cores, not on one beside BLAS's
# two. Taken in turn, not halved: a helper that wakes late, or a core busy with other
# work, leaves more chunks to the other thread instead of a half to wait for.
# ---------------------------------------------------------------------------------------

# Below this many flops of products (2 · rows · weights) the helper's wake-up and the
# BLAS limiter (about 20 us together here) cost more than the second thread gains.
PREDICT_MIN_FLOPS = 2e7

_PREDICT_POOL = None


def _forget_predict_pool():
    global _PREDICT_POOL
    _PREDICT_POOL = None  # a forked child has none of its parent's threads


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_predict_pool)


def predict_on_two(n, n_coefs):
    """Whether a prediction of ``n`` dense rows through ``n_coefs`` weights should run on
    two threads (``run_chunks``): as ``plan``, from the main thread only, with two cores
    and SciPy's BLAS allowed two threads or more (a limit of one, ``threadpool_limits(1)``,
    keeps prediction on one thread) and an OpenBLAS this thread can limit; ``MODE``
    "never" never, "always" from 16 rows whatever the flops."""
    if MODE == "never" or os.name != "posix" or n < 16:
        return False
    if MODE != "always" and 2.0 * n * n_coefs < PREDICT_MIN_FLOPS:
        return False
    if threading.current_thread() is not threading.main_thread():
        return False
    if _cpu_count() < 2 or _blas_threads() < 2:
        return False
    return _blas_is_ours_to_limit()


def run_chunks(fn, n, chunk):
    """``fn(r0, r1)`` for each chunk ``[r0, r1)`` of ``chunk`` rows of ``n`` (the last
    shorter), the chunks taken in turn by this thread and a helper thread (one, kept for
    the process), SciPy's BLAS on one thread meanwhile. Returns the results in chunk
    order; after a result ``False`` no new chunk is started (those not run are None).
    The helper is waited for also when this thread raises."""
    global _PREDICT_POOL
    if _PREDICT_POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _PREDICT_POOL = ThreadPoolExecutor(1, thread_name_prefix="fastbp-predict")
    results = [None] * (-(-n // chunk))
    take = itertools.count()  # next() on it is atomic: each chunk is taken once
    stop = []

    def work():
        for k in take:
            if k >= len(results) or stop:
                return
            r0 = k * chunk
            results[k] = fn(r0, min(r0 + chunk, n))
            if results[k] is False:
                stop.append(k)

    with _one_blas_thread():
        helper = _PREDICT_POOL.submit(work)
        try:
            work()
        finally:
            helper.result()
    return results
