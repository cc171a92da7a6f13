"""`results.json`: one typed definition of a bench run's numbers, written by the exporters
and read back by `bench compare` (model.to_json / model.from_json on these dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from recharge_cli.bench import model
from recharge_cli.bench.analysis import BudgetCheck, LoadSummary, SaturationPoint, Speedups
from recharge_cli.bench.environment import Environment
from recharge_cli.bench.mix import MixResult
from recharge_cli.bench.runner import WriteCheck
from recharge_cli.bench.sampling import Summary

if TYPE_CHECKING:
    from recharge_cli.bench.session import RunResult


@dataclass
class Progress:
    """Trials and load (or mix) runs done, and planned: they differ in a partial run."""

    trials: int
    trials_planned: int
    load_runs: int
    load_runs_planned: int


@dataclass
class PerSecond:
    """One second of one load run."""

    target: str
    kind: str
    offered_per_second: float | None
    second: int
    operations: int
    p99_us: float


@dataclass
class Results:
    samples_ns: dict[str, list[int]] = field(default_factory=dict)  # raw samples by series
    partial: bool = False
    progress: Progress | None = None
    environment: Environment | None = None
    started: str = ""
    summary: dict[str, Summary] = field(default_factory=dict)
    speedups: dict[str, Speedups] = field(default_factory=dict)
    budgets: list[BudgetCheck] = field(default_factory=list)
    loads: list[LoadSummary] = field(default_factory=list)
    saturation: list[SaturationPoint] = field(default_factory=list)
    per_second: list[PerSecond] = field(default_factory=list)
    write_check: WriteCheck | None = None
    warnings: list[str] = field(default_factory=list)
    mix: MixResult | None = None
    trial_order: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, result: RunResult) -> Results:
        a = result.analysis
        return cls(result.samples.values, result.partial, result.progress(),
                   result.environment, result.started.isoformat(), a.summary, a.speedups,
                   a.budgets, a.loads, a.saturation, per_second(result), result.write_check,
                   a.warnings, result.mix, [series for series, _ in result.samples.order])

    def to_json(self) -> dict[str, Any]:
        return model.to_json(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Results:
        """A results.json; one written before the write check had its present fields (it
        counted the ledger) is read without its write check, which `compare` does not use."""
        check = data.get("write_check")
        if isinstance(check, dict) and "recharges_reported" not in check:
            data = {**data, "write_check": None}
        return model.from_json(cls, data)


def per_second(result: RunResult) -> list[PerSecond]:
    return [PerSecond(run.target, run.kind, run.offered, second, operations, p99_us)
            for run in result.loads for second, operations, p99_us in run.per_second()]
