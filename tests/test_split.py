"""The two-thread epoch (fastbp/_threads.py: two threads running _kernels.train_epoch): the same model as the one-thread epoch, when it
runs, its building blocks, and how it fails.

``_threads.MODE = "always"`` forces it on nets of any size (the size rules of ``plan`` would
leave these small, fast test nets on one thread); "never" forces it off.
"""

import signal
import threading
import time
import warnings

import numpy as np
import pytest
import scipy.sparse
from numba.core.registry import CPUDispatcher
from sklearn import neural_network as sk
from conftest import ACTIVATIONS, SOLVERS, TASKS, assert_same_model, make_task
from threadpoolctl import threadpool_limits

import fastbp
from fastbp import _activations, _blas, _kernels, _losses, _optim, _sync, _threads
from fastbp._layout import Team, make_layout, one_thread


def fit(est, mode, monkeypatch, X, y, calls=None, **fit_params):
    """``est.fit`` with the two-thread epoch forced on or off; counts its calls."""
    monkeypatch.setattr(_threads, "MODE", mode)
    real = _threads.SplitTrainer.__call__
    seen = [] if calls is None else calls

    def counting(self, *args):
        seen.append(1)
        return real(self, *args)

    monkeypatch.setattr(_threads.SplitTrainer, "__call__", counting)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y, **fit_params)
    monkeypatch.setattr(_threads.SplitTrainer, "__call__", real)
    return est


def assert_models_agree(a, b, rtol):
    for ca, cb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        scale = np.max(np.abs(ca))
        np.testing.assert_allclose(cb, ca, rtol=rtol, atol=rtol * scale)
    np.testing.assert_allclose(b.loss_curve_, a.loss_curve_, rtol=rtol)
    assert a.n_iter_ == b.n_iter_ and a.t_ == b.t_


