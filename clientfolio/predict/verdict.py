"""One prediction measured against its baseline on the same time split, and the choice it leads to.

Every predictive module returns a :class:`Comparison`, so the CLI, the report and the API show all
of them the same way: the metrics side by side, which one the product uses, and why, in plain words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Literal

Better = Literal["higher", "lower"]


@dataclass(frozen=True)
class Metric:
    """One metric for the model and for the baseline; ``better`` says which direction wins."""

    name: str
    model: float
    baseline: float
    better: Better
    note: str = ""  # what the metric covers, e.g. "customers active before the cut-off"

    @property
    def model_wins(self) -> bool:
        """True when the model is strictly better than the baseline on this metric."""
        if self.better == "higher":
            return self.model > self.baseline
        return self.model < self.baseline


@dataclass(frozen=True)
class Comparison:
    """A prediction task evaluated on a time split: model against baseline, and the choice made.

    ``chosen`` is "model" or "baseline"; ``sentence`` says in plain words which one is used and why
    (for example "The purchase model's P(alive) is used: the boosted trees did not rank customers
    better (AUC 0.71 against 0.73)").  ``cutoff`` is the last day of the training features; the
    outcome window is ``cutoff`` + ``horizon_days``.
    """

    task: str
    model_name: str
    baseline_name: str
    metrics: tuple[Metric, ...]
    chosen: Literal["model", "baseline"]
    sentence: str
    cutoff: date
    horizon_days: int
    n_train: int
    n_test: int
    details: dict[str, object] = field(default_factory=dict)  # e.g. calibration bins, explanations

    def rows(self) -> list[dict[str, object]]:
        """The metrics as table rows (metric, model, baseline, better side)."""
        return [{"metric": m.name, self.model_name: m.model, self.baseline_name: m.baseline,
                 "better": self.model_name if m.model_wins else self.baseline_name, "note": m.note}
                for m in self.metrics]
