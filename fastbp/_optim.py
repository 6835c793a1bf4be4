"""The optimizers: one registry, each entry its state, hyperparameters, element update,
step-size rule and schedule (scikit-learn's ``_stochastic_optimizers``).

The kernels' side: ``update_range`` runs an optimizer's element update over a range of
the flat buffer (eq. 5), finishing the gradient from the raw sums in the same pass;
``step_size`` is its per-step rate. The estimator's side: ``OPTIMIZERS`` maps a solver
name to a schedule class that owns the state arrays and what happens between epochs.

Adding an optimizer (the recipe):

1. its code, and its element update ``_name_element`` beside ``_sgd_element`` (the
   state it keeps per parameter is ``moment1`` / ``moment2``, both the flat buffer's
   size; use them in that order);
2. its branch in ``update_range`` and, if its rate changes with the step count, in
   ``step_size``;
3. its hyperparameters in ``Hyper`` (the estimator fills them in ``make_hyper``);
4. a schedule class below (``moments``: how many state arrays; what happens at an
   epoch's end and when the stopping rule fires) and its row in ``OPTIMIZERS``;
5. its NumPy reference in ``tests/reference.py`` and a row in the update tests.
"""

from typing import NamedTuple

import numpy as np
from numba import njit

from ._config import JIT

SGD, ADAM = 0, 1


class Hyper(NamedTuple):
    """The optimizer's hyperparameters for one kernel call (``make_hyper``).

    solver : int (SGD, ADAM);  alpha : the L2 penalty;  lr : the learning rate now (SGD's
    schedules change it between epochs; Adam's base rate);  momentum, nesterov : SGD's;
    beta1, beta2, epsilon : Adam's;  dropout : (L - 1,) float64, each hidden layer's
    dropout rate, or empty (none);  seed : the dropout masks' (``_dropout``).
    """

    solver: int
    alpha: float
    lr: float
    momentum: float
    nesterov: bool
    beta1: float
    beta2: float
    epsilon: float
    dropout: np.ndarray = np.zeros(0)
    seed: int = 0


def make_hyper(est, lr, dropout=None, seed=0):
    """``Hyper`` of estimator ``est`` at learning rate ``lr`` (and the fit's dropout
    rates and seed), every field of one Python type always (a NumPy bool or int would
    be another compiled specialisation). L-BFGS's: the SGD code (it takes no step)."""
    opt = OPTIMIZERS.get(est.solver, SGDSchedule)
    rates = np.zeros(0) if dropout is None else np.ascontiguousarray(dropout, np.float64)
    return Hyper(opt.code, float(est.alpha), float(lr), float(est.momentum),
                 bool(est.nesterovs_momentum), float(est.beta_1), float(est.beta_2),
                 float(est.epsilon), rates, int(seed))


# ---------------------------------------------------------------------------------------
# Element updates. Each takes the raw sums left by the backward pass and finishes the
# gradient in its own loop: g = (sum + alpha θ) / S (weights) or sum / S (biases), one
# pass over the buffer instead of two.
# ---------------------------------------------------------------------------------------


@njit(**JIT)  # LLVM inlines it (Numba-level inline="always" measured 3% slower on clf-tiny)
def weight_gradient(total, w, alpha, inv_s):
    """One weight's gradient from its raw sum: ``(sum + alpha w) * (1/S)``."""
    return (total + alpha * w) * inv_s


@njit(**JIT)
def _sgd_element(params, velocity, i, g, mu, eta, nesterov):
    """Eq. (5a): ``v <- μ v - η g``; ``θ <- θ + (μ v - η g)`` (Nesterov) or ``θ + v``."""
    v = mu * velocity[i] - eta * g
    velocity[i] = v
    if nesterov:
        params[i] += mu * v - eta * g
    else:
        params[i] += v


@njit(**JIT)
def _adam_element(params, m, v, i, g, b1, c1, b2, c2, step, eps):
    """Eq. (5b): ``m <- β1 m + (1-β1) g``; ``v <- β2 v + (1-β2) g²``;
    ``θ <- θ - η_t m / (sqrt(v) + ε)`` (Kingma & Ba 2014, as scikit-learn's
    AdamOptimizer; step = -η_t)."""
    mi = b1 * m[i] + c1 * g
    vi = b2 * v[i] + c2 * (g * g)
    m[i] = mi
    v[i] = vi
    params[i] += step * mi / (np.sqrt(vi) + eps)


@njit(**JIT)
def sgd_update(params, velocity, grads, lo, mid, hi, hyper, S, lr):
    """Eq. (5a) on ``params[lo:hi]`` at rate ``lr``: ``[lo, mid)`` are weights (+ αθ in
    the gradient), ``[mid, hi)`` biases. (Bounds, not a flag: Numba compiles a function
    once per literal argument.)"""
    dt = params.dtype.type
    a = dt(hyper.alpha)
    inv_s = dt(1.0 / S)
    mu = dt(hyper.momentum)
    eta = dt(lr)
    nesterov = hyper.nesterov
    # views, indexed from 0: a loop from a runtime lo would keep Numba's negative-index
    # check per element and not vectorise (3x slower)
    p, v, g = params[lo:mid], velocity[lo:mid], grads[lo:mid]
    for i in range(p.size):
        _sgd_element(p, v, i, weight_gradient(g[i], p[i], a, inv_s), mu, eta, nesterov)
    p, v, g = params[mid:hi], velocity[mid:hi], grads[mid:hi]
    for i in range(p.size):
        _sgd_element(p, v, i, g[i] * inv_s, mu, eta, nesterov)


