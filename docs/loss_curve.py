"""Makes docs/loss-curve.png (README, "Validation curves"): python docs/loss_curve.py"""
import matplotlib

matplotlib.use("Agg")
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import fastbp  # noqa: E402

X, y = load_digits(return_X_y=True)
X_train, X_val, y_train, y_val = train_test_split(X / 16, y, test_size=0.5, random_state=0)
clf = fastbp.MLPClassifier(hidden_layer_sizes=(100,), learning_rate_init=0.01, alpha=0,
                           early_stopping=True, n_iter_no_change=30, random_state=0)
clf.fit(X_train, y_train, X_val=X_val, y_val=y_val)
display = fastbp.LossCurveDisplay.from_estimator(clf)
display.figure_.set_size_inches(7, 4)
display.figure_.tight_layout()
display.figure_.savefig("docs/loss-curve.png", dpi=100)
print(clf.n_iter_, clf.best_validation_score_)