CASES = {
    # hidden sizes, batch, rows: one to three hidden layers, odd widths, a short last batch
    "one-hidden": ((40,), 64, 300),
    "two-hidden-odd": ((37, 19), 50, 301),
    "three-hidden": ((64, 48, 20), 100, 250),
    "batch-1": ((16,), 1, 30),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("kind", ["classifier", "regressor"])
@pytest.mark.parametrize("case", list(CASES))
def test_two_threads_give_the_one_thread_model(case, kind, solver, dtype, monkeypatch):
    """Same fit on one and two threads: equal to rounding (the products are split by
    their outputs, so most shapes give the same bits; some BLAS blockings differ)."""
    hidden, batch, n = CASES[case]
    rng = np.random.default_rng(1)
    X = rng.standard_normal((n, 12)).astype(dtype)
    if kind == "classifier":
        est, y = fastbp.MLPClassifier, (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)
    else:
        est, y = fastbp.MLPRegressor, X[:, :2] @ [1.0, -2.0]
    sw = rng.uniform(0.5, 2.0, n)
    params = dict(hidden_layer_sizes=hidden, batch_size=batch, solver=solver, max_iter=4,
                  alpha=1e-3, random_state=0, learning_rate_init=0.01)
    calls = []
    one = fit(est(**params), "never", monkeypatch, X, y, sample_weight=sw)
    two = fit(est(**params), "always", monkeypatch, X, y, calls, sample_weight=sw)
    assert calls, "the two-thread epoch did not run"
    assert_models_agree(one, two, 1e-12 if dtype == np.float64 else 2e-4)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("solver", list(SOLVERS))
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_two_threads_give_scikit_learns_model(activation, solver, task, monkeypatch):
    """test_parity's grid (one schedule) on two threads: scikit-learn's model to 1e-9."""
    from conftest import estimators

    X, y = make_task(task)
    params = dict(hidden_layer_sizes=(7, 5), activation=activation, alpha=1e-3,
                  batch_size=40, max_iter=12, tol=1e-3, n_iter_no_change=2, random_state=0,
                  **SOLVERS[solver])
    if task == "poisson":
        params["learning_rate_init"] /= 10
    ours, theirs = estimators(task, **params)
    calls = []
    fit(ours, "always", monkeypatch, X, y, calls)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs.fit(X, y)
    assert calls
    assert_same_model(ours, theirs, X)


def test_same_bits_every_run_and_through_partial_fit(monkeypatch):
    """Two threads, same seed: the same bits (the one cross-thread sum, ‖W‖², is added in a
    fixed order), also for partial_fit and early stopping, which leave the split layout
    between epochs."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 20))
    y = (X[:, 0] > 0).astype(int)
    params = dict(hidden_layer_sizes=(48, 24), batch_size=32, random_state=0)
    runs = []
    for _ in range(2):
        calls = []
        a = fit(fastbp.MLPClassifier(max_iter=3, early_stopping=True, **params), "always",
                monkeypatch, X, y, calls)
        b = fastbp.MLPClassifier(**params)
        monkeypatch.setattr(_threads, "MODE", "always")
        for _ in range(3):
            b.partial_fit(X, y, classes=[0, 1])
        runs.append((a, b))
        assert calls
    for first, second in zip(*runs):
        for wa, wb in zip(first.coefs_ + first.intercepts_, second.coefs_ + second.intercepts_):
            np.testing.assert_array_equal(wa, wb)
        assert first.loss_curve_ == second.loss_curve_
    # and partial_fit on two threads = partial_fit on one, to rounding
    monkeypatch.setattr(_threads, "MODE", "never")
    c = fastbp.MLPClassifier(**params)
    for _ in range(3):
        c.partial_fit(X, y, classes=[0, 1])
    assert_models_agree(c, runs[0][1], 1e-12)


def test_early_stopping_scores_the_trained_weights(monkeypatch):
    """The two-thread session keeps the weights in its own layout for the whole fit;
    early stopping must score (and keep as the best) the weights of every epoch, as on
    one thread: same validation scores, same epoch count, same restored model."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((500, 16))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.8)
    params = dict(hidden_layer_sizes=(40, 24), batch_size=32, max_iter=30,
                  early_stopping=True, n_iter_no_change=3, tol=1e-3, random_state=0)
    one = fit(fastbp.MLPClassifier(**params), "never", monkeypatch, X, y)
    calls = []
    two = fit(fastbp.MLPClassifier(**params), "always", monkeypatch, X, y, calls)
    assert calls
    assert one.n_iter_ < params["max_iter"]  # it stopped early
    assert len(set(one.validation_scores_)) > 2  # and the scores moved
    np.testing.assert_allclose(two.validation_scores_, one.validation_scores_, rtol=1e-12)
    assert_models_agree(one, two, 1e-12)


def test_one_minibatch_per_call_gives_the_same_bits(monkeypatch):
    """Epochs cut into one kernel call per minibatch (as Ctrl-C's chunking can) give the
    bits of whole-epoch calls: the shared gather buffers' alternation and the split layout
    carry nothing wrong across calls. Odd minibatch counts, a short last minibatch."""
    from fastbp import _loop

    rng = np.random.default_rng(5)
    X = rng.standard_normal((301, 24))
    y = (X[:, 0] - X[:, 3] > 0).astype(int) + (X[:, 5] > 0.7)
    params = dict(hidden_layer_sizes=(32, 24), batch_size=40, max_iter=3, random_state=0)
    calls = []
    whole = fit(fastbp.MLPClassifier(**params), "always", monkeypatch, X, y, calls)
    per_epoch = len(calls)
    monkeypatch.setattr(_loop, "FLOPS_PER_CALL", 1.0)  # one minibatch per call
    calls = []
    chunked = fit(fastbp.MLPClassifier(**params), "always", monkeypatch, X, y, calls)
    assert len(calls) == 3 * 8 > per_epoch  # 301 rows: 8 minibatches an epoch
    for a, b in zip(whole.coefs_ + whole.intercepts_, chunked.coefs_ + chunked.intercepts_):
        np.testing.assert_array_equal(a, b)
    assert whole.loss_curve_ == chunked.loss_curve_


def qualifying_fit_inputs():
    """A net and batch that ``plan``'s size rules accept."""
    X = np.zeros((1024, 100))
    return X, make_layout([100, 256, 256, 10]), 64


def test_plan_follows_its_rules(monkeypatch):
    X, layout, batch = qualifying_fit_inputs()
    monkeypatch.setattr(_threads, "MODE", "auto")
    two = min(_threads._cpu_count(), _threads._blas_threads()) == 2
    cuts = _threads.plan(X, layout, batch)
    if two:
        np.testing.assert_array_equal(cuts, [100, 128, 128, 10])
    else:  # one core or BLAS thread: nothing to split; more: BLAS uses them all
        assert cuts is None
    # never: sparse X, no hidden layer, too large a batch, too little work, a thin layer
    assert _threads.plan(scipy.sparse.csr_matrix(X), layout, batch) is None
    assert _threads.plan(X, make_layout([100, 10]), batch) is None
    assert _threads.plan(X, layout, _threads.MAX_BATCH + 1) is None
    assert _threads.plan(X, make_layout([20, 32, 5]), 32) is None
    assert _threads.plan(X, make_layout([100, 256, 8, 10]), batch) is None
    assert _threads.plan(X[:64], layout, batch) is None  # an epoch too short to share
    # nor with BLAS held to one thread, nor from a thread other than the main one
    with threadpool_limits(1, user_api="blas"):
        assert _threads.plan(X, layout, batch) is None
    found = []
    worker = threading.Thread(target=lambda: found.append(_threads.plan(X, layout, batch)))
    worker.start()
    worker.join()
    assert found == [None]
    monkeypatch.setattr(_threads, "MODE", "never")
    assert _threads.plan(X, layout, batch) is None
    monkeypatch.setattr(_threads, "MODE", "always")  # size rules off; the others hold
    np.testing.assert_array_equal(_threads.plan(X, make_layout([20, 32, 5]), 32), [20, 16, 5])
    assert _threads.plan(scipy.sparse.csr_matrix(X), layout, batch) is None


def test_blas_control_is_given_back_and_respected(monkeypatch):
    """threadpoolctl (3.8) lets one Python thread at a time set OpenBLAS's thread count.
    A split fit takes that control for its session only: afterwards another thread's
    ``threadpool_limits`` works. While another thread holds it, ``plan`` says no: the
    session could not hold BLAS at one thread, and both threads' products would run on
    two (80x slower on 2 cores)."""
    monkeypatch.setattr(_threads, "MODE", "always")
    X = np.random.default_rng(0).standard_normal((300, 10))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fastbp.MLPClassifier((24,), batch_size=30, max_iter=2).fit(X, X[:, 0] > 0)
    seen = []

    def limited():
        with threadpool_limits(1, user_api="blas"):
            seen.append(_threads._blas_threads())

    worker = threading.Thread(target=limited)
    worker.start()
    worker.join()
    assert seen == [1]

    X, layout, batch = qualifying_fit_inputs()
    inside, done = threading.Event(), threading.Event()

    def holder():
        with threadpool_limits(2, user_api="blas"):
            inside.set()
            done.wait()

    worker = threading.Thread(target=holder)
    worker.start()
    inside.wait()
    try:
        with threadpool_limits(1, user_api="blas"):
            ignored = _threads._blas_threads() != 1  # (threadpoolctl >= 3.8)
        assert (_threads.plan(X, layout, batch) is None) == ignored
    finally:
        done.set()
        worker.join()
    assert _threads.plan(X, layout, batch) is not None


@pytest.mark.parametrize("width,cut", [(2, 1), (7, 3), (16, 8), (100, 48), (128, 64),
                                       (1000, 496), (1024, 512)])
def test_column_cut(width, cut):
    assert _threads.column_cut(width) == cut


def test_relayout_round_trip_and_blocks():
    layout = make_layout([5, 7, 6, 3])
    cuts = np.array([5, _threads.column_cut(7), _threads.column_cut(6), 3])
    ws_off = _threads.split_layout(layout, cuts)
    flat = np.arange(layout.size, dtype=np.float64)
    split = np.empty_like(flat)
    _threads.relayout(split, flat, layout.units, layout.w_off, ws_off, cuts, True)
    for l in range(2):  # hidden layers: two C-ordered column blocks in W_l's place
        n_in, n = layout.units[l], layout.units[l + 1]
        W = flat[layout.w_off[l]: layout.w_off[l] + n_in * n].reshape(n_in, n)
        c = cuts[l + 1]
        left = split[ws_off[l, 0]: ws_off[l, 0] + n_in * c].reshape(n_in, c)
        right = split[ws_off[l, 1]: ws_off[l, 1] + n_in * (n - c)].reshape(n_in, n - c)
        np.testing.assert_array_equal(left, W[:, :c])
        np.testing.assert_array_equal(right, W[:, c:])
    np.testing.assert_array_equal(split[layout.w_off[2]:], flat[layout.w_off[2]:])
    back = np.empty_like(flat)
    _threads.relayout(back, split, layout.units, layout.w_off, ws_off, cuts, False)
    np.testing.assert_array_equal(back, flat)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sumsq(dtype):
    x = np.random.default_rng(0).standard_normal(1003).astype(dtype)
    assert _kernels.sumsq(x) == pytest.approx(float(np.sum(x.astype(np.float64) ** 2)),
                                              rel=1e-13)
    assert _kernels.sumsq(x[:0]) == 0.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_gemm_on_column_blocks(dtype, trans_a, trans_b, beta):
    """C = op(A) op(B) + beta C on views whose row stride is wider than the view."""
    rng = np.random.default_rng(0)
    m, n, k = 9, 7, 11
    A_full = rng.standard_normal((k, m + 5) if trans_a else (m, k + 5)).astype(dtype)
    B_full = rng.standard_normal((n, k + 3) if trans_b else (k, n + 3)).astype(dtype)
    C_full = rng.standard_normal((m, n + 4)).astype(dtype)
    A = A_full[:, 2: 2 + m] if trans_a else A_full[:, 2: 2 + k]
    B = B_full[:, 1: 1 + k] if trans_b else B_full[:, 1: 1 + n]
    want = (A.T if trans_a else A) @ (B.T if trans_b else B) + beta * C_full[:, 3: 3 + n]
    untouched = C_full.copy()
    _blas.gemm(C_full[:, 3: 3 + n], A, B, trans_a, trans_b, beta)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(C_full[:, 3: 3 + n], want, rtol=rtol, atol=rtol * 10)
    np.testing.assert_array_equal(C_full[:, :3], untouched[:, :3])  # outside the view
    np.testing.assert_array_equal(C_full[:, 3 + n:], untouched[:, 3 + n:])


def test_gemm_checks_what_it_is_given():
    A, B, C = np.ones((3, 4)), np.ones((4, 5)), np.zeros((3, 5))
    _blas.gemm(C, A, B, False, False, 0.0)
    np.testing.assert_array_equal(C, 4.0)
    with pytest.raises(ValueError, match="shapes"):
        _blas.gemm(C, A, B, True, False, 0.0)
    with pytest.raises(ValueError, match="contiguous"):
        _blas.gemm(C, np.ones((3, 8))[:, ::2], B, False, False, 0.0)
    empty = np.zeros((3, 0))
    C[:] = 7.0
    _blas.gemm(C, empty, np.zeros((0, 5)), False, False, 0.0)  # an empty sum: zeros
    np.testing.assert_array_equal(C, 0.0)


def test_kernels_release_the_gil():
    for module in (_threads, _blas, _kernels, _sync, _activations, _losses, _optim):
        for name, kernel in vars(module).items():
            if isinstance(kernel, CPUDispatcher):
                assert kernel.targetoptions.get("nogil") is True, name


def helper_threads():
    return [t for t in threading.enumerate() if t.name == "fastbp-split"]


def test_a_failing_thread_stops_both_and_raises(monkeypatch):
    """If the helper thread fails, the other leaves its next barrier and the error is
    raised by fit; nothing hangs, no thread is left behind, BLAS's setting is restored."""
    real = _kernels.train_epoch

    def failing_helper(tid, *args):
        if tid == 1:
            raise RuntimeError("helper failed")
        return real(tid, *args)

    monkeypatch.setattr(_kernels, "train_epoch", failing_helper)
    monkeypatch.setattr(_threads, "MODE", "always")
    X = np.random.default_rng(0).standard_normal((200, 10))
    threads_before = _threads._blas_threads()
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="helper failed"):
        fastbp.MLPClassifier((16,), batch_size=20, max_iter=2).fit(X, X[:, 0] > 0)
    assert time.monotonic() - started < 30
    assert not helper_threads()
    assert _threads._blas_threads() == threads_before


