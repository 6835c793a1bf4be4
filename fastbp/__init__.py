"""fastbp: multilayer perceptrons trained by Numba kernels, behind scikit-learn's API.

``fastbp.MLPClassifier`` and ``fastbp.MLPRegressor`` are drop-in replacements for
scikit-learn 1.9's estimators of the same names. Layers: ``_kernels`` (Numba, the math),
``_layout`` (the flat parameter buffer), ``_mlp`` (the estimators).
"""

from . import _config, _kernels
from ._mlp import MLPClassifier, MLPRegressor

_config.drop_stale_cache(_kernels.train_epoch, _config.sources())

__version__ = "0.1.0"

__all__ = ["MLPClassifier", "MLPRegressor", "__version__"]
