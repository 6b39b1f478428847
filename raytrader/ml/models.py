"""Model factories: seeded scikit-learn pipelines around four classifier kinds.

Every estimator gets ``random_state=seed`` and runs single-threaded, so fitting the same data
twice gives bit-identical predictions (multi-threaded tree building may sum in another order).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import (  # type: ignore[import-untyped]
    BaseEstimator,
    ClassifierMixin,
    clone,
)
from sklearn.pipeline import Pipeline  # type: ignore[import-untyped]
from sklearn.preprocessing import LabelEncoder, StandardScaler  # type: ignore[import-untyped]

__all__ = [
    "DEFAULT_PARAMS",
    "MODEL_KINDS",
    "EncodedLabelClassifier",
    "ModelKind",
    "class_probabilities",
    "feature_importance",
    "make_model",
]

ModelKind = Literal["xgboost", "logistic", "random_forest", "gradient_boosting"]
MODEL_KINDS: tuple[str, ...] = get_args(ModelKind)

#: Defaults per kind: small, regularized models (financial labels are mostly noise).
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "xgboost": {
        "n_estimators": 200,
        "max_depth": 3,
        "learning_rate": 0.05,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "min_child_weight": 5.0,
    },
    "logistic": {"C": 0.1, "max_iter": 1000},
    "random_forest": {"n_estimators": 200, "max_depth": 6, "min_samples_leaf": 20},
    "gradient_boosting": {
        "n_estimators": 150,
        "max_depth": 3,
        "learning_rate": 0.05,
        "subsample": 0.8,
    },
}


class EncodedLabelClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Fits ``estimator`` on labels encoded as ``0..k-1`` (XGBoost's requirement) and answers
    in the original labels (-1, 0, 1)."""

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    def fit(self, X: Any, y: Any, **fit_params: Any) -> EncodedLabelClassifier:
        self.encoder_ = LabelEncoder().fit(y)
        self.classes_ = self.encoder_.classes_
        self.estimator_ = clone(self.estimator).fit(X, self.encoder_.transform(y), **fit_params)
        self.n_features_in_ = self.estimator_.n_features_in_
        return self

    def predict_proba(self, X: Any) -> npt.NDArray[np.float64]:
        proba: npt.NDArray[np.float64] = self.estimator_.predict_proba(X)
        return proba

    def predict(self, X: Any) -> npt.NDArray[Any]:
        out: npt.NDArray[Any] = self.classes_[np.argmax(self.predict_proba(X), axis=1)]
        return out

    @property
    def feature_importances_(self) -> npt.NDArray[np.float64]:
        values: npt.NDArray[np.float64] = self.estimator_.feature_importances_
        return values


def _estimator(kind: str, seed: int) -> Any:
    if kind == "xgboost":
        from xgboost import XGBClassifier

        xgb = XGBClassifier(random_state=seed, n_jobs=1, tree_method="hist", verbosity=0)
        return EncodedLabelClassifier(xgb)
    if kind == "logistic":
        from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

        return LogisticRegression(random_state=seed)
    if kind == "random_forest":
        from sklearn.ensemble import RandomForestClassifier  # type: ignore[import-untyped]

        return RandomForestClassifier(random_state=seed, n_jobs=1)
    if kind == "gradient_boosting":
        from sklearn.ensemble import GradientBoostingClassifier

        return GradientBoostingClassifier(random_state=seed)
    raise ValueError(f"unknown model kind {kind!r}; choose one of {list(MODEL_KINDS)}")


def make_model(kind: str, params: Mapping[str, Any] | None = None, seed: int = 0) -> Pipeline:
    """An unfitted pipeline: scaling (linear models only) then the classifier.

    ``params`` override ``DEFAULT_PARAMS[kind]``; an unknown name is a ``ValueError`` naming
    it (sklearn's ``set_params`` check).
    """
    estimator = _estimator(kind, seed)
    merged = {**DEFAULT_PARAMS[kind], **dict(params or {})}
    known = _param_names(estimator)
    unknown = sorted(set(merged) - known)
    if unknown:  # XGBoost would take any keyword and only warn at fit time
        raise ValueError(f"{kind}: unknown parameter(s) {unknown}; known: {sorted(known)}")
    if isinstance(estimator, EncodedLabelClassifier):
        merged = {f"estimator__{k}": v for k, v in merged.items()}
    estimator.set_params(**merged)
    steps: list[tuple[str, Any]] = []
    if kind == "logistic":  # trees are scale-free; the penalty is not
        steps.append(("scale", StandardScaler()))
    steps.append(("model", estimator))
    return Pipeline(steps)


def _param_names(estimator: Any) -> set[str]:
    if isinstance(estimator, EncodedLabelClassifier):
        return set(estimator.estimator.get_params(deep=False))
    return set(estimator.get_params(deep=False))


def class_probabilities(model: Any, X: pd.DataFrame) -> pd.DataFrame:
    """Predicted probabilities, one column per class label, indexed like ``X``."""
    proba = model.predict_proba(X)
    return pd.DataFrame(proba, index=X.index, columns=[_label(c) for c in model.classes_])


def _label(c: Any) -> int | str:
    return int(c) if isinstance(c, int | np.integer | float | np.floating) else str(c)


def feature_importance(model: Any, names: Sequence[str]) -> dict[str, float]:
    """Importance per feature, summing to 1: the trees' impurity/gain importances, or the
    mean absolute coefficient of a linear model (on standardized features)."""
    final = model[-1] if isinstance(model, Pipeline) else model
    if hasattr(final, "feature_importances_"):
        raw = np.asarray(final.feature_importances_, dtype=np.float64)
    elif hasattr(final, "coef_"):
        raw = np.abs(np.atleast_2d(final.coef_)).mean(axis=0)
    else:
        raise TypeError(f"{type(final).__name__} has no feature importances")
    if raw.shape[0] != len(names):
        raise ValueError(f"{raw.shape[0]} importances for {len(names)} feature names")
    total = float(raw.sum())
    scaled = raw / total if total > 0 else raw
    return {name: float(v) for name, v in zip(names, scaled, strict=True)}