def test_weights_summing_to_zero_raise_on_two_threads(monkeypatch):
    """Both threads compute the head, so both raise scikit-learn's ZeroDivisionError at a
    minibatch whose weights sum to zero: fit raises it, and no helper is left behind."""
    monkeypatch.setattr(_threads, "MODE", "always")
    X = np.random.default_rng(0).standard_normal((64, 20))
    sw = np.ones(64)
    sw[32:48] = 0.0  # the third minibatch of 16
    for solver in ("sgd", "adam"):
        est = fastbp.MLPRegressor(hidden_layer_sizes=(16, 16), solver=solver, batch_size=16,
                                  shuffle=False, max_iter=3, random_state=0)
        with pytest.raises(ZeroDivisionError, match="Weights sum to zero"):
            est.fit(X, X.sum(axis=1), sample_weight=sw)
        assert not helper_threads()


def test_keyboard_interrupt_joins_the_helper(monkeypatch):
    """Ctrl-C during a two-thread call: scikit-learn's warning, the helper joined before
    fit returns, the model back in its own layout (it predicts as the weights say)."""
    real = _kernels.train_epoch
    calls = []

    def interrupted(tid, *args):
        out = real(tid, *args)
        if tid == 0:
            calls.append(1)
            if len(calls) == 3:
                raise KeyboardInterrupt  # as a signal handler would, when the call returns
        return out

    monkeypatch.setattr(_kernels, "train_epoch", interrupted)
    monkeypatch.setattr(_threads, "MODE", "always")
    X = np.random.default_rng(0).standard_normal((300, 10))
    y = (X[:, 0] > 0).astype(int)
    clf = fastbp.MLPClassifier((24,), batch_size=30, max_iter=50, random_state=0)
    with pytest.warns(UserWarning, match="Training interrupted by user."):
        clf.fit(X, y)
    assert not helper_threads()
    assert clf.n_iter_ == 2
    ref = sk.MLPClassifier((24,))  # the same forward pass from the fitted weights
    ref.coefs_, ref.intercepts_ = clf.coefs_, clf.intercepts_
    ref.n_layers_, ref.out_activation_, ref.n_outputs_ = 3, "logistic", 1
    ref.activation, ref.classes_ = "relu", clf.classes_
    ref._label_binarizer = clf._label_binarizer
    np.testing.assert_allclose(clf.predict_proba(X), ref.predict_proba(X), rtol=1e-12)


