"""``raytrader train ml`` with a search section: the trials run on a local Ray (the session's
runtime) through the sweep runner, resume from the state store when run again, and rank,
score and choose exactly as ``--in-process`` does; the best is trained and saved."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from raytrader.cli import app
from raytrader.ml.registry import ModelRegistry
from raytrader.orchestrator.sweep_runner import SWEEPS, trials_namespace
from raytrader.state.stores import open_store
from tests.unit.ml._synthetic import ar1_frame

runner = CliRunner()

CONFIG = """
    name: ar-searched
    data: {path: AR.parquet}
    kind: logistic
    features: {vol_rank_window: 50, return_lags: [1, 2, 5]}
    labels: {horizon: 1}
    cv_splits: 3
    trading: {cost_bps: 2}
    search:
      objective: sharpe
      chunk_size: 1
      space:
        C: {values: [0.0001, 0.01, 1.0]}
"""


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # The default store is SQLite in the data directory: this test's own.
    monkeypatch.setenv("RAYTRADER_DATA_DIR", str(tmp_path / "data"))
    ar1_frame(900, 0.3, seed=5).rename_axis("ts").to_parquet(tmp_path / "AR.parquet")
    path = tmp_path / "search.yaml"
    path.write_text(textwrap.dedent(CONFIG))
    return path


def _train(config: Path, registry: Path, *flags: str) -> dict[str, Any]:
    result = runner.invoke(app, ["train", "ml", str(config), "--registry", str(registry), *flags])
    assert result.exit_code == 0, result.output
    assert "Search: top 3 of 3 by sharpe (higher is better)" in result.output
    assert "saved ar-searched version" in result.output
    search = ModelRegistry(registry).metadata("ar-searched").search
    assert search is not None
    return search


async def _stored(data_dir: Path, search_id: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    async with open_store(None, data_dir) as store:
        trials = await store.list_records(trials_namespace(search_id))
        return trials, await store.get_record(SWEEPS, search_id)


def test_search_on_ray_equals_in_process_and_resumes(
    ray_runtime: None, config: Path, tmp_path: Path
) -> None:
    on_ray = _train(config, tmp_path / "ray")
    local = _train(config, tmp_path / "local", "--in-process")

    assert on_ray["ran_on"] == "ray" and local["ran_on"] == "local"
    assert on_ray["ran"] == 3 and on_ray["resumed"] == 0 and on_ray["workers"] == 2
    # The same ranking, best params and scores, whichever process fitted the trials.
    assert on_ray["objective"] == "sharpe" and on_ray["direction"] == "maximize"
    trading = {"cost_bps": 2.0, "allow_short": False, "periods_per_year": None}
    assert on_ray["trading"] == local["trading"] == trading
    assert on_ray["best"]["params"] == local["best"]["params"]
    assert on_ray["best"]["value"] == pytest.approx(local["best"]["value"], rel=1e-12)
    assert [r["C"] for r in on_ray["top"]] == [r["C"] for r in local["top"]]
    for a, b in zip(on_ray["top"], local["top"], strict=True):
        assert a["rank"] == b["rank"]
        for m in ("accuracy", "balanced_accuracy", "log_loss", "sharpe"):
            assert a[m] == pytest.approx(b[m], rel=1e-12)
    sharpes = [r["sharpe"] for r in on_ray["top"]]
    assert sharpes == sorted(sharpes, reverse=True) and len(set(sharpes)) == 3
    # Both saved the best params, trained on the same data: the same CV scores.
    models = [ModelRegistry(tmp_path / d).metadata("ar-searched") for d in ("ray", "local")]
    assert models[0].params["C"] == models[1].params["C"] == on_ray["best"]["params"]["C"]
    assert models[0].cv_metrics == pytest.approx(models[1].cv_metrics, rel=1e-12)
    assert models[0].cv_metrics["sharpe"] == pytest.approx(on_ray["best"]["value"], rel=1e-12)

    # The trials are in the default store, each with its sharpe; run again, none is rerun.
    trials, status = asyncio.run(_stored(tmp_path / "data", on_ray["sweep_id"]))
    assert len(trials) == 3 and all("sharpe" in t["metrics"] for t in trials.values())
    assert status is not None and status["status"] == "done"
    again = _train(config, tmp_path / "ray")
    assert again["sweep_id"] == on_ray["sweep_id"]
    assert again["ran"] == 0 and again["resumed"] == 3
    assert again["best"] == on_ray["best"] and again["top"] == on_ray["top"]
    assert ModelRegistry(tmp_path / "ray").versions("ar-searched") == [1, 2]

    # A named search with --fresh forgets what it recorded and runs every trial.
    named = _train(config, tmp_path / "ray", "--id", "ar-1", "--workers", "1")
    assert named["sweep_id"] == "ar-1" and named["ran"] == 3 and named["workers"] == 1
    fresh = _train(config, tmp_path / "ray", "--id", "ar-1", "--fresh")
    assert fresh["ran"] == 3 and fresh["resumed"] == 0
    assert fresh["best"] == on_ray["best"]


def test_a_search_id_of_another_config_is_refused(
    ray_runtime: None, config: Path, tmp_path: Path
) -> None:
    assert _train(config, tmp_path / "ray", "--id", "taken")["ran"] == 3
    other = config.read_text().replace("cost_bps: 2", "cost_bps: 5")
    config.write_text(other)
    args = ["train", "ml", str(config), "--registry", str(tmp_path / "ray"), "--id", "taken"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "sweep 'taken' exists with another config" in result.output
