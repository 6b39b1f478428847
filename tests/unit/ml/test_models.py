"""Model factories: seeded, reproducible, every kind learns a learnable target."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raytrader.ml.models import (
    MODEL_KINDS,
    class_probabilities,
    feature_importance,
    make_model,
)

# Small models: the tests are about plumbing and determinism, not accuracy.
SMALL = {
    "xgboost": {"n_estimators": 40},
    "logistic": {},
    "random_forest": {"n_estimators": 30},
    "gradient_boosting": {"n_estimators": 30},
}


def _data(n: int = 400, seed: int = 7) -> tuple[pd.DataFrame, pd.Series]:
    """Three classes (-1, 0, 1) driven by feature ``a``; ``noise`` is irrelevant."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {"a": rng.normal(size=n), "b": rng.normal(size=n), "noise": rng.normal(size=n)}
    )
    score = X["a"] + 0.3 * X["b"] + 0.3 * rng.normal(size=n)
    y = pd.Series(np.where(score > 0.5, 1, np.where(score < -0.5, -1, 0)), index=X.index)
    return X, y


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_make_model_retrain_same_data_bit_identical(kind: str) -> None:
    X, y = _data()
    first = make_model(kind, SMALL[kind], seed=11).fit(X, y)
    second = make_model(kind, SMALL[kind], seed=11).fit(X, y)
    p1, p2 = first.predict_proba(X), second.predict_proba(X)
    assert np.array_equal(p1, p2)
    assert first.classes_.tolist() == [-1, 0, 1]
    assert set(np.unique(first.predict(X))) <= {-1, 0, 1}
    # Learned something: far above the ~1/3 of guessing.
    assert (first.predict(X) == y).mean() > 0.7


@pytest.mark.parametrize("kind", ["xgboost", "random_forest", "gradient_boosting"])
def test_make_model_seed_changes_randomized_models(kind: str) -> None:
    X, y = _data()
    a = make_model(kind, SMALL[kind], seed=1).fit(X, y).predict_proba(X)
    b = make_model(kind, SMALL[kind], seed=2).fit(X, y).predict_proba(X)
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_feature_importance_ranks_the_driving_feature_first(kind: str) -> None:
    X, y = _data()
    model = make_model(kind, SMALL[kind]).fit(X, y)
    imp = feature_importance(model, list(X.columns))
    assert set(imp) == {"a", "b", "noise"}
    assert sum(imp.values()) == pytest.approx(1.0)
    assert max(imp, key=imp.__getitem__) == "a"
    assert imp["noise"] < imp["a"]


def test_class_probabilities_columns_are_labels() -> None:
    X, y = _data()
    model = make_model("xgboost", SMALL["xgboost"]).fit(X, y)
    proba = class_probabilities(model, X.iloc[:5])
    assert list(proba.columns) == [-1, 0, 1]
    assert proba.index.equals(X.index[:5])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)


def test_make_model_params_override_and_errors() -> None:
    model = make_model("random_forest", {"n_estimators": 7, "max_depth": 2}, seed=3)
    rf = model[-1]
    assert (rf.n_estimators, rf.max_depth, rf.random_state, rf.n_jobs) == (7, 2, 3, 1)
    xgb = make_model("xgboost", {"max_depth": 2})[-1].estimator
    assert (xgb.max_depth, xgb.n_jobs, xgb.n_estimators) == (2, 1, 200)
    assert [name for name, _ in make_model("logistic").steps] == ["scale", "model"]
    with pytest.raises(ValueError, match="unknown model kind 'svm'"):
        make_model("svm")
    with pytest.raises(ValueError, match=r"random_forest: unknown parameter\(s\) \['n_trees'\]"):
        make_model("random_forest", {"n_trees": 5})
    with pytest.raises(ValueError, match=r"xgboost: unknown parameter\(s\) \['max_dept'\]"):
        make_model("xgboost", {"max_dept": 5})
