"""``raytrader train ml CONFIG.yaml``: progress, CV metrics, a saved version, errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

from typer.testing import CliRunner

from raytrader.cli import app
from raytrader.ml.registry import ModelRegistry

runner = CliRunner()
CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "ml"

SYN = """
    name: syn-logit
    data:
      synthetic: {kind: single, n_bars: 1500, seed: 3, freq: 1h}
    kind: logistic
    features: {vol_rank_window: 50}
    labels: {horizon: 1}
    cv_splits: 3
"""


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "train.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def test_train_ml_saves_versions_and_prints_cv_metrics(tmp_path: Path) -> None:
    reg = tmp_path / "models"
    cfg = _write(tmp_path, SYN)
    result = runner.invoke(app, ["train", "ml", str(cfg), "--registry", str(reg)])
    assert result.exit_code == 0, result.output
    assert "4/4" in result.output  # the progress bar: 3 folds and the final fit
    assert "balanced_accuracy" in result.output and "mean" in result.output
    assert "saved syn-logit version 1" in result.output
    again = runner.invoke(app, ["train", "ml", str(cfg), "--registry", str(reg)])
    assert "saved syn-logit version 2" in again.output
    record = ModelRegistry(reg).metadata("syn-logit")
    assert record.version == 2 and record.symbol == "SYN" and record.kind == "logistic"
    assert set(record.cv_metrics) == {"accuracy", "balanced_accuracy", "log_loss", "sharpe"}


def test_shipped_config_trains(tmp_path: Path) -> None:
    reg = tmp_path / "models"
    path = CONFIGS / "s01_logistic.yaml"
    result = runner.invoke(app, ["train", "ml", str(path), "--registry", str(reg)])
    assert result.exit_code == 0, result.output
    assert ModelRegistry(reg).versions("s01-logistic") == [1]


def test_bad_config_is_an_error_naming_the_field(tmp_path: Path) -> None:
    bad = _write(tmp_path, SYN.replace("kind: logistic", "kind: svm"))
    result = runner.invoke(app, ["train", "ml", str(bad), "--registry", str(tmp_path)])
    assert result.exit_code == 2 and "kind" in result.output
    bad = _write(tmp_path, SYN + "    symbol: NOPE\n")
    result = runner.invoke(app, ["train", "ml", str(bad), "--registry", str(tmp_path)])
    assert result.exit_code == 2 and "NOPE" in result.output


def test_ray_options_with_in_process_are_an_error_naming_them(tmp_path: Path) -> None:
    cfg = _write(tmp_path, SYN)
    args = ["train", "ml", str(cfg), "--registry", str(tmp_path), "--in-process"]
    result = runner.invoke(app, [*args, "--id", "s1", "--fresh"])
    assert result.exit_code == 2
    assert "--id, --fresh apply to a search on Ray, not --in-process" in result.output
    assert not (tmp_path / "syn-logit").exists()
