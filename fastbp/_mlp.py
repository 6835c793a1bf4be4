"""MLPClassifier and MLPRegressor: scikit-learn 1.9's estimators over fastbp's kernels.

Python owns validation, the random draws, the epoch loop, the stopping rules and the
fitted attributes; each epoch's minibatches run inside one kernel call (``train_epoch``),
chunked so that Ctrl-C is felt within a second. Every step mirrors scikit-learn's
``sklearn/neural_network/_multilayer_perceptron.py`` (1.9.1) so that, in float64 and with
the same ``random_state``, the fitted weights and loss curve agree with its to rounding.

One ``_fit(X, y, sample_weight, incremental)`` serves fit, partial_fit and warm_start:

    incremental  warm_start  fitted   parameters and optimizer
        0            0         any      new (initialised from random_state)
        0            1         no       new
        0            1         yes      kept; optimizer state new (as scikit-learn)
        1            any       no       new
        1            any       yes      kept; optimizer state kept (one epoch per call)
"""

import contextlib
import time
import warnings
from numbers import Integral, Real

import numpy as np
import scipy.optimize
import scipy.sparse as sp
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    RegressorMixin,
    _fit_context,
    is_classifier,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils._available_if import _AvailableIfDescriptor
from sklearn.utils.multiclass import (
    _check_partial_fit_first_call,
    type_of_target,
    unique_labels,
)
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from . import _kernels as K
from . import _split
from ._layout import (
    activation_offsets,
    aligned_empty,
    coef_views,
    intercept_views,
    make_layout,
    pack,
)

_STOCHASTIC_SOLVERS = ("sgd", "adam")

# A kernel call cannot be interrupted, so an epoch is split into calls of whole
# minibatches: at most _FLOPS_PER_CALL of matrix products each and, timed as the fit
# runs, about _SECONDS_PER_CALL of wall time (for small networks and small batches the
# per-minibatch overhead, not the flops, sets the time; on a loaded machine BLAS is
# slower than its flops say). The first call of a fit has at most _FIRST_CALL_BATCHES
# minibatches and is not timed (it may compile or load the kernel); each later call is
# sized from the one before, growing at most 8x. Where an epoch is split never changes
# the model. (10 Gflop is 0.05-0.2 s here; 1 Gflop split mnist-logistic-sgd-b64's epochs
# into 3 calls, and each call wakes the two-thread epoch's helper: 1 % of its time.)
_FLOPS_PER_CALL = 1e10
_SECONDS_PER_CALL = 0.1
_FIRST_CALL_BATCHES = 1024


class _OneThread:
    """The one-thread epoch (``_kernels.train_epoch``) behind ``_split.SplitTrainer``'s
    interface: a session, publish and close that have nothing to do."""

    def __call__(self, *args):
        return K.train_epoch(*args)  # (looked up per call: tests wrap it)

    @contextlib.contextmanager
    def session(self, params, state1, state2):
        yield

    def publish(self):
        pass

    def close(self):
        pass


