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

"fitted" means ``coefs_`` exists, as in scikit-learn: weights assigned by hand (lists of
arrays, ``coefs_[i]`` of shape (units[i], units[i+1]), ``intercepts_[i]`` of units[i+1])
are trained on by the next partial_fit or warm-start fit (``_adopt_weights``), with a
new optimizer; the attributes a fit keeps beside them that are not set by hand get
scikit-learn's initial values (``_complete_fitted``).
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
from sklearn.callback import CallbackSupportMixin
from sklearn.metrics import accuracy_score, check_scoring, get_scorer_names, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_array, check_consistent_length, check_random_state, column_or_1d
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils._available_if import _AvailableIfDescriptor
from sklearn.utils.multiclass import (
    _check_partial_fit_first_call,
    type_of_target,
    unique_labels,
)
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from . import _callbacks, _export, _kernels, _loop, _onnx, _threads
from ._activations import ACTIVATIONS, HIDDEN
from ._activations import code as activation_code
from ._activations import keeps
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
from ._validation import ValidationSet

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


def _weight_units(coefs, intercepts):
    """The layer widths ``[F, H_1, ..., K]`` that ``coefs`` and ``intercepts`` (set by
    hand) describe, or a ValueError that says which array does not fit."""
    if not isinstance(coefs, (list, tuple)) or not isinstance(intercepts, (list, tuple)):
        raise ValueError(
            "coefs_ and intercepts_ must be lists of arrays; got "
            f"{type(coefs).__name__} and {type(intercepts).__name__}."
        )
    if not coefs or len(coefs) != len(intercepts):
        raise ValueError(
            "coefs_ and intercepts_ must hold one array per layer, as many of each; got "
            f"{len(coefs)} and {len(intercepts)}."
        )
    for name, arrays, ndim in (("coefs_", coefs, 2), ("intercepts_", intercepts, 1)):
        for i, a in enumerate(arrays):
            dtype = np.asarray(a).dtype
            if np.ndim(a) != ndim or dtype.kind not in "biuf" or np.size(a) == 0:
                raise ValueError(
                    f"{name}[{i}] must be a non-empty {ndim}-D array of real numbers; got "
                    f"shape {np.shape(a)}, dtype {dtype}."
                )
    units = [np.shape(coefs[0])[0]] + [np.shape(c)[1] for c in coefs]
    for i, (W, b) in enumerate(zip(coefs, intercepts)):
        if np.shape(W) != (units[i], units[i + 1]):
            raise ValueError(
                f"coefs_[{i}] has shape {np.shape(W)}: it follows a layer of {units[i]} "
                f"units, so it must have {units[i]} rows."
            )
        if np.shape(b) != (units[i + 1],):
            raise ValueError(
                f"intercepts_[{i}] has shape {np.shape(b)}; coefs_[{i}] has {units[i + 1]} "
                f"columns, so it must have shape ({units[i + 1]},)."
            )
    return [int(u) for u in units]


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