@njit(**JIT)
def adam_update(params, m, v, grads, lo, mid, hi, hyper, S, lr_t):
    """Eq. (5b) on ``params[lo:hi]`` with step size ``lr_t`` (``adam_step_size``);
    weights ``[lo, mid)``, biases ``[mid, hi)`` as in ``sgd_update``."""
    dt = params.dtype.type
    a = dt(hyper.alpha)
    inv_s = dt(1.0 / S)
    b1 = dt(hyper.beta1)
    c1 = dt(1.0 - hyper.beta1)
    b2 = dt(hyper.beta2)
    c2 = dt(1.0 - hyper.beta2)
    step = dt(-lr_t)
    eps = dt(hyper.epsilon)
    p, mm, vv, g = params[lo:mid], m[lo:mid], v[lo:mid], grads[lo:mid]  # (see sgd_update)
    for i in range(p.size):
        _adam_element(p, mm, vv, i, weight_gradient(g[i], p[i], a, inv_s),
                      b1, c1, b2, c2, step, eps)
    p, mm, vv, g = params[mid:hi], m[mid:hi], v[mid:hi], grads[mid:hi]
    for i in range(p.size):
        _adam_element(p, mm, vv, i, g[i] * inv_s, b1, c1, b2, c2, step, eps)


@njit(**JIT)
def update_range(bufs, lo, mid, hi, hyper, S, step):
    """Eq. (5) on ``[lo, hi)`` of the flat buffers ``bufs`` (``_layout.Buffers``): weights
    ``[lo, mid)``, biases ``[mid, hi)``, at the step's rate (``step_size``); S is the
    minibatch's rows or weight sum."""
    if hyper.solver == SGD:
        sgd_update(bufs.params, bufs.moment1, bufs.grads, lo, mid, hi, hyper, S, step)
    else:
        adam_update(bufs.params, bufs.moment1, bufs.moment2, bufs.grads, lo, mid, hi,
                    hyper, S, step)


@njit(**JIT)
def adam_step_size(lr, beta1, beta2, t):
    """Eq. (5b): ``η_t = η sqrt(1 - β2^t) / (1 - β1^t)`` in float64, for step t >= 1."""
    return lr * np.sqrt(1.0 - beta2 ** float(t)) / (1.0 - beta1 ** float(t))


@njit(**JIT)
def step_size(hyper, t):
    """The next step's rate and the step count after it: SGD (lr, t + 1), Adam
    (η_{t+1}, t + 1). (SGD's rate does not depend on t; the dropout masks do.)"""
    if hyper.solver == SGD:
        return hyper.lr, t + 1
    return adam_step_size(hyper.lr, hyper.beta1, hyper.beta2, t + 1), t + 1


# ---------------------------------------------------------------------------------------
# The estimator's side: state arrays and schedules (scikit-learn's SGDOptimizer,
# AdamOptimizer).
# ---------------------------------------------------------------------------------------


class _Schedule:
    """An optimizer's state over the flat buffer of ``size`` parameters: ``moment1``,
    ``moment2`` (``moments`` of them in use, the others empty), the current learning
    rate and ``t``, the steps taken (Adam's bias correction counts them)."""

    code = None
    moments = 0

    def __init__(self, est, size, dtype):
        self.lr_schedule = est.learning_rate
        self.learning_rate_init = est.learning_rate_init
        self.learning_rate = float(est.learning_rate_init)
        self.power_t = est.power_t
        self.moment1 = np.zeros(size if self.moments >= 1 else 0, dtype=dtype)
        self.moment2 = np.zeros(size if self.moments >= 2 else 0, dtype=dtype)
        self.t = 0

    def iteration_ends(self, time_step):
        """Between epochs (``time_step``: samples seen)."""

    def trigger_stopping(self, msg, verbose):
        """True to stop when the stopping rule fires."""
        if verbose:
            print(msg + " Stopping.")
        return True


class SGDSchedule(_Schedule):
    """SGD with momentum: moment1 is the velocity. Schedules 'constant', 'invscaling'
    (the rate is updated at each epoch's end) and 'adaptive' (divided by 5 when the
    stopping rule fires, until it is 1e-6 or less)."""

    code = SGD
    moments = 1

    def iteration_ends(self, time_step):
        if self.lr_schedule == "invscaling":
            self.learning_rate = (
                float(self.learning_rate_init) / (time_step + 1) ** self.power_t
            )

    def trigger_stopping(self, msg, verbose):
        if self.lr_schedule != "adaptive":
            return super().trigger_stopping(msg, verbose)
        if self.learning_rate <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.learning_rate /= 5.0
        if verbose:
            print(msg + " Setting learning rate to %f" % self.learning_rate)
        return False


class AdamSchedule(_Schedule):
    """Adam: moment1, moment2 are m and v; the rate is constant."""

    code = ADAM
    moments = 2


OPTIMIZERS = {"sgd": SGDSchedule, "adam": AdamSchedule}
