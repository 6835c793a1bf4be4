"""``LossCurveDisplay``: a picture of a stochastic fit, in scikit-learn's Display
convention (``from_estimator`` makes and plots it; ``plot`` draws it again; the artists
are kept as ``ax_``, ``figure_``, ``lines_``). matplotlib is optional (``fastbp[plot]``).

Drawn against epochs 1..n: ``loss_curve_`` (training loss, with its L2 term) and
``validation_loss_curve_`` (the validation rows' data loss) on the left axis;
``validation_scores_`` (the early-stopping score) on a second, right axis.
"""

import numpy as np
from sklearn.utils._optional_dependencies import check_matplotlib_support


class LossCurveDisplay:
    """Training curves of a fitted fastbp estimator.

    Parameters
    ----------
    loss_curve : list of float
        The training loss after each epoch (``loss_curve_``).
    validation_loss_curve : list of float or None, default=None
        The validation loss after each epoch (``validation_loss_curve_``).
    validation_scores : list of float or None, default=None
        The validation score after each epoch (``validation_scores_``).
    estimator_name : str or None, default=None
        Shown in the title.

    Attributes
    ----------
    lines_ : dict of str -> matplotlib Line2D
        ``'loss'``, and ``'validation_loss'`` and ``'validation_score'`` when drawn.
    ax_ : matplotlib Axes
        The losses' axes.
    score_ax_ : matplotlib Axes or None
        The scores' axes (a twin of ``ax_``), when there are scores.
    figure_ : matplotlib Figure
    """

    def __init__(self, loss_curve, validation_loss_curve=None, validation_scores=None,
                 estimator_name=None):
        self.loss_curve = loss_curve
        self.validation_loss_curve = validation_loss_curve
        self.validation_scores = validation_scores
        self.estimator_name = estimator_name

    @classmethod
    def from_estimator(cls, estimator, *, ax=None, name=None):
        """Plot the curves of ``estimator`` (fitted with solver 'sgd' or 'adam')."""
        check_matplotlib_support(f"{cls.__name__}.from_estimator")
        curve = getattr(estimator, "loss_curve_", None)
        if curve is None:
            raise ValueError(
                f"{type(estimator).__name__} has no loss_curve_: fit it first, with a "
                "stochastic solver ('sgd' or 'adam'; 'lbfgs' records no curve)."
            )
        display = cls(curve, getattr(estimator, "validation_loss_curve_", None),
                      getattr(estimator, "validation_scores_", None),
                      type(estimator).__name__ if name is None else name)
        return display.plot(ax=ax)

    def plot(self, ax=None):
        """Draw the curves on ``ax`` (a new figure's axes when None); returns self."""
        check_matplotlib_support(f"{type(self).__name__}.plot")
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots()
        self.lines_ = {}
        epochs = np.arange(1, len(self.loss_curve) + 1)
        (self.lines_["loss"],) = ax.plot(epochs, self.loss_curve, label="training loss")
        if self.validation_loss_curve is not None:
            (self.lines_["validation_loss"],) = ax.plot(
                np.arange(1, len(self.validation_loss_curve) + 1),
                self.validation_loss_curve, label="validation loss")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        handles = list(self.lines_.values())
        self.score_ax_ = None
        if self.validation_scores is not None:
            self.score_ax_ = ax.twinx()
            (self.lines_["validation_score"],) = self.score_ax_.plot(
                np.arange(1, len(self.validation_scores) + 1), self.validation_scores,
                color="C2", linestyle="--", label="validation score")
            self.score_ax_.set_ylabel("validation score")
            handles.append(self.lines_["validation_score"])
        ax.legend(handles=handles, loc="center right")
        if self.estimator_name is not None:
            ax.set_title(self.estimator_name)
        self.ax_, self.figure_ = ax, ax.figure
        return self
