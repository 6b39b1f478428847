"""The agent registry: built-ins, validation errors, and third-party agents by entry point."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from raytrader.agents import AgentConfigError, UnknownAgentError, available, create, registry
from raytrader.backtesting.config import load_config
from raytrader.backtesting.runner import run_backtest


def test_builtins_are_registered() -> None:
    assert {"sma_cross", "rsi_reversion", "bollinger_breakout", "momentum"} <= set(available())


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(UnknownAgentError, match="did you mean 'sma_cross'"):
        create("sma_crss")


def test_invalid_params_name_the_field() -> None:
    with pytest.raises(AgentConfigError, match=r"'sma_cross'.*fast \(30\) must be below slow"):
        create("sma_cross", {"fast": 30, "slow": 10})
    with pytest.raises(AgentConfigError, match=r"fast: Input should be greater than or equal"):
        create("sma_cross", {"fast": 0})
    with pytest.raises(AgentConfigError, match=r"colour: Extra inputs are not permitted"):
        create("sma_cross", {"colour": "red"})


def test_params_schema_has_defaults_and_bounds() -> None:
    schema = registry.params_schema("momentum").model_json_schema()
    props = schema["properties"]
    assert props["lookback_period"]["default"] == 90
    assert props["top_percentage"]["default"] == 0.2
    assert props["risk_factor"]["default"] == 0.001
    assert props["top_percentage"]["exclusiveMinimum"] == 0


THIRD_PARTY = textwrap.dedent(
    '''
    """An agent that lives outside raytrader: buy on the first bar, hold."""
    from pydantic import Field

    from raytrader.agents import Agent, AgentParams
    from raytrader.domain import Signal


    class HoldParams(AgentParams):
        weight: float = Field(0.5, gt=0, le=1)


    class BuyAndHold(Agent):
        name = "buy_and_hold_ext"
        Params = HoldParams

        def on_bar(self, ctx):
            if ctx.position(ctx.symbols[0]) == 0 and not getattr(self, "done", False):
                self.done = True
                return [Signal(ctx.symbols[0], ctx.ts, direction=1, weight=self.params.weight)]
            return None
    '''
)


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A third-party distribution on sys.path, declaring a ``raytrader.agents`` entry point."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "ext_agents.py").write_text(THIRD_PARTY)
    dist = site / "ext_agents-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ext-agents\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[raytrader.agents]\nbuy_and_hold_ext = ext_agents:BuyAndHold\n"
    )
    monkeypatch.syspath_prepend(str(site))
    yield site
    registry._REGISTRY.pop("buy_and_hold_ext", None)


def test_third_party_agent_runs_from_yaml_by_name(installed_plugin: Path, tmp_path: Path) -> None:
    assert "buy_and_hold_ext" in available()
    config = tmp_path / "ext.yaml"
    config.write_text(
        textwrap.dedent(
            """
            name: ext
            data:
              synthetic: {kind: single, n_bars: 300, seed: 3}
            agents:
              - name: buy_and_hold_ext
                params: {weight: 0.5}
            initial_cash: 10000
            portfolio: {lot_size: 0}
            """
        )
    )
    result = run_backtest(load_config(config))
    assert len(result.fills) == 1
    fill = result.fills[0]
    # Bought at the second bar's open with half the equity.
    assert fill.ts == result.equity.index[1]
    assert fill.quantity * fill.price == pytest.approx(5000.0, rel=1e-9)


def test_third_party_params_are_validated(installed_plugin: Path) -> None:
    with pytest.raises(AgentConfigError, match="weight"):
        create("buy_and_hold_ext", {"weight": 2})