def _next_call_batches(batches, rows_done, batch_size, seconds, max_batches):
    """Minibatches in the next kernel call, from the duration of the last one."""
    done = max(1, -(-rows_done // batch_size))
    target = int(_SECONDS_PER_CALL * done / seconds) if seconds > 0 else max_batches
    return max(1, min(target, 8 * batches, max_batches))

# Rows per block in prediction (the workspace is two blocks of the widest hidden layer).
_PREDICT_BLOCK_ROWS = 512


def _kernel_array(a, dtype=None):
    """``a`` as a C-contiguous, read-only array of ``dtype`` (a copy only when ``a`` is not
    one already). Kernel inputs are passed read-only always: to Numba a read-only array (a
    joblib memory map, a model loaded with mmap_mode='r') is another type, i.e. another
    compiled specialisation of every kernel."""
    a = np.ascontiguousarray(a, dtype=dtype).view()
    a.flags.writeable = False
    return a


def _binarize(lb, y):
    """``lb.transform(y).astype(bool)``, the classifier's targets. For 1-D labels of a
    binary or multiclass fit, all of them among ``lb.classes_`` (always so in ``fit``),
    the same array from a search of the sorted classes: 0.02-0.08 ms against
    ``label_binarize``'s 0.6-1.3 ms for 1,000-20,000 labels, 4 % of a small fit. Anything
    else goes to ``lb.transform``, with its checks and errors."""
    classes = lb.classes_
    if not (isinstance(y, np.ndarray) and y.ndim == 1 and classes.size >= 2
            and lb.y_type_ in ("binary", "multiclass") and not lb.sparse_output
            and lb.neg_label == 0 and lb.pos_label == 1):
        return lb.transform(y).astype(bool)
    try:
        idx = np.searchsorted(classes, y)
        known = np.array_equal(classes[np.minimum(idx, classes.size - 1)], y)
    except TypeError:  # labels that do not compare with the classes
        known = False
    if not known:
        return lb.transform(y).astype(bool)
    if lb.y_type_ == "binary":
        return (idx == 1)[:, None]
    Y = np.zeros((y.size, classes.size), dtype=bool)
    Y[np.arange(y.size), idx] = True
    return Y


def _writable(a):
    """``a``, or a private copy of it when it is read-only (the kernels update in place)."""
    return a if a.flags.writeable else np.array(a)


def _kernel_input(X, dtype):
    """X as the kernels take it: a C-contiguous array (no copy when it already is one), or
    a CSR matrix as the tuple ``(data, indices, indptr, rows)`` with ``rows = arange(n)``.

    A CSR matrix's structure is checked in full first: the kernels index W by
    ``indices`` without bounds checks, so a corrupt matrix must not reach them.
    """
    if not sp.issparse(X):
        return _kernel_array(X, dtype)
    X = X.tocsr()
    X.check_format(full_check=True)
    both32 = X.indices.dtype == np.int32 and X.indptr.dtype == np.int32
    index = np.int32 if both32 else np.int64
    return (
        _kernel_array(X.data, dtype),
        _kernel_array(X.indices, index),
        _kernel_array(X.indptr, index),
        np.arange(X.shape[0], dtype=np.int64),
    )


class _EarlyStoppingPartialFitError(AttributeError, ValueError):
    """partial_fit with early_stopping=True: hidden (AttributeError) and refused (ValueError)."""


class _OfferedIf(_AvailableIfDescriptor):
    """scikit-learn's ``available_if``, but the check's own error (an AttributeError
    that says why) reaches the caller instead of a generic "has no attribute"."""

    def _check(self, obj, owner):
        self.check(obj)  # raises when the method is not offered


def offered_if(check):
    return lambda fn: _OfferedIf(fn, check=check, attribute_name=fn.__name__)


class _Optimizer:
    """State of scikit-learn's SGDOptimizer / AdamOptimizer over the flat buffer.

    ``state1`` is SGD's velocity or Adam's first moment, ``state2`` Adam's second moment;
    ``learning_rate`` is the current rate for SGD (schedules change it between epochs);
    ``t`` counts Adam steps.
    """

    def __init__(self, est, size, dtype):
        self.solver = est.solver
        self.lr_schedule = est.learning_rate
        self.learning_rate_init = est.learning_rate_init
        self.learning_rate = float(est.learning_rate_init)
        self.power_t = est.power_t
        self.state1 = np.zeros(size, dtype=dtype)
        self.state2 = np.zeros(size if est.solver == "adam" else 0, dtype=dtype)
        self.t = 0

    def iteration_ends(self, time_step):
        """scikit-learn: the invscaling rate is updated at each epoch's end (SGD only)."""
        if self.solver == "sgd" and self.lr_schedule == "invscaling":
            self.learning_rate = (
                float(self.learning_rate_init) / (time_step + 1) ** self.power_t
            )

    def trigger_stopping(self, msg, verbose):
        """True to stop; SGD with the adaptive schedule divides the rate by 5 instead."""
        if self.solver == "adam" or self.lr_schedule != "adaptive":
            if verbose:
                print(msg + " Stopping.")
            return True
        if self.learning_rate <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.learning_rate /= 5.0
        if verbose:
            print(msg + " Setting learning rate to %f" % self.learning_rate)
        return False


class _BaseMLP(BaseEstimator):
    """Shared machinery of MLPClassifier and MLPRegressor (not for direct use)."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions({"identity", "logistic", "tanh", "relu"})],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [
            Interval(Integral, 1, None, closed="left"),
            Options(Real, {np.inf}),
        ],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
    }

    # ---- the flat buffer and its views --------------------------------------------------

    def _set_flat(self, flat):
        """Make ``flat`` the parameters; ``coefs_`` / ``intercepts_`` become its views."""
        self._flat = flat
        self.coefs_ = coef_views(flat, self._layout)
        self.intercepts_ = intercept_views(flat, self._layout)

    def _params(self):
        """The flat buffer, re-packed first if ``coefs_``/``intercepts_`` were replaced.

        The kernels read ``_flat``; a user who assigns new arrays to ``coefs_[i]`` (rather
        than writing into them) would otherwise be ignored silently.
        """
        flat = self._flat
        views = coef_views(flat, self._layout) + intercept_views(flat, self._layout)
        current = list(self.coefs_) + list(self.intercepts_)
        same = len(current) == len(views) and all(
            np.shape(a) == v.shape and np.may_share_memory(a, flat) for a, v in zip(current, views)
        )
        if not same:
            if len(current) != len(views) or any(
                np.shape(a) != v.shape for a, v in zip(current, views)
            ):
                raise ValueError(
                    "coefs_ and intercepts_ no longer match the network's layer sizes "
                    f"{list(self._layout.units)}."
                )
            self._set_flat(pack(self.coefs_, self.intercepts_, flat.dtype))
        return self._flat

    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: never drop the live attributes
        # views are rebuilt from _flat on load (pickle would store independent copies)
        state.pop("coefs_", None)
        state.pop("intercepts_", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "_layout" in state:  # mmap_mode loads give read-only arrays: copy the small ones
            self._layout = self._layout._make(
                _writable(a) if isinstance(a, np.ndarray) else a for a in self._layout
            )
        if "_flat" in state:
            self._set_flat(self._flat)

    # ---- initialisation -----------------------------------------------------------------

    def _initialize(self, y, layer_units, dtype):
        """Attributes and weights of a new fit, drawn exactly as scikit-learn draws them."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)
        if not is_classifier(self):
            self.out_activation_ = "exp" if self.loss == "poisson" else "identity"
        elif self._label_binarizer.y_type_ == "multiclass":
            self.out_activation_ = "softmax"
        else:
            self.out_activation_ = "logistic"

        self._layout = make_layout(layer_units)
        self._set_flat(np.empty(self._layout.size, dtype=dtype))
        # Glorot uniform, per layer W then b, drawn in float64 then cast (scikit-learn).
        factor = 2.0 if self.activation == "logistic" else 6.0
        for W, b in zip(self.coefs_, self.intercepts_):
            bound = np.sqrt(factor / (W.shape[0] + W.shape[1]))
            W[...] = self._random_state.uniform(-bound, bound, W.shape)
            b[...] = self._random_state.uniform(-bound, bound, b.shape[0])
        self._best_flat = self._flat.copy()  # (None: the live weights; _fit_stochastic)

        if self.solver in _STOCHASTIC_SOLVERS:
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _kernel_codes(self):
        loss = self.loss
        if loss == "log_loss" and self.out_activation_ == "logistic":
            loss = "binary_log_loss"
        return (
            K.ACTIVATION_CODES[self.activation],
            K.ACTIVATION_CODES[self.out_activation_],
            K.LOSS_CODES[loss],
        )

    # ---- fit ----------------------------------------------------------------------------

    def _fit(self, X, y, sample_weight=None, incremental=False):
        hidden_layer_sizes = self.hidden_layer_sizes
        if not hasattr(hidden_layer_sizes, "__iter__"):
            hidden_layer_sizes = [hidden_layer_sizes]
        hidden_layer_sizes = list(hidden_layer_sizes)
        if np.any(np.array(hidden_layer_sizes) <= 0):
            raise ValueError(
                "hidden_layer_sizes must be > 0, got %s." % hidden_layer_sizes
            )
        first_pass = not hasattr(self, "coefs_") or (
            not self.warm_start and not incremental
        )

        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        n_features = X.shape[1]
        self.n_outputs_ = y.shape[1]
        layer_units = [n_features] + hidden_layer_sizes + [self.n_outputs_]

        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(y, layer_units, X.dtype)
        elif list(self._layout.units) != layer_units:
            raise ValueError(
                f"The network has layer sizes {self._layout.units.tolist()}; this call asks "
                f"for {layer_units}. Refit with warm_start=False to change them."
            )

        # The kernels take one dtype: a model keeps the dtype it was first fitted in.
        flat = self._params()
        if not flat.flags.writeable:  # e.g. joblib.load(..., mmap_mode="r")
            self._set_flat(_writable(flat))
            flat = self._flat
        dtype = flat.dtype
        Y = _kernel_array(y, dtype)
        sw = None
        if sample_weight is not None:
            sw = _kernel_array(sample_weight, dtype)

        if self.solver in _STOCHASTIC_SOLVERS:
            self._fit_stochastic(X, Y, sw, incremental)
        else:
            self._fit_lbfgs(X, Y, sw)

        if not np.isfinite(self._flat).all():
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may"
                " contain large values and need to be preprocessed."
            )
        return self

    def _fit_lbfgs(self, X, Y, sw):
        """scipy's L-BFGS-B over the flat buffer; one kernel call per loss/gradient.

        A float32 model stays float32 (scipy works on a float64 copy of the vector, which
        is cast back on every evaluation), where scikit-learn silently returns float64.
        """
        layout = self._layout
        flat = self._flat
        dtype = flat.dtype
        n = X.shape[0]
        X = _kernel_input(X, dtype)
        a_off, ws_size = activation_offsets(layout, n)
        acts = aligned_empty(ws_size, dtype)  # (aligned: two threads write their blocks)
        deltas = aligned_empty(ws_size, dtype)
        grads = np.empty(layout.size, dtype=dtype)
        if sw is None:
            sw = _kernel_array(np.ones(n, dtype=dtype))
        hidden, out_act, loss_code = self._kernel_codes()

        def loss_grad(x):
            flat[:] = x
            loss = K.loss_grad(grads, acts, deltas, flat, X, Y, sw, layout.units,
                               layout.w_off, layout.b_off, a_off, layout.n_coefs,
                               hidden, out_act, loss_code, float(self.alpha))
            return loss, grads.astype(np.float64)

        iprint = 1 if (self.verbose is True or self.verbose >= 1) else -1
        options = {"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol}
        try:  # scikit-learn passes iprint only to the scipy versions that still take it
            from sklearn.utils.fixes import _get_additional_lbfgs_options_dict

            options.update(_get_additional_lbfgs_options_dict("iprint", iprint))
        except ImportError:  # pragma: no cover - depends on the scikit-learn version
            pass
        opt_res = scipy.optimize.minimize(
            loss_grad, flat.astype(np.float64), method="L-BFGS-B", jac=True,
            options=options,
        )
        self.n_iter_ = _check_optimize_result("lbfgs", opt_res, self.max_iter)
        self.loss_ = opt_res.fun
        flat[:] = opt_res.x

    def _fit_stochastic(self, X, Y, sw, incremental):
        layout = self._layout
        dtype = self._flat.dtype
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = _Optimizer(self, layout.size, dtype)
        opt = self._optimizer
        opt.state1, opt.state2 = _writable(opt.state1), _writable(opt.state2)

        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        if early_stopping:
            # scikit-learn's split, same draws; stratified for single-output classifiers
            # stratify on the binarized labels as scikit-learn does (bool: its messages)
            stratify = Y.astype(bool) if is_classifier(self) and self.n_outputs_ == 1 else None
            arrays = (X, Y) if sw is None else (X, Y, sw)
            parts = train_test_split(
                *arrays,
                random_state=self._random_state,
                test_size=self.validation_fraction,
                stratify=stratify,
            )
            X_train, X_val, Y_train, Y_val = parts[:4]
            sw_train, sw_val = (None, None) if sw is None else parts[4:]
            if X_val.shape[0] < 2:
                raise ValueError(
                    "The validation set is too small. Increase 'validation_fraction' "
                    "or the size of your dataset."
                )
            y_val = Y_val
            if is_classifier(self):
                y_val = self._label_binarizer.inverse_transform(Y_val.astype(bool))
            elif y_val.shape[1] == 1:
                y_val = y_val.ravel()
        else:
            X_train, Y_train, sw_train = X, Y, sw
            X_val = y_val = sw_val = None

        n_samples, n_features = X_train.shape
        X_train = _kernel_input(X_train, dtype)
        Y_train = _kernel_array(Y_train)
        sw_train = _kernel_array(np.ones(n_samples, dtype=dtype) if sw_train is None
                                 else sw_train)
        sample_idx = np.arange(n_samples, dtype=np.int64)

        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn(
                    "Got `batch_size` less than 1 or larger than "
                    "sample size. It is going to be clipped"
                )
            batch_size = int(np.clip(self.batch_size, 1, n_samples))

        # Preallocated once per fit: workspace O(batch x sum of widths), gather buffers.
        a_off, ws_size = activation_offsets(layout, batch_size)
        acts = aligned_empty(ws_size, dtype)  # (aligned: two threads write their blocks)
        deltas = aligned_empty(ws_size, dtype)
        grads = np.empty(layout.size, dtype=dtype)
        xbuf = np.empty((batch_size, n_features if isinstance(X_train, np.ndarray) else 0),
                        dtype=dtype)
        ybuf = np.empty((batch_size, Y_train.shape[1]), dtype=dtype)
        swbuf = np.empty(batch_size, dtype=dtype)
        hidden, out_act, loss_code = self._kernel_codes()
        flops_per_batch = 6.0 * batch_size * float(layout.n_coefs)
        max_batches = max(1, int(_FLOPS_PER_CALL // flops_per_batch))
        batches_per_call = min(max_batches, _FIRST_CALL_BATCHES)
        timed = False  # the first call may compile: not a measure of the next ones
        flat = self._flat
        solver = K.SGD if self.solver == "sgd" else K.ADAM
        # one thread, or two each owning half of every hidden layer (_split.py)
        cuts = _split.plan(X_train, layout, batch_size)
        trainer = (_OneThread() if cuts is None else
                   _split.SplitTrainer(layout, cuts, dtype, batch_size, n_features))

        try:
            with trainer.session(flat, opt.state1, opt.state2):
                self.n_iter_ = 0
                for _ in range(self.max_iter):
                    if self.shuffle:
                        # scikit-learn's utils.shuffle(sample_idx, random_state=rs), i.e.
                        # resample(replace=False): the same draw, without its checks (half
                        # the time of a small epoch's Python overhead)
                        order = np.arange(n_samples)
                        self._random_state.shuffle(order)
                        sample_idx = sample_idx[order]

                    accumulated_loss = 0.0
                    first = 0
                    while first < n_samples:
                        last = min(first + batches_per_call * batch_size, n_samples)
                        started = time.perf_counter()
                        loss_sum, opt.t = trainer(
                            flat, grads, opt.state1, opt.state2, acts, deltas,
                            xbuf, ybuf, swbuf, X_train, Y_train, sw_train, sample_idx,
                            layout.units, layout.w_off, layout.b_off, a_off, layout.n_coefs,
                            first, last, batch_size, hidden, out_act, loss_code, solver,
                            float(self.alpha), float(opt.learning_rate),
                            float(self.momentum), bool(self.nesterovs_momentum),
                            float(self.beta_1), float(self.beta_2), float(self.epsilon),
                            opt.t,
                        )
                        accumulated_loss += loss_sum
                        if timed:
                            batches_per_call = _next_call_batches(
                                batches_per_call, last - first, batch_size,
                                time.perf_counter() - started, max_batches,
                            )
                        timed = True
                        first = last

                    self.n_iter_ += 1
                    self.loss_ = accumulated_loss / n_samples
                    self.t_ += n_samples
                    self.loss_curve_.append(self.loss_)
                    if self.verbose:
                        print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))

                    if early_stopping:
                        trainer.publish()  # (two threads) the weights, for the score
                    self._update_no_improvement_count(early_stopping, X_val, y_val,
                                                      sw_val)
                    opt.iteration_ends(self.t_)

                    if self._no_improvement_count > self.n_iter_no_change:
                        if early_stopping:
                            msg = (
                                "Validation score did not improve more than "
                                "tol=%f for %d consecutive epochs."
                                % (self.tol, self.n_iter_no_change)
                            )
                        else:
                            msg = (
                                "Training loss did not improve more than tol=%f"
                                " for %d consecutive epochs."
                                % (self.tol, self.n_iter_no_change)
                            )
                        if opt.trigger_stopping(msg, self.verbose):
                            break
                        self._no_improvement_count = 0

                    if incremental:
                        break

                    if self.n_iter_ == self.max_iter:
                        warnings.warn(
                            "Stochastic Optimizer: Maximum iterations (%d) "
                            "reached and the optimization hasn't converged yet."
                            % self.max_iter,
                            ConvergenceWarning,
                        )
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
        finally:
            trainer.close()  # (two threads) the helper thread

        if early_stopping:
            # Restore the best weights (views stay valid). scikit-learn restores by
            # aliasing (coefs_ = _best_coefs): its best weights are then the live ones,
            # updated in place by a warm-start refit until that refit finds a new best.
            # A refit that never does keeps its last weights; so here (None: live).
            if self._best_flat is not None:
                flat[:] = self._best_flat
            self._best_flat = None

    def _update_no_improvement_count(self, early_stopping, X_val, y_val, sw_val):
        if early_stopping:
            val_score = self._score(X_val, y_val, sample_weight=sw_val)
            self.validation_scores_.append(val_score)
            if self.verbose:
                print("Validation score: %f" % self.validation_scores_[-1])
            last_valid_score = self.validation_scores_[-1]
            if last_valid_score < (self.best_validation_score_ + self.tol):
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if last_valid_score > self.best_validation_score_:
                self.best_validation_score_ = last_valid_score
                self._best_flat = self._flat.copy()
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X and target(s) y.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
            The input data.
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The target values (class labels in classification, real numbers in
            regression).
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        self : object
            Returns a trained MLP model.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def _check_solver(self):
        """Whether partial_fit is offered: stochastic solvers without early stopping.

        With early_stopping=True scikit-learn offers partial_fit and then raises a
        ValueError; fastbp hides it (so scikit-learn's estimator checks and meta-estimators
        see no partial_fit), and the error is also a ValueError for code that catches one.
        """
        if self.solver not in _STOCHASTIC_SOLVERS:
            raise AttributeError(
                "partial_fit is only available for stochastic"
                " optimizers. %s is not stochastic." % self.solver
            )
        if self.early_stopping:
            raise _EarlyStoppingPartialFitError(
                "partial_fit does not support early_stopping=True"
            )
        return True

    # ---- predict ------------------------------------------------------------------------

    def _forward_pass_fast(self, X, check_input=True):
        """The output layer's activations for X, shape (n_samples, n_outputs)."""
        if check_input:
            # dtype="numeric", as scikit-learn's predict: strings are refused, not parsed
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        flat = self._params()
        dtype = np.result_type(X.dtype, flat.dtype)  # as numpy's X @ W would
        n = X.shape[0]
        X = _kernel_input(X, dtype)
        flat = _kernel_array(flat, dtype)
        layout = self._layout
        hidden, out_act, _ = self._kernel_codes()
        h_max = max([1] + [int(h) for h in layout.units[1:-1]])
        rows = max(1, min(_PREDICT_BLOCK_ROWS, n))
        buf_a = np.empty(rows * h_max, dtype=dtype)
        buf_b = np.empty(rows * h_max, dtype=dtype)
        out = np.empty((n, self.n_outputs_), dtype=dtype)
        K.predict_forward(out, X, flat, layout.units, layout.w_off, layout.b_off,
                          hidden, out_act, buf_a, buf_b)
        return out

    def _score_with_function(self, X, y, sample_weight, score_function):
        """Private score method without input validation."""
        y_pred = self._predict(X, check_input=False)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return score_function(y, y_pred, sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer Perceptron classifier, trained by fastbp's compiled kernels.

    A drop-in replacement for :class:`sklearn.neural_network.MLPClassifier` (1.9): the
    same parameters, attributes, methods and warnings, and in float64 with the same
    ``random_state`` the same model to rounding. See scikit-learn's documentation for
    every parameter; fastbp's differences are listed in its README.

    ``coefs_[i]`` and ``intercepts_[i]`` are views into one flat parameter vector.
    """

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun

    # scikit-learn stores loss="log_loss" as a hidden attribute of the classifier
    loss = "log_loss"

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=["csr", "csc"],
            multi_output=True,
            dtype=(np.float64, np.float32),
            reset=reset,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)

        # incremental  warm_start  classes_ defined  action
        #     0            0            0            define classes_
        #     0            1            0            define classes_
        #     0            0            1            redefine classes_
        #     0            1            1            check compat warm_start
        #     1            1            1            check compat warm_start
        #     1            0            1            check compat last fit
        if (not hasattr(self, "classes_")) or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same "
                        "classes as in the previous call to fit. Previously "
                        f"got {self.classes_}, `y` has {classes}"
                    )
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(
                    "`y` has classes not in `self.classes_`. "
                    f"`self.classes_` has {self.classes_}. 'y' has {classes}."
                )
        return X, _binarize(self._label_binarizer, y)

    def predict(self, X):
        """Predict using the multi-layer perceptron classifier.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y : ndarray, shape (n_samples,) or (n_samples, n_classes)
            The predicted classes.
        """
        check_is_fitted(self)
        return self._predict(X)

    def _predict(self, X, check_input=True):
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        return self._label_binarizer.inverse_transform(y_pred)

    def _score(self, X, y, sample_weight=None):
        return self._score_with_function(X, y, sample_weight, accuracy_score)

    @offered_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """Update the model with a single iteration over the given data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,)
            The target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.
        classes : array of shape (n_classes,), default=None
            Classes across all calls to partial_fit; required on the first call.

        Returns
        -------
        self : object
            Trained MLP model.
        """
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict_log_proba(self, X):
        """Return the log of probability estimates, ``log(predict_proba(X))``."""
        y_prob = self.predict_proba(X)
        return np.log(y_prob, out=y_prob)

    def predict_proba(self, X):
        """Probability estimates, shape (n_samples, n_classes), in ``classes_`` order."""
        check_is_fitted(self)
        y_pred = self._forward_pass_fast(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        if y_pred.ndim == 1:
            return np.vstack([1 - y_pred, y_pred]).T
        return y_pred

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer Perceptron regressor, trained by fastbp's compiled kernels.

    A drop-in replacement for :class:`sklearn.neural_network.MLPRegressor` (1.9), with
    ``loss`` in {'squared_error', 'poisson'}. See :class:`MLPClassifier`.
    """

    _parameter_constraints: dict = {
        **_BaseMLP._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson"})],
    }

    def __init__(
        self,
        loss="squared_error",
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
    ):
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun

    def predict(self, X):
        """Predict using the multi-layer perceptron model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The predicted values.
        """
        check_is_fitted(self)
        return self._predict(X)

    def _predict(self, X, check_input=True):
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        if y_pred.shape[1] == 1:
            return y_pred.ravel()
        return y_pred

    def _score(self, X, y, sample_weight=None):
        return self._score_with_function(X, y, sample_weight, r2_score)

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=["csr", "csc"],
            multi_output=True,
            y_numeric=True,
            dtype=(np.float64, np.float32),
            reset=reset,
        )
        if y.dtype.kind in "USV":  # scikit-learn 1.9 fails later with numpy's TypeError
            raise TypeError(
                f"MLPRegressor needs numeric targets; y has dtype {y.dtype}. Convert "
                "the targets to numbers first."
            )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    @offered_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Update the model with a single iteration over the given data.

        Not offered with ``solver='lbfgs'`` (scikit-learn's regressor offers it and then
        trains with the stochastic machinery; fastbp hides it, as for the classifier).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The input data.
        y : ndarray of shape (n_samples,)
            The target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        self : object
            Trained MLP model.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)
