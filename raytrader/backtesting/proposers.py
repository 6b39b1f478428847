"""Where a sweep's next trials come from: the grid, seeded random draws, or Optuna's TPE.

A proposer hands out batches of parameter sets and is told the records of finished trials.
Trials already recorded (a resumed sweep) are given to ``resume`` first: grid and random skip
them, Optuna learns from them. Optuna proposes asynchronously: a batch is asked while other
batches still run (``constant_liar`` keeps it from proposing the same point twice), so workers
never wait for the sampler.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

from raytrader.backtesting.search_space import Dimension, Params, SearchSpace, trial_key

if TYPE_CHECKING:
    import optuna


class Proposer(Protocol):
    total: int  # trials the sweep will have when complete

    def resume(self, done: Mapping[str, Mapping[str, Any]]) -> None: ...

    def next_batch(self, n: int) -> list[Params]:
        """Up to ``n`` trials to run next; empty when nothing is left to propose."""
        ...

    def tell(self, records: Sequence[Mapping[str, Any]]) -> None: ...


class ListProposer:
    """A fixed list of trials (the grid, or random draws): hands out those not done."""

    def __init__(self, trials: list[Params]) -> None:
        self.total = len(trials)
        self._todo = trials
        self._pos = 0

    def resume(self, done: Mapping[str, Mapping[str, Any]]) -> None:
        self._todo = [p for p in self._todo if trial_key(p) not in done]

    def next_batch(self, n: int) -> list[Params]:
        batch = self._todo[self._pos : self._pos + n]
        self._pos += len(batch)
        return batch

    def tell(self, records: Sequence[Mapping[str, Any]]) -> None:
        pass


def objective_value(record: Mapping[str, Any], objective: str) -> float | None:
    value = record["metrics"].get(objective)
    return None if value is None or not math.isfinite(value) else float(value)


class OptunaProposer:
    """TPE over the space; ``n_trials`` distinct trials in all (resumed ones included)."""

    def __init__(
        self,
        space: SearchSpace,
        n_trials: int,
        seed: int,
        objective: str,
        direction: Literal["maximize", "minimize"],
    ) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.space = space
        self.total = n_trials
        self.objective = objective
        sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
        self.study = optuna.create_study(sampler=sampler, direction=direction)
        self.distributions = {n: _distribution(space, n) for n in space.names}
        self._asked: dict[str, list[optuna.trial.Trial]] = {}
        self._done: dict[str, Mapping[str, Any]] = {}
        self._proposed = 0

    def resume(self, done: Mapping[str, Mapping[str, Any]]) -> None:
        import optuna

        for key, rec in done.items():
            value = objective_value(rec, self.objective)
            params = {n: rec["params"][n] for n in self.space.names}
            state = optuna.trial.TrialState.COMPLETE if value is not None else None
            self.study.add_trial(
                optuna.trial.create_trial(
                    params=params,
                    distributions=self.distributions,
                    value=value,
                    state=state or optuna.trial.TrialState.FAIL,
                )
            )
            self._done[key] = rec
        self._proposed = len(self._done)

    def next_batch(self, n: int) -> list[Params]:
        import optuna

        batch: dict[str, Params] = {}
        attempts = 0
        while len(batch) < n and self._proposed < self.total and attempts < 100 * n:
            attempts += 1
            trial = self.study.ask(self.distributions)
            params = self.space.validate(trial.params)
            if params is None:  # the schema rejects the combination: tell TPE, ask again
                self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                continue
            key = trial_key(params)
            if key in self._done:  # proposed before: answer from the record, no rerun
                self._tell_one(trial, self._done[key])
                continue
            in_flight = key in self._asked
            self._asked.setdefault(key, []).append(trial)
            if not in_flight:  # else it runs already: this trial is told with that one
                batch[key] = params
                self._proposed += 1
        return list(batch.values())

    def tell(self, records: Sequence[Mapping[str, Any]]) -> None:
        for rec in records:
            self._done[rec["key"]] = rec
            for trial in self._asked.pop(rec["key"], []):
                self._tell_one(trial, rec)

    def _tell_one(self, trial: optuna.trial.Trial, rec: Mapping[str, Any]) -> None:
        import optuna

        value = objective_value(rec, self.objective)
        if value is None:
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, value)


def _distribution(space: SearchSpace, name: str) -> optuna.distributions.BaseDistribution:
    from optuna import distributions as d

    dim: Dimension = space.dimensions[name]
    is_int = space.fields[name].kind is int
    if dim.values is not None:
        return d.CategoricalDistribution(dim.values)
    low = dim.start if dim.start is not None else dim.low
    high = dim.stop if dim.stop is not None else dim.high
    assert low is not None and high is not None
    if dim.step is not None:  # the last point of the range, as the grid has it
        high = low + math.floor((high - low) / dim.step + 1e-9) * dim.step
    if is_int:
        step = 1 if dim.step is None else round(dim.step)
        return d.IntDistribution(math.ceil(low), math.floor(high), log=dim.log, step=step)
    return d.FloatDistribution(low, high, log=dim.log, step=dim.step)


def make_proposer(
    space: SearchSpace,
    method: str,
    n_trials: int | None,
    seed: int,
    objective: str,
    direction: Literal["maximize", "minimize"],
) -> Proposer:
    if method == "grid":
        return ListProposer(space.grid())
    assert n_trials is not None
    if method == "random":
        return ListProposer(space.sample(n_trials, seed))
    return OptunaProposer(space, n_trials, seed, objective, direction)
