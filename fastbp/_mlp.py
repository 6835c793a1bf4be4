"""MLPClassifier and MLPRegressor: scikit-learn 1.9's estimators over fastbp's kernels.

The estimators own scikit-learn's contract: parameter and input validation, the random
draws, the early-stopping split, the fitted attributes and prediction. The epoch loop,
its kernel calls and the stopping rules are ``_loop``'s; the epochs run on one thread or
two (``_threads``), the math in ``_kernels``. Every step mirrors scikit-learn's
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

import operator
import warnings
import weakref
from numbers import Integral, Real
from typing import NamedTuple

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

from . import _kernels, _loop, _threads
from ._activations import ACTIVATIONS, HIDDEN
from ._activations import code as activation_code
from ._layout import (
    Batches,
    Buffers,
    aligned_empty,
    coef_views,
    intercept_views,
    make_layout,
    make_net,
    make_workspace,
    one_thread,
    pack,
)
from ._losses import code as loss_code
from ._optim import OPTIMIZERS, make_hyper

_STOCHASTIC_SOLVERS = tuple(OPTIMIZERS)

# Rows per block in prediction (the workspace is two blocks of the widest hidden layer).
_PREDICT_BLOCK_ROWS = 512

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))  # native byte order only


class _Ready(NamedTuple):
    """What the fast predict path (``_BaseMLP._forward_plain``) keeps between calls: the
    kernel's arguments, and ``key``, the objects they were made from. They hold while
    every object of the key is still the estimator's (the same object, ``is``): fit and
    set_params replace attributes, a hand-set ``coefs_[i] = array`` replaces an entry,
    and in-place updates (partial_fit, ``coefs_[i][...] = ...``) write into the very
    buffer ``flat`` views. Kept in ``_READY``, not on the estimator: predict must not
    change an estimator's ``__dict__`` (scikit-learn's check_dict_unchanged), and a copy
    or a pickle then never carries them."""

    key: tuple
    flat: np.ndarray  # read-only view of _flat
    net: object  # _layout.Net
    n_features: int
    n_outputs: int
    h_max: int
    n_coefs: int


# estimator -> its _Ready (entries go with their estimators)
_READY = weakref.WeakKeyDictionary()


def _predict_rows(kernel, out, X, flat, net, h_max, n_coefs):
    """``kernel(out, X, flat, net, buf_a, buf_b)`` (``predict_forward`` or
    ``predict_checked``) over all of X's rows: at once, or for a large dense X in chunks
    of rows that two threads take in turn (``_threads.run_chunks``), by the same rule for
    both kernels, so that the fast and the general path compute the same products. A
    chunk is a whole number of the kernel's blocks: the same blocks either way. Returns
    False when a call did (``predict_checked``: X is not finite), else True."""
    n = out.shape[0]

    def run(r0, r1):
        rows = max(1, min(_PREDICT_BLOCK_ROWS, r1 - r0))
        buf_a = np.empty(rows * h_max, dtype=out.dtype)
        buf_b = np.empty(rows * h_max, dtype=out.dtype)
        X_rows = X if r1 - r0 == n else X[r0:r1]
        return kernel(out[r0:r1], X_rows, flat, net, buf_a, buf_b) is not False

    if isinstance(X, np.ndarray) and _threads.predict_on_two(n, n_coefs):
        # at least 2 blocks a chunk, at most about 32 chunks
        chunk = _PREDICT_BLOCK_ROWS * max(2, n // (32 * _PREDICT_BLOCK_ROWS))
        return all(r is not False for r in _threads.run_chunks(run, n, chunk))
    return run(0, n)


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


class _BaseMLP(BaseEstimator):
    """Shared machinery of MLPClassifier and MLPRegressor (not for direct use)."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions({name for name in HIDDEN if ACTIVATIONS[name].sklearn})],
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
        factor = ACTIVATIONS[self.activation].glorot
        for W, b in zip(self.coefs_, self.intercepts_):
            bound = np.sqrt(factor / (W.shape[0] + W.shape[1]))
            W[...] = self._random_state.uniform(-bound, bound, W.shape)
            b[...] = self._random_state.uniform(-bound, bound, b.shape[0])

        if self.solver in _STOCHASTIC_SOLVERS:
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
                # scikit-learn's _best_coefs: a fit whose validation score never improves
                # (NaN) ends with the initial weights (taken by _fit_stochastic)
                self._initial_best = self._flat.copy()
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _net(self):
        """The kernels' ``Net``: the layout and the codes of the activations and loss."""
        loss = self.loss
        if loss == "log_loss" and self.out_activation_ == "logistic":
            loss = "binary_log_loss"
        return make_net(self._layout, activation_code(self.activation),
                        activation_code(self.out_activation_), loss_code(loss))

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
        layer_units = [X.shape[1]] + hidden_layer_sizes + [y.shape[1]]

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
        sw = None if sample_weight is None else _kernel_array(sample_weight, dtype)

        if self.solver in _STOCHASTIC_SOLVERS:
            self._fit_stochastic(X, Y, sw, incremental, sample_weight)
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
        team = one_thread(layout)
        ws = make_workspace(layout, n, 1, 0, dtype)  # (X is read in place)
        empty = np.empty(0, dtype=dtype)
        bufs = Buffers(flat, np.empty(layout.size, dtype=dtype), empty, empty)
        if sw is None:
            sw = _kernel_array(np.ones(n, dtype=dtype))
        net = self._net()
        alpha = float(self.alpha)

        def loss_grad(x):
            flat[:] = x
            loss = _kernels.loss_grad(team, bufs, ws, X, Y, sw, net, alpha)
            return loss, bufs.grads.astype(np.float64)

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

    def _early_stopping_split(self, X, Y, sw, sample_weight):
        """scikit-learn's split of the training rows for early stopping, same draws:
        (X_train, Y_train, sw_train), and a callable that scores the model on the rest.
        The score weighs the rows with ``sample_weight`` as given (float64), not with the
        kernels' copy ``sw`` in the model's dtype, as scikit-learn does: R² of float32
        weights can differ (0 against -2e16 with one weighted row)."""
        # stratified for single-output classifiers, on the binarized labels as
        # scikit-learn does (bool: its messages)
        stratify = Y.astype(bool) if is_classifier(self) and self.n_outputs_ == 1 else None
        arrays = (X, Y) if sw is None else (X, Y, sw, sample_weight)
        parts = train_test_split(*arrays, random_state=self._random_state,
                                 test_size=self.validation_fraction, stratify=stratify)
        X_train, X_val, Y_train, Y_val = parts[:4]
        sw_train, sw_val = (None, None) if sw is None else (parts[4], parts[7])
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
        return X_train, Y_train, sw_train, lambda: self._score(X_val, y_val, sw_val)

    def _batch_size(self, n_samples):
        """scikit-learn's batch size for ``n_samples`` training rows (warned if clipped)."""
        if self.batch_size == "auto":
            return min(200, n_samples)
        if self.batch_size > n_samples:
            warnings.warn(
                "Got `batch_size` less than 1 or larger than "
                "sample size. It is going to be clipped"
            )
        return int(np.clip(self.batch_size, 1, n_samples))

    def _fit_stochastic(self, X, Y, sw, incremental, sample_weight=None):
        layout = self._layout
        dtype = self._flat.dtype
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = OPTIMIZERS[self.solver](self, layout.size, dtype)
        opt = self._optimizer
        opt.moment1, opt.moment2 = _writable(opt.moment1), _writable(opt.moment2)

        validation = None
        if self.early_stopping:
            X, Y, sw, validation = self._early_stopping_split(X, Y, sw, sample_weight)
        n_samples = X.shape[0]
        batch_size = self._batch_size(n_samples)
        X = _kernel_input(X, dtype)
        data = Batches(X, _kernel_array(Y),
                       _kernel_array(np.ones(n_samples, dtype=dtype) if sw is None else sw),
                       np.arange(n_samples, dtype=np.int64), batch_size)
        # (gradients aligned to a cache line: the two-thread epoch's threads write blocks)
        bufs = Buffers(self._flat, aligned_empty(layout.size, dtype), opt.moment1,
                       opt.moment2)
        trainer = _threads.trainer(X, layout, batch_size, dtype)
        stopping = _loop.Stopping(self, validation)
        if validation is not None:  # (a warm-start refit: None, the live weights)
            stopping.best_params = self.__dict__.pop("_initial_best", None)
        _loop.train(self, trainer, bufs, data, self._net(), opt,
                    lambda lr: make_hyper(self, lr), stopping, incremental)
        if stopping.best_params is not None:
            # Restore the best weights (views stay valid). scikit-learn restores by
            # aliasing (coefs_ = _best_coefs): its best weights are then the live ones,
            # updated in place by a warm-start refit until that refit finds a new best.
            # A refit that never does keeps its last weights; so here (best_params None).
            self._flat[:] = stopping.best_params

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
        if dtype not in _FLOATS:  # long double X: the kernels compute in float64 at most
            dtype = np.dtype(np.float64)
        n = X.shape[0]
        X = _kernel_input(X, dtype)
        flat = _kernel_array(flat, dtype)
        h_max = max([1] + [int(h) for h in self._layout.units[1:-1]])
        out = np.empty((n, self.n_outputs_), dtype=dtype)
        _predict_rows(_kernels.predict_forward, out, X, flat, self._net(), h_max,
                      int(self._layout.n_coefs))
        return out

    # The fast path: a C-contiguous float ndarray of the right width. It checks what
    # validate_data would for such an X (fitted, 2-D, n_features_in_, no feature names to
    # compare, at least one row, finite, a float dtype) with a few attribute reads and one
    # pass over X inside the kernel, and returns None for anything else, which then takes
    # the general path above (check_is_fitted and validate_data, with their errors and
    # warnings). Both paths run the same kernel code on the same arrays: same outputs.

    def _ready_key(self):
        """The objects the kernel's arguments are made from (see ``_Ready``), or None
        when the estimator is not fitted as the fast path needs it."""
        d = self.__dict__
        try:
            coefs, intercepts = self.coefs_, self.intercepts_
            return (d["_flat"], d["_layout"], d["n_features_in_"], d["n_outputs_"],
                    d["out_activation_"], self.activation, self.loss, coefs, intercepts,
                    *coefs, *intercepts)
        except (AttributeError, KeyError, TypeError):
            return None

    def _ready_state(self):
        """The current ``_Ready``, rebuilt when any object of its key was replaced; None
        when the fast path does not apply to this estimator (not fitted; fitted with
        feature names, whose warning for an ndarray is validate_data's)."""
        if "feature_names_in_" in self.__dict__:
            return None
        key = self._ready_key()
        if key is None:
            return None
        try:
            ready = _READY.get(self)
        except TypeError:  # a subclass that is not hashable: nothing kept, but correct
            ready = None
        if (ready is not None and len(ready.key) == len(key)
                and all(map(operator.is_, ready.key, key))):
            return ready
        try:
            flat = self._params()  # re-packs hand-set coefs_
            key = self._ready_key()  # (re-packing replaces _flat and the views)
            units = [int(u) for u in self._layout.units]
            if (key is None or units[0] != self.n_features_in_
                    or units[-1] != self.n_outputs_ or flat.dtype not in _FLOATS):
                return None
            ready = _Ready(key, _kernel_array(flat), self._net(), units[0], units[-1],
                           max([1] + units[1:-1]), int(self._layout.n_coefs))
        except Exception:  # noqa: BLE001  (hand-set weights that do not fit, a bad
            return None  # activation...: the general path raises its own error, in order)
        try:
            _READY[self] = ready
        except TypeError:
            pass
        return ready

    def _forward_plain(self, X):
        """``_forward_pass_fast(X)`` for a plain X (see above), else None."""
        if (type(X) is not np.ndarray or X.ndim != 2 or not X.flags.c_contiguous
                or not X.flags.aligned or X.dtype not in _FLOATS):
            return None
        ready = self._ready_state()
        n = X.shape[0]
        if ready is None or n == 0 or X.shape[1] != ready.n_features:
            return None
        flat = ready.flat
        if X.dtype != flat.dtype:  # as the general path: both in the wider dtype
            if X.dtype.itemsize > flat.dtype.itemsize:
                flat = _kernel_array(flat, X.dtype)
            else:
                X = X.astype(flat.dtype)
        if X.flags.writeable:  # kernel inputs are read-only always (_kernel_array)
            X = X.view()
            X.flags.writeable = False
        out = np.empty((n, ready.n_outputs), dtype=flat.dtype)
        if not _predict_rows(_kernels.predict_checked, out, X, flat, ready.net,
                             ready.h_max, ready.n_coefs):
            return None  # NaN or infinity: the general path raises scikit-learn's error
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
        y_pred = self._forward_plain(X)
        if y_pred is None:
            check_is_fitted(self)
            return self._predict(X)
        return self._predict(X, y_pred=y_pred)

    def _predict(self, X, check_input=True, y_pred=None):
        if y_pred is None:
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
        y_pred = self._forward_plain(X)
        if y_pred is None:
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
        y_pred = self._forward_plain(X)
        if y_pred is None:
            check_is_fitted(self)
            return self._predict(X)
        return self._predict(X, y_pred=y_pred)

    def _predict(self, X, check_input=True, y_pred=None):
        if y_pred is None:
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
