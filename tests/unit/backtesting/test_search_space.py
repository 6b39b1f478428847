"""Search spaces and sweep configs: checked against the agent's schema, named errors."""

from __future__ import annotations

from typing import Any

import pytest

from raytrader.backtesting.config import ConfigError
from raytrader.backtesting.proposers import ListProposer, OptunaProposer, make_proposer
from raytrader.backtesting.search_space import Dimension, SearchSpace, trial_key
from raytrader.backtesting.sweep_config import parse_sweep_config

SMA_GRID = {
    "fast": Dimension(start=5, stop=50, step=5),
    "slow": Dimension(start=20, stop=200, step=10),
}


def sweep(**over: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "data": {"synthetic": {"n_bars": 500}},
        "agent": "sma_cross",
        "space": {"fast": {"start": 5, "stop": 50, "step": 5}, "slow": {"values": [20, 60]}},
    }
    raw.update(over)
    return raw


def test_grid_skips_what_the_schema_rejects_and_counts_it() -> None:
    space = SearchSpace("sma_cross", SMA_GRID, {})
    grid = space.grid()
    # 10 fast x 19 slow = 190 pairs; 16 have fast >= slow (the 174-config grid).
    assert space.grid_size() == 190
    assert len(grid) == 174
    assert space.skipped == 16
    assert "must be below slow" in space.skip_reasons[0]
    assert all(p["fast"] < p["slow"] for p in grid)
    assert all(isinstance(p["fast"], int) for p in grid)
    assert len({trial_key(p) for p in grid}) == 174


def test_fixed_params_join_every_trial() -> None:
    space = SearchSpace("sma_cross", {"fast": Dimension(values=[5, 10])}, {"slow": 30})
    assert space.grid() == [{"slow": 30, "fast": 5}, {"slow": 30, "fast": 10}]


