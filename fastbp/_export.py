"""To and from scikit-learn: a fitted fastbp estimator as scikit-learn's of the same
kind, and back.

Both directions copy the parameters (scikit-learn's and fastbp's arrays never share
memory) and the fitted state a later ``partial_fit`` or warm-start ``fit`` reads: the
public fitted attributes (``coefs_``, ``n_iter_``, ``loss_curve_``, ``classes_`` ...),
the classifier's ``_label_binarizer`` and the stopping count ``_no_improvement_count``.
The optimizer's state (``_optimizer``: Adam's moments, SGD's velocities) is not carried
over: the next ``partial_fit`` starts a new optimizer from the copied weights, as a
warm-start ``fit`` does in both libraries.
"""

import copy
import inspect

import numpy as np
from sklearn import neural_network
from sklearn.base import ClassifierMixin
from sklearn.neural_network._base import ACTIVATIONS as SKLEARN_ACTIVATIONS
from sklearn.utils.validation import check_is_fitted

from ._activations import ACTIVATIONS

# private attributes that a fit reads besides the public ones
_CARRIED = ("_label_binarizer", "_no_improvement_count")


def _sklearn_class(cls):
    return (neural_network.MLPClassifier if issubclass(cls, ClassifierMixin)
            else neural_network.MLPRegressor)


def _fitted_state(est):
    """Copies of ``est``'s fitted attributes: the public ones (names ending in ``_``) and
    ``_CARRIED``; arrays and lists of arrays copied, everything else deep-copied."""
    state = {}
    for name, value in vars(est).items():
        public = name.endswith("_") and not name.startswith("_") and not name.endswith("__")
        if not (public or name in _CARRIED):
            continue
        if name in ("coefs_", "intercepts_"):
            state[name] = [np.array(a) for a in value]
        else:
            state[name] = copy.deepcopy(value)
    return state


def _own_parameters(est, sk_class):
    """fastbp's parameters that scikit-learn's estimator lacks, with a value other than
    their default (which gives scikit-learn's model): {name: value}."""
    sk_names = set(sk_class().get_params(deep=False))
    signature = inspect.signature(type(est).__init__).parameters
    return {
        name: value for name, value in est.get_params(deep=False).items()
        if name not in sk_names and not _same(value, signature[name].default)
    }


def _same(a, b):
    try:
        return bool(a is b or a == b)
    except (TypeError, ValueError):  # arrays and the like: not a default
        return False


def to_sklearn(est):
    """``est`` (fitted) as a fitted ``sklearn.neural_network`` estimator of the same kind,
    with the same parameters, weights (copies) and predictions."""
    check_is_fitted(est)
    sk_class = _sklearn_class(type(est))
    est._params()  # weights replaced or set by hand: checked and packed first
    unknown = []
    if not ACTIVATIONS[est.activation].sklearn:
        unknown.append(f"activation={est.activation!r}")
    if est.out_activation_ not in SKLEARN_ACTIVATIONS:
        unknown.append(f"out_activation_={est.out_activation_!r}")
    unknown += [f"{k}={v!r}" for k, v in _own_parameters(est, sk_class).items()]
    if unknown:
        raise ValueError(
            f"scikit-learn's {sk_class.__name__} cannot represent this model: "
            f"{', '.join(unknown)} (scikit-learn has no such option). Only a model with "
            "scikit-learn's activations, and fastbp's own options at their defaults, can "
            "be exported."
        )
    sk_names = sk_class().get_params(deep=False)
    out = sk_class(**{k: v for k, v in est.get_params(deep=False).items() if k in sk_names})
    for name, value in _fitted_state(est).items():
        setattr(out, name, value)
    # scikit-learn's early stopping restores its best weights by aliasing (coefs_ =
    # _best_coefs), so that a warm-start refit that never finds a better score keeps its
    # last weights, as fastbp's does (_mlp._fit_stochastic): the same aliases here
    out._best_coefs, out._best_intercepts = out.coefs_, out.intercepts_
    return out


def from_sklearn(cls, sk_est):
    """A fitted ``cls`` (fastbp's) from a fitted scikit-learn estimator of the same kind:
    the same parameters and weights (copies), ready to predict or train on."""
    sk_class = _sklearn_class(cls)
    if not isinstance(sk_est, sk_class):
        raise TypeError(
            f"{cls.__name__}.from_sklearn takes a fitted sklearn.neural_network."
            f"{sk_class.__name__}; got {type(sk_est).__name__}."
        )
    check_is_fitted(sk_est)
    est = cls(**sk_est.get_params(deep=False))
    for name, value in _fitted_state(sk_est).items():
        setattr(est, name, value)
    out = est._output_activation()
    if est.out_activation_ != out:
        raise ValueError(
            f"The scikit-learn model's out_activation_ is {est.out_activation_!r}; "
            f"fastbp's {cls.__name__} with these parameters has {out!r}."
        )
    est._adopt_weights()  # checked and copied into the flat buffer
    return est