class _BaseMLP(CallbackSupportMixin, BaseEstimator):
    """Shared machinery of MLPClassifier and MLPRegressor (not for direct use)."""

    # fastbp's own options at their defaults, for models pickled before they existed
    # (each instance sets its own in __init__)
    dropout = 0.0
    dtype = None
    scoring = None

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(HIDDEN))],
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
        # fastbp's own options (keyword-only, after scikit-learn's; their defaults are
        # scikit-learn's model)
        "dropout": [Interval(Real, 0, 1, closed="left"), "array-like"],
        "dtype": "no_validation",  # checked in _model_dtype
        "scoring": [StrOptions(set(get_scorer_names()) | {"loss"}), callable, None],
    }

    # ---- fastbp's options, checked ------------------------------------------------------

    def _model_dtype(self):
        """The dtype the ``dtype`` parameter asks for, or None (scikit-learn's rule:
        float32 input trains in float32, anything else in float64)."""
        if self.dtype is None:
            return None
        try:
            dtype = np.dtype(self.dtype)
        except TypeError:
            dtype = None
        if dtype not in (np.float32, np.float64):
            raise ValueError(
                f"dtype must be None, np.float32 or np.float64; got {self.dtype!r}."
            )
        return dtype

    def _input_dtypes(self):
        """What ``validate_data`` converts X to: the dtype asked for, or either float."""
        dtype = self._model_dtype()
        return (np.float64, np.float32) if dtype is None else dtype

    def _dropout_rates(self, n_hidden):
        """Each hidden layer's dropout rate, (n_hidden,) float64, checked."""
        rates = np.asarray(self.dropout, dtype=np.float64) if not isinstance(
            self.dropout, str) else None
        if rates is None or rates.ndim > 1 or (rates.ndim == 1 and rates.size != n_hidden):
            raise ValueError(
                "dropout must be a rate in [0, 1) or one rate per hidden layer "
                f"({n_hidden} of them); got {self.dropout!r}."
            )
        if not ((rates >= 0) & (rates < 1)).all():  # (NaN fails too)
            raise ValueError(f"dropout rates must be in [0, 1); got {self.dropout!r}.")
        # (a writable copy: a read-only array would be another type to the kernels)
        return np.full(n_hidden, rates[()]) if rates.ndim == 0 else rates.copy()

    # ---- the flat buffer and its views --------------------------------------------------

    def _set_flat(self, flat):
        """Make ``flat`` the parameters; ``coefs_`` / ``intercepts_`` become its views."""
        self._flat = flat
        self.coefs_ = coef_views(flat, self._layout)
        self.intercepts_ = intercept_views(flat, self._layout)

    def _params(self):
        """The flat buffer, re-packed first if ``coefs_``/``intercepts_`` were replaced.

        The kernels read ``_flat``; a user who assigns new arrays to ``coefs_[i]`` (rather
        than writing into them) would otherwise be ignored silently. Weights set by hand
        before any fit (no flat buffer yet) are adopted (``_adopt_weights``).
        """
        if not hasattr(self, "_layout"):
            self._adopt_weights()
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

    def _adopt_weights(self):
        """Make ``coefs_`` / ``intercepts_`` set by hand (no fit yet) the parameters: check
        that they chain into a network, then copy them into a new flat buffer, float32
        if they all are, else float64 (the model's dtype from then on)."""
        units = _weight_units(self.coefs_, self.intercepts_)
        n_features = getattr(self, "n_features_in_", units[0])
        if n_features != units[0]:
            raise ValueError(
                f"coefs_[0] has {units[0]} rows, but n_features_in_ is {n_features}."
            )
        arrays = list(self.coefs_) + list(self.intercepts_)
        dtype = np.float32 if all(np.asarray(a).dtype == np.float32 for a in arrays) \
            else np.float64
        self._layout = make_layout(units)
        self._set_flat(pack(self.coefs_, self.intercepts_, dtype))
        self.n_features_in_ = units[0]
        self.n_layers_ = len(units)
        self.n_outputs_ = units[-1]

    def _complete_fitted(self, y):
        """Before a fit that goes on from the current weights: the attributes a fit keeps
        that are missing (weights set by hand, or a model from another solver) get the
        values ``_initialize`` gives them; those present are used as they are, as
        scikit-learn does (its worked-example test sets them by hand)."""
        out = self._output_activation()
        if getattr(self, "out_activation_", out) != out:
            raise ValueError(
                f"out_activation_ is {self.out_activation_!r}; this model's output layer "
                f"is {out!r}."
            )
        self.out_activation_ = out
        self.n_outputs_ = y.shape[1]
        missing = {"n_iter_": 0, "t_": 0}
        if self.solver in _STOCHASTIC_SOLVERS:
            missing.update(loss_curve_=[], _no_improvement_count=0)
            if self.early_stopping:
                missing.update(validation_scores_=[], best_validation_score_=-np.inf,
                               best_loss_=None)
            else:
                missing.update(best_loss_=np.inf, validation_scores_=None,
                               best_validation_score_=None)
        for name, value in missing.items():
            if not hasattr(self, name):
                setattr(self, name, value)

    # ---- initialisation -----------------------------------------------------------------

    def _initialize(self, y, layer_units, dtype):
        """Attributes and weights of a new fit, drawn exactly as scikit-learn draws them."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)
        self.out_activation_ = self._output_activation()

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
            self.validation_loss_curve_ = None  # a list once an epoch has validation rows
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

    def _output_activation(self):
        """The output layer's activation for this loss and these targets (scikit-learn's)."""
        if not is_classifier(self):
            return "exp" if self.loss == "poisson" else "identity"
        if self._label_binarizer.y_type_ == "multiclass":
            return "softmax"
        return "logistic"

    def _net(self):
        """The kernels' ``Net``: the layout and the codes of the activations and loss."""
        loss = self.loss
        if loss == "log_loss" and self.out_activation_ == "logistic":
            loss = "binary_log_loss"
        elif is_classifier(self) and loss == "squared_error":  # the seed's, ½‖y - a‖²
            loss = "half_squared_error_" + self.out_activation_
        return make_net(self._layout, activation_code(self.activation),
                        activation_code(self.out_activation_), loss_code(loss))

    # ---- fit ----------------------------------------------------------------------------

    def _fit(self, X, y, sample_weight=None, incremental=False, validation_data=None):
        """``validation_data``: fit's ``(X_val, y_val, sample_weight_val)``, or None."""
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

        rates = self._dropout_rates(len(hidden_layer_sizes))
        if self.solver == "lbfgs" and rates.any():
            raise ValueError(
                "dropout is for the stochastic solvers ('sgd', 'adam'): L-BFGS needs a "
                "deterministic objective. Use dropout=0.0 with solver='lbfgs'."
            )
        X, y, class_sw = self._validate_input(X, y, incremental, reset=first_pass)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
        if class_sw is not None:  # class_weight, as scikit-learn's classifiers apply it
            sample_weight = class_sw if sample_weight is None else sample_weight * class_sw
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        layer_units = [X.shape[1]] + hidden_layer_sizes + [y.shape[1]]

        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(y, layer_units, X.dtype)
        else:
            self._params()  # (adopts weights set by hand, checks replaced ones)
            if list(self._layout.units) != layer_units:
                raise ValueError(
                    f"The network has layer sizes {self._layout.units.tolist()}; this call "
                    f"asks for {layer_units}. Refit with warm_start=False to change them."
                )
            self._complete_fitted(y)

        # The kernels take one dtype: a model keeps the dtype it was first fitted in.
        flat = self._params()
        if not flat.flags.writeable:  # e.g. joblib.load(..., mmap_mode="r")
            self._set_flat(_writable(flat))
            flat = self._flat
        dtype = flat.dtype
        validation_rows = self._validation_rows(*(validation_data or (None,) * 3), dtype)
        Y = _kernel_array(y, dtype)
        sw = None if sample_weight is None else _kernel_array(sample_weight, dtype)

        stochastic = self.solver in _STOCHASTIC_SOLVERS
        root = self._init_callback_context(
            max_subtasks=(1 if incremental else self.max_iter) if stochastic
            else self.max_iter + 1)  # (+1: the L-BFGS bridge's last, empty task)
        rows = _callbacks.TrainingRows(X, lambda: self._targets_of(Y), sample_weight)
        root.call_on_fit_task_begin(estimator=self, **rows.hook_args())
        if stochastic:
            self._fit_stochastic(X, Y, sw, incremental, sample_weight, validation_rows,
                                 rates)
        else:
            self._fit_lbfgs(X, Y, sw, rows)

        if not np.isfinite(self._flat).all():
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may"
                " contain large values and need to be preprocessed."
            )
        root.call_on_fit_task_end(estimator=self, **rows.hook_args(),
                                  reconstruction_attributes={})
        return self

    def _targets_of(self, Y):
        """The targets as ``score`` takes them (class labels, or y of shape (n,) for one
        output) from the kernels' ``Y`` (n, n_outputs_)."""
        if is_classifier(self):
            return self._label_binarizer.inverse_transform(Y.astype(bool))
        return Y.ravel() if Y.shape[1] == 1 else Y

    def _validation_rows(self, X_val, y_val, sample_weight_val, dtype):
        """fit's validation set, checked: ``(X_val, Y_val, y_val, sample_weight_val)``
        with ``X_val`` in the model's ``dtype``, ``Y_val`` the targets as the kernels take
        them (n_val, n_outputs_) and ``y_val`` as ``score`` takes them; or None."""
        if X_val is None and y_val is None:
            if sample_weight_val is not None:
                raise ValueError("sample_weight_val is provided, but X_val and y_val "
                                 "were not provided.")
            return None
        if y_val is None:
            raise ValueError("X_val is provided, but y_val was not provided.")
        if X_val is None:
            raise ValueError("y_val is provided, but X_val was not provided.")
        if self.solver not in _STOCHASTIC_SOLVERS:
            raise ValueError(
                "X_val and y_val are used by the stochastic solvers ('sgd', 'adam'), "
                "once an epoch; solver='lbfgs' has no epochs to validate."
            )
        X_val = validate_data(self, X_val, accept_sparse=["csr", "csc"],
                              dtype=(np.float64, np.float32), reset=False)
        # in the model's dtype, and CSR (predict's layout) once rather than every epoch
        X_val = (X_val.tocsr() if sp.issparse(X_val) else X_val).astype(dtype, copy=False)
        y_val = check_array(y_val, ensure_2d=False, dtype=self._target_dtype,
                            ensure_all_finite=not is_classifier(self), input_name="y_val")
        if y_val.ndim == 2 and y_val.shape[1] == 1:
            y_val = column_or_1d(y_val, warn=True)
        check_consistent_length(X_val, y_val)
        Y_val = self._kernel_targets(y_val)
        if Y_val.shape[1] != self.n_outputs_:
            raise ValueError(f"y_val has {Y_val.shape[1]} outputs; the model has "
                             f"{self.n_outputs_}.")
        if sample_weight_val is not None:
            sample_weight_val = _check_sample_weight(sample_weight_val, X_val)
        return X_val, Y_val, y_val, sample_weight_val

    def _fit_lbfgs(self, X, Y, sw, rows):
        """scipy's L-BFGS-B over the flat buffer; one kernel call per loss/gradient.
        Each iteration ends in ``_callbacks.LbfgsIterations`` (the verbose line, the
        callbacks' tasks) when either is asked for; ``rows``: the callbacks' training rows.

        A float32 model stays float32 (scipy works on a float64 copy of the vector, which
        is cast back on every evaluation), where scikit-learn silently returns float64.
        """
        layout = self._layout
        flat = self._flat
        dtype = flat.dtype
        n = X.shape[0]
        X = _kernel_input(X, dtype)
        team = one_thread(layout)
        ws = make_workspace(layout, n, 1, 0, dtype,  # (X is read in place)
                            keeps(self.activation))
        empty = np.empty(0, dtype=dtype)
        bufs = Buffers(flat, np.empty(layout.size, dtype=dtype), empty, empty)
        if sw is None:
            sw = _kernel_array(np.ones(n, dtype=dtype))
        net = self._net()
        hyper = make_hyper(self, 0.0)

        def loss_grad(x):
            flat[:] = x
            loss = _kernels.loss_grad(team, bufs, ws, X, Y, sw, net, hyper)
            return loss, bufs.grads.astype(np.float64)

        iprint = 1 if (self.verbose is True or self.verbose >= 1) else -1
        options = {"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol}
        try:  # scikit-learn passes iprint only to the scipy versions that still take it
            from sklearn.utils.fixes import _get_additional_lbfgs_options_dict

            options.update(_get_additional_lbfgs_options_dict("iprint", iprint))
        except ImportError:  # pragma: no cover - depends on the scikit-learn version
            pass
        x0 = flat.astype(np.float64)
        iterations = None
        if self.verbose or _callbacks.active(self):
            iterations = _callbacks.LbfgsIterations(self, x0, rows)
        try:
            opt_res = scipy.optimize.minimize(
                loss_grad, x0, method="L-BFGS-B", jac=True, options=options,
                callback=iterations,
            )
        finally:
            if iterations is not None:
                iterations.close()
        if iterations is not None and iterations.stopped:  # a callback asked: no warning
            self.n_iter_ = opt_res.nit
        else:
            self.n_iter_ = _check_optimize_result("lbfgs", opt_res, self.max_iter)
        self.loss_ = opt_res.fun
        flat[:] = opt_res.x

    def _early_stopping_split(self, X, Y, sw, sample_weight):
        """scikit-learn's split of the training rows for early stopping, same draws:
        (X_train, Y_train, sw_train), and the validation rows as ``_validation_rows``
        gives them. The score weighs the rows with ``sample_weight`` as given (float64),
        not with the kernels' copy ``sw`` in the model's dtype, as scikit-learn does: R²
        of float32 weights can differ (0 against -2e16 with one weighted row)."""
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
        return X_train, Y_train, sw_train, (X_val, Y_val, self._targets_of(Y_val), sw_val)

    def _batch_size(self, n_samples):
        """scikit-learn's batch size for ``n_samples`` training rows (warned if clipped)."""
        if self.batch_size == "auto":
            return min(200, n_samples)
        if self.batch_size > n_samples:
            warnings.warn(
                "Got `batch_size` less than 1 or larger than "
                "sample size. It is going to be clipped"
            )
        return int(min(max(self.batch_size, 1), n_samples))  # (np.clip: 5 µs a fit)

    def _fit_stochastic(self, X, Y, sw, incremental, sample_weight, validation_rows,
                        rates):
        """The epochs of a fit (one for ``partial_fit``). ``validation_rows``: fit's
        ``X_val``... as ``_validation_rows`` checked them, or None (with early stopping,
        scikit-learn's split of X then gives them); ``rates``: the hidden layers'
        dropout rates."""
        layout = self._layout
        dtype = self._flat.dtype
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = OPTIMIZERS[self.solver](self, layout.size, dtype)
        opt = self._optimizer
        opt.moment1, opt.moment2 = _writable(opt.moment1), _writable(opt.moment2)

        if self.early_stopping and validation_rows is None:
            X, Y, sw, validation_rows = self._early_stopping_split(X, Y, sw, sample_weight)
        hooks = []
        validation = None
        if validation_rows is not None:
            scorer = (None if self.scoring in (None, "loss")
                      else check_scoring(self, self.scoring))
            valset = ValidationSet(self, *validation_rows, scorer)
            if getattr(self, "validation_loss_curve_", None) is None:
                self.validation_loss_curve_ = []
            if self.early_stopping:  # the score decides; its pass records the loss too
                validation = lambda: valset.score(self)  # noqa: E731
            else:  # recorded only
                if self.validation_scores_ is None:
                    self.validation_scores_ = []
                hooks.append(valset.record)
        n_samples = X.shape[0]
        batch_size = self._batch_size(n_samples)
        X_rows = X  # (for callbacks: the training rows as the estimator takes them)
        X = _kernel_input(X, dtype)
        data = Batches(X, _kernel_array(Y),
                       _kernel_array(np.ones(n_samples, dtype=dtype) if sw is None else sw),
                       np.arange(n_samples, dtype=np.int64), batch_size)
        # (gradients aligned to a cache line: the two-thread epoch's threads write blocks)
        bufs = Buffers(self._flat, aligned_empty(layout.size, dtype), opt.moment1,
                       opt.moment2)
        # dropout's masks: a seed drawn only when some rate is not 0 (the draws, and so
        # the model, are scikit-learn's without dropout)
        seed = int(self._random_state.randint(np.iinfo(np.int32).max)) if rates.any() else 0
        rates = rates if rates.any() else None
        trainer = _threads.trainer(X, layout, batch_size, dtype,
                                   keeps(self.activation) or rates is not None)
        stopping = _loop.Stopping(self, validation)
        if validation is not None:  # (a warm-start refit: None, the live weights)
            stopping.best_params = self.__dict__.pop("_initial_best", None)
        epochs = None
        if _callbacks.active(self):
            epochs = _callbacks.EpochTasks(self, bufs.params, _callbacks.TrainingRows(
                X_rows, lambda: self._targets_of(Y), sw))
            hooks.append(epochs.end)
        try:
            _loop.train(self, trainer, bufs, data, self._net(), opt,
                        lambda lr: make_hyper(self, lr, rates, seed), stopping,
                        incremental, hooks, begin=None if epochs is None else epochs.begin)
        finally:
            if epochs is not None:
                epochs.close()
        if stopping.best_params is not None:
            # Restore the best weights (views stay valid). scikit-learn restores by
            # aliasing (coefs_ = _best_coefs): its best weights are then the live ones,
            # updated in place by a warm-start refit until that refit finds a new best.
            # A refit that never does keeps its last weights; so here (best_params None).
            self._flat[:] = stopping.best_params

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, *, X_val=None, y_val=None,
            sample_weight_val=None):
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
        X_val : array-like or sparse matrix of shape (n_val, n_features), default=None
            Validation rows (fastbp's, stochastic solvers only). Each epoch, the model's
            loss on them is appended to ``validation_loss_curve_``. With
            ``early_stopping=True`` they are the early-stopping set, scored by
            ``scoring``, and X is not split (``validation_fraction`` is not used).
        y_val : array-like of shape (n_val,) or (n_val, n_outputs), default=None
            Their targets (labels among ``classes_`` for a classifier).
        sample_weight_val : array-like of shape (n_val,), default=None
            Their weights, in the validation loss and score.

        Returns
        -------
        self : object
            Returns a trained MLP model.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False,
                         validation_data=(X_val, y_val, sample_weight_val))

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
        if self._model_dtype() is not None:  # the dtype parameter: the model's own
            dtype = flat.dtype
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

    def _output(self, X):
        """The output layer's activations for X, as predict computes them: the fast path
        for a plain ndarray (``_forward_plain``), else ``check_is_fitted`` and the
        general path."""
        out = self._forward_plain(X)
        if out is None:
            check_is_fitted(self)
            out = self._forward_pass_fast(X)
        return out

    def _predict(self, X, check_input=True):
        """``predict`` without the fast path (``check_input=False``: X already valid)."""
        return self._predict_output(self._forward_pass_fast(X, check_input=check_input))

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
        if X.dtype != flat.dtype:  # as the general path: both in the wider dtype, or the
            # model's when the dtype parameter is set
            if X.dtype.itemsize > flat.dtype.itemsize and self.dtype is None:
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
        return self._score_output(self._forward_pass_fast(X, check_input=False), y,
                                  sample_weight, score_function)

    def _score_output(self, out, y, sample_weight, score_function):
        """``_score_with_function`` from the output layer's activations ``out``."""
        y_pred = self._predict_output(out)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return score_function(y, y_pred, sample_weight=sample_weight)

    # ---- weights out and in (``_export``, ``_onnx``) -------------------------------------

    def to_sklearn(self):
        """This fitted model as scikit-learn's estimator of the same kind.

        Returns
        -------
        est : sklearn.neural_network.MLPClassifier or MLPRegressor
            Fitted, with the same parameters, copies of the weights and fitted
            attributes, and the same predictions; it trains on with ``partial_fit`` or
            a warm-start ``fit`` (with a new optimizer). A ValueError says why when
            scikit-learn cannot represent the model (an activation it lacks, or one of
            fastbp's own options away from its default).
        """
        return _export.to_sklearn(self)

    @classmethod
    def from_sklearn(cls, sk_est):
        """A fitted fastbp estimator from a fitted scikit-learn one of the same kind.

        Parameters
        ----------
        sk_est : sklearn.neural_network.MLPClassifier or MLPRegressor (fitted)

        Returns
        -------
        est : MLPClassifier or MLPRegressor
            The same parameters, copies of the weights and fitted attributes, the same
            predictions; it trains on with ``partial_fit`` or a warm-start ``fit`` (with a
            new optimizer: scikit-learn's optimizer state is not carried over).
        """
        return _export.from_sklearn(cls, sk_est)

    def to_onnx(self, dtype=np.float32, *, target_opset=None):
        """This fitted model as an ONNX model (needs the ``onnx`` extra).

        Parameters
        ----------
        dtype : {np.float32, np.float64}, default=np.float32
            The type of the input ``X`` (shape (None, n_features)), of the weights and of
            the probabilities or predictions.
        target_opset : int, default=None
            The ONNX opset (13 or later; None: ``fastbp._onnx.DEFAULT_OPSET``).

        Returns
        -------
        model : onnx.ModelProto
            A classifier's outputs are ``label`` (N,) (N, K for multilabel) and
            ``probabilities`` (N, n_classes), a regressor's ``variable`` (N, n_outputs).
        """
        return _onnx.to_onnx(self, dtype, target_opset=target_opset)

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

    fastbp's own options and attributes (their defaults give scikit-learn's model):

    scoring : str, callable or None, default=None
        The score of the validation rows each epoch (``validation_scores_``, greater is
        better), which early stopping watches: None for ``score`` (accuracy; R² for the
        regressor), as scikit-learn; ``'loss'`` for minus the validation loss; or any
        scikit-learn scorer name or ``scorer(estimator, X, y)``.
    validation_loss_curve_ : list or None
        With validation rows (``fit``'s ``X_val``, or early stopping's split), the loss
        on them after each epoch: the training loss's data term, weighted by
        ``sample_weight_val``, without the L2 penalty. None without validation rows.
        ``validation_scores_`` is then recorded too, with or without early stopping.

    ``fit`` takes ``X_val``, ``y_val``, ``sample_weight_val``; ``set_callbacks`` takes
    scikit-learn's callbacks (``sklearn.callback``), with one task per epoch (per
    L-BFGS iteration); with ``solver='lbfgs'``, ``verbose`` prints the loss each
    iteration.
    """

    # (the same, for the classifier's; scikit-learn's stores loss="log_loss" too)
    loss = "log_loss"
    class_weight = None

    _parameter_constraints: dict = {
        **_BaseMLP._parameter_constraints,
        "loss": [StrOptions({"log_loss", "squared_error"})],
        "class_weight": [dict, list, StrOptions({"balanced"}), None],
    }

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
        loss="log_loss",
        class_weight=None,
        dropout=0.0,
        dtype=None,
        scoring=None,
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
        self.loss = loss
        self.class_weight = class_weight
        self.dropout = dropout
        self.dtype = dtype
        self.scoring = scoring

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=["csr", "csc"],
            multi_output=True,
            dtype=self._input_dtypes(),
            reset=reset,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        class_sw = self._class_sample_weight(y, incremental)

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
        return X, _binarize(self._label_binarizer, y), class_sw

    def _class_sample_weight(self, y, incremental):
        """The sample weights ``class_weight`` gives the labels y, or None: scikit-learn's
        ``compute_sample_weight`` (multilabel y: 'balanced' per label, or one dict per
        label, as its multi-output classifiers take them)."""
        if self.class_weight is None:
            return None
        if incremental and isinstance(self.class_weight, str):
            # as SGDClassifier.partial_fit: a batch's frequencies are not the data's
            raise ValueError(
                "class_weight '{0}' is not supported for partial_fit. In order to use "
                "'balanced' weights, use compute_class_weight('{0}', classes=classes, "
                "y=y). In place of y you can use a large enough sample of the full "
                "training set target to properly estimate the class frequency "
                "distributions. Pass the resulting weights as the class_weight "
                "parameter.".format(self.class_weight)
            )
        return compute_sample_weight(self.class_weight, y)

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
        return self._predict_output(self._output(X))

    def _predict_output(self, y_pred):
        """The classes predicted from the output layer's activations."""
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        return self._label_binarizer.inverse_transform(y_pred)

    # y_val: labels of any type (_validation_rows)
    _target_dtype = None

    def _kernel_targets(self, y_val):
        """``y_val``'s labels binarized as the training labels (n_val, n_outputs_)."""
        unknown = np.setdiff1d(unique_labels(y_val), self.classes_)
        if len(unknown):
            raise ValueError(
                f"y_val has classes not in `self.classes_`: {unknown}. `self.classes_` "
                f"has {self.classes_}."
            )
        return _binarize(self._label_binarizer, y_val)

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
        y_pred = self._output(X)
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
        dropout=0.0,
        dtype=None,
        scoring=None,
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
        self.dropout = dropout
        self.dtype = dtype
        self.scoring = scoring

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
        return self._predict_output(self._output(X))

    @staticmethod
    def _predict_output(y_pred):
        """The predictions from the output layer's activations."""
        if y_pred.shape[1] == 1:
            return y_pred.ravel()
        return y_pred

    # y_val: numbers (_validation_rows)
    _target_dtype = "numeric"

    def _kernel_targets(self, y_val):
        """``y_val`` as (n_val, n_outputs_)."""
        return y_val.reshape((-1, 1)) if y_val.ndim == 1 else y_val

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
            dtype=self._input_dtypes(),
            reset=reset,
        )
        if y.dtype.kind in "USV":  # scikit-learn 1.9 fails later with numpy's TypeError
            raise TypeError(
                f"MLPRegressor needs numeric targets; y has dtype {y.dtype}. Convert "
                "the targets to numbers first."
            )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y, None

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
