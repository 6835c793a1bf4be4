"""scikit-learn's callbacks (``sklearn.callback``: ``ProgressBar``, ``ScoringMonitor``,
your own ``FitCallback``) over fastbp's fits, set with ``est.set_callbacks(...)``.

The task tree of one fit or ``partial_fit`` call: the root task ``fit`` (begun after the
input is validated, ended when the model is final) and under it one task per epoch
(``epoch``: the stochastic solvers; one for ``partial_fit``) or per L-BFGS iteration
(``lbfgs-iter``, as scikit-learn's ``LogisticRegression`` names and counts them: the
last task, begun for an iteration scipy did not run, ends empty). An epoch's hooks get
the rows it trains on (after early stopping's split), their targets as ``score`` takes
them, ``metadata={'sample_weight': ...}`` when there are weights, and, where a hook asks
for it, ``fitted_estimator``: a copy of the estimator holding a copy of the weights at
that point (for ``on_fit_task_end`` of an epoch: its last weights, not early stopping's
best). A hook's ``on_fit_task_end`` returning True ends the fit after that epoch or
iteration, without a ConvergenceWarning.

Without callbacks none of this runs but the root task's two calls (no per-epoch work).
"""

import numpy as np

from ._layout import coef_views, intercept_views


def active(est):
    """Whether ``est`` has callbacks (set on it, or propagated by a meta-estimator)."""
    return bool(getattr(est, "_skl_callbacks", None))


class TrainingRows:
    """The hooks' ``X``, ``y`` (a callable: made only if a hook asks) and ``metadata``."""

    def __init__(self, X, y, sample_weight):
        self.X, self.y = X, y
        self.metadata = None if sample_weight is None else {"sample_weight": sample_weight}

    def hook_args(self):
        return {"X": self.X, "y": self.y, "metadata": self.metadata}


def fitted_with(est, params):
    """``reconstruction_attributes``: the estimator with a copy of ``params`` (flat) as
    its weights, in its dtype, with ``coefs_`` / ``intercepts_`` as views of the copy."""
    flat = np.array(params, dtype=est._flat.dtype)
    return {"_flat": flat, "coefs_": coef_views(flat, est._layout),
            "intercepts_": intercept_views(flat, est._layout)}


class _Tasks:
    """Subtasks of the fit's root task, one open at a time."""

    name = ""

    def __init__(self, est, rows):
        self.est, self.rows = est, rows
        self.root = est._callback_fit_ctx
        self.task = None

    def begin(self, params):
        self.task = self.root.subcontext(task_name=self.name)
        self.task.call_on_fit_task_begin(
            estimator=self.est, **self.rows.hook_args(),
            reconstruction_attributes=lambda: fitted_with(self.est, params))

    def end(self, params):
        """End the open task with the weights ``params``; True if a callback says stop."""
        task, self.task = self.task, None
        return task.call_on_fit_task_end(
            estimator=self.est, **self.rows.hook_args(),
            reconstruction_attributes=lambda: fitted_with(self.est, params))

    def close(self):
        """End a task left open (an epoch cut short by Ctrl-C or an error, or L-BFGS's
        last), as an empty task."""
        if self.task is not None:
            task, self.task = self.task, None
            task.call_on_fit_task_end(estimator=self.est)


class EpochTasks(_Tasks):
    """One task per epoch of ``_loop.train``: ``begin`` before it, ``end`` (an epoch
    hook) after it; ``params`` is the live flat buffer the epochs update."""

    name = "epoch"

    def __init__(self, est, params, rows):
        super().__init__(est, rows)
        self.params = params

    def begin(self, est):  # noqa: D102 (the loop's signature)
        super().begin(self.params)

    def end(self, est):  # noqa: D102
        return super().end(self.params)


class LbfgsIterations(_Tasks):
    """scipy's ``callback(intermediate_result)`` for L-BFGS-B: after each iteration, the
    verbose line (``Iteration k, loss = ...``, as the stochastic solvers print it) and
    the callbacks' task of that iteration; a callback's stop request ends the
    minimisation (``StopIteration``, honoured by scipy >= 1.11)."""

    name = "lbfgs-iter"

    def __init__(self, est, x0, rows):
        super().__init__(est, rows)
        self.n_iter = 0
        self.stopped = False
        self.tasks = active(est)
        if self.tasks:
            self.begin(x0)

    def __call__(self, intermediate_result):
        self.n_iter += 1
        if self.est.verbose:
            print("Iteration %d, loss = %.8f" % (self.n_iter, intermediate_result.fun))
        if not self.tasks:
            return
        x = intermediate_result.x
        if self.end(x):
            self.stopped = True
            raise StopIteration
        self.begin(x)
