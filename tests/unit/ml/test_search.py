"""Model search in-process: the space checked against the kind's schema, trials ranked by their
CV score, the best trained and saved with the search in its metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pydantic import ValidationError

from raytrader.ml.features import FeatureConfig
from raytrader.ml.registry import ModelRegistry
from raytrader.ml.search import SearchResult, search_local
from raytrader.ml.training import LabelConfig, TrainSpec, train
from tests.unit.ml._synthetic import ar1_frame

BASE: dict[str, Any] = {
    "kind": "logistic",
    "features": FeatureConfig(vol_rank_window=50, return_lags=(1, 2, 5)),
    "labels": LabelConfig(horizon=1),
    "cv_splits": 3,
}
GRID = {"space": {"C": {"values": [0.001, 0.1, 10.0]}}, "objective": "log_loss"}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return ar1_frame(900, 0.3, seed=5)


@pytest.fixture(scope="module")
def searched(frame: pd.DataFrame) -> tuple[TrainSpec, SearchResult]:
    spec = TrainSpec(**BASE, search=GRID)
    return spec, search_local(frame, spec)


@pytest.mark.parametrize(
    ("search", "params", "message"),
    [
        ({"space": {"depth": {"values": [1]}}}, {}, "logistic has no parameter 'depth'"),
        ({"space": {"C": {"values": [-1.0]}}}, {}, "C=-1.0 is out of bounds (> 0.0)"),
        ({"space": {"max_iter": {"values": [2.5]}}}, {}, "max_iter is an integer"),
        ({"space": {"C": {"values": [1.0]}}}, {"C": 2.0}, "['C'] are both searched and fixed"),
        ({"space": {"C": {"low": 0.1, "high": 1}}, "method": "random"}, {}, "n_trials"),
    ],
)
def test_bad_search_sections_name_the_problem(
    search: dict[str, Any], params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as err:
        TrainSpec(kind="logistic", params=params, search=search)
    assert message in str(err.value)


def test_grid_search_ranks_trials_by_their_cv_score(
    frame: pd.DataFrame, searched: tuple[TrainSpec, SearchResult]
) -> None:
    _, result = searched
    table = result.table
    assert sorted(table["C"]) == [0.001, 0.1, 10.0] and result.fits == 9
    assert list(table["log_loss"]) == sorted(table["log_loss"])  # lower is better
    assert result.best is not None and result.best["params"] == {"C": table["C"][0]}
    # A trial recomputed directly: train() with its params scores the same CV.
    row = table.iloc[-1]
    direct = train(frame, TrainSpec(**BASE, params={"C": row["C"]}))
    assert direct.info.cv_metrics["log_loss"] == pytest.approx(row["log_loss"], rel=1e-12)
    assert direct.info.cv_metrics["accuracy"] == pytest.approx(row["accuracy"], rel=1e-12)


def test_train_with_a_search_saves_the_best_and_records_the_search(
    frame: pd.DataFrame, searched: tuple[TrainSpec, SearchResult], tmp_path: Path
) -> None:
    spec, result = searched
    seen: list[tuple[int, int]] = []
    trained = train(frame, spec, progress=lambda d, t: seen.append((d, t)))
    assert trained.info.params["C"] == result.best["params"]["C"]  # type: ignore[index]
    assert trained.info.cv_metrics["log_loss"] == pytest.approx(result.best["value"])  # type: ignore[index]
    # 3 trials x 3 folds, then the best's 3 folds and the final fit.
    assert seen[-1] == (13, 13) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    record = ModelRegistry(tmp_path).save("searched", trained.model, trained.info)
    search = ModelRegistry(tmp_path).metadata("searched").search
    assert search is not None and search == record.search
    assert search["method"] == "grid" and search["trials"] == 3 and search["ran_on"] == "local"
    assert search["best"]["params"] == result.best["params"]  # type: ignore[index]
    assert [row["rank"] for row in search["top"]] == [1, 2, 3]


def test_a_training_config_file_carries_its_search_section(tmp_path: Path) -> None:
    # `raytrader train ml` reads the section with the rest of the spec: train() searches first.
    from raytrader.backtesting.config import ConfigError
    from raytrader.cli_train import load_train_config

    config = load_train_config(Path("configs/ml/s01_logistic_search.yaml"))
    search = config.spec().search
    assert search is not None and search.method == "grid" and list(search.space) == ["C"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\ndata: {bundled: universe_daily}\nkind: logistic\n"
        "search: {space: {C: {values: [0]}}}\n"
    )
    with pytest.raises(ConfigError, match=r"space\.C: C=0\.0 is out of bounds \(> 0\.0\)"):
        load_train_config(bad)
