"""The ``search:`` section of a training config: which model parameters to search, and how.

A search space names a model kind's hyperparameters; each is checked against the kind's
schema below (name, type, bounds) when the config is read, so a typo or an out-of-range value
is an error naming the field, not a failure in a worker.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from raytrader.backtesting.search_space import Dimension, SearchSpace
from raytrader.backtesting.sweep_config import SearchSpec

__all__ = [
    "PARAM_SCHEMAS",
    "ModelSearchSpec",
    "SearchObjective",
    "param_space",
]

# Mean CV metrics (``raytrader.ml.training.cross_validate``). ``sharpe`` is the mean of the
# folds' annualized Sharpe ratios of trading the predictions (long on P(up) > 0.5, short on
# P(down) > 0.5 if the spec's ``trading.allow_short``, else flat; net of ``trading.cost_bps``).
SearchObjective = Literal["log_loss", "accuracy", "balanced_accuracy", "sharpe"]


class _Params(BaseModel):
    """Bounds of a kind's searchable parameters (the defaults are only placeholders: a model
    takes ``DEFAULT_PARAMS`` for whatever is neither searched nor fixed)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class XGBoostParams(_Params):
    n_estimators: int = Field(200, ge=1, le=5000)
    max_depth: int = Field(3, ge=1, le=20)
    learning_rate: float = Field(0.05, gt=0, le=1)
    subsample: float = Field(0.8, gt=0, le=1)
    colsample_bytree: float = Field(0.8, gt=0, le=1)
    min_child_weight: float = Field(5.0, ge=0, le=1e4)
    gamma: float = Field(0.0, ge=0, le=1e4)
    reg_alpha: float = Field(0.0, ge=0, le=1e4)
    reg_lambda: float = Field(1.0, ge=0, le=1e4)


class LogisticParams(_Params):
    C: float = Field(0.1, gt=0, le=1e6)
    max_iter: int = Field(1000, ge=10, le=100_000)
    tol: float = Field(1e-4, gt=0, le=1)


class RandomForestParams(_Params):
    n_estimators: int = Field(200, ge=1, le=5000)
    max_depth: int = Field(6, ge=1, le=100)
    min_samples_leaf: int = Field(20, ge=1, le=100_000)
    min_samples_split: int = Field(2, ge=2, le=100_000)
    max_features: float = Field(1.0, gt=0, le=1)


class GradientBoostingParams(_Params):
    n_estimators: int = Field(150, ge=1, le=5000)
    max_depth: int = Field(3, ge=1, le=20)
    learning_rate: float = Field(0.05, gt=0, le=1)
    subsample: float = Field(0.8, gt=0, le=1)
    min_samples_leaf: int = Field(1, ge=1, le=100_000)


PARAM_SCHEMAS: dict[str, type[_Params]] = {
    "xgboost": XGBoostParams,
    "logistic": LogisticParams,
    "random_forest": RandomForestParams,
    "gradient_boosting": GradientBoostingParams,
}


def param_space(kind: str, space: dict[str, Dimension]) -> SearchSpace:
    """The searched dimensions of a model kind, checked against its schema."""
    if kind not in PARAM_SCHEMAS:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {list(PARAM_SCHEMAS)}")
    return SearchSpace(kind, space, {}, params_model=PARAM_SCHEMAS[kind])


class ModelSearchSpec(BaseModel):
    """Search a model's parameters, each trial scored by the same purged walk-forward CV as the
    training; the best is trained and saved. ``method`` grid visits every point; random and
    optuna (TPE) take ``n_trials`` seeded draws."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    space: dict[str, Dimension] = Field(min_length=1, max_length=10)
    method: Literal["grid", "random", "optuna"] = "grid"
    n_trials: int | None = Field(None, ge=1, le=10_000, description="random and optuna")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="random and optuna draws")
    objective: SearchObjective = Field(
        "log_loss",
        description="mean CV metric ranked (log_loss lower is better, else higher; sharpe: of "
        "trading the test folds' predictions, net of the spec's trading.cost_bps)",
    )
    top: int = Field(10, ge=1, le=1000, description="best trials kept in the model's metadata")
    workers: int | None = Field(None, ge=1, le=4096, description="parallel workers (all CPUs)")
    chunk_size: int | None = Field(None, ge=1, le=10_000, description="trials per task")

    @model_validator(mode="after")
    def _trials_given(self) -> Self:
        if self.method != "grid" and self.n_trials is None:
            raise ValueError(f"n_trials is required for method {self.method!r}")
        return self

    @property
    def direction(self) -> Literal["maximize", "minimize"]:
        return "minimize" if self.objective == "log_loss" else "maximize"

    @property
    def search(self) -> SearchSpec:
        return SearchSpec(method=self.method, n_trials=self.n_trials, seed=self.seed)

    def check(self, kind: str, fixed: dict[str, object]) -> SearchSpace:
        """The space of ``kind``; ``ValueError`` naming a bad dimension, a searched parameter
        that is also fixed, or a space with no valid point."""
        both = sorted(set(self.space) & set(fixed))
        if both:
            raise ValueError(f"{both} are both searched and fixed in params")
        space = param_space(kind, self.space)
        if self.method == "grid":
            space.grid()
        else:
            space.sample(1, self.seed)
        return space
