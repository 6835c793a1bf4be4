"""The stochastic solvers' training loop: epochs cut into kernel calls, the stopping
rules and their messages, and the points where per-epoch work hooks in.

It knows the kernels only through the epoch runner (``_threads.trainer``: one thread or
two) and the estimator only through scikit-learn's fitted attributes, which it updates
as scikit-learn's ``_fit_stochastic`` does: ``n_iter_``, ``t_``, ``loss_``,
``loss_curve_``, ``best_loss_``, ``validation_scores_``, ``best_validation_score_``.

One epoch::

    [begin] -> shuffle (scikit-learn's draw) -> kernel calls (``CallSizer``) -> loss_,
    loss_curve_, verbose line -> [publish the weights] -> validation score -> hooks ->
    stopping rule

(``begin`` and the hooks: the callbacks' epoch tasks, ``_callbacks``; the validation
rows' loss and score without early stopping, ``_validation``.)
"""

import functools
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ._layout import Batches

# A kernel call cannot be interrupted, so an epoch is split into calls of whole
# minibatches: at most FLOPS_PER_CALL of matrix products each and, timed as the fit
# runs, about SECONDS_PER_CALL of wall time (for small networks and small batches the
# per-minibatch overhead, not the flops, sets the time; on a loaded machine BLAS is
# slower than its flops say). The first call of a fit has at most FIRST_CALL_BATCHES
# minibatches and is not timed (it may compile or load the kernel); each later call is
# sized from the one before, growing at most 8x. Where an epoch is split never changes
# the model. (10 Gflop is 0.05-0.2 s here; 1 Gflop split mnist-logistic-sgd-b64's epochs
# into 3 calls, and each call wakes the two-thread epoch's helper: 1 % of its time.)
FLOPS_PER_CALL = 1e10
SECONDS_PER_CALL = 0.1
FIRST_CALL_BATCHES = 1024


class CallSizer:
    """How many minibatches the next kernel call trains on."""

    def __init__(self, batch_size, n_coefs):
        self.batch_size = batch_size
        flops_per_batch = 6.0 * batch_size * float(n_coefs)
        self.max_batches = max(1, int(FLOPS_PER_CALL // flops_per_batch))
        self.batches = min(self.max_batches, FIRST_CALL_BATCHES)
        self._timed = False  # the first call may compile: not a measure of the next ones

    def rows(self):
        return self.batches * self.batch_size

    def record(self, rows_done, seconds):
        """The last call trained ``rows_done`` rows in ``seconds``."""
        if self._timed:
            done = max(1, -(-rows_done // self.batch_size))
            target = (int(SECONDS_PER_CALL * done / seconds) if seconds > 0
                      else self.max_batches)
            self.batches = max(1, min(target, 8 * self.batches, self.max_batches))
        self._timed = True


def run_epoch(trainer, sizer, bufs, data, net, hyper, t):
    """One epoch, ``data.perm``'s order, in kernel calls. Returns (Σ loss · rows, t)."""
    n = data.perm.size
    total = 0.0
    first = 0
    while first < n:
        last = min(first + sizer.rows(), n)
        started = time.perf_counter()
        loss_sum, t = trainer(bufs, data, net, hyper, first, last, t)
        total += loss_sum
        sizer.record(last - first, time.perf_counter() - started)
        first = last
    return total, t


class Stopping:
    """scikit-learn's stopping rule: ``n_iter_no_change + 1`` epochs in a row without an
    improvement of more than ``tol`` in the training loss or, with a validation set, in
    its score (the best weights are then kept, ``best_params``)."""

    def __init__(self, est, validation):
        self.est = est
        self.validation = validation  # a callable that scores the weights, or None
        self.best_params = None  # a copy of the best epoch's weights (validation only)

    def message(self):
        est = self.est
        if self.validation is not None:
            return ("Validation score did not improve more than tol=%f for %d "
                    "consecutive epochs." % (est.tol, est.n_iter_no_change))
        return ("Training loss did not improve more than tol=%f for %d consecutive "
                "epochs." % (est.tol, est.n_iter_no_change))

    def update(self, params):
        """After an epoch: count it as an improvement or not (scikit-learn's
        ``_update_no_improvement_count``); ``params`` are the epoch's weights."""
        est = self.est
        if self.validation is not None:
            score = self.validation()
            est.validation_scores_.append(score)
            if est.verbose:
                print("Validation score: %f" % score)
            if score < est.best_validation_score_ + est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if score > est.best_validation_score_:
                est.best_validation_score_ = score
                self.best_params = params.copy()
        else:
            loss = est.loss_curve_[-1]
            if loss > est.best_loss_ - est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if loss < est.best_loss_:
                est.best_loss_ = loss

    def stop(self, opt):
        """Whether the rule fired and the optimizer says stop (SGD's adaptive rate is
        divided by 5 instead, and the count starts again)."""
        est = self.est
        if est._no_improvement_count <= est.n_iter_no_change:
            return False
        if opt.trigger_stopping(self.message(), est.verbose):
            return True
        est._no_improvement_count = 0
        return False


def train(est, trainer, bufs, data, net, opt, hyper_at, stopping, incremental,
          hooks=(), begin=None):
    """The epochs of one fit (one, for ``partial_fit``: ``incremental``) on ``trainer``.

    ``hyper_at(lr)`` makes the kernels' hyperparameters at the optimizer's current rate;
    ``hooks`` are called as ``hook(est)`` after each epoch's bookkeeping and stopping
    count (the weights then readable in ``bufs.params``); one that returns True stops the
    fit. ``begin(est)``, if given, is called before each epoch. Ctrl-C stops the fit with
    scikit-learn's warning. Returns nothing: the results are in ``bufs`` and in ``est``'s
    attributes.
    """
    n = data.perm.size
    sizer = CallSizer(data.batch_size, net.n_coefs)
    hyper_at = functools.lru_cache(maxsize=1)(hyper_at)  # (made again when the rate changes)
    try:
        with trainer.session(bufs):
            est.n_iter_ = 0
            for _ in range(est.max_iter):
                if begin is not None:
                    begin(est)
                if est.shuffle:
                    # scikit-learn's utils.shuffle(sample_idx, random_state=rs), i.e.
                    # resample(replace=False): the same draw, without its checks
                    order = np.arange(n)
                    est._random_state.shuffle(order)
                    data = Batches(data.X, data.Y, data.sw, data.perm[order],
                                   data.batch_size)  # (_replace: 3x the time)
                total, opt.t = run_epoch(trainer, sizer, bufs, data, net,
                                         hyper_at(opt.learning_rate), opt.t)
                est.n_iter_ += 1
                est.loss_ = total / n
                est.t_ += n
                est.loss_curve_.append(est.loss_)
                if est.verbose:
                    print("Iteration %d, loss = %.8f" % (est.n_iter_, est.loss_))
                if stopping.validation is not None or hooks:
                    trainer.publish()  # (two threads) the weights, for the score
                stopping.update(bufs.params)
                opt.iteration_ends(est.t_)
                asked = any([bool(hook(est)) for hook in hooks])
                if stopping.stop(opt) or asked or incremental:
                    break
                if est.n_iter_ == est.max_iter:
                    warnings.warn(
                        "Stochastic Optimizer: Maximum iterations (%d) reached and the "
                        "optimization hasn't converged yet." % est.max_iter,
                        ConvergenceWarning,
                    )
    except KeyboardInterrupt:
        warnings.warn("Training interrupted by user.")
    finally:
        trainer.close()  # (two threads) the helper thread
