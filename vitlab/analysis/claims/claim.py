"""What a claim is and what checking it returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

HOLDS = "holds"
CAVEATS = "holds here with caveats"
FAILS = "does not hold"
UNDECIDED = "cannot be decided at this size"
VERDICTS = (HOLDS, CAVEATS, FAILS, UNDECIDED)


@dataclass
class Finding:
    """A claim's verdict, one sentence of why, and the evidence (Markdown lines: numbers, tables) and plots."""

    verdict: str
    why: str
    evidence: list[str] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)  # file names inside the report's folder

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict={self.verdict!r} is not one of {VERDICTS}")


@dataclass(frozen=True)
class Lab:
    """Where a check writes (``out``: its plots; ``runs``: the run folders of engine runs), and its seeds."""

    out: Path
    runs: Path
    seed: int = 0
    seeds: int = 3  # seeds a setting, where settings are compared
    tau_sweep: Path | None = None  # a `vitlab sweep pretrain.tau=...` folder claim 9 may read instead of training

    def seed_list(self, n: int | None = None) -> list[int]:
        return [self.seed + i for i in range(n or self.seeds)]


@dataclass(frozen=True)
class Claim:
    number: int
    statement: str  # as the notes put it
    check: Callable[[Lab], Finding]
    kind: str  # "exact": a computation against an independent reference; "experiment": seeded training runs
