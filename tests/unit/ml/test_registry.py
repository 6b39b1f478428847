"""Model registry on a temporary directory, with models trained on seeded data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raytrader.ml.features import FeatureConfig
from raytrader.ml.registry import ModelNotFoundError, ModelRegistry, TrainingInfo
from raytrader.ml.training import TrainResult, TrainSpec, make_dataset, train

SPEC = TrainSpec(
    kind="xgboost",
    params={"n_estimators": 30},
    seed=5,
    features=FeatureConfig(vol_rank_window=50),
    cv_splits=3,
)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    from tests.conftest import make_gbm_frame

    return make_gbm_frame(500, seed=21)


@pytest.fixture(scope="module")
def trained(frame: pd.DataFrame) -> TrainResult:
    return train(frame, SPEC, symbol="GBM")


def test_save_list_load_predicts_as_before(
    tmp_path: Path, frame: pd.DataFrame, trained: TrainResult
) -> None:
    reg = ModelRegistry(tmp_path)
    other = train(frame, SPEC.model_copy(update={"kind": "logistic", "params": {}}))
    r1 = reg.save("momo", trained.model, trained.info)
    r2 = reg.save("momo", other.model, other.info)
    assert (r1.version, r2.version) == (1, 2)
    assert [(r.name, r.version, r.kind) for r in reg.list()] == [
        ("momo", 1, "xgboost"),
        ("momo", 2, "logistic"),
    ]
    assert reg.versions("momo") == [1, 2]
    assert reg.names() == ["momo"]

    X = make_dataset(frame, SPEC.features, SPEC.labels).X
    loaded = reg.load("momo", 1)
    assert np.array_equal(loaded.model.predict_proba(X), trained.model.predict_proba(X))
    assert loaded.record == r1
    latest = reg.load("momo")  # no version: the latest
    assert latest.record.version == 2
    assert np.array_equal(latest.model.predict_proba(X), other.model.predict_proba(X))


def test_metadata_json_beside_the_model(tmp_path: Path, trained: TrainResult) -> None:
    reg = ModelRegistry(tmp_path)
    reg.save("m", trained.model, trained.info)
    folder = tmp_path / "m" / "1"
    assert sorted(p.name for p in folder.iterdir()) == ["metadata.json", "model.joblib"]
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["features"][:2] == ["ret_1", "ret_5"]
    assert meta["params"]["n_estimators"] == 30
    assert meta["seed"] == 5
    assert meta["symbol"] == "GBM"
    assert meta["training_start"] < meta["training_end"]
    assert len(meta["data_hash"]) == 64
    assert set(meta["cv_metrics"]) == {"accuracy", "balanced_accuracy", "log_loss", "sharpe"}
    assert {"python", "numpy", "scikit-learn", "xgboost"} <= set(meta["library_versions"])
    assert meta["feature_config"]["vol_rank_window"] == 50
    importance = reg.feature_importance("m", 1)
    assert list(importance) == meta["features"]
    assert sum(importance.values()) == pytest.approx(1.0)


def test_delete_versions_then_name(tmp_path: Path, trained: TrainResult) -> None:
    reg = ModelRegistry(tmp_path)
    for _ in range(3):
        reg.save("a", trained.model, trained.info)
    reg.delete("a", 2)
    assert reg.versions("a") == [1, 3]
    # Numbers are never reused: the next save is 4, not 2.
    assert reg.save("a", trained.model, trained.info).version == 4
    for v in (1, 3, 4):
        reg.delete("a", v)
    assert reg.names() == []
    assert not (tmp_path / "a").exists()


def test_errors_name_the_missing_model_and_version(tmp_path: Path, trained: TrainResult) -> None:
    reg = ModelRegistry(tmp_path)
    reg.save("alpha", trained.model, trained.info)
    with pytest.raises(
        ModelNotFoundError, match=r"no model named 'beta' \(available: \['alpha'\]\)"
    ):
        reg.load("beta")
    with pytest.raises(
        ModelNotFoundError, match=r"model 'alpha' has no version 7 \(versions: \[1\]\)"
    ):
        reg.load("alpha", 7)
    with pytest.raises(ModelNotFoundError, match="version 3"):
        reg.delete("alpha", 3)
    with pytest.raises(ValueError, match=r"invalid model name '\.\./x'"):
        reg.save("../x", trained.model, trained.info)
    assert reg.list() == [reg.metadata("alpha")]


def test_incomplete_version_is_invisible_and_skipped(tmp_path: Path, trained: TrainResult) -> None:
    reg = ModelRegistry(tmp_path)
    (tmp_path / "m" / "1").mkdir(parents=True)  # a save that crashed before its metadata
    with pytest.raises(ModelNotFoundError):
        reg.versions("m")
    assert reg.save("m", trained.model, trained.info).version == 2
    assert reg.versions("m") == [2]


def test_default_root_is_under_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAYTRADER_DATA_DIR", str(tmp_path / "data"))
    assert ModelRegistry().root == tmp_path / "data" / "models"


def test_save_without_importances_keeps_them_empty(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    info = TrainingInfo(kind="custom", features=["x"])
    record = reg.save("plain", {"not": "a model"}, info)
    assert record.feature_importance == {}
    assert reg.load("plain").model == {"not": "a model"}


def test_train_is_reproducible(frame: pd.DataFrame, trained: TrainResult) -> None:
    again = train(frame, SPEC, symbol="GBM")
    assert again.info.data_hash == trained.info.data_hash
    assert again.info.cv_metrics == trained.info.cv_metrics
    pd.testing.assert_frame_equal(again.folds, trained.folds)
    shifted = train(frame.iloc[1:], SPEC)
    assert shifted.info.data_hash != trained.info.data_hash
