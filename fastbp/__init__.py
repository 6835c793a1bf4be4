"""fastbp: multilayer perceptrons trained by Numba kernels, behind scikit-learn's API.

``fastbp.MLPClassifier`` and ``fastbp.MLPRegressor`` are drop-in replacements for
scikit-learn 1.9's estimators of the same names. Layers, top down:

- ``_mlp``: the estimators (scikit-learn's contract: validation, initialisation,
  attributes, predict), with ``_validation`` (validation rows: loss and score per epoch)
  and ``_callbacks`` (scikit-learn's callback API);
- ``_display``: ``LossCurveDisplay``, the training curves drawn;
- ``_loop``: the stochastic solvers' epoch loop, kernel-call sizing, stopping rules;
- ``_threads``: whether a fit runs on one thread or two, and the two-thread driver;
- ``_kernels``: the layers' forward and backward operations and the kernels' entry
  points, over ``_activations``, ``_losses`` and ``_optim`` (one registry each),
  ``_blas`` (products on views), ``_sync`` (barriers) and ``_vmath`` (exp, tanh);
- ``_layout``: the flat parameter buffer and the kernels' argument groups;
- ``_export``, ``_onnx``: a fitted model to and from scikit-learn, and to ONNX
  (``register_skl2onnx`` teaches skl2onnx fastbp's estimators);
- ``_config``: Numba's options and the cache.
"""

from . import _config, _kernels
from ._display import LossCurveDisplay
from ._mlp import MLPClassifier, MLPRegressor
from ._onnx import register_skl2onnx

_config.drop_stale_cache(_kernels.train_epoch, _config.sources_digest())

__version__ = "0.1.0"

__all__ = ["LossCurveDisplay", "MLPClassifier", "MLPRegressor", "register_skl2onnx",
           "__version__"]
