"""The validation rows of a stochastic fit: their loss after each epoch
(``validation_loss_curve_``) and, with early stopping, the score that decides when to
stop (the estimator's ``scoring``).

The rows are ``fit``'s ``X_val``, ``y_val``, ``sample_weight_val`` or, with
``early_stopping=True`` and no ``X_val``, scikit-learn's split of the training rows.
Each epoch makes one forward pass over them (``_forward_pass_fast``, the weights as the
epoch left them). The loss is the training loss's data term (``_losses.data_loss``,
weighted by ``sample_weight_val``, no L2 penalty): the number ``loss_curve_`` would show
for these rows, less the penalty. The default score (``scoring=None``) comes from the
same outputs, as scikit-learn's ``score`` computes it from its own forward pass
(accuracy, R²), so early stopping stops where scikit-learn's does.
"""

import math

import numpy as np
from sklearn.base import is_classifier
from sklearn.metrics import accuracy_score, r2_score

from ._losses import data_loss


class ValidationSet:
    """Validation rows: ``X`` (n_val, n_features) as predict takes it, ``Y`` (n_val,
    n_outputs_) as the kernels take the targets, ``y`` as ``score`` takes them,
    ``sample_weight`` (n_val,) float64 or None, and ``scorer`` (a scikit-learn scorer,
    or None for the estimator's ``scoring`` None or 'loss')."""

    def __init__(self, est, X, Y, y, sample_weight, scorer):
        from ._mlp import _kernel_array  # (the kernels' inputs: read-only, C order)

        self.X, self.y, self.sample_weight, self.scorer = X, y, sample_weight, scorer
        # the outputs' dtype: predict's, as NumPy's X @ W would give it
        dtype = np.result_type(X.dtype, est._flat.dtype)
        self.Y = _kernel_array(Y, dtype)
        n = Y.shape[0]
        self.sw = _kernel_array(np.ones(n) if sample_weight is None else sample_weight,
                                dtype)
        # A binary or multiclass fit's default score, accuracy, from class indices: the
        # labels predict would give are classes_[index] (LabelBinarizer's threshold 0.5,
        # or argmax), so the same equalities, averaged by the same np.average as
        # accuracy_score's, without its checks (0.4 ms, a third of a digits epoch).
        self.labels = None
        # (not for a fit with one class: predict gives it whatever the output)
        if (is_classifier(est) and est._label_binarizer.y_type_ in ("binary", "multiclass")
                and len(est.classes_) >= 2 and scorer is None):
            self.labels = Y[:, 0].astype(bool) if Y.shape[1] == 1 else Y.argmax(axis=1)

    def _loss(self, est, out):
        """The data loss of ``out``, NaN where the weights sum to zero."""
        try:
            loss, _ = data_loss(out, self.Y, self.sw, est._net().loss)
        except ZeroDivisionError:  # all weights zero (the fit itself may go on)
            return math.nan
        return float(loss)

    def _evaluate(self, est):
        """One forward pass: append the loss to ``est.validation_loss_curve_``; returns
        (loss, the output layer's activations)."""
        out = est._forward_pass_fast(self.X, check_input=False)
        loss = self._loss(est, out)
        est.validation_loss_curve_.append(loss)
        return loss, out

    def record(self, est):
        """The epoch hook without early stopping: the loss and the score recorded, never
        a request to stop."""
        est.validation_scores_.append(self.score(est))

    def score(self, est):
        """The early-stopping score (greater is better); records the loss too."""
        loss, out = self._evaluate(est)
        if est.scoring == "loss":
            return -loss
        if self.scorer is not None:
            kwargs = {} if self.sample_weight is None else {
                "sample_weight": self.sample_weight}
            return self.scorer(est, self.X, self.y, **kwargs)
        if self.labels is not None:
            pred = out[:, 0] > 0.5 if out.shape[1] == 1 else out.argmax(axis=1)
            return float(np.average(pred == self.labels, weights=self.sample_weight))
        score_function = accuracy_score if is_classifier(est) else r2_score
        return est._score_output(out, self.y, self.sample_weight, score_function)