def _interrupted_fit(monkeypatch, signals):
    """A two-thread Adam fit stopped during its third kernel call: by a raised
    KeyboardInterrupt after the call (``signals=False``), or by a real Ctrl-C in the
    call and a second one while the session copies the model back (``signals=True``)."""
    real_epoch, real_relayout = _kernels.train_epoch, _threads.relayout
    calls = []

    def epoch(tid, *args):
        if tid == 0:
            calls.append(1)
            if signals and len(calls) == 3:
                signal.raise_signal(signal.SIGINT)
        out = real_epoch(tid, *args)
        if tid == 0 and not signals and len(calls) == 3:
            raise KeyboardInterrupt
        return out

    def relayout(dst, src, *args):
        if signals and args[-1] is False and len(calls) == 3:
            signal.raise_signal(signal.SIGINT)  # the second Ctrl-C, in the clean-up
        return real_relayout(dst, src, *args)

    monkeypatch.setattr(_kernels, "train_epoch", epoch)
    monkeypatch.setattr(_threads, "relayout", relayout)
    monkeypatch.setattr(_threads, "MODE", "always")
    X = np.random.default_rng(0).standard_normal((300, 10))
    clf = fastbp.MLPClassifier((24,), batch_size=30, max_iter=50, random_state=0)
    with pytest.warns(UserWarning, match="Training interrupted by user."):
        clf.fit(X, X[:, 0] > 0)
    return clf


