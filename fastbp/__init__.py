"""fastbp: multilayer perceptrons trained by Numba kernels, behind scikit-learn's API.

``fastbp.MLPClassifier`` and ``fastbp.MLPRegressor`` are drop-in replacements for
scikit-learn 1.9's estimators of the same names. Layers: ``_kernels`` (Numba, the math),
``_layout`` (the flat parameter buffer), ``_mlp`` (the estimators).
"""

from ._mlp import MLPClassifier, MLPRegressor

__version__ = "0.1.0"

__all__ = ["MLPClassifier", "MLPRegressor", "__version__"]