@pytest.mark.parametrize(
    ("dims", "fixed", "message"),
    [
        ({"fastt": Dimension(values=[5])}, {}, "sma_cross has no parameter 'fastt'"),
        ({"fast": Dimension(values=[0, 5])}, {}, r"fast=0 is out of bounds \(>= 1.0\)"),
        ({"fast": Dimension(values=[2.5])}, {}, "fast is an integer, got 2.5"),
        ({"weight": Dimension(low=0.0, high=1.0)}, {}, r"weight=0.0 is out of bounds \(> 0.0\)"),
        ({"fast": Dimension(values=[5])}, {"fast": 5}, "both searched and fixed"),
        ({}, {}, "no dimension"),
    ],
)
def test_bad_spaces_name_the_problem(
    dims: dict[str, Dimension], fixed: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        SearchSpace("sma_cross", dims, fixed)


def test_empty_grid_says_why() -> None:
    space = SearchSpace(
        "sma_cross", {"fast": Dimension(values=[50]), "slow": Dimension(values=[20, 30])}, {}
    )
    with pytest.raises(ValueError, match=r"grid is empty.*fast \(50\) must be below slow \(20\)"):
        space.grid()


def test_random_samples_are_seeded_distinct_and_in_bounds() -> None:
    dims = {"fast": Dimension(low=2, high=40), "slow": Dimension(low=30, high=300)}
    a = SearchSpace("sma_cross", dims, {}).sample(50, seed=3)
    b = SearchSpace("sma_cross", dims, {}).sample(50, seed=3)
    c = SearchSpace("sma_cross", dims, {}).sample(50, seed=4)
    assert a == b != c
    assert len({trial_key(p) for p in a}) == 50
    assert all(2 <= p["fast"] <= 40 and 30 <= p["slow"] <= 300 for p in a)
    assert all(p["fast"] < p["slow"] and isinstance(p["fast"], int) for p in a)


def test_log_interval_samples_floats() -> None:
    dims = {"weight": Dimension(low=0.01, high=1.0, log=True)}
    got = SearchSpace("sma_cross", dims, {}).sample(200, seed=0)
    weights = [p["weight"] for p in got]
    assert all(0.01 <= w <= 1.0 for w in weights)
    # Log-uniform: about half the draws below the geometric midpoint 0.1.
    assert 70 < sum(w < 0.1 for w in weights) < 130


def test_trial_key_ignores_order_and_tells_values_apart() -> None:
    assert trial_key({"a": 1, "b": 2}) == trial_key({"b": 2, "a": 1})
    assert trial_key({"a": 1}) != trial_key({"a": 2})


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"agent": "nope"}, "nope"),
        ({"objective": "luck"}, "objective 'luck' is not one of"),
        ({"search": {"method": "random"}}, "search.n_trials is required"),
        ({"space": {"fast": {"start": 5, "stop": 1, "step": 1}}}, "stop .* is below start"),
        ({"space": {"fast": {"values": [5], "low": 1, "high": 2}}}, "exactly one of"),
        ({"space": {"fast": {"values": [30]}, "slow": {"values": [20]}}}, "grid is empty"),
        ({"space": {"slow": {"values": [1]}}}, "slow=1 is out of bounds"),
        ({"initial_cash": -1}, "initial_cash"),
    ],
)
def test_sweep_config_errors_name_the_field(over: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_sweep_config(sweep(**over))


def test_list_proposer_resumes_without_the_done_trials() -> None:
    space = SearchSpace("sma_cross", SMA_GRID, {})
    grid = space.grid()
    proposer = ListProposer(grid)
    done = {trial_key(p): {"params": p} for p in grid[::3]}
    proposer.resume(done)
    handed: list[dict[str, Any]] = []
    while batch := proposer.next_batch(7):
        handed += batch
    assert proposer.total == 174
    assert len(handed) == 174 - len(done)
    assert not {trial_key(p) for p in handed} & set(done)


def _record(params: dict[str, Any]) -> dict[str, Any]:
    # A smooth objective with its peak at fast=20, slow=100.
    value = -((params["fast"] - 20) ** 2) - ((params["slow"] - 100) / 5) ** 2
    return {"key": trial_key(params), "params": params, "metrics": {"sharpe": value}}


def test_optuna_proposes_valid_distinct_trials_in_async_batches() -> None:
    space = SearchSpace(
        "sma_cross", {"fast": Dimension(low=2, high=60), "slow": Dimension(low=10, high=300)}, {}
    )
    proposer = make_proposer(space, "optuna", 80, 1, "sharpe", "maximize")
    assert isinstance(proposer, OptunaProposer)
    seen: set[str] = set()
    in_flight: list[list[dict[str, Any]]] = [proposer.next_batch(4), proposer.next_batch(4)]
    while in_flight:
        batch = in_flight.pop(0)  # the oldest batch finishes while the newer one still runs
        for p in batch:
            assert p["fast"] < p["slow"]
            assert trial_key(p) not in seen
            seen.add(trial_key(p))
        proposer.tell([_record(p) for p in batch])
        nxt = proposer.next_batch(4)
        if nxt:
            in_flight.append(nxt)
    assert len(seen) == 80
    best = proposer.study.best_params
    # TPE homes in on the peak: better than the median of uniform guessing by far.
    assert abs(best["fast"] - 20) <= 8 and abs(best["slow"] - 100) <= 50


def test_optuna_resume_learns_from_recorded_trials() -> None:
    space = SearchSpace(
        "sma_cross", {"fast": Dimension(low=2, high=60), "slow": Dimension(low=10, high=300)}, {}
    )
    first = make_proposer(space, "optuna", 30, 0, "sharpe", "maximize")
    done: dict[str, dict[str, Any]] = {}
    while batch := first.next_batch(5):
        records = [_record(p) for p in batch]
        first.tell(records)
        done.update({r["key"]: r for r in records})
        if len(done) >= 12:
            break
    again = make_proposer(space, "optuna", 30, 0, "sharpe", "maximize")
    assert isinstance(again, OptunaProposer)
    again.resume(done)
    assert len(again.study.trials) == len(done)
    rest: list[dict[str, Any]] = []
    while batch := again.next_batch(5):
        again.tell([_record(p) for p in batch])
        rest += batch
    assert len(rest) == 30 - len(done)
    assert not {trial_key(p) for p in rest} & set(done)