def test_a_second_ctrl_c_does_not_cut_the_clean_up(monkeypatch):
    """Two Ctrl-C: one during a call, one while the session copies the model and Adam's
    moments back. The first stops the fit at the end of its call, as Python's own
    KeyboardInterrupt would; the second is held until the clean-up is done: the same
    model and optimizer state, no helper left, BLAS's thread count and Python's SIGINT
    handler given back."""
    threads_before = _threads._blas_threads()
    a = _interrupted_fit(monkeypatch, signals=False)
    b = _interrupted_fit(monkeypatch, signals=True)
    assert a.n_iter_ == b.n_iter_ == 2
    np.testing.assert_array_equal(a._flat, b._flat)
    np.testing.assert_array_equal(a._optimizer.moment1, b._optimizer.moment1)
    np.testing.assert_array_equal(a._optimizer.moment2, b._optimizer.moment2)
    assert not helper_threads()
    assert _threads._blas_threads() == threads_before
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_reaches_a_handler_of_ones_own(monkeypatch):
    """Where the program set its own SIGINT handler, a Ctrl-C during a two-thread call
    runs that handler once, after the call, and the fit goes on as the handler says
    (this one only counts); the handler is in place again after the fit."""
    real = _kernels.train_epoch
    calls, handled = [], []

    def epoch(tid, *args):
        if tid == 0:
            calls.append(1)
            if len(calls) == 2:
                signal.raise_signal(signal.SIGINT)
        return real(tid, *args)

    def handler(signum, frame):
        handled.append(len(calls))

    monkeypatch.setattr(_kernels, "train_epoch", epoch)
    monkeypatch.setattr(_threads, "MODE", "always")
    previous = signal.signal(signal.SIGINT, handler)
    try:
        X = np.random.default_rng(0).standard_normal((300, 10))
        clf = fastbp.MLPClassifier((24,), batch_size=30, max_iter=4, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(X, X[:, 0] > 0)
        assert signal.getsignal(signal.SIGINT) is handler
    finally:
        signal.signal(signal.SIGINT, previous)
    assert handled == [2] and clf.n_iter_ == 4


def test_two_thread_epoch_allocates_nothing_per_minibatch(nrt_stats, monkeypatch):
    """As test_memory's test on one thread: Numba runtime allocations per two-thread
    call must not grow with its minibatches (1 to 100 here), and are all freed."""
    real = _kernels.train_epoch
    per_call = []

    def counting(tid, *args):
        if tid == 1:
            return real(tid, *args)
        before = nrt_stats()
        out = real(tid, *args)
        first, last, batch = args[6], args[7], args[3].batch_size
        per_call.append((-(-(last - first) // batch), *(nrt_stats() - before)))
        return out

    monkeypatch.setattr(_kernels, "train_epoch", counting)
    monkeypatch.setattr(_threads, "MODE", "always")
    X = np.random.default_rng(0).standard_normal((2000, 20))
    y = (X[:, 0] > 0).astype(int)
    for batch in (20, 200, 2000):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fastbp.MLPClassifier((24, 16), batch_size=batch, max_iter=2,
                                 random_state=0).fit(X, y)
    assert len({b for b, *_ in per_call}) >= 3, per_call
    # a fixed cost per call (one meminfo per array argument, 22 here), counted once or,
    # when the helper's call falls in the window too, twice; never per minibatch
    allocs = {int(a) for _, a, *_ in per_call}
    assert max(allocs) <= 2 * min(allocs) <= 100, per_call


def _general_one_thread(layout):
    """A one-thread Team of the two-thread Team's type (1-D ``sync``): the kernels then
    run the general code, barriers and shares included, with one thread."""
    team = one_thread(layout)
    return Team(team.threads, team.cuts, team.ws_off, np.zeros(24, np.int64), team.shared)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_one_thread_specialisation_is_the_general_code_on_one_thread(solver, dtype,
                                                                     monkeypatch):
    """The one-thread Team (2-D ``sync``) compiles its own versions of the team's
    functions (``_kernels._solo``): the same model, bit for bit, as the general code
    run on a one-thread Team of the two-thread Team's type."""
    from fastbp import _mlp

    assert _kernels._solo(one_thread(make_layout([3, 4, 2])))
    assert not _kernels._solo(_general_one_thread(make_layout([3, 4, 2])))
    X, y = make_task("multiclass", 301, seed=3)
    X = X.astype(dtype)
    params = dict(hidden_layer_sizes=(37, 19), batch_size=50, max_iter=4, alpha=1e-3,
                  solver=solver, random_state=0)
    a = fit(fastbp.MLPClassifier(**params), "never", monkeypatch, X, y)
    monkeypatch.setattr(_threads, "one_thread", _general_one_thread)
    monkeypatch.setattr(_mlp, "one_thread", _general_one_thread)
    b = fit(fastbp.MLPClassifier(**params), "never", monkeypatch, X, y)
    assert np.array_equal(a._flat, b._flat)
    assert a.loss_curve_ == b.loss_curve_ if solver != "lbfgs" else a.loss_ == b.loss_
